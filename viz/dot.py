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

Two views of the same graph:

- ``"detailed"``: every box shows the tensor's shape, a summary of its values and of its
  gradient, and a fused node's full backward rules. Laid out left to right, as data flows.
- ``"compact"``: one small box per operation, with its name, its shape and for a fused node
  its rules in one or two short lines (``formulas.SHORT_FORMULAS``); no value summaries.
  Laid out top to bottom, so that a deep graph costs height, which a notebook scrolls,
  rather than width, which it cannot show: a notebook column is about 900 px wide.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from tinygrad_mb import Tensor
from tinygrad_mb.checks import shape_str

from .formulas import backward_formulas, short_formulas
from .graph import Graph, Node, shown_text

try:
    import graphviz
except ImportError:  # the `viz` extra was not installed
    raise ImportError(
        "viz needs the `graphviz` Python package to write DOT text: pip install graphviz "
        "(or pip install 'tinygrad-mb[viz]', which also installs a renderer)"
    ) from None

RANKDIRS = ("LR", "TB", "RL", "BT")
VIEWS = ("compact", "detailed")


def check_view(view: str, where: str) -> str:
    if view not in VIEWS:
        raise ValueError(f"{where}: view must be \"compact\" or \"detailed\", got {view!r}")
    return view


def natural_rankdir(view: str, rankdir: str | None, where: str = "dot") -> str:
    """``rankdir`` if given (checked; an error names ``where``), else the view's own: top to
    bottom when compact, else left to right."""
    if rankdir is None:
        return "TB" if view == "compact" else "LR"
    if rankdir not in RANKDIRS:
        raise ValueError(f"{where}: rankdir must be one of {', '.join(RANKDIRS)} (or None), got {rankdir!r}")
    return rankdir


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
# Colours tell the kinds apart; in the detailed view the first line of each label also says
# the kind in words (the compact view leaves the words out for leaves, see compact_header).
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
SHAPE_COLOR = "#555555"  # the shape beside a compact box's name
PARAMETER_COLOR = "#7f6000"  # "with W1, b1": the shared parameters a compact box uses
# Text is never smaller than 9 pt. Pictures are not scaled down to fit (no Graphviz `size`),
# so 9 pt stays 12 px on screen; the compact view fits a notebook by its layout instead.
SMALL_FONT = "9"


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
    formulas = backward_formulas(node.op, input_count(node))
    if formulas:
        label += f'<FONT POINT-SIZE="9" COLOR="{FORMULA_COLOR}">{html_lines(formulas)}</FONT>'
    return f"<{label}>"


def input_count(node: Node) -> int | None:
    """How many inputs the node's operation had (a fused op's rules may depend on it)."""
    return len(node.tensor.parents) if node.tensor is not None else None


def compact_header(node: Node) -> str:
    """The header without the kind words of leaves, which the box's colour already says:
    "W1" (yellow: a parameter), "x[0]" (grey: data), a constant's value ("2"), "linear",
    "mean · loss" (the root keeps its word: it says where backward starts)."""
    if node.kind == "constant":
        return node.data  # an unnamed single number: its value is what it is
    if not node.op:
        return node.name or node.kind
    return node_header(node)


def compact_label(node: Node, formulas: bool = True, uses: Sequence[str] = ()) -> str:
    """The op (or the leaf's name), its shape in small grey text, the shared parameters it
    uses (``uses``, see ``add_graph``'s ``drawn``) and, for a fused node, its short rules."""
    label = f"<B>{html_escape(compact_header(node))}</B>"
    if node.shape:  # a scalar's shape () says nothing
        label += f' <FONT POINT-SIZE="{SMALL_FONT}" COLOR="{SHAPE_COLOR}">{shape_str(node.shape)}</FONT>'
    if uses:
        names = html_escape(", ".join(uses))
        label += f'<BR/><FONT POINT-SIZE="{SMALL_FONT}" COLOR="{PARAMETER_COLOR}">with {names}</FONT>'
    lines = short_formulas(node.op, input_count(node)) if formulas else ()
    if lines:
        body = "<BR/>".join(html_escape(line) for line in lines)
        label += f'<BR/><FONT POINT-SIZE="{SMALL_FONT}" COLOR="{FORMULA_COLOR}">{body}</FONT>'
    return f"<{label}>"


