"""Every tutorial picture fits a notebook: at most 900 px wide, its text at least 8 px.

A notebook column is about 900 px wide. A picture wider than that is either scaled down by
the browser (and 9-point text becomes unreadable) or scrolled sideways. So each picture is
rendered here with Graphviz's ``dot``, as a notebook would show it, and measured:

- its width: the SVG's ``width`` in points, times 4/3 for pixels (CSS: 1 pt = 4/3 px);
- its smallest text: each ``font-size`` times the scale the SVG applies (``width`` over the
  ``viewBox`` width, times any ``scale()`` on the drawing), in pixels. A picture squeezed to
  fit (Graphviz's ``size``) passes the first test and fails this one.

The inputs are the tutorials' typical ones: a [2, 3, 1] or [2, 8, 1] tanh regression with
B = 4 or 6, a [2, 16, 16, 2] ReLU classifier with B = 8, and the digits model of tutorial 5.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from renderers import RENDERERS, renderer_or_skip

from tinygrad_mb import Tensor, minibatch, nn
from viz import (
    Picture,
    draw_backward_steps,
    draw_error_first,
    draw_graph,
    draw_strategies,
    draw_whose_activations,
    schematic_error_first,
    schematic_strategies,
    schematic_whose_activations,
)
from viz.dot import STYLES

NOTEBOOK_PX = 900
MIN_FONT_PX = 8
PX_PER_PT = 4 / 3


# ------------------------------------------------------------------------------ measuring
def rendered(picture: Picture, renderer: str = "dot") -> str:
    picture.renderer = renderer_or_skip(renderer)
    return picture.svg()


def svg_scale(svg: str) -> tuple[float, float]:
    """(width in pt, the scale from drawing units to pt) of a Graphviz SVG."""
    root = re.search(r'<svg width="([\d.]+)pt" height="[\d.]+pt"\s+viewBox="([-\d.\s]+)"', svg)
    assert root, "not a Graphviz SVG"
    width = float(root.group(1))
    viewbox_width = float(root.group(2).split()[2])
    # Graphviz writes the shrinking of `size` either into the viewBox or as scale() on the drawing.
    drawing = re.search(r'<g id="graph0" class="graph" transform="scale\(([\d.]+)', svg)
    return width, (width / viewbox_width) * (float(drawing.group(1)) if drawing else 1.0)


def width_px(svg: str) -> float:
    return svg_scale(svg)[0] * PX_PER_PT


def smallest_font_px(svg: str) -> float:
    sizes = [float(s) for s in re.findall(r'<text[^>]*font-size="([\d.]+)"', svg)]
    assert sizes, "no text in the picture"
    return min(sizes) * svg_scale(svg)[1] * PX_PER_PT


def boxes(svg: str) -> int:
    return svg.count('class="node"')


# ------------------------------------------------------------------------------ the tutorials' inputs
def regression(sizes=(2, 3, 1), B=4, seed=0):
    rng = np.random.default_rng(seed)
    return nn.MLP(list(sizes), activation="tanh", rng=seed), rng.normal(size=(B, 2)), rng.normal(size=(B, 1))


def classifier(B=8):
    X = np.random.default_rng(0).normal(size=(B, 2))
    return nn.MLP([2, 16, 16, 2], activation="relu", rng=0), X, np.arange(B) % 2


def scalar_expression() -> Tensor:
    """Tutorial 1's L = (a·b + c)·f, after backward."""
    a, b, c, f = (Tensor(v, requires_grad=True, name=n) for v, n in [(2.0, "a"), (-3.0, "b"), (10.0, "c"),
                                                                      (-2.0, "f")])
    L = (a * b + c) * f
    L.backward()
    return L


def digits_step() -> Tensor:
    """Tutorial 5's training step: a [64, 64, 10] MLP, two images, the mean cross-entropy."""
    model = nn.MLP([64, 64, 10], activation="tanh", rng=0)
    loss = nn.cross_entropy(model(Tensor(np.random.default_rng(0).normal(size=(2, 64)), name="X")), [3, 7])
    loss.backward()
    return loss


