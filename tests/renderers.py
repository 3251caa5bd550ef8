"""Shared by the viz tests: run a test once per renderer, skipping only a renderer that is absent."""

from __future__ import annotations

import pytest

from viz import available_renderer

RENDERERS = ["dot", "pygraphviz"]


def renderer_or_skip(name: str) -> str:
    if available_renderer(name) is None:
        pytest.skip(f"renderer {name!r} is not installed here (scripts/install-system-deps.sh installs "
                    f"Graphviz's dot; pip install pygraphviz for the other)")
    return name
