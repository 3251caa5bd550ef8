"""Regenerate the tutorial notebooks from their py:percent sources.

Each tutorial is written and reviewed as a plain Python file, ``tutorials/NN_name.py``, in
jupytext's "percent" format (cells start with ``# %%``). Next to it lies ``NN_name.ipynb``,
the same cells as a notebook with no outputs, so it opens in Jupyter with no extra step.
The ``.py`` file is the source: this script rewrites every notebook from it.

    python tutorials/sync_notebooks.py            # rewrite every NN_name.ipynb from NN_name.py
    python tutorials/sync_notebooks.py --check    # only report pairs that are out of sync

The test suite runs the same comparison (tests/test_tutorials.py), so a source edited
without regenerating its notebook fails the tests with a pointer back to this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent

# Cell metadata that matters to the tests; everything else jupytext adds is bookkeeping.
COMPARED_METADATA = ("tags",)


def tutorial_sources(folder: Path = HERE) -> list[Path]:
    """The tutorial sources ``NN_name.py`` in ``folder``, in reading order."""
    return sorted(folder.glob("[0-9][0-9]_*.py"))


def notebook_for(source: Path) -> Path:
    return source.with_suffix(".ipynb")


def cell_signature(nb: nbformat.NotebookNode) -> list[tuple[str, str, dict[str, Any]]]:
    """What a learner sees of each cell: its type, its text and its tags."""
    return [
        (cell.cell_type, cell.source.strip(),
         {key: cell.metadata[key] for key in COMPARED_METADATA if key in cell.metadata})
        for cell in nb.cells
    ]


def notebook_from_source(source: Path) -> nbformat.NotebookNode:
    """The notebook for ``source``: its cells, paired with it, with no outputs."""
    nb = jupytext.read(source)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids, so regenerating an unchanged notebook changes nothing
    return nb


def out_of_sync(source: Path) -> str | None:
    """Why ``source`` and its notebook disagree, or None when they hold the same cells."""
    notebook = notebook_for(source)
    if not notebook.exists():
        return f"{notebook.name} is missing"
    expected = cell_signature(jupytext.read(source))
    actual = cell_signature(jupytext.read(notebook))
    if len(expected) != len(actual):
        return f"{source.name} has {len(expected)} cells but {notebook.name} has {len(actual)}"
    for i, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            first_line = want[1].splitlines()[0] if want[1] else "(empty)"
            return f"cell {i} differs (the source's cell starts {first_line!r})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report differences, write nothing")
    parser.add_argument("names", nargs="*", help="only tutorials whose file name contains one of these, e.g. 02")
    args = parser.parse_args(argv)
    stale = 0
    for source in tutorial_sources():
        if args.names and not any(name in source.name for name in args.names):
            continue
        problem = out_of_sync(source)
        if args.check:
            if problem:
                stale += 1
                print(f"out of sync: {source.name}: {problem}")
            continue
        jupytext.write(notebook_from_source(source), notebook_for(source))
        print(f"wrote {notebook_for(source).relative_to(HERE.parent)}")
    if stale:
        print("regenerate the notebooks with: python tutorials/sync_notebooks.py")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
