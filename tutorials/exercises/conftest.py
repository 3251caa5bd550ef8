"""Shared set-up for the exercise checkers: one pytest marker per task, and your code to check.

Each checker test carries exactly one task marker, so ``pytest tutorials/exercises -m
ex_leaky_relu`` checks one task and nothing else, and no task's tests depend on another's.

The fixtures ``my_ops``, ``my_strategy``, ``my_property`` and ``my_minibatch`` hand the tests
your modules (``tutorials/exercises/my_*.py``). The project's own test suite sets
``TINYGRAD_MB_EXERCISES=solutions`` to run the same checkers against the reference solutions,
and ``TINYGRAD_MB_EXERCISES=wrong:<mistake>`` to run them against one deliberately wrong
answer from ``wrong/`` (which they must reject, saying what to try).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

IMPLEMENTATION_ENV = "TINYGRAD_MB_EXERCISES"

# marker -> what the task asks for; pytest lists these under `pytest --markers`.
TASKS = {
    "ex_leaky_relu": "exercise 1: leaky_relu with its backward (my_ops.py)",
    "ex_logsumexp": "exercise 2: a numerically stable logsumexp with its backward (my_ops.py)",
    "ex_maximum": "exercise 3: elementwise maximum with broadcasting and ties (my_ops.py)",
    "ex_clipped_average": "exercise 4: the clipped per-sample average strategy (my_strategy.py)",
    "ex_property": "exercise 5: a property test that tells right strategies from wrong (my_property.py)",
    "ex_weighted_accumulation": "exercise 6: gradient accumulation with |c|/B weights (my_minibatch.py)",
    "ex_sum_estimate": "exercise 7: the (N/M) estimate of a sum objective's gradient (my_minibatch.py)",
    "ex_token_weighted_accumulation": "exercise 8: accumulating a loss averaged over tokens (my_minibatch.py)",
}


def pytest_configure(config: pytest.Config) -> None:
    for marker, description in TASKS.items():
        config.addinivalue_line("markers", f"{marker}: {description}")
    if os.environ.get(IMPLEMENTATION_ENV, "").startswith("wrong:"):
        # A wrong answer only has to be caught: skip hypothesis's search for the smallest
        # failing example, which you want when you fix your own answer.
        from hypothesis import Phase, settings

        settings.register_profile("wrong_answers", database=None, phases=[Phase.explicit, Phase.generate])
        settings.load_profile("wrong_answers")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every checker belongs to exactly one task; its task is also recorded in JUnit reports."""
    for item in items:
        if os.path.dirname(str(item.path)) != os.path.dirname(__file__):
            continue
        tasks = [m.name for m in item.iter_markers() if m.name in TASKS]
        if len(tasks) != 1:
            raise pytest.UsageError(f"{item.nodeid} must carry exactly one task marker, has {tasks}")
        item.user_properties.append(("task", tasks[0]))


def load(module: str) -> ModuleType:
    """Your module ``module`` (or the reference solution's, when the environment asks for it)."""
    implementation = os.environ.get(IMPLEMENTATION_ENV, "")
    if implementation == "solutions":
        return importlib.import_module(f"solutions.{module}")
    if implementation.startswith("wrong:"):  # the project's test that the checkers catch mistakes
        from wrong import answer

        return answer(module, implementation.removeprefix("wrong:"))
    return importlib.import_module(module)


@pytest.fixture(scope="session")
def my_ops() -> ModuleType:
    return load("my_ops")


@pytest.fixture(scope="session")
def my_strategy() -> ModuleType:
    return load("my_strategy")


@pytest.fixture(scope="session")
def my_property() -> ModuleType:
    return load("my_property")


@pytest.fixture(scope="session")
def my_minibatch() -> ModuleType:
    return load("my_minibatch")
