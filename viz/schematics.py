"""Small fixed pictures of the ideas, to show before the computed graphs.

A computed graph (``draw_strategies``, ``draw_error_first``, ``draw_whose_activations``) has
every box of a real model in it; these schematics have only the shape of the argument, with
three samples standing for B (1, 2 and B, with "⋯" between). Nothing is computed: each
function returns the same picture every time, so a tutorial can show it first and then say
"here is the same thing for a real batch".
"""

from __future__ import annotations

import graphviz

from .dot import cluster, html_label, keep_in_order, new_digraph
from .render import Picture
from .strategies import AVERAGING, QUESTION, RESULT_OK, RESULT_WRONG

SAMPLES = ("₁", "₂", "_B")  # three samples stand for B: x₁, x₂, ⋯, x_B
DATA = {"shape": "box", "style": "filled", "fillcolor": "#eeeeee", "color": "#888888"}
GRAPH = {"shape": "box", "style": "rounded,filled", "fillcolor": "#dae8fc", "color": "#6c8ebf"}
LOSS = {"shape": "box", "style": "rounded,filled", "fillcolor": "#f8cecc", "color": "#b85450"}
BACKWARD = {"color": "#b85450", "fontcolor": "#b85450"}  # edges of a backward pass


def _box(dot: graphviz.Digraph, node_id: str, text: str, look: dict[str, str]) -> None:
    dot.node(node_id, label=html_label(text.splitlines()), **look)


def _dots(dot: graphviz.Digraph, node_id: str) -> None:
    """The "⋯" that stands for the samples between the second and the last."""
    dot.node(node_id, label="⋯", shape="plaintext")


def _schematic(title: str) -> graphviz.Digraph:
    return new_digraph(rankdir="TB", title=title, view="compact")


def schematic_strategies(renderer: str | None = None) -> Picture:
    """Per-sample average beside batched mean, as a sketch: where the sum and the 1/B are.

    Per-sample: B graphs, B losses, B backward passes; the gradients are summed in ``.grad``
    and multiplied by 1/B afterwards. Batched: one graph whose tensors have B rows, the mean
    of the B losses is a node of it, and one backward pass. Both give (1/B) Σᵢ ∇θ ℓᵢ.
    """
    dot = _schematic("Two ways to the mini-batch gradient")
    with cluster(dot, "per_sample", "per-sample: B graphs,\nB backward passes") as box:
        for k, s in enumerate(SAMPLES):
            if k == 2:
                _dots(box, "ps_dots")
            _box(box, f"ps_x{k}", f"x{s}", DATA)
            _box(box, f"ps_g{k}", f"graph{s}", GRAPH)
            _box(box, f"ps_l{k}", f"ℓ{s}", LOSS)
            box.edge(f"ps_x{k}", f"ps_g{k}")
            box.edge(f"ps_g{k}", f"ps_l{k}")
        _box(box, "ps_sum", "Σᵢ ∇θ ℓᵢ\n(.grad adds them up)", {"shape": "box", "style": "rounded,filled", **AVERAGING})
        _box(box, "ps_scale", "× 1/B", {"shape": "box", "style": "rounded,filled", **AVERAGING})
        for k in range(len(SAMPLES)):
            box.edge(f"ps_l{k}", "ps_sum", label="backward", **BACKWARD)
        box.edge("ps_sum", "ps_scale")
        keep_in_order(box, ["ps_x0", "ps_x1", "ps_dots", "ps_x2"])
    with cluster(dot, "batched", "batched: one graph\nwith B rows") as box:
        _box(box, "b_x", "X: B rows\nx₁ … x_B", DATA)
        _box(box, "b_g", "one graph,\nB rows per tensor", GRAPH)
        _box(box, "b_l", "ℓ₁ … ℓ_B", LOSS)
        _box(box, "b_mean", "mean node\nL = (1/B) Σᵢ ℓᵢ", {"shape": "box", "style": "rounded,filled", **AVERAGING})
        _box(box, "b_grad", "∇θ L", {"shape": "box", "style": "rounded,filled", **RESULT_OK})
        box.edge("b_x", "b_g")
        box.edge("b_g", "b_l")
        box.edge("b_l", "b_mean")
        box.edge("b_mean", "b_grad", label="one backward", **BACKWARD)
    _box(dot, "same", "the same gradient:\n(1/B) Σᵢ ∇θ ℓᵢ = ∇θ L", {"shape": "box", "style": "rounded,filled",
                                                                   **RESULT_OK})
    dot.edge("ps_scale", "same")
    dot.edge("b_grad", "same")
    return Picture(dot.source, renderer=renderer, facts={"schematic": "strategies"})


