"""Test configuration: hypothesis profiles and the markers the suite uses.

Hypothesis profiles (choose with the environment variable HYPOTHESIS_PROFILE):

- ``dev`` (default): a quick random sample of examples on every run;
- ``ci`` (default when the variable CI is set): the same number of examples, derandomized,
  so a CI failure reproduces exactly on any machine;
- ``thorough``: many more examples, for a long hunt before a release.

No deadline anywhere: a test's verdict must never depend on how fast the machine is.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, **_common)
settings.register_profile("ci", max_examples=25, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=500, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")