def node_attrs(node: Node, view: str = "detailed", formulas: bool = True, uses: Sequence[str] = ()) -> dict[str, str]:
    label = compact_label(node, formulas, uses) if view == "compact" else node_label(node)
    return {"label": label, **STYLES[node.kind]}


# ---------------------------------------------------------------------------- whole pictures
def new_digraph(rankdir: str = "LR", title: str | None = None, view: str = "detailed") -> graphviz.Digraph:
    """An empty picture with the project's fonts and colours.

    ``rankdir="LR"`` lays the graph out left to right: inputs on the left, the loss on the
    right, the way data flows in the forward pass. ``view="compact"`` packs boxes closer
    together and lets them shrink to their text (Graphviz's defaults are 0.75 × 0.5 inch).
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"dot: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    graph_attr = {"rankdir": rankdir, "fontname": "Helvetica", "fontsize": "11"}
    node_attr = {"fontname": "Helvetica", "fontsize": "10"}
    if view == "compact":
        # newrank: boxes in different clusters may share a rank (see keep_in_order).
        graph_attr.update(nodesep="0.15", ranksep="0.25", newrank="true")
        node_attr.update(margin="0.06,0.03", width="0.3", height="0.3")
    if title:
        graph_attr.update(label=html_label(title.splitlines(), bold_first=True), labelloc="t")
    return graphviz.Digraph(
        "computation_graph",
        graph_attr=graph_attr,
        node_attr=node_attr,
        edge_attr={"fontname": "Helvetica", "fontsize": SMALL_FONT, "color": "#555555", "arrowsize": "0.7"},
    )


def add_parameters(dot: graphviz.Digraph, names: Mapping[Tensor, str], title: str, node_id: str = "theta") -> str:
    """One box that lists the parameters θ shared by every graph of a picture; returns its id.

    A picture of several graphs draws the parameters once, here; the graphs' boxes name the
    ones they use (``add_graph``'s ``drawn``), and one arrow per graph (``shared_by``) says
    that the graph runs on these θ. One edge per use instead, from here to every layer of
    every graph, would cross the whole picture and make it far wider.

    Args:
        names: each parameter with the name to show, in order (``model.parameters()``'s).
        title: the box's first line.
    """
    # Four parameters a line (a layer's weight and bias, twice), so the box stays narrow.
    entries = [f"{html_escape(name)} <FONT POINT-SIZE=\"{SMALL_FONT}\" COLOR=\"{SHAPE_COLOR}\">"
               f"{shape_str(p.shape)}</FONT>" for p, name in names.items()]
    lines = ["&#160;&#160;&#160;".join(entries[k:k + 4]) for k in range(0, len(entries), 4)]
    label = f"<<B>{html_escape(title)}</B><BR/>{'<BR/>'.join(lines)}>"
    dot.node(node_id, label=label, **STYLES["parameter"])
    dot.attr("graph", compound="true")  # lets an edge end at a cluster's border (lhead)
    return node_id


def shared_by(dot: graphviz.Digraph, theta: str, cluster_name: str, first_node: str) -> None:
    """An arrow from the parameters' box to the border of a cluster: "this graph uses θ".

    ``first_node`` is any box inside the cluster (``add_graph`` returns them): an edge must
    name a node, and ``lhead`` clips it where it enters the cluster.
    """
    dot.edge(theta, first_node, lhead=f"cluster_{cluster_name}", color=STYLES["parameter"]["color"],
             penwidth="1.5")


def add_graph(
    dot: graphviz.Digraph,
    graph: Graph,
    prefix: str = "",
    extra_node_attrs: Mapping[str, Mapping[str, str]] | None = None,
    extra_edge_attrs: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    *,
    view: str = "detailed",
    drawn: Mapping[Tensor, str] | None = None,
    formulas: bool = True,
) -> list[str]:
    """Add the nodes and edges of ``graph`` to ``dot`` (a picture or a cluster in one).

    Returns the ids of the boxes drawn, in walk order.

    Args:
        prefix: put before every node id, so several graphs can share one picture.
        extra_node_attrs: per node id, attributes added to (or replacing) the usual ones.
        extra_edge_attrs: per (input id, output id), attributes for that edge.
        view: "detailed" or "compact" boxes (see the module docstring).
        drawn: tensors drawn once elsewhere in the picture (``add_parameters``), with their
            names: they get no box and no edges here; the compact boxes that use them say
            "with W1, b1" instead.
        formulas: print fused nodes' rules (a picture may print them in one graph only).
    """
    extra_node_attrs = extra_node_attrs or {}
    extra_edge_attrs = extra_edge_attrs or {}
    drawn = drawn or {}
    if graph.hidden:
        # The node cap: one note stands for everything left out, with a dashed edge to
        # each shown node that has an input among the hidden ones.
        note = f"… {graph.hidden:,} more tensors not shown (node cap)"
        dot.node(prefix + "folded", label=html_label([note]), **NOTE_STYLE)
    shared = {n.id: drawn[n.tensor] for n in graph.nodes if n.tensor is not None and n.tensor in drawn}
    boxes = []
    for node in graph.nodes:
        if node.id in shared:
            continue
        uses = [shared[tail] for tail in graph.inputs(node.id) if tail in shared]
        attrs = node_attrs(node, view, formulas, uses)
        if view == "compact" and node.op:
            # One group for the operations: Graphviz keeps edges inside a group straight, so
            # the chain of operations runs down in one column and the inputs join from the side.
            attrs["group"] = prefix + "ops"
        dot.node(prefix + node.id, **{**attrs, **extra_node_attrs.get(node.id, {})})
        boxes.append(prefix + node.id)
    for cut_id in graph.cut:
        dot.edge(prefix + "folded", prefix + cut_id, style="dashed")
    for tail, head in graph.edges:
        if tail not in shared:
            dot.edge(prefix + tail, prefix + head, **extra_edge_attrs.get((tail, head), {}))
    return boxes


def keep_in_order(dot: graphviz.Digraph, boxes: Sequence[str]) -> None:
    """Keep these boxes, one from each of several side-by-side graphs, left to right in this order.

    Left alone, Graphviz orders the graphs however crosses the fewest edges, which can put
    sample 3 before sample 0. Within a ``rank=same`` group an edge runs from left to right
    (top to bottom when the picture runs left to right), so invisible edges between
    neighbours fix the order. (Boxes in different clusters need ``newrank=true``, which
    ``new_digraph`` sets for the compact view, to share a rank.)
    """
    with dot.subgraph() as row:
        row.attr(rank="same")
        for tail, head in zip(boxes, boxes[1:]):
            row.edge(tail, head, style="invis")


@contextmanager
def cluster(dot: graphviz.Digraph, name: str, label: str,
            attrs: Mapping[str, str] | None = None) -> Iterator[graphviz.Digraph]:
    """``with cluster(dot, name, label) as box:`` -- what is added to ``box`` is drawn in a titled box."""
    with dot.subgraph(name=f"cluster_{name}") as box:  # "cluster_" makes Graphviz draw the box
        box.attr("graph", label=html_label(label.splitlines()), **(attrs or {}))
        yield box


def to_dot(graph: Graph, rankdir: str = "LR", title: str | None = None, view: str = "detailed") -> str:
    """The DOT text of one graph."""
    dot = new_digraph(rankdir=rankdir, title=title, view=view)
    add_graph(dot, graph, view=view)
    return dot.source
