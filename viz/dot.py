"""Write a walked graph as DOT, the text language of Graphviz.

DOT is small: ``digraph name { statements }``, where a statement is a node
``n0 [label=..., fillcolor="#dae8fc"]`` or an edge ``n0 -> n2``. Everything here produces
plain strings, so the DOT text of a graph can be read, compared with expected text in
tests, and rendered by any Graphviz.

Escaping is the one subtle part. Node labels use Graphviz's HTML-like syntax
(``label=<...>``), which allows bold headers and small summary lines. Inside it:

- ``<``, ``>``, ``&`` and ``"`` are written as ``&lt;``, ``&gt;``, ``&amp;``, ``&quot;``,
  so an op called ``<lambda>`` cannot end the label early;
- a backslash is written twice, because Graphviz reads ``\\N`` in a label as "the node's
  name" (and ``\\\\`` as one backslash) even in HTML-like labels;
- ``{``, ``}`` and ``|`` need nothing: they are special only in *record* labels, which
  this module never uses.

Ordinary attribute values are double-quoted strings, where ``"`` and ``\\`` get a backslash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from tinygrad_mb.checks import shape_str

from .graph import Graph, Node


class Html(str):
    """Text already in Graphviz's HTML-like label syntax: written as <...>, not quoted."""


def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def html_escape(text: str) -> str:
    """``text`` made safe inside an HTML-like label (see the module docstring)."""
    return (
        text.replace("\\", "\\\\")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def html_lines(lines: Iterable[str], bold_first: bool = False) -> Html:
    """A left-aligned multi-line HTML-like label from plain text lines (escaped here)."""
    parts = []
    for i, line in enumerate(lines):
        text = html_escape(line)
        if bold_first and i == 0:
            text = f"<B>{text}</B>"
        parts.append(text + '<BR ALIGN="LEFT"/>')
    return Html("".join(parts))


def attr_list(attrs: Mapping[str, str]) -> str:
    """``[key="value", label=<...>]``; keys are written in the order given."""
    items = [f"{key}=<{value}>" if isinstance(value, Html) else f"{key}={quote(value)}"
             for key, value in attrs.items()]
    return "[" + ", ".join(items) + "]"


_ID = re.compile(r"[A-Za-z_][A-Za-z_0-9]*\Z")


def _check_id(node_id: str) -> str:
    # Node ids are generated ("n3", "s0_n3"), so they never need quoting; refuse anything else.
    if not _ID.match(node_id):
        raise ValueError(f"dot: node id {node_id!r} must be letters, digits and _ (not starting with a digit)")
    return node_id


def node_statement(node_id: str, attrs: Mapping[str, str]) -> str:
    return f"{_check_id(node_id)} {attr_list(attrs)};"


def edge_statement(tail: str, head: str, attrs: Mapping[str, str] | None = None) -> str:
    suffix = f" {attr_list(attrs)}" if attrs else ""
    return f"{_check_id(tail)} -> {_check_id(head)}{suffix};"


# ---------------------------------------------------------------------------- node looks
# Colours tell the kinds apart; the first line of each label also says the kind in words.
STYLES: dict[str, dict[str, str]] = {
    "parameter": {"shape": "box", "style": "filled", "fillcolor": "#fff2cc", "color": "#d6b656"},
    "input": {"shape": "box", "style": "filled", "fillcolor": "#eeeeee", "color": "#888888"},
    "constant": {"shape": "box", "style": "filled,dashed", "fillcolor": "#f8f8f8", "color": "#888888"},
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dae8fc", "color": "#6c8ebf"},
    "loss": {"shape": "box", "style": "rounded,filled,bold", "fillcolor": "#f8cecc", "color": "#b85450"},
    "output": {"shape": "box", "style": "rounded,filled,bold", "fillcolor": "#e1d5e7", "color": "#9673a6"},
}
NOTE_STYLE = {"shape": "note", "style": "filled", "fillcolor": "#ffffff", "color": "#888888"}


def node_header(node: Node) -> str:
    """The first label line: the op (or for a leaf its name or kind), then the kind in words.

    Examples: "matmul", "W1 · parameter", "input", "mean · loss".
    """
    main = node.op or node.name or node.kind
    words = [main]
    if node.op and node.name:
        words.append(node.name)
    if node.kind != "op" and node.kind != main:
        words.append(node.kind)
    return " · ".join(words)


def node_label(node: Node) -> Html:
    """Header, shape, data summary and gradient summary, one per line."""
    header = html_lines([node_header(node)], bold_first=True)
    details = html_lines([f"shape {shape_str(node.shape)}", f"data {node.data}", f"grad {node.grad}"])
    return Html(f'{header}<FONT POINT-SIZE="9">{details}</FONT>')


def node_attrs(node: Node) -> dict[str, str]:
    return {"label": node_label(node), **STYLES[node.kind]}


def graph_statements(
    graph: Graph,
    prefix: str = "",
    extra_node_attrs: Mapping[str, Mapping[str, str]] | None = None,
    extra_edge_attrs: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
) -> list[str]:
    """The node and edge statements of ``graph`` (no ``digraph {`` around them).

    Args:
        prefix: put before every node id, so several graphs can share one picture.
        extra_node_attrs: per node id, attributes added to (or replacing) the usual ones.
        extra_edge_attrs: per (input id, output id), attributes for that edge.
    """
    extra_node_attrs = extra_node_attrs or {}
    extra_edge_attrs = extra_edge_attrs or {}
    lines = []
    if graph.hidden:
        # The node cap: one note stands for everything left out, with a dashed edge to
        # each shown node that has an input among the hidden ones.
        note = f"… {graph.hidden:,} more tensors not shown (node cap)"
        lines.append(node_statement(prefix + "folded", {"label": html_lines([note]), **NOTE_STYLE}))
    for node in graph.nodes:
        lines.append(node_statement(prefix + node.id, {**node_attrs(node), **extra_node_attrs.get(node.id, {})}))
    for cut_id in graph.cut:
        lines.append(edge_statement(prefix + "folded", prefix + cut_id, {"style": "dashed"}))
    for tail, head in graph.edges:
        lines.append(edge_statement(prefix + tail, prefix + head, extra_edge_attrs.get((tail, head))))
    return lines


def cluster(name: str, label: str, statements: list[str], attrs: Mapping[str, str] | None = None) -> list[str]:
    """A box drawn around ``statements``, titled ``label``."""
    head = f"subgraph cluster_{_check_id(name)} {{"
    body = [f"graph {attr_list({'label': html_lines(label.splitlines()), **(attrs or {})})};", *statements]
    return [head, *("  " + s for s in body), "}"]


def digraph(statements: list[str], rankdir: str = "LR", title: str | None = None) -> str:
    """A complete DOT document around ``statements``.

    ``rankdir="LR"`` lays the graph out left to right: inputs on the left, the loss on the
    right, the way data flows in the forward pass.
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"dot: rankdir must be one of LR, TB, RL, BT, got {rankdir!r}")
    graph_attrs = {"rankdir": rankdir, "fontname": "Helvetica", "fontsize": "11"}
    if title:
        graph_attrs.update(label=html_lines(title.splitlines(), bold_first=True), labelloc="t")
    header = [
        "digraph computation_graph {",
        f"  graph {attr_list(graph_attrs)};",
        f"  node {attr_list({'fontname': 'Helvetica', 'fontsize': '10'})};",
        f"  edge {attr_list({'fontname': 'Helvetica', 'fontsize': '9', 'color': '#555555', 'arrowsize': '0.7'})};",
    ]
    return "\n".join([*header, *("  " + s for s in statements), "}"]) + "\n"


def to_dot(graph: Graph, rankdir: str = "LR", title: str | None = None) -> str:
    """The DOT text of one graph."""
    return digraph(graph_statements(graph), rankdir=rankdir, title=title)
