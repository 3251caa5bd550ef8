"""The mission pictures: per-sample vs batched graphs, and the error-first misconception."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinygrad_mb import minibatch, nn
from viz import draw_error_first, draw_strategies
from viz.strategies import WHICH_ACTIVATIONS, shown_samples

VARIANTS = minibatch.ERROR_FIRST_VARIANTS


def regression(B: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, 2))
    y = np.tanh(X[:, :1] - X[:, 1:])
    return nn.MLP([2, 3, 1], rng=seed), X, y


def assert_same_gradients(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


def clusters(source: str) -> list[str]:
    return re.findall(r"subgraph cluster_(\w+) \{", source)


def test_strategies_picture_has_one_graph_per_sample_and_one_for_the_batch():
    model, X, y = regression(B=3)
    source = draw_strategies(model, nn.mse_loss, X, y, max_samples=3, renderer="none").source
    assert clusters(source) == ["sample0", "sample1", "sample2", "batched"]
    # The per-sample side: each loss is backpropagated into the sum, then the 1/B.
    for i in range(3):
        assert re.search(rf"s{i}_n\d+ -> sum_grads", source)
    assert "sum_grads -> one_over_B\n" in source and "× 1/B = 1/3" in source
    # The batched side: the root of the batched graph is the mean, annotated as the averaging.
    batched_root = re.search(r"(b_n\d+) -> batched_note", source).group(1)
    assert re.search(rf"{batched_root} \[label=<<B>mean · loss</B>", source)


def test_strategies_picture_states_the_gradients_of_both_strategies():
    model, X, y = regression(B=5)
    facts = draw_strategies(model, nn.mse_loss, X, y, renderer="none").facts
    assert_same_gradients(facts["per_sample_average"], minibatch.per_sample_average(model, nn.mse_loss, X, y))
    assert_same_gradients(facts["batched_mean"], minibatch.batched_mean(model, nn.mse_loss, X, y))
    assert facts["max_abs_difference"] < 1e-12


def test_strategies_picture_of_a_large_batch_shows_a_few_samples_and_a_note_for_the_rest():
    model, X, y = regression(B=10)
    picture = draw_strategies(model, nn.mse_loss, X, y, max_samples=3, renderer="none")
    assert clusters(picture.source) == ["sample0", "sample1", "sample9", "batched"]
    assert "⋯ 7 more samples" in picture.source and "more -> sum_grads" in picture.source
    # The hidden samples still count in the gradient.
    assert_same_gradients(picture.facts["per_sample_average"], minibatch.batched_mean(model, nn.mse_loss, X, y))


def test_shown_samples_are_the_first_few_and_the_last():
    assert shown_samples(3, 3) == [0, 1, 2]
    assert shown_samples(100, 4) == [0, 1, 2, 99]
    with pytest.raises(ValueError, match="max_samples must be at least 2"):
        shown_samples(5, 1)


def test_strategies_picture_works_for_classification():
    rng = np.random.default_rng(1)
    X, labels = rng.normal(size=(4, 2)), np.array([0, 1, 1, 0])
    model = nn.MLP([2, 4, 2], activation="relu", rng=1)
    facts = draw_strategies(model, nn.cross_entropy, X, labels, renderer="none").facts
    assert_same_gradients(facts["per_sample_average"], facts["batched_mean"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_error_first_picture_marks_the_which_activations_question(variant):
    model, X, y = regression(B=3)
    source = draw_error_first(model, nn.mse_loss, X, y, variant, max_samples=3, renderer="none").source
    assert clusters(source) == ["sample0", "sample1", "sample2", "variant"]
    assert "which activations?" in source and "averaged -> which\n" in source
    # A dashed "?" edge back to every sample's output: any of them could have been used.
    questioned = re.findall(r'which -> (s\d+_n\d+) \[.*label="\?".*style=dashed', source)
    assert [q.split("_")[0] for q in questioned] == ["s0", "s1", "s2"]
    assert re.search(r'which -> v_n\d+ \[.*label="backward once"', source)


@pytest.mark.parametrize("variant", VARIANTS)
def test_error_first_picture_states_the_same_gradient_as_minibatch_error_first(variant):
    model, X, y = regression(B=4)
    picture = draw_error_first(model, nn.mse_loss, X, y, variant, renderer="none")
    assert_same_gradients(picture.facts["error_first"], minibatch.error_first(model, nn.mse_loss, X, y, variant))
    assert_same_gradients(picture.facts["batched_mean"], minibatch.batched_mean(model, nn.mse_loss, X, y))
    assert picture.facts["max_abs_difference"] > 1e-6  # distinct inputs: the misconception is wrong
    assert "WRONG: not the mini-batch gradient" in picture.source


def test_error_first_picture_says_when_the_variant_happens_to_be_exact():
    model, X, y = regression(B=1)
    picture = draw_error_first(model, nn.mse_loss, X, y, "mean_input", renderer="none")
    assert picture.facts["max_abs_difference"] < 1e-12
    assert "equal here (one sample, equal inputs, or both zero)" in picture.source


def test_mean_residual_needs_squared_error():
    model, X, _ = regression(B=2)
    with pytest.raises(ValueError, match="needs loss_fn=nn.mse_loss"):
        draw_error_first(nn.MLP([2, 2], rng=0), nn.cross_entropy, X, np.array([0, 1]), "mean_residual")
    with pytest.raises(ValueError, match="unknown variant"):
        draw_error_first(model, nn.mse_loss, X, np.zeros((2, 1)), "average_harder")


def test_drawing_leaves_parameter_values_and_gradients_unchanged():
    model, X, y = regression(B=4)
    params = model.parameters()
    values = [p.data.copy() for p in params]
    params[0].grad = marker = np.full(params[0].shape, 5.0)
    draw_strategies(model, nn.mse_loss, X, y, renderer="none")
    for variant in VARIANTS:
        draw_error_first(model, nn.mse_loss, X, y, variant, renderer="none")
    assert params[0].grad is marker and all(p.grad is None for p in params[1:])
    assert all(np.array_equal(p.data, v) for p, v in zip(params, values))


def test_mismatched_batch_is_refused():
    model, X, y = regression(B=4)
    with pytest.raises(ValueError, match="pass one target per sample"):
        draw_strategies(model, nn.mse_loss, X, y[:3])
    with pytest.raises(ValueError, match="pass one target per sample"):
        draw_error_first(model, nn.mse_loss, X, y[:3])


def test_every_error_first_variant_of_the_engine_has_an_explanation():
    assert set(WHICH_ACTIVATIONS) == set(VARIANTS)


def test_a_drawing_that_fails_midway_leaves_every_gradient_as_it_was():
    # The loss function fails on the batched pass, after B per-sample backward passes have
    # filled .grad: the drawing must still put every parameter's old .grad back.
    model, X, y = regression(B=3)
    params = model.parameters()
    markers = [np.full(p.shape, 5.0 + k) for k, p in enumerate(params)]
    for p, m in zip(params, markers):
        p.grad = m

    def fails_on_the_whole_batch(pred, target):
        if len(pred) > 1:
            raise RuntimeError("loss refused the batch")
        return nn.mse_loss(pred, target)

    with pytest.raises(RuntimeError, match="loss refused the batch"):
        draw_strategies(model, fails_on_the_whole_batch, X, y, renderer="none")
    with pytest.raises(RuntimeError, match="loss refused the batch"):
        draw_error_first(model, fails_on_the_whole_batch, X, y, "mean_input", renderer="none")
    assert all(p.grad is m for p, m in zip(params, markers))