def mlp_loss(model, loss_fn, X, y) -> Tensor:
    loss = loss_fn(model(Tensor(X, name="X")), Tensor(y, name="y"))
    loss.backward()
    return loss


def on(data, loss_fn, draw, *args, **kwargs) -> Picture:
    """``draw(model, loss_fn, X, y, *args, **kwargs)`` for ``data = (model, X, y)``."""
    model, X, y = data
    return draw(model, loss_fn, X, y, *args, **kwargs)


# Every picture function, in its default view, on the inputs the tutorials give it.
PICTURES: dict[str, Callable[[], Picture]] = {
    "schematic_strategies": schematic_strategies,
    "schematic_error_first": schematic_error_first,
    "schematic_whose_activations": schematic_whose_activations,
    "strategies, [2, 3, 1], B=4": lambda: on(regression(), nn.mse_loss, draw_strategies),
    "strategies, [2, 3, 1], B=8": lambda: on(regression(B=8), nn.mse_loss, draw_strategies),
    "strategies, [2, 16, 16, 2], B=8": lambda: on(classifier(), nn.cross_entropy, draw_strategies),
    **{f"error_first {v}, [2, 8, 1], B=6": (lambda v=v: on(regression((2, 8, 1), B=6, seed=1), nn.mse_loss,
                                                           draw_error_first, v))
       for v in minibatch.ERROR_FIRST_VARIANTS},
    "error_first, [2, 16, 16, 2], B=8": lambda: on(classifier(), nn.cross_entropy, draw_error_first),
    "whose_activations, [2, 3, 1], B=4": lambda: on(regression(), nn.mse_loss, draw_whose_activations),
    "whose_activations, [2, 16, 16, 2], B=8": lambda: on(classifier(), nn.cross_entropy, draw_whose_activations),
    "graph of tutorial 1's expression": lambda: draw_graph(scalar_expression()),
    "backward steps of tutorial 1's expression": lambda: draw_backward_steps(scalar_expression())[0].picture,
    # A model's graph is drawn compact (in the default, detailed view it is 2,000-2,800 px wide).
    "compact graph, [2, 3, 1], B=4": lambda: draw_graph(on(regression(), nn.mse_loss, mlp_loss), view="compact"),
    "compact graph, [2, 16, 16, 2], B=8": lambda: draw_graph(on(classifier(), nn.cross_entropy, mlp_loss),
                                                             view="compact"),
    "compact graph of tutorial 5's step": lambda: draw_graph(digits_step(), view="compact", title=(
        "One training step: a batch of two digits, the mean cross-entropy, backward")),
}


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("name", PICTURES)
def test_every_tutorial_picture_fits_a_notebook_with_readable_text(name, renderer):
    svg = rendered(PICTURES[name](), renderer)
    assert width_px(svg) <= NOTEBOOK_PX, f"{name}: {width_px(svg):.0f} px wide"
    assert smallest_font_px(svg) >= MIN_FONT_PX, f"{name}: text down to {smallest_font_px(svg):.1f} px"


def test_the_measure_sees_a_picture_squeezed_to_fit():
    # The check above must fail for the old way out: shrinking a wide picture with `size`.
    model, X, y = regression()
    wide = draw_strategies(model, nn.mse_loss, X, y, view="detailed")
    squeezed = Picture(wide.source.replace("graph [", 'graph [size="9,!" ', 1))  # 9 inches: 864 px
    svg = rendered(squeezed)
    assert width_px(svg) <= NOTEBOOK_PX
    assert smallest_font_px(svg) < MIN_FONT_PX
    assert width_px(rendered(wide)) > 3 * NOTEBOOK_PX  # and the detailed view is as wide as reported


# ------------------------------------------------------------------------------ compact vs detailed
def text_length(svg: str) -> int:
    """How much there is to read: the characters of all the picture's text."""
    return sum(len(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg))


