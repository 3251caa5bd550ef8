"""The tutorials cannot rot: each notebook matches its source and runs top to bottom.

Every tutorial is a py:percent source ``tutorials/NN_name.py`` paired with an outputs-free
``NN_name.ipynb``. These tests prove that

- each pair holds the same cells (compared as jupytext reads them, not by file dates),
- each notebook is stored without outputs,
- each notebook executes in a fresh Jupyter kernel running this interpreter, headless
  (matplotlib's inline backend, which renders with Agg) and with the network switched off,
- cells tagged ``graph`` displayed an SVG (``image/svg+xml``), cells tagged ``plot`` an
  image (``image/png``) and cells tagged ``html`` an HTML page, so a missing picture is a
  failure, not a silent blank,
- each tutorial ends with assertions about what it taught (and the execution proves they hold).

Executing the notebooks takes a while, so those tests carry the ``slow`` marker: they run in
the full suite and can be left out with ``pytest -m "not slow"``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"

jupytext = pytest.importorskip("jupytext", reason="needs the tutorials extra: pip install -e '.[tutorials]'")
nbformat = pytest.importorskip("nbformat", reason="needs the tutorials extra")

CELL_TIMEOUT_S = 120

# The output each tag demands of a cell, and how to read the failure.
REQUIRED_OUTPUT = {
    "graph": ("image/svg+xml", "a computation graph drawn as SVG"),
    "plot": ("image/png", "a matplotlib figure"),
    "html": ("text/html", "an HTML page, such as the backward-pass stepper"),
}

# Run first in every kernel: refuse connections that leave this machine, and report which
# Python the kernel runs. The kernel talks to the test over loopback sockets it opened
# before this cell ran, so those are unaffected.
KERNEL_SETUP = '''
import socket as _socket
import sys as _sys

_connect = _socket.socket.connect


def _local_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is None or host in ("127.0.0.1", "::1", "localhost"):
        return _connect(self, address)
    raise OSError(f"network access is switched off while the tutorials are tested ({address!r})")


_socket.socket.connect = _local_only
print(_sys.prefix)
'''


def _load_sync_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_notebooks", TUTORIALS / "sync_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = _load_sync_script()
SOURCES = sync.tutorial_sources(TUTORIALS)
REGENERATE = "regenerate the notebooks with: python tutorials/sync_notebooks.py"


def test_tutorials_exist() -> None:
    assert SOURCES, f"no tutorials found in {TUTORIALS}"


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_notebook_has_the_same_cells_as_its_source(source: Path) -> None:
    problem = sync.out_of_sync(source)
    assert problem is None, f"{source.name} and its notebook are out of sync: {problem}; {REGENERATE}"


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_notebook_is_stored_without_outputs(source: Path) -> None:
    nb = nbformat.read(sync.notebook_for(source), as_version=4)
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]
    assert not with_outputs, f"{source.with_suffix('.ipynb').name}: cells {with_outputs} hold outputs; {REGENERATE}"


def test_every_notebook_has_a_source() -> None:
    orphans = [nb.name for nb in TUTORIALS.glob("[0-9][0-9]_*.ipynb") if not nb.with_suffix(".py").exists()]
    assert not orphans, f"notebooks without a py:percent source: {orphans}"


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_tutorial_ends_with_assertions(source: Path) -> None:
    code = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
    assert code and "assert " in code[-1].source, (
        f"{source.name}: the last code cell should assert the results the tutorial teaches"
    )


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_tagged_cells_are_code_cells(source: Path) -> None:
    for i, cell in enumerate(jupytext.read(source).cells):
        tags = set(cell.metadata.get("tags", [])) & set(REQUIRED_OUTPUT)
        assert not tags or cell.cell_type == "code", f"{source.name}: cell {i} is tagged {tags} but is not code"


def _execute(notebook: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    nbclient = pytest.importorskip("nbclient", reason="needs the tutorials extra")
    pytest.importorskip("ipykernel", reason="needs the tutorials extra")
    # Headless pictures: the inline backend draws with Agg and sends PNGs to the notebook.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # Import the project from this checkout even when it is not installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(KERNEL_SETUP))
    # "python3" is the kernel ipykernel registers for the interpreter it is installed in;
    # jupyter_client starts it with sys.executable, which the setup cell's output confirms.
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, startup_timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    setup = nb.cells.pop(0)
    printed = "".join(o.get("text", "") for o in setup.outputs).strip()
    assert printed == sys.prefix, f"the kernel ran the Python in {printed}, not this one ({sys.prefix})"
    return nb


def _mime_types(cell: nbformat.NotebookNode) -> set[str]:
    return {mime for out in cell.get("outputs", []) for mime in out.get("data", {})}


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_tutorial_executes_and_shows_its_pictures(source: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _execute(sync.notebook_for(source), tmp_path, monkeypatch)
    missing = []
    for i, cell in enumerate(nb.cells):
        for tag in cell.metadata.get("tags", []):
            if tag in REQUIRED_OUTPUT and REQUIRED_OUTPUT[tag][0] not in _mime_types(cell):
                mime, what = REQUIRED_OUTPUT[tag]
                first_line = cell.source.splitlines()[0] if cell.source else ""
                missing.append(f"cell {i} ({first_line!r}) is tagged {tag!r} but showed no {mime} ({what})")
    assert not missing, f"{source.name}: " + "; ".join(missing)


@pytest.mark.slow
def test_kernel_runs_this_python_with_the_network_switched_off(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    probe = nbformat.v4.new_notebook()
    probe.cells.append(nbformat.v4.new_code_cell(
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=1)  # a documentation-only address\n"
        "    print('connected')\n"
        "except OSError as error:\n"
        "    print(error)\n"
    ))
    path = tmp_path / "probe.ipynb"
    nbformat.write(probe, path)
    nb = _execute(path, tmp_path, monkeypatch)  # also checks the kernel's interpreter
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "network access is switched off" in printed