def schematic_error_first(renderer: str | None = None) -> Picture:
    """Averaging the error first, as a sketch: one averaged error, and no right activations.

    Every sample's forward pass leaves its own activations and its own output error gᵢ.
    Averaging the errors first leaves one number ḡ for one backward pass, which must run
    through one set of activations: whose? Each answer (the mean input's, the last
    sample's) is wrong. The right one keeps the B rows: row i's gᵢ/B goes back through
    sample i's own activations, which is what the batched graph does.
    """
    dot = _schematic("Averaging the error first:\none backward pass, through WHICH activations?")
    for k, s in enumerate(SAMPLES):
        if k == 2:
            _dots(dot, "dots")
        _box(dot, f"x{k}", f"x{s}", DATA)
        _box(dot, f"a{k}", f"activations{s}", GRAPH)
        _box(dot, f"g{k}", f"error g{s}", LOSS)
        dot.edge(f"x{k}", f"a{k}")
        dot.edge(f"a{k}", f"g{k}")
    _box(dot, "mean", "ḡ = mean of the gᵢ\naveraged BEFORE backward", {"shape": "box", "style": "rounded,filled",
                                                                   **AVERAGING})
    _box(dot, "which", "one backward pass of ḡ\nthrough WHICH activations?", {"shape": "box",
                                                                        "style": "rounded,filled", **QUESTION})
    _box(dot, "answers", "the mean input x̄'s? (mean_input)\nthe last sample's? (last_sample)\n"
         "no single set is right", {"shape": "box", "style": "rounded,filled", **RESULT_WRONG})
    _box(dot, "right", "right: keep the B rows;\nrow i's gᵢ/B goes back through\nsample i's own activations "
         "(batched mean)", {"shape": "box", "style": "rounded,filled", **RESULT_OK})
    for k in range(len(SAMPLES)):
        dot.edge(f"g{k}", "mean")
        dot.edge("which", f"a{k}", style="dashed", label="?", constraint="false", **BACKWARD)
    keep_in_order(dot, ["x0", "x1", "dots", "x2"])
    dot.edge("mean", "which")
    dot.edge("which", "answers")
    dot.edge("answers", "right", style="invis")  # below it: the way out
    return Picture(dot.source, renderer=renderer, facts={"schematic": "error_first"})


def schematic_whose_activations(renderer: str | None = None) -> Picture:
    """Whose activations the batched backward pass uses, as a sketch: each sample's own.

    Three lanes, one per sample: xᵢ → hᵢ → ℓᵢ, joined only by the mean. The mean's backward
    sends 1/B down every lane, so lane i carries gᵢ/B, sample i's own error divided by B,
    and meets only that sample's hᵢ; the lanes meet again only at the weight W, whose
    gradient sums one outer product per sample: dW = (1/B) Σᵢ outer(hᵢ, gᵢ).
    """
    dot = _schematic("Whose activations? Each sample's own:\nrow i of every tensor is sample i")
    for k, s in enumerate(SAMPLES):
        if k == 2:
            _dots(dot, "dots")
        _box(dot, f"x{k}", f"row x{s}", DATA)
        _box(dot, f"h{k}", f"row h{s}", GRAPH)
        _box(dot, f"l{k}", f"ℓ{s}", LOSS)
        dot.edge(f"x{k}", f"h{k}")
        dot.edge(f"h{k}", f"l{k}")
    keep_in_order(dot, ["x0", "x1", "dots", "x2"])
    _box(dot, "mean", "mean node: L = (1/B) Σᵢ ℓᵢ\nits backward sends 1/B to each ℓᵢ",
         {"shape": "box", "style": "rounded,filled", **AVERAGING})
    _box(dot, "W", "W: the rows meet only here\ndW = (1/B) Σᵢ outer(hᵢ, gᵢ)\ngᵢ: sample i's own error",
         {"shape": "box", "style": "filled", "fillcolor": "#fff2cc", "color": "#d6b656"})
    for k, s in enumerate(SAMPLES):
        dot.edge(f"l{k}", "mean")
        # Lane k's backward: its gradient meets h_k and nothing else, then reaches W.
        dot.edge(f"h{k}", "W", label=f"h{s}, g{s}/B", style="dashed", **BACKWARD)
    dot.edge("mean", "W", style="invis")  # W below the lanes
    return Picture(dot.source, renderer=renderer, facts={"schematic": "whose_activations"})
