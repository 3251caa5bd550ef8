"""Pictures for the question "what exactly gets averaged in a mini-batch?".

``draw_strategies`` puts the two correct answers side by side:

- per-sample: B separate graphs, one per sample, each with its own loss ℓ_i and its own
  backward pass. The averaging is *not* in any graph: the parameters' ``.grad`` adds up the
  B gradients (the sum), and one division by B follows (the 1/B).
- batched: one graph for the whole batch. The averaging *is* a node of the graph (the
  mean over the samples' losses), and backward hands each sample 1/B of the gradient.

``draw_error_first`` shows the misconception: the output errors are averaged first, and
then there is a single backward pass, which needs activations from *some* forward pass.
The picture marks the question it cannot answer: which activations? (In the batched graph
the answer is each sample's own; one backward pass of one averaged error has only one set.)

Both come in two views. The default, ``view="compact"``, draws one small box per operation,
the parameters once for the whole picture (every graph in it uses the same θ: edges from
each parameter go to every graph), and lays everything out top to bottom, so that it fits
a notebook's width with its text readable. ``view="detailed"`` draws each graph's own
parameter boxes and every tensor's shape, value and gradient summaries, left to right.

Both pictures are computed, not sketched: the numbers in them (gradients, their difference)
come from running the very graphs they show, and the error-first variant's backward pass is
``tinygrad_mb.minibatch``'s own, so a picture can never disagree with the strategy it
illustrates. The parameters' ``.grad`` is put back afterwards.
"""

from __future__ import annotations

from typing import Any

import graphviz
import numpy as np

from tinygrad_mb import Tensor, minibatch, nn
from tinygrad_mb.grad_mode import grads_put_back
from tinygrad_mb.minibatch import LossFn

from .dot import (
    add_graph,
    add_parameters,
    check_view,
    cluster,
    html_label,
    keep_in_order,
    natural_rankdir,
    new_digraph,
    shared_by,
)
from .graph import format_number, shown_name, summarize, walk
from .render import Picture

AVERAGING = {"fillcolor": "#ffe6cc", "color": "#d79b00"}  # where the sum / 1/B / mean happens
RESULT_OK = {"fillcolor": "#d5e8d4", "color": "#82b366"}
RESULT_WRONG = {"fillcolor": "#f8cecc", "color": "#b85450"}
QUESTION = {"fillcolor": "#fff2cc", "color": "#b85450", "penwidth": "2"}  # the question error-first cannot answer


# ------------------------------------------------------------------------------ helpers
def shown_samples(batch_size: int, max_samples: Any, where: str = "shown_samples",
                  what: str = "max_samples") -> list[int]:
    """Which samples get drawn: all of them, or the first few and the last one.

    ``where`` and ``what`` name the caller and its argument in the error for a bad ``max_samples``.
    """
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 2:
        raise ValueError(f"{where}: {what} must be at least 2 (a whole number: the first and the last "
                         f"sample), got {max_samples!r}")
    if batch_size <= max_samples:
        return list(range(batch_size))
    return [*range(int(max_samples) - 1), batch_size - 1]


def take_grads(params: list[Tensor]) -> list[np.ndarray]:
    """Copies of the parameters' gradients (zeros where backward did not reach), then clear them."""
    grads = [np.zeros_like(p.data) if p.grad is None else p.grad.copy() for p in params]
    for p in params:
        p.grad = None
    return grads


def sample_loss(model: nn.Module, loss_fn: LossFn, X: np.ndarray, y: np.ndarray, i: int,
                where: str = "sample_loss") -> tuple[Tensor, Tensor]:
    """Sample i alone, as a batch of one: its prediction ŷ_i and its loss ℓ_i (checked to be
    a Tensor of one number, as the strategies check it; an error names ``where``)."""
    pred = model(Tensor(X[i:i + 1], name=f"x[{i}]"))
    return pred, minibatch.scalar_loss(loss_fn(pred, Tensor(y[i:i + 1], name=f"y[{i}]")), where)


def parameter_names(model: nn.Module) -> dict[Tensor, str]:
    """Each parameter with the name a picture shows: its own name ("W1"), else its place in
    the model ("layers.0.weight"); in ``model.parameters()``'s order."""
    return {p: dotted if p.name is None else shown_name(p.name) for dotted, p in model.named_parameters()}


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(u - v))) if u.size else 0.0 for u, v in zip(a, b))


