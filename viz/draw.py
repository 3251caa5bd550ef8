"""``draw_graph``: a tensor's computation graph as a picture (walk -> DOT -> Picture)."""

from __future__ import annotations

from tinygrad_mb import Tensor

from .dot import check_view, natural_rankdir, to_dot
from .graph import check_max_nodes, walk
from .render import Picture

DEFAULT_MAX_NODES = 200  # beyond this a picture is unreadable anyway; the rest is folded


def check_tensor(value: object, where: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{where}: expected a Tensor (e.g. a loss), got {type(value).__name__}")
    return value


def draw_graph(
    root: Tensor,
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    view: str = "detailed",
    rankdir: str | None = None,
    title: str | None = None,
    renderer: str | None = None,
) -> Picture:
    """Draw everything ``root`` was computed from.

    Each tensor is one box: its op (or for a leaf its name), shape, a data summary and its
    gradient ("—" until backward reaches it). Parameters are yellow, inputs grey, constants
    dashed grey, operations blue and the root (the loss) red. ``view="compact"`` leaves out
    the summaries, shortens fused nodes' rules and lays the graph out top to bottom: the
    view for a model's graph in a notebook, where the detailed one is too wide to read.

    Args:
        root: the tensor to draw, usually a loss; call ``loss.backward()`` first to see gradients.
        max_nodes: show at most this many tensors (those nearest the root) and fold the rest
            into one note; None shows everything (Graphviz needs minutes for tens of thousands
            of nodes: rendering stops with a ``RenderError`` after ``viz.render.RENDER_TIMEOUT_S``).
        view: "detailed" (the default) or "compact".
        rankdir: "LR" (inputs left, loss right) or "TB" (top to bottom); None picks the
            view's own: "LR" for detailed, "TB" for compact.
        title: a line written above the picture (a newline starts another line).
        renderer: "auto", "dot", "pygraphviz" or "none"; None reads $VIZ_RENDERER.

    Returns:
        A ``Picture``: ``.source`` (DOT), ``.svg()``, ``.save("graph.svg")``; Jupyter shows it.
    """
    check_view(view, "draw_graph")
    rankdir = natural_rankdir(view, rankdir, "draw_graph")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"draw_graph: title must be text (a str) or None, got {type(title).__name__}")
    graph = walk(check_tensor(root, "draw_graph"), max_nodes=check_max_nodes(max_nodes, "draw_graph"))
    facts = {"nodes": len(graph.nodes), "hidden": graph.hidden}
    source = to_dot(graph, rankdir=rankdir, title=title, view=view)
    return Picture(source, renderer=renderer, facts=facts)