@pytest.mark.parametrize("draw", [
    lambda view: on(regression(), nn.mse_loss, draw_strategies, view=view),
    lambda view: on(regression(), nn.mse_loss, draw_error_first, view=view),
], ids=["strategies", "error_first"])
def test_the_compact_view_has_fewer_boxes_and_is_narrower_than_the_detailed_one(draw):
    compact, detailed = rendered(draw("compact")), rendered(draw("detailed"))
    assert boxes(compact) < boxes(detailed)  # the parameters once, not once per graph
    assert text_length(compact) < text_length(detailed) / 2  # no summaries
    assert width_px(compact) < width_px(detailed) / 4


def test_a_compact_graph_has_one_small_box_per_tensor_and_is_narrower():
    loss = on(regression(), nn.mse_loss, mlp_loss)
    compact, detailed = rendered(draw_graph(loss, view="compact")), rendered(draw_graph(loss))
    assert boxes(compact) == boxes(detailed)  # one graph: every tensor is a box in both views
    assert text_length(compact) < text_length(detailed) / 2
    assert width_px(compact) < width_px(detailed) / 4


def parameter_boxes(source: str) -> list[str]:
    """The labels of the boxes drawn in the parameters' colour."""
    look = f'color="{STYLES["parameter"]["color"]}" fillcolor="{STYLES["parameter"]["fillcolor"]}"'
    return re.findall(rf"^\s*\w+ \[label=<(.*?)> {look}", source, re.M)


@pytest.mark.parametrize("draw", [draw_strategies, draw_error_first], ids=["strategies", "error_first"])
def test_a_compact_picture_of_several_graphs_draws_each_parameter_once(draw):
    model, X, y = regression()
    compact = draw(model, nn.mse_loss, X, y).source
    [theta] = parameter_boxes(compact)  # one box for all of θ
    for name in ("W1", "b1", "W2", "b2"):
        assert theta.count(f"{name} <FONT") == 1
    # Every graph uses them: one arrow from θ into each graph's box, and its boxes name them.
    assert len(re.findall(r"theta -> \w+ \[.*lhead=cluster_", compact)) == 3
    assert compact.count("with W1, b1") == 3 and compact.count("with W2, b2") == 3
    # The detailed view draws every graph's own parameter boxes: four per graph, three graphs.
    assert len(parameter_boxes(draw(model, nn.mse_loss, X, y, view="detailed").source)) == 4 * 3


def test_a_compact_graph_draws_each_parameter_once_with_its_edges():
    source = draw_graph(on(regression(), nn.mse_loss, mlp_loss), view="compact").source
    labels = parameter_boxes(source)
    assert sorted(re.match(r"<B>(\w+)</B>", label).group(1) for label in labels) == ["W1", "W2", "b1", "b2"]
    assert "rankdir=TB" in source and "data " not in source and "grad " not in source  # no summaries


def test_the_views_are_checked_and_the_layout_follows_the_view():
    model, X, y = regression()
    with pytest.raises(ValueError, match='view must be "compact" or "detailed"'):
        draw_strategies(model, nn.mse_loss, X, y, view="tiny")
    with pytest.raises(ValueError, match='view must be "compact" or "detailed"'):
        draw_graph(scalar_expression(), view="small")
    assert "rankdir=TB" in draw_strategies(model, nn.mse_loss, X, y).source
    assert "rankdir=LR" in draw_strategies(model, nn.mse_loss, X, y, view="detailed").source
    assert "rankdir=LR" in draw_error_first(model, nn.mse_loss, X, y, rankdir="LR").source


# ------------------------------------------------------------------------------ schematics
@pytest.mark.parametrize("schematic, says", [
    (schematic_strategies, ["Σᵢ ∇θ ℓᵢ", "× 1/B", "mean node", "the same gradient:"]),
    (schematic_error_first, ["through WHICH activations?", "(mean_input)", "(last_sample)",
                             "sample i's own activations (batched mean)"]),
    (schematic_whose_activations, ["the rows meet only here", "dW = (1/B) Σᵢ outer(hᵢ, gᵢ)", "1/B to each ℓᵢ"]),
])
def test_the_schematics_render_and_say_their_point(schematic, says):
    svg = rendered(schematic())
    texts = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg)).replace("&#39;", "'")
    for words in says:
        assert words in texts, words
    assert schematic().source == schematic().source  # fixed pictures: the same every time