def rounding_tolerance(arrays: list[np.ndarray]) -> float:
    """The relative difference floating-point rounding explains, for the least precise of
    ``arrays``: 1e-9 in float64, about 1e-4 in float32 (a thousand roundings)."""
    eps = max((float(np.finfo(a.dtype).eps) for a in arrays if np.issubdtype(a.dtype, np.floating)),
              default=float(np.finfo(np.float64).eps))
    return max(1e-9, 1000 * eps)


def within_rounding(difference: float, size: float, tolerance: float) -> bool:
    """``difference``, a max |difference| between values of at most ``size`` in magnitude, is rounding."""
    return difference <= tolerance * size


# What a comparison box says when nan or inf leave nothing to compare (nan - nan is nan).
NOT_FINITE = "nothing to compare: the\ngradients hold nan or inf"


def finite(*gradients: list[np.ndarray]) -> bool:
    return all(np.isfinite(g).all() for grads in gradients for g in grads)


def agree(a: list[np.ndarray], b: list[np.ndarray], terms: list[np.ndarray]) -> bool:
    """Each pair of gradients equal up to rounding.

    Rounding is relative to the size of the numbers that were added up, not of their sum: at a
    minimum the per-sample gradients cancel, the mean is about 0, and rounding is all that is
    left of it. ``terms`` holds, per parameter, the mean over the samples of |∇ℓ_i|.
    """
    tolerance = rounding_tolerance([*a, *b])
    return all(within_rounding(float(np.max(np.abs(u - v), initial=0.0)),
                               max(magnitude(u), magnitude(v), magnitude(t)), tolerance)
               for u, v, t in zip(a, b, terms))


def magnitude(a: np.ndarray) -> float:
    return float(np.max(np.abs(a), initial=0.0))


def mean_abs_per_sample_gradient(model: nn.Module, loss_fn: LossFn, X: np.ndarray, y: np.ndarray,
                                 params: list[Tensor], where: str) -> list[np.ndarray]:
    """(1/B) Σ_i |∇ℓ_i| per parameter: the size of what a mini-batch gradient adds up. Leaves .grad cleared."""
    total = [np.zeros_like(p.data) for p in params]
    for i in range(len(X)):
        _, loss_i = sample_loss(model, loss_fn, X, y, i, where)
        loss_i.backward()
        total = [running + np.abs(grad) for running, grad in zip(total, take_grads(params))]
    return [t / len(X) for t in total]


def grads_to_put_back(model: nn.Module, loss_fn: LossFn, X: np.ndarray, y: np.ndarray,
                      params: list[Tensor], where: str) -> list[Tensor]:
    """The parameters, and every other tensor that requires grad and that the loss reaches (a
    learnable scale inside ``loss_fn``, say): a drawing's backward passes add into their .grad
    too, and must leave it as it was. Found by building sample 0's graph (no backward)."""
    _, loss = sample_loss(model, loss_fn, X, y, 0, where)
    ours = {id(p) for p in params}
    return params + [t for t in loss.topological_order() if t.is_leaf and id(t) not in ours]


def note_box(dot: graphviz.Digraph, node_id: str, text: str, look: dict[str, str], shape: str = "box") -> None:
    """A box of explanation (not a tensor) in the picture."""
    dot.node(node_id, label=html_label(text.splitlines()), shape=shape, style="rounded,filled", **look)


