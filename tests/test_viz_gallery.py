"""The gallery command, and the boundary between the engine and viz."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_mb.minibatch import ERROR_FIRST_VARIANTS
from viz import INSTALL_HINT, available_renderer
from viz.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
PICTURES = ["graph_before_backward", "graph_after_backward", "graph_compact",
            "schematic_strategies", "strategies", "strategies_detailed",
            "schematic_error_first", *(f"error_first_{v}" for v in ERROR_FIRST_VARIANTS),
            "schematic_whose_activations", "whose_activations"]


def test_gallery_draws_every_picture_and_says_where(tmp_path, capsys):
    if available_renderer() is None:
        pytest.skip("no Graphviz renderer installed (pip install pygraphviz, or install Graphviz)")
    out = tmp_path / "gallery"
    assert main(["gallery", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in PICTURES:
        svg = out / f"{name}.svg"
        assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
        assert str(svg) in printed
    frames = sorted((out / "backward_steps").glob("step_*.svg"))
    assert len(frames) >= 5
    page = out / "backward_steps" / "backward_steps.html"
    assert page.read_text(encoding="utf-8").count('<div class="frame"') == len(frames)
    assert str(page) in printed and f"{len(frames)} frames of the backward pass" in printed


def test_gallery_without_a_renderer_writes_dot_text_and_the_hint(tmp_path):
    # Run as a user would, as a module, with rendering switched off.
    out = tmp_path / "g"
    done = subprocess.run(
        [sys.executable, "-m", "viz", "gallery", "--out", str(out), "--renderer", "none"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.dot" for name in PICTURES)
    assert "DOT text only" in done.stdout and INSTALL_HINT in done.stdout
    assert "Traceback" not in done.stderr


def test_gallery_with_a_bad_renderer_variable_says_so_without_a_traceback(tmp_path):
    env = {**os.environ, "VIZ_RENDERER": "typo"}
    done = subprocess.run(
        [sys.executable, "-m", "viz", "gallery", "--out", str(tmp_path / "g")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, env=env,
    )
    assert done.returncode == 2
    assert "VIZ_RENDERER must be one of" in done.stderr and "'typo'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "g").exists()


def test_the_engine_never_imports_viz_and_importing_viz_loads_no_renderer():
    code = (
        "import sys, tinygrad_mb, tinygrad_mb.minibatch, tinygrad_mb.train\n"
        "assert 'viz' not in sys.modules, 'the engine imported viz'\n"
        "before = set(sys.modules)\n"
        # The whole package. It writes DOT with the `graphviz` package (plain Python, which
        # viz never asks to render); the renderer is loaded only when a picture is made.
        "import viz\n"
        "loaded = set(sys.modules) - before\n"
        "assert 'graphviz' in loaded, 'DOT is not written with the graphviz package'\n"
        "drawing = {'pygraphviz', 'matplotlib'} & loaded\n"
        "assert not drawing, drawing\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    engine_sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tinygrad_mb").glob("*.py"))
    assert "import viz" not in engine_sources and "from viz" not in engine_sources


def test_gallery_into_a_folder_under_a_file_says_so_without_a_traceback(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    done = subprocess.run(
        [sys.executable, "-m", "viz", "gallery", "--out", str(blocker / "g"), "--renderer", "none"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 1
    assert f"{blocker} is a file, not a folder" in done.stderr and str(blocker / "g") in done.stderr
    assert "Traceback" not in done.stderr
    assert blocker.read_text() == "a file"
