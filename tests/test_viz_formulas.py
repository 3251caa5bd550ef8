"""Fused nodes state their backward rules in every picture, so the batch sum stays visible."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from renderers import renderer_or_skip

from tinygrad_mb import Tensor, nn
from viz import draw_backward_steps, draw_error_first, draw_graph, draw_strategies
from viz.dot import html_escape
from viz.formulas import BACKWARD_FORMULAS, SHORT_FORMULAS, short_formulas

SVG = "{http://www.w3.org/2000/svg}"
LINEAR_LINES = ["dW = hᵀG = Σᵢ outer(hᵢ, gᵢ)", "db = Σᵢ gᵢ  (the batch sum)", "dh = G Wᵀ"]
CROSS_ENTROPY_LINES = ["dzᵢ = softmax(zᵢ) − onehot(yᵢ)", "ℓᵢ = −log softmax(zᵢ)[yᵢ]"]


def labels_of(source: str, op: str) -> list[str]:
    """The HTML-like labels of the nodes whose header is the operation ``op``."""
    # The label ends where the next attribute (name=) begins.
    labels = re.findall(r"^\s*\w+ \[label=<(.*?)> (?=[a-z]+=)", source, re.M)
    return [label for label in labels if re.match(rf"<B>{re.escape(op)}( · |</B>)", label)]


def assert_formulas_in_every(source: str, op: str, lines: list[str], at_least: int = 1) -> None:
    labels = labels_of(source, op)
    assert len(labels) >= at_least, f"no {op} node in the picture"
    for label in labels:
        for line in lines:
            assert html_escape(line) in label, (op, line)


def classifier():
    rng = np.random.default_rng(1)
    X, labels = rng.normal(size=(4, 2)), np.array([0, 1, 1, 0])
    return nn.MLP([2, 3, 2], activation="relu", rng=1), X, labels


def test_the_formula_table_states_where_linear_and_cross_entropy_sum_the_batch():
    assert set(LINEAR_LINES) <= set(BACKWARD_FORMULAS["linear"])
    assert set(CROSS_ENTROPY_LINES) <= set(BACKWARD_FORMULAS["cross_entropy"])


def test_linear_and_cross_entropy_nodes_print_their_backward_rules():
    model, X, labels = classifier()
    loss = nn.cross_entropy(model(Tensor(X, name="X")), labels)
    source = draw_graph(loss).source
    assert_formulas_in_every(source, "linear", LINEAR_LINES, at_least=2)  # both layers
    assert_formulas_in_every(source, "cross_entropy", CROSS_ENTROPY_LINES)
    # The per-sample loss is followed by its own mean node (the 1/B), which prints no rule.
    mean = labels_of(source, "mean")
    assert len(mean) == 1 and "Σᵢ" not in mean[0] and "softmax" not in mean[0]


def test_other_operations_print_no_formulas():
    a = Tensor([1.0, 2.0], requires_grad=True, name="a")
    source = draw_graph((a * 2).tanh().sum()).source
    assert "Σᵢ" not in source and "softmax" not in source
    assert all(not labels_of(source, op) for op in BACKWARD_FORMULAS)


def test_every_mission_picture_prints_the_rules_in_its_fused_nodes():
    model, X, labels = classifier()
    strategies = draw_strategies(model, nn.cross_entropy, X, labels, max_samples=3, view="detailed",
                                 renderer="none").source
    # One linear per layer in each per-sample graph (4 samples, 3 shown) and in the batched one.
    assert_formulas_in_every(strategies, "linear", LINEAR_LINES, at_least=2 * 4)
    assert_formulas_in_every(strategies, "cross_entropy", CROSS_ENTROPY_LINES, at_least=4)

    regression = nn.MLP([2, 3, 1], rng=0)
    Xr = np.random.default_rng(0).normal(size=(3, 2))
    error_first = draw_error_first(regression, nn.mse_loss, Xr, np.zeros((3, 1)), max_samples=3,
                                   view="detailed", renderer="none").source
    assert_formulas_in_every(error_first, "linear", LINEAR_LINES, at_least=2 * 4)

    loss = nn.cross_entropy(model(Tensor(X[:1], name="x")), labels[:1])
    for step in draw_backward_steps(loss, renderer="none"):
        assert_formulas_in_every(step.picture.source, "linear", LINEAR_LINES, at_least=2)
        assert_formulas_in_every(step.picture.source, "cross_entropy", CROSS_ENTROPY_LINES)


def test_compact_linear_nodes_still_state_where_the_batch_is_summed():
    # STYLE: a fused node's picture must state dW = hᵀG and db = Σᵢ gᵢ, in the compact view too.
    assert "dW = hᵀG, db = Σᵢ gᵢ" in SHORT_FORMULAS["linear"]
    model, X, labels = classifier()
    loss = nn.cross_entropy(model(Tensor(X, name="X")), labels)
    compact_graph = draw_graph(loss, view="compact").source
    assert_formulas_in_every(compact_graph, "linear", list(SHORT_FORMULAS["linear"]), at_least=2)
    assert_formulas_in_every(compact_graph, "cross_entropy", list(SHORT_FORMULAS["cross_entropy"]))
    # Pictures of several graphs print the rules once: in the batched graph, where the sums run
    # over the batch, and in the error-first variant's graph, the one backpropagated.
    strategies = draw_strategies(model, nn.cross_entropy, X, labels, renderer="none").source
    assert len(labels_of(strategies, "linear")) == 3 * 2  # two samples and the batch, two layers each
    batched = [label for label in labels_of(strategies, "linear") if "(4, " in label]
    assert len(batched) == 2 and all(html_escape("dW = hᵀG, db = Σᵢ gᵢ") in label for label in batched)
    assert strategies.count(html_escape("dW = hᵀG, db = Σᵢ gᵢ")) == 2
    error_first = draw_error_first(model, nn.cross_entropy, X, labels, renderer="none").source
    assert error_first.count(html_escape("dW = hᵀG, db = Σᵢ gᵢ")) == 2  # the variant's two layers


def test_an_operation_with_only_full_rules_prints_them_in_the_compact_view(monkeypatch):
    monkeypatch.setitem(BACKWARD_FORMULAS, "my_op", ("y = f(x)", "dx = f′(x) g"))
    assert short_formulas("my_op") == ("y = f(x)", "dx = f′(x) g")
    assert short_formulas("tanh") == ()


@pytest.mark.parametrize("renderer", ["dot", "pygraphviz"])
def test_the_rules_come_out_of_graphviz_as_written(renderer):
    model, X, labels = classifier()
    loss = nn.cross_entropy(model(Tensor(X, name="X")), labels)
    svg = draw_graph(loss, renderer=renderer_or_skip(renderer)).svg()
    # Graphviz keeps a run of spaces by writing all but the first as no-break spaces.
    texts = ["".join(t.itertext()).replace("\xa0", " ") for t in ET.fromstring(svg).iter(f"{SVG}text")]
    for line in LINEAR_LINES + CROSS_ENTROPY_LINES:
        assert line in texts