# ------------------------------------------------------------------------------ strategies
def draw_strategies(
    model: nn.Module,
    loss_fn: LossFn,
    X: Any,
    y: Any,
    *,
    max_samples: int = 2,
    view: str = "compact",
    rankdir: str | None = None,
    renderer: str | None = None,
) -> Picture:
    """Per-sample graphs beside the batched graph, showing where the sum and the 1/B happen.

    Args:
        model, loss_fn, X, y: as for the strategies in ``tinygrad_mb.minibatch``
            (``loss_fn`` returns the mean loss over the samples it is given).
        max_samples: draw at most this many per-sample graphs (the first ones and the last);
            a note stands for the others.
        view: "compact" (one box per operation, the parameters drawn once; fits a notebook)
            or "detailed" (every tensor's summaries; wide).
        rankdir: None picks the view's own ("TB" for compact, "LR" for detailed).

    Returns:
        A ``Picture`` whose ``facts`` hold both gradients ("per_sample_average",
        "batched_mean", lists aligned with ``model.parameters()``) and "max_abs_difference".
    """
    check_view(view, "draw_strategies")
    X, y, params = minibatch.check_batch(model, X, y, "draw_strategies")
    minibatch.check_loss_fn(loss_fn, "draw_strategies")  # a summed loss: refused, as the strategies do
    B = len(X)
    shown = shown_samples(B, max_samples, "draw_strategies")
    title = ("Where does the averaging happen?\n"
             "Per-sample graphs summed after backward, or a mean inside one graph")
    dot = new_digraph(rankdir=natural_rankdir(view, rankdir, "draw_strategies"), title=title, view=view)
    # Compact: every graph below uses the same parameters θ, so they are drawn once.
    drawn = parameter_names(model) if view == "compact" else {}
    theta = add_parameters(dot, drawn, "θ: the same parameters for every graph") if drawn else ""
    sample_losses: list[str] = []
    first_boxes: list[str] = []  # one per graph, to keep the graphs in order
    with grads_put_back(grads_to_put_back(model, loss_fn, X, y, params, "draw_strategies")):  # cleared, put back
        # Per-sample: B forward passes and B backward passes; .grad sums the gradients.
        total = [np.zeros_like(p.data) for p in params]
        total_abs = [np.zeros_like(p.data) for p in params]  # the size of the terms, for the comparison
        for i in range(B):
            _, loss_i = sample_loss(model, loss_fn, X, y, i, "draw_strategies")
            loss_i.backward()
            if i in shown:  # walked after backward, so the boxes show this sample's gradients
                sample_graph = walk(loss_i)
                label = f"sample {i} alone: its own\ngraph and loss ℓ_{i}"
                with cluster(dot, f"sample{i}", label) as box:
                    # Compact: the rules of fused nodes are printed once, in the batched graph,
                    # where their sums run over the batch (here each sums a single row).
                    boxes = add_graph(box, sample_graph, prefix=f"s{i}_", view=view, drawn=drawn,
                                      formulas=view == "detailed")
                first_boxes.append(boxes[0])
                if theta:
                    shared_by(dot, theta, f"sample{i}", boxes[0])
                sample_losses.append(f"s{i}_{sample_graph.root}")
            grads = take_grads(params)
            total = [running + grad for running, grad in zip(total, grads)]
            total_abs = [running + np.abs(grad) for running, grad in zip(total_abs, grads)]
        per_sample = [t / B for t in total]

        # Batched: one forward pass of the whole batch, the mean inside the graph, one backward.
        batch_loss = minibatch.scalar_loss(loss_fn(model(Tensor(X, name="X")), Tensor(y, name="y")),
                                           "draw_strategies")
        batch_loss.backward()
        batch_graph = walk(batch_loss)
        label = f"the whole batch (B = {B}):\none graph, one backward pass"
        with cluster(dot, "batched", label) as box:
            boxes = add_graph(box, batch_graph, prefix="b_", view=view, drawn=drawn)
            # Inside the batch's box: the mean is a node of this graph, not a step after it.
            note_box(box, "batched_note", "the mean over the batch:\nthe sum and the 1/B are\na node of this "
                     f"graph; its\nbackward hands each\nsample 1/{B} of the gradient", AVERAGING, shape="note")
            box.edge(f"b_{batch_graph.root}", "batched_note", style="dashed", arrowhead="none")
        first_boxes.append(boxes[0])
        if view == "compact":
            keep_in_order(dot, first_boxes)
        if theta:
            shared_by(dot, theta, "batched", boxes[0])
        batched = take_grads(params)

    same = agree(per_sample, batched, [t / B for t in total_abs])
    diff = max_difference(per_sample, batched)
    if len(shown) < B:
        note_box(dot, "more", f"⋯ {B - len(shown)} more samples,\neach with a graph\nlike these",
                 {"fillcolor": "#ffffff", "color": "#888888"}, shape="note")
        dot.edge(sample_losses[-1], "more", style="invis")  # below the graphs, where there is room
        dot.edge("more", "sum_grads", style="dashed", label="backward")
    note_box(dot, "sum_grads", f"Σ_i ∇θ ℓ_i  (the sum)\n.grad adds up the gradients\nof the B = {B} backward passes",
             AVERAGING)
    note_box(dot, "one_over_B", f"× 1/B = 1/{B}  (the 1/B)\nafter all backward passes", AVERAGING)
    note_box(dot, "per_sample_result", "per-sample average\n(1/B) Σ_i ∇θ ℓ_i", RESULT_OK)
    note_box(dot, "batched_result", "batched mean\n∇θ L_B from one backward pass", RESULT_OK)
    verdict = "the same gradient" if same else "the gradients DIFFER" if finite(per_sample, batched) else NOT_FINITE
    note_box(dot, "same", f"{verdict}\nmax |difference| = {format_number(diff)}", RESULT_OK if same else RESULT_WRONG)
    for loss_id in sample_losses:
        dot.edge(loss_id, "sum_grads", label="backward")
    dot.edge("sum_grads", "one_over_B")
    dot.edge("one_over_B", "per_sample_result")
    dot.edge("per_sample_result", "same")
    dot.edge(f"b_{batch_graph.root}", "batched_result", label="backward")
    dot.edge("batched_note", "batched_result", style="invis")  # below the batch's box, not beside it
    dot.edge("batched_result", "same")
    facts = {"batch_size": B, "shown_samples": shown, "per_sample_average": per_sample,
             "batched_mean": batched, "max_abs_difference": diff}
    return Picture(dot.source, renderer=renderer, facts=facts)


