"""DOT text: exact comparison with golden files, and escaping that survives Graphviz.

The golden files hold the DOT text exactly as the ``graphviz`` package writes it (attributes
sorted by name, quoted only where DOT needs it); a change to a label or a colour shows here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from renderers import renderer_or_skip

from tinygrad_mb import Tensor
from viz import Graph, Node, draw_graph
from viz.dot import html_escape, to_dot
from viz.graph import shown_text
from viz.render import render

GOLDEN = Path(__file__).parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"


def golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


def mul_add() -> Tensor:
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(3.0, name="b")
    return a * b + 1


def weighted_sum() -> Tensor:
    x = Tensor([1.0, 2.0, 3.0], name="x")
    w = Tensor([0.5, -1.0, 2.0], requires_grad=True, name="w")
    return (x * w).sum()


def escaping_graph() -> Graph:
    # Built by hand, as a user-defined operation would appear: an op called <lambda>, and
    # names with every character that is special somewhere in DOT.
    return Graph(
        nodes=[
            Node("n0", "parameter", "", 'w{0}|"bias"', (2,), "min 0 · mean 0.5 · max 1", "—"),
            Node("n1", "loss", "<lambda>", "C:\\tmp\\N", (), "1", "—"),
        ],
        edges=[("n0", "n1")],
        root="n1",
    )


def test_dot_of_a_small_graph_before_backward_matches_the_golden_file():
    assert draw_graph(mul_add()).source == golden("mul_add_before_backward.dot")


def test_dot_of_a_small_graph_after_backward_matches_the_golden_file():
    loss = weighted_sum()
    loss.backward()
    assert draw_graph(loss).source == golden("weighted_sum_after_backward.dot")


def test_dot_of_a_capped_chain_matches_the_golden_file():
    y = Tensor(1.0, requires_grad=True, name="x")
    for _ in range(5):
        y = -y
    assert draw_graph(y, max_nodes=3).source == golden("folded_chain.dot")


def test_dot_with_special_characters_matches_the_golden_file():
    title = 'a <title> with {braces} | "quotes" \\ backslash & more'
    assert to_dot(escaping_graph(), title=title) == golden("escaping.dot")


def test_html_escape_protects_angle_brackets_ampersands_quotes_and_backslashes():
    assert html_escape("<lambda>") == "&lt;lambda&gt;"
    assert html_escape('a & "b"') == "a &amp; &quot;b&quot;"
    assert html_escape("\\N") == "\\\\N"  # Graphviz would read \N as the node's name
    assert html_escape("{a|b}") == "{a|b}"  # special only in record labels, never used here


def test_html_escape_writes_control_characters_and_lone_surrogates_as_python_escapes():
    # Graphviz refuses control characters in HTML-like labels, and UTF-8 cannot encode a lone
    # surrogate: both become the text repr() shows, with the backslash doubled for Graphviz.
    assert shown_text("a\tb\x00\ud800") == "a\\tb\\x00\\ud800"
    assert html_escape("a\tb\x00\ud800") == "a\\\\tb\\\\x00\\\\ud800"
    assert html_escape("é ∑ — · ᵢ") == "é ∑ — · ᵢ"  # printable text is left alone
    assert html_escape("\ud800").encode("utf-8")  # no UnicodeEncodeError


def test_layout_is_left_to_right_by_default_and_can_be_changed():
    assert "rankdir=LR" in draw_graph(mul_add()).source
    assert "rankdir=TB" in draw_graph(mul_add(), rankdir="TB").source
    with pytest.raises(ValueError, match="rankdir must be one of"):
        draw_graph(mul_add(), rankdir="sideways")


def svg_texts(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text")]


@pytest.mark.parametrize("renderer", ["dot", "pygraphviz"])
def test_special_characters_come_out_of_graphviz_unchanged(renderer):
    svg = render(to_dot(escaping_graph()), "svg", renderer_or_skip(renderer)).decode()
    texts = svg_texts(svg)
    assert 'w{0}|"bias" · parameter' in texts
    assert "<lambda> · C:\\tmp\\N · loss" in texts


NAME_CHARS = st.sampled_from(list("abcXYZ019_-+*/=:;,.!?()[]{}|<>&\"'\\%#@$^~`") + ["é", "∑", "—"])


@pytest.mark.parametrize("renderer", ["dot", "pygraphviz"])
@given(name=st.lists(NAME_CHARS, min_size=1, max_size=12).map("".join))
def test_any_tensor_name_survives_the_round_trip_through_graphviz(renderer, name):
    w = Tensor(1.0, requires_grad=True, name=name)
    svg = draw_graph(w * 2, renderer=renderer_or_skip(renderer)).svg()
    assert f"{name} · parameter" in svg_texts(svg)


# Characters Graphviz refuses in a label (control characters, the noncharacters U+FFFE and
# U+FFFF) or UTF-8 cannot encode (lone surrogates): they must come out as Python escapes.
UNDRAWABLE = st.sampled_from(["\t", "\n", "\x00", "\x1b", "\x7f", "\x85", "\ud800", "\udfff", "\ufffe", "\uffff"])
ANY_TEXT = st.lists(NAME_CHARS | UNDRAWABLE, min_size=1, max_size=12).map("".join)


@pytest.mark.parametrize("renderer", ["dot", "pygraphviz"])
@given(name=ANY_TEXT, op=ANY_TEXT)
def test_any_name_and_op_string_survive_graphviz_escaped_where_needed(renderer, name, op):
    # A user-defined operation may be called anything; its picture must still draw.
    w = Tensor(1.0, requires_grad=True, name=name)
    out = Tensor.record(w.data * 2, (w,), op, lambda g: (2 * g,))
    texts = svg_texts(draw_graph(out, renderer=renderer_or_skip(renderer)).svg())
    assert f"{shown_text(name)} · parameter" in texts
    assert f"{shown_text(op)} · loss" in texts


def test_undrawable_characters_are_shown_the_way_repr_shows_them():
    w = Tensor(1.0, requires_grad=True, name="tab\there\ud800")
    out = Tensor.record(w.data, (w,), "my\x00op", lambda g: (g,))
    source = draw_graph(out).source
    assert "tab\\\\there\\\\ud800 · parameter" in source  # \t and \ud800 as text, backslash doubled
    assert "<B>my\\\\x00op · loss</B>" in source
    source.encode("utf-8")  # no lone surrogate left in the DOT text


def test_a_name_that_is_not_a_string_is_drawn_as_str_of_it():
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    w = Tensor(1.0, requires_grad=True, name=42)  # type: ignore[arg-type]
    v = Tensor(2.0, requires_grad=True, name=("layer", 1))  # type: ignore[arg-type]
    u = Tensor(3.0, requires_grad=True, name=Unprintable())  # type: ignore[arg-type]
    source = draw_graph(w * v + u).source
    assert "<B>42 · parameter</B>" in source
    assert "<B>('layer', 1) · parameter</B>" in source
    assert "<B>&lt;Unprintable&gt; · parameter</B>" in source  # its __str__ failed: the type's name
