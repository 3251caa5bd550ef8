"""Rendering through `dot` and through pygraphviz, and what happens when nothing can render."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest
from renderers import RENDERERS, renderer_or_skip

import viz.render
from tinygrad_mb import Tensor, nn
from viz import INSTALL_HINT, Picture, RenderError, available_renderer, draw_graph, draw_strategies, walk
from viz.__main__ import example
from viz.render import RENDERER_ENV, render

SVG = "{http://www.w3.org/2000/svg}"


def small_loss() -> Tensor:
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor([1.0, 2.0], name="b")
    return (a * b).sum()


def assert_no_chained_traceback(exc: BaseException) -> None:
    """The error is shown alone, without the subprocess's or library's own exception under it."""
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


def titles(svg: str, kind: str) -> list[str]:
    """The <title> of every <g class="node"> (or "edge") group in an SVG file."""
    root = ET.fromstring(svg)
    return [g.findtext(f"{SVG}title") for g in root.iter(f"{SVG}g") if g.get("class", "").split()[:1] == [kind]]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_svg_is_xml_with_a_titled_group_for_every_node_and_edge(renderer):
    loss = small_loss()
    svg = draw_graph(loss, renderer=renderer_or_skip(renderer)).svg()
    graph = walk(loss)
    assert sorted(titles(svg, "node")) == sorted(n.id for n in graph.nodes)
    assert sorted(titles(svg, "edge")) == sorted(f"{a}->{b}" for a, b in graph.edges)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_save_picks_the_format_from_the_suffix(renderer, tmp_path):
    picture = draw_graph(small_loss(), renderer=renderer_or_skip(renderer))
    assert picture.save(tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")
    assert picture.save(tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.save(tmp_path / "g.pdf").read_bytes()[:5] == b"%PDF-"
    assert picture.save(tmp_path / "sub" / "g.dot").read_text() == picture.source


@pytest.mark.parametrize("renderer", RENDERERS)
def test_jupyter_display_is_the_svg_when_a_renderer_works(renderer):
    bundle = draw_graph(small_loss(), renderer=renderer_or_skip(renderer))._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_dot_text_graphviz_rejects_becomes_one_clear_error(renderer):
    with pytest.raises(RenderError, match="cannot draw the svg") as info:
        render("digraph { a -> }", "svg", renderer_or_skip(renderer))
    assert_no_chained_traceback(info.value)


def test_without_a_renderer_display_shows_the_dot_text_and_the_hint(monkeypatch, tmp_path):
    # Nothing installed: no `dot` on PATH, and pygraphviz fails to import.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(RENDERER_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    assert available_renderer() is None

    picture = draw_graph(small_loss())
    bundle = picture._repr_mimebundle_()
    assert "image/svg+xml" not in bundle
    text = bundle["text/plain"]
    assert text.splitlines()[0] == f"cannot draw the svg: {INSTALL_HINT} Showing the DOT text instead."
    assert picture.source in text
    assert "pip install pygraphviz" in bundle["text/html"]


def test_without_a_renderer_svg_and_save_raise_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    picture = draw_graph(small_loss(), renderer="auto")
    with pytest.raises(RenderError, match="pip install pygraphviz") as info:
        picture.svg()
    assert_no_chained_traceback(info.value)
    with pytest.raises(RenderError, match="pip install pygraphviz") as info:
        picture.save(tmp_path / "g.png")
    assert "DOT text instead" not in str(info.value)  # nothing is shown instead, so it must not say so
    assert not (tmp_path / "g.png").exists()
    assert picture.save(tmp_path / "g.dot").read_text() == picture.source  # DOT needs no renderer


def test_renderer_none_switches_rendering_off(monkeypatch):
    picture = draw_graph(small_loss(), renderer="none")
    with pytest.raises(RenderError, match="rendering is switched off"):
        picture.svg()
    assert picture.source in picture._repr_mimebundle_()["text/plain"]
    monkeypatch.setenv(RENDERER_ENV, "none")
    assert available_renderer() is None
    with pytest.raises(RenderError, match="rendering is switched off"):
        draw_graph(small_loss()).svg()


def test_the_environment_variable_picks_the_renderer(monkeypatch):
    renderer_or_skip("pygraphviz")
    monkeypatch.setenv(RENDERER_ENV, "pygraphviz")
    assert available_renderer() == "pygraphviz"
    assert available_renderer("dot") in ("dot", None)  # the argument wins over the variable


def test_asking_for_a_missing_dot_program_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RenderError, match="`dot` program is not on PATH"):
        draw_graph(small_loss(), renderer="dot").svg()


def test_a_bad_renderer_name_is_a_hint_in_jupyter_and_one_clear_error_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv(RENDERER_ENV, "typo")
    picture = draw_graph(small_loss())
    bundle = picture._repr_mimebundle_()  # what Jupyter calls: it must not raise
    assert "image/svg+xml" not in bundle
    hint, rest = bundle["text/plain"].split("\n", 1)
    assert "'typo'" in hint and all(choice in hint for choice in ("auto", "dot", "pygraphviz", "none"))
    assert picture.source in rest and "typo" in bundle["text/html"]

    for make in (picture.svg, lambda: picture.save(tmp_path / "g.svg")):
        with pytest.raises(RenderError, match=f"{RENDERER_ENV} must be one of") as info:
            make()
        assert_no_chained_traceback(info.value)
    assert not (tmp_path / "g.svg").exists()
    assert picture.save(tmp_path / "g.dot").read_text() == picture.source  # DOT needs no renderer
    # The argument is checked the same way.
    with pytest.raises(RenderError, match="renderer must be one of .*got 'matplotlib'"):
        draw_graph(small_loss(), renderer="matplotlib").svg()


def test_repr_counts_node_statements_not_cluster_titles_or_edge_labels():
    source = "\n".join([
        "digraph g {",
        '  graph [label="title"];',
        '  node [fontsize="10"];',
        '  edge [color="#555555"];',
        "  subgraph cluster_a {",
        '    graph [label="a cluster title"];',
        '    a [label="A"];',
        "  }",
        '  b [label="B"];',
        '  a -> b [label="an edge label"];',
        "}",
    ])
    assert "with 2 nodes" in repr(Picture(source))


def test_repr_of_a_picture_with_clusters_counts_the_boxes_graphviz_draws():
    model, X, y = example()
    picture = draw_strategies(model, nn.mse_loss, X, y, renderer=renderer_or_skip("dot"))
    assert f"with {len(titles(picture.svg(), 'node'))} nodes" in repr(picture)


def test_unknown_renderer_and_unknown_suffix_are_refused(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="renderer must be one of"):
        available_renderer("matplotlib")
    monkeypatch.setenv(RENDERER_ENV, "typo")
    with pytest.raises(ValueError, match=f"{RENDERER_ENV} must be one of"):
        available_renderer()
    with pytest.raises(ValueError, match="end the name with .svg, .png, .pdf or .dot"):
        Picture("digraph {}").save(tmp_path / "graph.jpeg")


def long_chain(n: int) -> Tensor:
    y = Tensor(0.5, requires_grad=True, name="x")
    for _ in range(n):
        y = -y
    return y


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_render_past_the_time_limit_stops_and_suggests_max_nodes(renderer, monkeypatch):
    picture = draw_graph(long_chain(2_000), max_nodes=None, renderer=renderer_or_skip(renderer))
    monkeypatch.setattr(viz.render, "RENDER_TIMEOUT_S", 0.05)  # this layout takes about a second
    start = time.monotonic()
    with pytest.raises(RenderError, match=r"stopped after 0\.05 s laying out 2,001 nodes.*max_nodes=") as info:
        picture.svg()
    assert time.monotonic() - start < 30  # stopped, not waited for
    assert_no_chained_traceback(info.value)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
@pytest.mark.parametrize("renderer", RENDERERS)
def test_ctrl_c_stops_a_long_render_and_its_child_process(renderer, monkeypatch):
    # A 20,000-node chain takes Graphviz about half a minute to lay out. Ctrl-C (SIGINT to
    # this process) must stop it at once, and the child doing the layout must be killed.
    picture = draw_graph(long_chain(20_000), max_nodes=None, renderer=renderer_or_skip(renderer))
    children: list[subprocess.Popen] = []

    class RecordedPopen(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            children.append(self)

    monkeypatch.setattr(subprocess, "Popen", RecordedPopen)
    ctrl_c = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            picture.svg()
    finally:
        ctrl_c.cancel()
    assert time.monotonic() - start < 20
    assert len(children) == 1
    assert children[0].wait(timeout=10) == -signal.SIGKILL  # killed, not left laying out


def test_save_under_a_path_whose_parent_is_a_file_names_the_path_and_writes_nothing(tmp_path):
    blocker = tmp_path / "graph.svg"
    blocker.write_text("not a folder")
    picture = draw_graph(small_loss(), renderer="none")  # the path is checked before any rendering
    for target in (blocker / "g.dot", blocker / "deeper" / "g.svg"):
        with pytest.raises(NotADirectoryError, match=f"save: cannot write {re.escape(str(target))}: "
                                                     f"{re.escape(str(blocker))} is a file, not a folder"):
            picture.save(target)
    folder = tmp_path / "folder.svg"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=f"save: cannot write {re.escape(str(folder))}: it is a folder"):
        picture.save(folder)
    assert blocker.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.svg", "graph.svg"]
    assert list((tmp_path / "folder.svg").iterdir()) == []


def test_hand_written_dot_with_a_lone_surrogate_renders_or_fails_cleanly(tmp_path):
    picture = Picture('digraph { a [label="x\ud800y"] }', renderer="auto")
    assert picture.save(tmp_path / "g.dot").read_bytes() == b'digraph { a [label="x\\ud800y"] }'
    if available_renderer() is not None:
        assert "<svg" in picture.svg()  # no UnicodeEncodeError on the way to Graphviz