# ------------------------------------------------------------------------------ error first
# What each variant's single backward pass runs through (its answer to "which activations?").
# The variants themselves, and the backward pass each runs, are minibatch's.
WHICH_ACTIVATIONS = {
    "mean_input": "the activations of the\nmean input x̄: f′(mean x)\ninstead of mean f′(x)",
    "last_sample": "the last sample's activations\n(the ones still in memory)",
    "loss_as_gradient": "the activations of the\nmean input x̄: f′(mean x)\ninstead of mean f′(x)",
    "mean_residual": "every sample's own activations,\nbut each receives the averaged\nresidual ē, not its own",
}


def draw_error_first(
    model: nn.Module,
    loss_fn: LossFn,
    X: Any,
    y: Any,
    variant: str = "mean_input",
    *,
    max_samples: int = 2,
    view: str = "compact",
    rankdir: str | None = None,
    renderer: str | None = None,
) -> Picture:
    """The "average the error first, then backpropagate once" misconception, as a graph.

    Left: each sample's forward pass, with its own activations and its own output error
    g_i = ∂ℓ_i/∂ŷ_i. Middle: the errors averaged *before* backpropagation, and the question
    it cannot answer: a single backward pass needs activations, but whose (the right answer,
    each sample's own, needs B of them)? Right:
    the graph the variant picks, backpropagated once. The result is compared with the true
    mini-batch gradient (the batched mean). Variants as in ``minibatch.error_first``:
    "mean_input", "last_sample", "loss_as_gradient", "mean_residual" (``nn.mse_loss`` only).
    ``max_samples``, ``view`` and ``rankdir`` as for ``draw_strategies``.

    Returns:
        A ``Picture`` whose ``facts`` hold "error_first" and "batched_mean" (gradients aligned
        with ``model.parameters()``), "max_abs_difference" and "mean_error" (ḡ).
    """
    check_view(view, "draw_error_first")
    X, y, params = minibatch.check_batch(model, X, y, "draw_error_first")
    minibatch.check_variant(variant, loss_fn, "draw_error_first")
    B = len(X)
    shown = shown_samples(B, max_samples, "draw_error_first")
    title = f"Averaging the error first ({variant}):\none backward pass, but through which activations?"
    dot = new_digraph(rankdir=natural_rankdir(view, rankdir, "draw_error_first"), title=title, view=view)
    drawn = parameter_names(model) if view == "compact" else {}  # drawn once, as in draw_strategies
    theta = add_parameters(dot, drawn, "θ: the same parameters for every graph") if drawn else ""
    outputs: list[tuple[int, str]] = []
    first_boxes: list[str] = []  # one per graph, to keep the graphs in order
    with grads_put_back(grads_to_put_back(model, loss_fn, X, y, params, "draw_error_first")):  # cleared, put back
        terms = mean_abs_per_sample_gradient(model, loss_fn, X, y, params, "draw_error_first")
        for i in shown:
            pred_i, loss_i = sample_loss(model, loss_fn, X, y, i, "draw_error_first")
            loss_i.backward()  # walked after backward, so ŷ_i's box shows g_i, this sample's error
            out_graph = walk(pred_i)
            label = f"sample {i}: its forward pass,\nits own activations;\nits error g_{i} = ∂ℓ_{i}/∂ŷ_{i}"
            with cluster(dot, f"sample{i}", label) as box:
                boxes = add_graph(box, out_graph, prefix=f"s{i}_", view=view, drawn=drawn,
                                  formulas=view == "detailed")  # compact: printed once, in the variant's graph
            first_boxes.append(boxes[0])
            if theta:
                shared_by(dot, theta, f"sample{i}", boxes[0])
            outputs.append((i, f"s{i}_{out_graph.root}"))
            take_grads(params)

        # The true mini-batch gradient, to compare with; and ḡ, what mean_input and
        # last_sample send back (computed without touching .grad).
        true = minibatch.batched_mean(model, loss_fn, X, y)
        true_grads, mean_loss = list(true), true.loss
        mean_error = minibatch.mean_output_error(model, loss_fn, X, y)
        take_grads(params)

        # The variant's one backward pass, exactly as minibatch.error_first runs it.
        root = minibatch.error_first_backward(model, loss_fn, X, y, variant)
        variant_graph = walk(root)
        variant_root = f"v_{variant_graph.root}"
        which = WHICH_ACTIVATIONS[variant]
        label = f"variant {variant}:\nONE backward pass"
        with cluster(dot, "variant", label, {"color": "#b85450"}) as box:
            boxes = add_graph(box, variant_graph, prefix="v_", view=view, drawn=drawn)
        if view == "compact":
            keep_in_order(dot, [*first_boxes, boxes[0]])
        if theta:
            shared_by(dot, theta, "variant", boxes[0])
        wrong_grads = take_grads(params)

    averaged_first = f"ḡ = mean_i g_i = {summarize(mean_error)}\nthe output error averaged\nBEFORE backpropagation"
    averaged, edge_text = {
        "mean_input": (averaged_first, "g"),
        "last_sample": (averaged_first, "g"),
        "loss_as_gradient": (f"L = mean loss = {format_number(mean_loss)}\n"
                             "the loss VALUE sent back\nas if it were the error", "ℓ"),
        "mean_residual": ("ē = mean_i (ŷ_i − y_i)\nthe residual averaged\nbefore squaring and\nbackpropagating", "e"),
    }[variant]
    diff = max_difference(wrong_grads, true_grads)
    exact = agree(wrong_grads, true_grads, terms)
    verdict = ("equal here (one sample, equal inputs, or both zero)" if exact
               else "WRONG: not the mini-batch gradient" if finite(wrong_grads, true_grads) else NOT_FINITE)
    if len(shown) < B:
        note_box(dot, "more", f"⋯ {B - len(shown)} more samples,\neach with its\nown activations",
                 {"fillcolor": "#ffffff", "color": "#888888"}, shape="note")
        dot.edge(outputs[-1][1], "more", style="invis")  # below the graphs, where there is room
        dot.edge("more", "averaged", style="dashed")
    note_box(dot, "averaged", averaged, AVERAGING)
    note_box(dot, "which", f"which activations?\n{variant} uses\n{which}", QUESTION)
    note_box(dot, "result", f"error-first gradient vs the true\n(batched mean) gradient:\n"
             f"max |difference| = {format_number(diff)}\n{verdict}", RESULT_OK if exact else RESULT_WRONG)
    for i, out_id in outputs:
        dot.edge(out_id, "averaged", label=f"{edge_text}_{i}")
    dot.edge("averaged", "which")
    # The ambiguity: every forward pass left activations; dashed "?" edges point back at them.
    for _, out_id in outputs:
        dot.edge("which", out_id, style="dashed", color="#b85450", label="?", constraint="false")
    dot.edge("which", variant_root, color="#b85450", penwidth="2", label="backward once")
    dot.edge(variant_root, "result")
    facts = {"variant": variant, "batch_size": B, "shown_samples": shown, "mean_error": mean_error,
             "error_first": wrong_grads, "batched_mean": true_grads, "max_abs_difference": diff}
    return Picture(dot.source, renderer=renderer, facts=facts)
