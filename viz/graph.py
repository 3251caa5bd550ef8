"""Walk a tensor's computation graph into plain nodes and edges.

Nothing here draws: the result is a list of ``Node`` records (what each tensor is, its
shape and short summaries of its values and gradient) and a list of edges. ``viz.dot``
turns that into DOT text, ``viz.render`` turns DOT into pictures.

Two choices matter:

- The walk is the engine's own: ``root.topological_order(every_input=True)``, the order
  ``backward`` uses, with data and constants included. One graph walk for the engine and
  its pictures, iterative, so a chain of 100,000 operations is walked as easily as 3.
- Node ids are ``n0, n1, ...`` counted in that order, never Python's ``id()`` (a memory
  address): the same computation always gets the same ids, so it always produces the same
  DOT text, and tests can compare it with expected text.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from tinygrad_mb import Tensor
from tinygrad_mb.checks import shape_str

NO_GRAD_YET = "—"  # what a node shows before backward has reached it
NOT_NEEDED = "not needed"  # tensors that do not require grad never get one


@dataclass(frozen=True)
class Node:
    """One tensor, as a picture shows it.

    Attributes:
        id: "n0", "n1", ... in walk order (inputs before the operations that use them).
        kind: "parameter", "input", "constant", "op", or for the root "loss" (a scalar)
            or "output" (anything else).
        op: the operation that produced the tensor ("" for a leaf).
        name: the tensor's ``name`` as text (see ``shown_name``), or None.
        shape: the tensor's shape.
        data: a short summary of the values (see ``summarize``).
        grad: a short summary of the gradient, "—" before backward, "not needed" for
            tensors that do not require grad.
        tensor: the tensor itself (not compared, not printed).
    """

    id: str
    kind: str
    op: str
    name: str | None
    shape: tuple[int, ...]
    data: str
    grad: str
    tensor: Tensor | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Graph:
    """Nodes and edges of a computation graph, ready to be written as DOT.

    Attributes:
        nodes: inputs first, the root last.
        edges: (input id, output id) pairs: data flows from the first to the second. An
            operation that uses the same tensor twice (``x * x``) has two edges.
        root: the id of the root node.
        hidden: how many tensors the node cap left out (0 when everything is shown).
        cut: ids of shown nodes that have at least one hidden input.
    """

    nodes: list[Node]
    edges: list[tuple[str, str]]
    root: str
    hidden: int = 0
    cut: tuple[str, ...] = ()

    def node(self, node_id: str) -> Node:
        """The node with this id (KeyError if there is none)."""
        return self._nodes_by_id[node_id]

    def inputs(self, node_id: str) -> list[str]:
        """The ids of the node's inputs, one per use (``x * x``: x twice), in the edges' order."""
        return self._inputs_by_id.get(node_id, [])

    # Indexes built once per graph, so that drawing a graph of n tensors takes time about n, not n².
    @cached_property
    def _nodes_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @cached_property
    def _inputs_by_id(self) -> dict[str, list[str]]:
        inputs: dict[str, list[str]] = {}
        for tail, head in self.edges:
            inputs.setdefault(head, []).append(tail)
        return inputs

    def id_of(self, tensor: Tensor) -> str:
        """The id of the node showing ``tensor`` (KeyError if it is not shown)."""
        for n in self.nodes:
            if n.tensor is tensor:
                return n.id
        raise KeyError(f"this tensor is not shown in the graph (shape {shape_str(tensor.shape)})")


def shown_text(value: object) -> str:
    """``value`` as a picture writes it: ``str(value)``, with undrawable characters escaped.

    A name may be any object (``name=3`` is drawn as "3"), and any string: characters that
    Python's ``repr`` would escape -- control characters such as a tab or NUL, lone
    surrogates such as '\\ud800' -- are written the way ``repr`` writes them ("\\t",
    "\\x00", "\\ud800"). Graphviz refuses control characters in a label, and UTF-8, the
    encoding of DOT files, SVG and HTML pages, has no bytes for a lone surrogate.
    """
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a name whose __str__ fails still gets a box
        text = f"<{type(value).__name__}>"
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


# Graphviz refuses an HTML-like label longer than 16,384 characters, and a box wider than a
# screen is unreadable anyway: a longer name or op is shown cut, its length said.
MAX_NAME_CHARS = 200


def shown_name(value: object) -> str:
    """A tensor's name or op as a box shows it: ``shown_text``, cut to ``MAX_NAME_CHARS``."""
    text = shown_text(value)
    if len(text) <= MAX_NAME_CHARS:
        return text
    return f"{text[:MAX_NAME_CHARS - 40]}… ({len(text):,} characters)"


