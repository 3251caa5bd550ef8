"""The answer to "whose activations?": each sample's own, drawn from a real batch and checked.

``draw_whose_activations`` claims that in the batched graph row i of every tensor is sample
i's own forward pass, that the mean's backward sends gᵢ/B to row i, and that the rows meet
only at the parameters. These tests check that the picture states those claims from the
numbers, draws one lane per sample that meets no other, and says so when a model's rows
do interact.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

from tinygrad_mb import Tensor, minibatch, nn
from viz import draw_whose_activations


def regression(B=4, seed=0):
    rng = np.random.default_rng(seed)
    return nn.MLP([2, 3, 1], activation="tanh", rng=seed), rng.normal(size=(B, 2)), rng.normal(size=(B, 1))


def test_whose_activations_states_the_checks_made_on_the_real_batch():
    model, X, y = regression()
    facts = draw_whose_activations(model, nn.mse_loss, X, y, renderer="none").facts
    for claim in ("activations", "gradients", "outer_products", "parameters"):
        assert facts[claim] < 1e-12, claim
    # Row i of ŷ receives gᵢ/B: for squared error gᵢ = 2 (ŷᵢ − yᵢ), sample i's own error.
    pred = model(Tensor(X)).data
    np.testing.assert_allclose(facts["output_gradient"], 2 * (pred - y) / len(X), rtol=1e-12)
    np.testing.assert_allclose(facts["batched_mean"][0], minibatch.batched_mean(model, nn.mse_loss, X, y)[0])


def test_whose_activations_draws_one_lane_per_sample_that_meets_no_other():
    model, X, y = regression(B=6)
    picture = draw_whose_activations(model, nn.mse_loss, X, y, max_rows=4, renderer="none")
    assert picture.facts["shown_rows"] == [0, 1, 2, 5]
    lane_edges = re.findall(r"^\s*(\w+):r(\d+):s -> (\w+)(?::r(\d+):n)?", picture.source, re.M)
    assert {int(i) for _, i, _, _ in lane_edges} == {0, 1, 2, 5}
    # Row i feeds row i and nothing else, until the lanes join at the loss's mean.
    assert all(j == i for _, i, _, j in lane_edges if j)
    joins = {head for _, _, head, j in lane_edges if not j}
    assert joins == {re.search(r"^\s*(\w+) \[label=<<B>mean · loss", picture.source, re.M).group(1)}
    # The rows meet at the parameters: one box per layer, stating the sums over the rows.
    assert picture.source.count("the 6 rows meet here,") == 2
    assert "dW1 = (1/B) Σᵢ outer(hᵢ, gᵢ)" in picture.source and "db2 = (1/B) Σᵢ gᵢ" in picture.source


class BatchCentred(nn.Module):
    """Subtracts the batch mean: samples interact, as in batch normalisation."""

    def __init__(self):
        self.net = nn.MLP([2, 3, 1], rng=0)

    def forward(self, x):
        return self.net(x - x.mean(axis=0, keepdims=True))


def test_whose_activations_shows_when_the_rows_interact():
    _, X, y = regression()
    picture = draw_whose_activations(BatchCentred(), nn.mse_loss, X, y, renderer="none")
    assert picture.facts["activations"] > 1e-3
    assert "NOT equal: the rows interact" in picture.source


def test_whose_activations_refuses_a_loss_that_builds_another_graph_for_one_sample():
    model, X, y = regression()

    def extra_step_for_batches(pred, target):
        loss = nn.mse_loss(pred, target)
        return loss * 1.0 if len(pred) > 1 else loss

    with pytest.raises(ValueError, match="builds a different graph from the batch"):
        draw_whose_activations(model, extra_step_for_batches, X, y)


def test_whose_activations_leaves_every_gradient_as_it_was():
    model, X, y = regression()
    params = model.parameters()
    params[0].grad = marker = np.full(params[0].shape, 5.0)
    draw_whose_activations(model, nn.mse_loss, X, y, renderer="none")
    assert params[0].grad is marker and all(p.grad is None for p in params[1:])


def test_whose_activations_explains_the_mean_and_refuses_a_summed_loss():
    model, X, y = regression()
    with pytest.raises(ValueError, match="reduces the samples' losses with 'sum'"):
        draw_whose_activations(model, functools.partial(nn.mse_loss, reduction="sum"), X, y)
