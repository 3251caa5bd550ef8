"""Write a walked graph as DOT, the text language of Graphviz, with the ``graphviz`` package.

DOT is small: ``digraph name { statements }``, where a statement is a node
``n0 [label=<...> fillcolor="#dae8fc"]`` or an edge ``n0 -> n2``. The ``graphviz`` package's
``Digraph`` writes it: ``dot.node(id, **attributes)``, ``dot.edge(tail, head)``, and
``dot.subgraph(name="cluster_...")`` for a titled box around several nodes. It quotes ids and
attribute values and sorts each node's attributes by name, so the DOT text of a graph is the
same every time, can be compared with expected text in tests, and rendered by any Graphviz.

One thing the package leaves to us: the text *inside* a label. Node labels use Graphviz's
HTML-like syntax (an attribute value written ``<...>``, which ``Digraph`` passes through
unchanged), for bold headers and small summary lines. ``html_escape`` makes text safe there:

- ``<``, ``>``, ``&`` and ``"`` become ``&lt;``, ``&gt;``, ``&amp;``, ``&quot;``, so an op called
  ``<lambda>`` cannot end the label early (``graphviz.escape`` and ``graphviz.nohtml`` do not
  do this: they are for plain quoted strings, and only double backslashes or turn HTML off);
- a backslash is written twice, because Graphviz reads ``\\N`` in a label as "the node's
  name" (and ``\\\\`` as one backslash) even in HTML-like labels;
- characters Graphviz refuses (control characters) and that UTF-8 cannot encode (lone
  surrogates) are written as Python escapes first (see ``graph.shown_text``);
- ``{``, ``}`` and ``|`` need nothing: they are special only in *record* labels, never used here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from tinygrad_mb.checks import shape_str

from .formulas import backward_formulas
from .graph import Graph, Node, shown_text

try:
    import graphviz
except ImportError:  # the `viz` extra was not installed
    raise ImportError(
        "viz needs the `graphviz` Python package to write DOT text: pip install graphviz "
        "(or pip install 'tinygrad-mb[viz]', which also installs a renderer)"
    ) from None

RANKDIRS = ("LR", "TB", "RL", "BT")


def html_escape(text: str) -> str:
    """``text`` made safe inside an HTML-like label (see the module docstring).

    Needed although ``Digraph`` quotes everything else: it writes a ``<...>`` value exactly as
    given, and ``graphviz.escape`` only doubles backslashes (for quoted strings), so ``&``,
    ``<``, ``>`` and ``"`` inside a label are ours to escape.
    """
    return (
        shown_text(text)
        .replace("\\", "\\\\")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def html_lines(lines: Iterable[str], bold_first: bool = False) -> str:
    """Plain text lines (escaped here) as left-aligned lines of an HTML-like label's body."""
    parts = []
    for i, line in enumerate(lines):
        text = html_escape(line)
        if bold_first and i == 0:
            text = f"<B>{text}</B>"
        parts.append(text + '<BR ALIGN="LEFT"/>')
    return "".join(parts)


def html_label(lines: Iterable[str], bold_first: bool = False) -> str:
    """A whole HTML-like label from plain text lines: ``<...>``, which Digraph writes unquoted."""
    return f"<{html_lines(lines, bold_first)}>"


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
FORMULA_COLOR = "#1f4e79"  # the backward rules of a fused node (viz/formulas.py), under its summaries


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


def node_label(node: Node) -> str:
    """Header, shape, data summary and gradient summary, one per line; then any backward rules."""
    header = html_lines([node_header(node)], bold_first=True)
    details = html_lines([f"shape {shape_str(node.shape)}", f"data {node.data}", f"grad {node.grad}"])
    label = f'{header}<FONT POINT-SIZE="9">{details}</FONT>'
    formulas = backward_formulas(node.op)
    if formulas:
        label += f'<FONT POINT-SIZE="9" COLOR="{FORMULA_COLOR}">{html_lines(formulas)}</FONT>'
    return f"<{label}>"


def node_attrs(node: Node) -> dict[str, str]:
    return {"label": node_label(node), **STYLES[node.kind]}


# ---------------------------------------------------------------------------- whole pictures
def new_digraph(rankdir: str = "LR", title: str | None = None) -> graphviz.Digraph:
    """An empty picture with the project's fonts and colours.

    ``rankdir="LR"`` lays the graph out left to right: inputs on the left, the loss on the
    right, the way data flows in the forward pass.
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"dot: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    graph_attr = {"rankdir": rankdir, "fontname": "Helvetica", "fontsize": "11"}
    if title:
        graph_attr.update(label=html_label(title.splitlines(), bold_first=True), labelloc="t")
    return graphviz.Digraph(
        "computation_graph",
        graph_attr=graph_attr,
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9", "color": "#555555", "arrowsize": "0.7"},
    )


def add_graph(
    dot: graphviz.Digraph,
    graph: Graph,
    prefix: str = "",
    extra_node_attrs: Mapping[str, Mapping[str, str]] | None = None,
    extra_edge_attrs: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
) -> None:
    """Add the nodes and edges of ``graph`` to ``dot`` (a picture or a cluster in one).

    Args:
        prefix: put before every node id, so several graphs can share one picture.
        extra_node_attrs: per node id, attributes added to (or replacing) the usual ones.
        extra_edge_attrs: per (input id, output id), attributes for that edge.
    """
    extra_node_attrs = extra_node_attrs or {}
    extra_edge_attrs = extra_edge_attrs or {}
    if graph.hidden:
        # The node cap: one note stands for everything left out, with a dashed edge to
        # each shown node that has an input among the hidden ones.
        note = f"… {graph.hidden:,} more tensors not shown (node cap)"
        dot.node(prefix + "folded", label=html_label([note]), **NOTE_STYLE)
    for node in graph.nodes:
        dot.node(prefix + node.id, **{**node_attrs(node), **extra_node_attrs.get(node.id, {})})
    for cut_id in graph.cut:
        dot.edge(prefix + "folded", prefix + cut_id, style="dashed")
    for tail, head in graph.edges:
        dot.edge(prefix + tail, prefix + head, **extra_edge_attrs.get((tail, head), {}))


@contextmanager
def cluster(dot: graphviz.Digraph, name: str, label: str,
            attrs: Mapping[str, str] | None = None) -> Iterator[graphviz.Digraph]:
    """``with cluster(dot, name, label) as box:`` -- what is added to ``box`` is drawn in a titled box."""
    with dot.subgraph(name=f"cluster_{name}") as box:  # "cluster_" makes Graphviz draw the box
        box.attr("graph", label=html_label(label.splitlines()), **(attrs or {}))
        yield box


def to_dot(graph: Graph, rankdir: str = "LR", title: str | None = None) -> str:
    """The DOT text of one graph."""
    dot = new_digraph(rankdir=rankdir, title=title)
    add_graph(dot, graph)
    return dot.source