def check_max_nodes(max_nodes: object, where: str) -> int | None:
    """``max_nodes`` as a whole number >= 1, or None (no limit); else a clear error naming ``where``."""
    if max_nodes is None:
        return None
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer)) or max_nodes < 1:
        raise ValueError(
            f"{where}: max_nodes must be at least 1 (a whole number, or None for no limit), got {max_nodes!r}"
        )
    return int(max_nodes)


def format_number(x: float) -> str:
    """Four significant digits: 0.1235, -12.5, 1.235e-07."""
    return f"{float(x):.4g}"


def summarize(values: np.ndarray | None) -> str:
    """A short text for an array: the value of a single number, else its min, mean and max."""
    if values is None:
        return NO_GRAD_YET
    a = np.asarray(values)
    if a.size == 0:
        return "empty"
    if a.size == 1:
        return format_number(a.reshape(()).item())
    # The mean is summed in float64: a float32 sum overflows to inf long before its values do.
    # inf and nan are shown as they are, without numpy's warnings about them.
    with np.errstate(all="ignore"):
        mean = a.mean(dtype=np.float64)
        if np.isinf(mean) and np.isfinite(a).all():  # even float64 overflowed: scale first
            scale = np.abs(a).max()
            mean = scale * (a / scale).mean(dtype=np.float64)
    return f"min {format_number(a.min())} · mean {format_number(mean)} · max {format_number(a.max())}"


def grad_summary(t: Tensor) -> str:
    """What a node shows as its gradient right now."""
    if t.grad is not None:
        return summarize(t.grad)
    return NO_GRAD_YET if t.requires_grad else NOT_NEEDED


def kind_of(t: Tensor, is_root: bool) -> str:
    """Which kind of node a tensor is in a picture.

    The root is the "loss" when it is a scalar (shape (), what loss functions return and
    ``backward()`` starts from) and an "output" otherwise (a model's prediction, say), if
    an operation made it; a leaf drawn on its own keeps its kind (``draw_graph(W)``).
    Leaves that require grad are the "parameter"s being trained. Other leaves are data:
    an unnamed single number (like the 2 in ``x * 2``) is a "constant", anything else
    (a batch X, targets y) an "input".
    """
    if is_root and (t.parents or t.op):  # a leaf drawn alone is still a parameter or data
        return "loss" if t.ndim == 0 else "output"
    if t.parents:
        return "op"
    if t.requires_grad:
        return "parameter"
    return "constant" if t.size == 1 and t.name is None else "input"


def nearest_to_root(root: Tensor, limit: int) -> set[Tensor]:
    """The ``limit`` tensors closest to the root (breadth-first: the last operations first).

    Not a second walk order but a choice of what to show: breadth-first keeps the last few
    operations of *every* branch, where a depth-first cap would spend all of its nodes
    going deep down the first branch and show none of the others.
    """
    kept: set[Tensor] = {root}
    queue = deque([root])
    while queue and len(kept) < limit:
        t = queue.popleft()
        for parent in t.parents:
            if parent not in kept and len(kept) < limit:
                kept.add(parent)
                queue.append(parent)
    return kept


def walk(root: Tensor, max_nodes: int | None = None) -> Graph:
    """The computation graph of ``root`` as nodes and edges.

    Args:
        root: the tensor to start from (usually a loss).
        max_nodes: show at most this many tensors, the ones nearest the root; the rest are
            counted in ``Graph.hidden`` so a picture can say that they were left out.
            None shows everything.

    Returns:
        A ``Graph`` whose node ids are counted in walk order.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"walk: expected a Tensor (e.g. a loss), got {type(root).__name__}")
    max_nodes = check_max_nodes(max_nodes, "walk")
    order = root.topological_order(every_input=True)  # inputs first, root last
    hidden = 0
    if max_nodes is not None and len(order) > max_nodes:
        shown = nearest_to_root(root, max_nodes)
        hidden = len(order) - len(shown)
        order = [t for t in order if t in shown]

    ids: dict[Tensor, str] = {t: f"n{i}" for i, t in enumerate(order)}
    nodes = [
        Node(
            id=ids[t],
            kind=kind_of(t, t is root),
            op=shown_name(t.op),
            name=None if t.name is None else shown_name(t.name),
            shape=tuple(t.shape),
            data=summarize(t.data),
            grad=grad_summary(t),
            tensor=t,
        )
        for t in order
    ]
    edges: list[tuple[str, str]] = []
    cut: list[str] = []
    for t in order:
        if any(p not in ids for p in t.parents):
            cut.append(ids[t])
        edges.extend((ids[p], ids[t]) for p in t.parents if p in ids)
    return Graph(nodes=nodes, edges=edges, root=ids[root], hidden=hidden, cut=tuple(cut))
