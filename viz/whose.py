"""Whose activations does the batched backward pass use? Each sample's own: a picture.

"Average the loss, then backpropagate once" sounds like "average the error first", yet one is
right and the other is wrong. The difference is where the average sits:

- in the batched graph, every tensor holds the B samples as B rows. Every operation before
  the loss works row by row, so row i of every tensor is sample i's own forward pass;
- the loss's mean is a node of that graph. Its backward sends 1/B to each sample's loss
  ℓ_i, so row i of the model's output receives g_i/B, with g_i = ∂ℓ_i/∂ŷ_i sample i's
  own error; from there on, row i of every gradient meets only row i of every activation;
- the rows meet only at the parameters. A parameter's gradient is the sum over the rows:
  for ``linear``, dW = hᵀG = Σ_i outer(h_i, G_i), where G_i = g_i/B is what reached row i
  of its output (g_i: sample i's own error there), so dW = (1/B) Σ_i outer(h_i, g_i) and
  db = (1/B) Σ_i g_i.

``draw_whose_activations`` draws that for a real batch, every tensor as a strip of B cells
(row i in lane i, one colour per sample), and checks each claim on the numbers: it runs
every sample through the model alone and compares. The picture states the differences, and
``Picture.facts`` holds them, so a claim that failed would show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import graphviz
import numpy as np

from tinygrad_mb import Tensor, minibatch, nn
from tinygrad_mb.checks import shape_str
from tinygrad_mb.grad_mode import grads_put_back
from tinygrad_mb.minibatch import LossFn

from .dot import FORMULA_COLOR, SHAPE_COLOR, SMALL_FONT, STYLES, html_escape, new_digraph, node_attrs
from .graph import Graph, Node, format_number, walk
from .render import Picture
from .strategies import (
    AVERAGING,
    RESULT_OK,
    RESULT_WRONG,
    grads_to_put_back,
    magnitude,
    note_box,
    parameter_names,
    rounding_tolerance,
    sample_loss,
    shown_samples,
    within_rounding,
)

# One colour per sample's lane, dark enough for text (colour-blind-safe where it can be).
LANE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
CELL_WIDTH = 36  # points; one width for every cell, so the lanes run straight down


@dataclass(frozen=True)
class RowChecks:
    """How far the batched graph is from the claims, as max |difference| over the batch."""

    activations: float  # row i of every activation vs sample i's own forward pass
    gradients: float  # row i of every gradient vs (1/B) × sample i's own backward pass
    outer_products: float  # each linear layer's dW vs Σ_i outer(h_i, G_i), db vs Σ_i G_i
    parameters: float  # every parameter's gradient vs (1/B) Σ_i (sample i's own)
    # Whether every difference is floating-point rounding: small relative to the size of the
    # values compared, in their precision (``strategies.rounding_tolerance``).
    rounding_only: bool = True


def worst(*differences: float) -> float:
    """The largest; nan if any is nan (Python's ``max`` may drop a nan, and a check with it)."""
    return float(np.max(differences))


def row_tensors(batch: Graph, single: Graph, B: int) -> list[int]:
    """Positions (in walk order) of the tensors that hold one row per sample.

    A tensor is one when the batch's copy has shape (B, ...) and the one-sample copy
    (1, ...): the same computation, B rows instead of 1. Parameters never are.
    """
    return [k for k, (b, s) in enumerate(zip(batch.nodes, single.nodes))
            if b.kind != "parameter" and b.shape[:1] == (B,) and s.shape == (1, *b.shape[1:])]


def check_same_graph(batch: Graph, single: Graph, i: int) -> None:
    """Refuse a model whose samples interact: then a sample's graph is not a row of the batch's."""
    if [n.op for n in batch.nodes] != [n.op for n in single.nodes]:
        raise ValueError(
            f"draw_whose_activations: sample {i} run alone builds a different graph from the batch "
            f"({len(single.nodes)} tensors vs {len(batch.nodes)}), so its activations are not a row of the "
            f"batch's; the picture needs a model and loss that treat each sample on its own "
            f"(no batch normalisation, a loss that averages per-sample losses)."
        )


def linear_outer_products(batch: Graph) -> float:
    """max |dW − Σ_i outer(h_i, G_i)| and |db − Σ_i G_i| over the graph's linear nodes, G_i
    being row i of the gradient that reached the node (g_i/B for a mean loss).

    A layer used twice gets both uses' sums; inputs with extra axes (B, T, in) have B·T rows.
    """
    sums: dict[int, tuple[Tensor, np.ndarray]] = {}  # per parameter: itself, and the sum of its rows' shares

    def add(param: Tensor, share: np.ndarray) -> None:
        sums[id(param)] = (param, sums[id(param)][1] + share if id(param) in sums else share)

    for node in batch.nodes:
        t = node.tensor
        if node.op != "linear" or t is None or t.grad is None:
            continue
        h, W, *bias = t.parents
        h_rows, G_rows = h.data.reshape(-1, h.shape[-1]), t.grad.reshape(-1, t.shape[-1])
        # One outer product per row, summed: written as a sum over the rows on purpose.
        add(W, sum((np.outer(h_i, G_i) for h_i, G_i in zip(h_rows, G_rows)), np.zeros(W.shape)))
        if bias:
            add(bias[0], G_rows.sum(axis=0))
    largest = 0.0
    for param, rows_sum in sums.values():
        if param.grad is not None:
            largest = worst(largest, float(np.max(np.abs(param.grad - rows_sum))))
    return largest


# ------------------------------------------------------------------------------ drawing
def lane(i: int) -> str:
    return LANE_COLORS[i % len(LANE_COLORS)]


def strip_header(node: Node, pred: Tensor, losses: set[str]) -> tuple[str, str]:
    """A strip's two header lines: what the tensor is, then its op and shape ("ŷ", "linear (4, 1)")."""
    if node.tensor is pred:
        return "ŷ", f"{node.op} {shape_str(node.shape)}"
    if node.id in losses:
        return "ℓᵢ", f"{node.op} {shape_str(node.shape)}"
    return (node.name or node.op or node.kind), shape_str(node.shape)


def header_width(headers: list[tuple[str, str]]) -> int:
    """One width in points for every strip's header cell, so that all cells line up.

    Graphviz widens a cell whose text does not fit, so the estimate errs on the wide side:
    about 6.5 points a character of bold 10-point text, 5.5 of 9-point text.
    """
    return math.ceil(max(max(len(top) * 6.5, len(bottom) * 5.5) for top, bottom in headers)) + 8


def strip_label(node: Node, header: tuple[str, str], width: int, rows: list[int], extra: dict[int, str]) -> str:
    """A tensor as a strip: a header cell (its name, op and shape), then one cell per shown row.

    Row i's cell has PORT "r{i}", where lane i's edges arrive and leave. ``extra`` holds a
    second line for some rows (a number from the real graph). A "⋯" cell stands for the
    rows not shown. The header sits on the left, not on top, so that no edge crosses it.
    """
    cells = []
    for k, i in enumerate(rows):
        if k and i != rows[k - 1] + 1:
            cells.append('<TD BORDER="0">⋯</TD>')
        text = f'<FONT COLOR="{lane(i)}"><B>{i}</B></FONT>'
        if i in extra:
            text += f'<BR/><FONT POINT-SIZE="{SMALL_FONT}">{html_escape(extra[i])}</FONT>'
        cells.append(f'<TD PORT="r{i}" WIDTH="{CELL_WIDTH}" BGCOLOR="#ffffff">{text}</TD>')
    top, bottom = header
    head = (f'<TD WIDTH="{width}" BORDER="0"><B>{html_escape(top)}</B><BR/>'
            f'<FONT POINT-SIZE="{SMALL_FONT}" COLOR="{SHAPE_COLOR}">{html_escape(bottom)}</FONT></TD>')
    style = STYLES[node.kind]
    return (f'<<TABLE BORDER="1" CELLBORDER="1" CELLSPACING="0" CELLPADDING="2" BGCOLOR="{style["fillcolor"]}" '
            f'COLOR="{style["color"]}"><TR>{head}{"".join(cells)}</TR></TABLE>>')


def parameter_box_label(names: list[str], shapes: list[str], roles: list[str], op: str, B: int) -> str:
    """The parameters of one operation, and the sums over the rows that meet there.

    ``roles`` says what each parameter is to the operation: for ``linear``, "weight" or "bias".
    """
    listed = "   ".join(f"<B>{html_escape(n)}</B> <FONT POINT-SIZE=\"{SMALL_FONT}\" COLOR=\"{SHAPE_COLOR}\">"
                       f"{s}</FONT>" for n, s in zip(names, shapes))
    if op == "linear":
        # gᵢ is sample i's own error at this layer's output; the mean's 1/B multiplies it.
        rule = {"weight": "d{} = (1/B) Σᵢ outer(hᵢ, gᵢ)", "bias": "d{} = (1/B) Σᵢ gᵢ"}
        rules = [rule[role].format(name) for name, role in zip(names, roles)]
        if "weight" in roles:
            rules.append("hᵢ: row i of its input,")
        rules.append("gᵢ: sample i's own error")
    else:
        rules = ["d = the sum of the rows' shares"]
    rules += [f"the {B} rows meet here,", "and only here"]
    body = "<BR/>".join(html_escape(r) for r in rules)
    return f'<{listed}<BR/><FONT POINT-SIZE="{SMALL_FONT}" COLOR="{FORMULA_COLOR}">{body}</FONT>>'


def draw_whose_activations(
    model: nn.Module,
    loss_fn: LossFn,
    X: Any,
    y: Any,
    *,
    max_rows: int = 4,
    renderer: str | None = None,
) -> Picture:
    """The batched graph with each tensor's rows as lanes: whose activations backward uses.

    Every tensor that holds one row per sample is a strip of cells, row i in lane i; the
    lanes run from the inputs to the per-sample losses without ever touching. The loss's
    mean joins them; its backward sends 1/B to each row, so row i of the output receives
    gᵢ/B, sample i's own error divided by B (the numbers in the output's cells, for one
    output). The parameters' boxes are where the rows meet: dW = (1/B) Σᵢ outer(hᵢ, gᵢ),
    db = (1/B) Σᵢ gᵢ. A box at the bottom states the checks, made on this batch by running
    every sample through the model alone.

    Args:
        model, loss_fn, X, y: as for ``tinygrad_mb.minibatch.batched_mean``. If the model's
            samples interact (batch normalisation), the checks box says so in red; if a
            sample alone builds another graph than the batch, a ValueError says so.
        max_rows: draw at most this many rows (the first ones and the last); "⋯" stands for
            the others, which are still checked.
        renderer: as for ``draw_graph``.

    Returns:
        A ``Picture`` whose ``facts`` hold "batch_size", "shown_rows", "output_gradient"
        (the rows' gᵢ/B), "batched_mean" (the gradients), and the checks: "activations",
        "gradients", "outer_products" and "parameters" (max |difference| each).
    """
    X, y, params = minibatch.check_batch(model, X, y, "draw_whose_activations")
    minibatch.check_loss_fn(loss_fn, "draw_whose_activations")  # the mean is what the picture explains
    B = len(X)
    rows = shown_samples(B, max_rows, "draw_whose_activations", "max_rows")
    # the drawing's own backward passes leave .grad as it was (and that of tensors inside loss_fn)
    with grads_put_back(grads_to_put_back(model, loss_fn, X, y, params, "draw_whose_activations")):
        pred = model(Tensor(X, name="X"))
        loss = minibatch.scalar_loss(loss_fn(pred, Tensor(y, name="y")), "draw_whose_activations")
        loss.backward()
        batch = walk(loss)
        batch_grads = [np.zeros_like(p.data) if p.grad is None else p.grad.copy() for p in params]
        outer_products = linear_outer_products(batch)
        output_gradient = np.zeros_like(pred.data) if pred.grad is None else pred.grad.copy()
        activations = gradients = 0.0
        activation_size = gradient_size = 0.0  # the largest values compared, for the tolerance
        per_sample_sum = [np.zeros_like(p.data) for p in params]
        per_sample_abs = [np.zeros_like(p.data) for p in params]  # the size of the terms the sums add up
        strips: list[int] = []
        for i in range(B):
            for p in params:
                p.grad = None
            _, loss_i = sample_loss(model, loss_fn, X, y, i, "draw_whose_activations")
            loss_i.backward()
            single = walk(loss_i)
            check_same_graph(batch, single, i)
            strips = row_tensors(batch, single, B)  # the same for every sample
            for k in strips:
                b, s = batch.nodes[k].tensor, single.nodes[k].tensor
                assert b is not None and s is not None
                activations = worst(activations, float(np.max(np.abs(b.data[i] - s.data[0]))))
                activation_size = max(activation_size, magnitude(b.data[i]), magnitude(s.data[0]))
                if b.grad is not None and s.grad is not None:  # data (X, y) has no gradient
                    gradients = worst(gradients, float(np.max(np.abs(b.grad[i] - s.grad[0] / B))))
                    gradient_size = max(gradient_size, magnitude(b.grad[i]), magnitude(s.grad[0] / B))
            per_sample_sum = [acc + (0 if p.grad is None else p.grad) for acc, p in zip(per_sample_sum, params)]
            per_sample_abs = [acc + (0 if p.grad is None else np.abs(p.grad)) for acc, p in zip(per_sample_abs, params)]
        parameters = worst(*(float(np.max(np.abs(g - acc / B))) for g, acc in zip(batch_grads, per_sample_sum)))
        # Rounding is relative to what was added up: at a minimum the rows cancel and the sum is about 0.
        parameter_size = max(max(magnitude(g), magnitude(acc / B)) for g, acc in zip(batch_grads, per_sample_abs))
    tolerance = rounding_tolerance([pred.data, *(p.data for p in params)])
    rounding_only = all(within_rounding(difference, size, tolerance) for difference, size in (
        (activations, activation_size), (gradients, gradient_size),
        (outer_products, parameter_size), (parameters, parameter_size)))
    checks = RowChecks(activations, gradients, outer_products, parameters, rounding_only)

    dot = draw_lanes(batch, strips, rows, B, pred, output_gradient, parameter_names(model))
    add_checks(dot, checks, B, batch.root)
    facts = {"batch_size": B, "shown_rows": rows, "output_gradient": output_gradient,
             "batched_mean": batch_grads, "activations": activations, "gradients": gradients,
             "outer_products": outer_products, "parameters": parameters}
    return Picture(dot.source, renderer=renderer, facts=facts)


def draw_lanes(batch: Graph, strips: list[int], rows: list[int], B: int, pred: Tensor,
               output_gradient: np.ndarray, names: dict[Tensor, str]) -> graphviz.Digraph:
    """The batched graph: strips for the row tensors, parameter boxes, the mean."""
    title = (f"Whose activations? Each sample's own.\n"
             f"One batched graph: each tensor holds the B = {B} samples as {B} rows;\n"
             f"here row i is cell i, and lane i (one colour per sample) is sample i")
    dot = new_digraph(rankdir="TB", title=title, view="compact")
    is_strip = {batch.nodes[k].id for k in strips}
    root = batch.node(batch.root)
    losses = {tail for tail, head in batch.edges if head == root.id and tail in is_strip}
    headers = {k: strip_header(batch.nodes[k], pred, losses) for k in strips}
    width = header_width(list(headers.values())) if headers else 0
    for k, node in enumerate(batch.nodes):
        if node.kind == "parameter":
            continue  # drawn with the operation that uses it, below
        if node.id in is_strip:
            extra: dict[int, str] = {}
            if node.tensor is pred and output_gradient[0].size == 1:
                # What the mean's backward sent to row i: sample i's own error, divided by B.
                extra = {i: f"{output_gradient[i].item():.3g}" for i in rows}  # 3 digits fit a cell
            dot.node(node.id, label=strip_label(node, headers[k], width, rows, extra), shape="plain")
        elif node.id == root.id:
            dot.node(node.id, label=mean_label(node, B, output_gradient[0].size == 1), shape="box",
                     style="rounded,filled", penwidth="2", **AVERAGING)
        else:
            dot.node(node.id, **node_attrs(node, "compact", formulas=False))
    # Each operation's parameters in one box: where that operation's rows meet.
    for node in batch.nodes:
        params = [tail for tail in batch.inputs(node.id) if batch.node(tail).kind == "parameter"]
        if not params:
            continue
        tensors = [batch.node(p).tensor for p in params]
        labels = [names.get(t, "θ") if t is not None else "θ" for t in tensors]
        shapes = [shape_str(batch.node(p).shape) for p in params]
        inputs = node.tensor.parents if node.tensor is not None else ()
        # linear(h, W, b): a parameter's place among the inputs says which it is (a frozen W is not drawn here)
        roles = ["bias" if any(q is t for q in inputs[2:]) else "weight" for t in tensors]
        box = f"{node.id}_params"
        dot.node(box, label=parameter_box_label(labels, shapes, roles, node.op, B), shape="box", style="filled",
                 fillcolor=STYLES["parameter"]["fillcolor"], color=STYLES["parameter"]["color"])
        dot.edge(box, node.id)
        # To the right of the strip beside it: on the left, where Graphviz tends to put it,
        # the boxes and the target's strip (further down, on the right) would add up in width.
        beside = next((tail for tail in batch.inputs(node.id) if tail in is_strip), None)
        if beside is not None:
            with dot.subgraph() as row:  # same rank, and an edge within a rank runs left to right
                row.attr(rank="same")
                row.edge(beside, box, style="invis")
    for tail, head in batch.edges:
        if batch.node(tail).kind == "parameter":
            continue
        if tail in is_strip and (head in is_strip or head == root.id):
            for i in rows:  # lane i: row i of one tensor feeds row i of the next, and nothing else
                head_port = f"{head}:r{i}:n" if head in is_strip else head
                dot.edge(f"{tail}:r{i}:s", head_port, color=lane(i), penwidth="1.5")
        else:
            dot.edge(tail, head)
    return dot


def mean_label(node: Node, B: int, numbers_shown: bool) -> str:
    """The loss's mean: where the rows join in the forward pass, and what its backward sends."""
    lines = [f"the mean over the {B} rows: L = (1/B) Σᵢ ℓᵢ",
             f"its backward sends 1/B = 1/{B} to each ℓᵢ,",
             "so row i of ŷ receives gᵢ/B, with gᵢ = ∂ℓᵢ/∂ŷᵢ:",
             "sample i's own error" + (" (the numbers in ŷ)" if numbers_shown else "")]
    body = "<BR/>".join(html_escape(line) for line in lines)
    return f"<<B>{html_escape(node.op)} · loss</B><BR/>{body}>"


def add_checks(dot: graphviz.Digraph, checks: RowChecks, B: int, root_id: str) -> None:
    """The box that states what was checked on this batch, and how closely it held."""
    ok = checks.rounding_only
    lines = [
        f"checked on this batch, by running each of the {B} samples alone:",
        f"row i of every tensor = sample i's own forward pass: {format_number(checks.activations)}",
        f"row i of every gradient = (1/B) × sample i's own: {format_number(checks.gradients)}",
        f"dW = (1/B) Σᵢ outer(hᵢ, gᵢ), db = (1/B) Σᵢ gᵢ in every linear: "
        f"{format_number(checks.outer_products)}",
        f"each parameter's gradient = (1/B) Σᵢ sample i's: {format_number(checks.parameters)}",
        "(max |difference|; " + ("only rounding is left)" if ok else "NOT equal: the rows interact)" if all(
            np.isfinite([checks.activations, checks.gradients, checks.outer_products, checks.parameters]))
            else "nan or inf in the values: nothing to compare)"),
    ]
    note_box(dot, "checks", "\n".join(lines), RESULT_OK if ok else RESULT_WRONG)
    dot.edge(root_id, "checks", style="invis")
