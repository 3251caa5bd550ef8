"""Finds of the adversarial review of the per-sample tools, each with its test (each failed before its fix).

Tolerances: float64 results that are sums of a few terms are compared with rtol 1e-12 (rounding
is about 1e-15 per term; a wrong factor or a missing term shows at 1e-2 or more).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tinygrad_mb import minibatch, nn


def per_sample_by_loop(model, loss_fn, X, y):
    """Each sample's gradient from its own backward pass: the definition, brute force."""
    return [list(minibatch.batched_mean(model, loss_fn, X[i:i + 1], y[i:i + 1])) for i in range(len(X))]


def wider_layer_set_by_hand() -> tuple[nn.Linear, np.ndarray, np.ndarray]:
    """A Linear(2, 2) whose weight was replaced by a (2, 4) one: in_features/out_features are stale."""
    layer = nn.Linear(2, 2, bias=False, rng=0)
    layer.weight.data = np.array([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 2.0]])
    rng = np.random.default_rng(0)
    return layer, rng.normal(size=(3, 2)), rng.normal(size=(3, 4))


def test_per_sample_tools_use_the_weight_as_it_is_not_the_layer_s_old_sizes() -> None:
    layer, X, y = wider_layer_set_by_hand()
    singles = per_sample_by_loop(layer, nn.mse_loss, X, y)
    stacked = minibatch.per_sample_gradients(layer, nn.mse_loss, X, y)
    assert stacked[0].shape == (3, 2, 4)
    np.testing.assert_allclose(stacked[0], np.stack([s[0] for s in singles]), rtol=1e-12)
    norms = minibatch.per_sample_grad_norms(layer, nn.mse_loss, X, y)
    np.testing.assert_allclose(norms, [np.linalg.norm(s[0]) for s in singles], rtol=1e-12)
    clipped = minibatch.clipped_mean(layer, nn.mse_loss, X, y, 100.0)  # nothing clipped: the mean
    np.testing.assert_allclose(clipped[0], np.mean([s[0] for s in singles], axis=0), rtol=1e-12)
    assert layer.weight.grad.shape == (2, 4)


def one_sample_with_a_gradient(target: float):
    """Sample 0 sits in the ReLU's flat part (gradient exactly 0), sample 1 does not: on paper
    ‖ḡ‖² = tr Σ̂ / B exactly, so |Ĝ|² = 0 and the noise dominates."""
    model = nn.Sequential(nn.Linear(2, 1, rng=0), nn.ReLU())
    model[0].weight.data[:] = [[0.7], [0.3]]
    model[0].bias.data[:] = 0.1
    return model, np.array([[-1.0, -1.0], [0.3, 0.6]]), np.array([[0.0], [target]])


@pytest.mark.parametrize("target", [0.9, 1.3, 2.0, -0.5, 7.0])
def test_a_signal_of_exactly_zero_is_inf_with_its_warning_whatever_the_rounding(target: float) -> None:
    model, X, y = one_sample_with_a_gradient(target)
    with pytest.warns(RuntimeWarning, match="not above rounding: the noise dominates"):
        assert minibatch.gradient_noise_scale(model, nn.mse_loss, X, y) == np.inf


def test_no_gradient_at_all_is_nan_and_says_so() -> None:
    model = nn.Linear(2, 1, rng=0)
    X = np.random.default_rng(0).normal(size=(4, 2))
    y = model(X).data.copy()  # a perfect fit: every sample's gradient is 0
    with pytest.warns(RuntimeWarning, match="every sample's gradient is 0.*neither signal nor noise"):
        assert np.isnan(minibatch.gradient_noise_scale(model, nn.mse_loss, X, y))


def test_with_the_whole_data_set_the_warning_does_not_ask_for_a_larger_batch() -> None:
    """At a minimum of the whole data set's loss ḡ = 0: |G|² = ‖ḡ‖² is exact and 0, B_simple infinite."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 2))
    y = X @ np.array([[1.0], [-2.0]]) + 0.5 + 0.1 * rng.normal(size=(8, 1))
    model = nn.Linear(2, 1, rng=0)
    solution, *_ = np.linalg.lstsq(np.c_[X, np.ones(8)], y, rcond=None)
    model.weight.data[:], model.bias.data[:] = solution[:2], solution[2]
    with pytest.warns(RuntimeWarning) as caught:
        assert minibatch.gradient_noise_scale(model, nn.mse_loss, X, y, dataset_size=8) == np.inf
    text = str(caught[0].message)
    assert text.endswith("returning inf (the batch is the whole data set, so no larger batch can tell)"), text


def test_gradient_noise_scale_changes_no_grad_even_when_its_warning_is_an_error() -> None:
    model, X, y = one_sample_with_a_gradient(2.0)
    stale = [np.full(p.shape, 0.25) for p in model.parameters()]
    for p, g in zip(model.parameters(), stale):
        p.grad = g.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning):
            minibatch.gradient_noise_scale(model, nn.mse_loss, X, y)
    assert all(np.array_equal(p.grad, g) for p, g in zip(model.parameters(), stale))
    rng = np.random.default_rng(1)
    big = nn.MLP([2, 3, 1], rng=0)
    for p in big.parameters():
        p.grad = np.full(p.shape, 0.25)
    minibatch.gradient_noise_scale(big, nn.mse_loss, rng.normal(size=(8, 2)), rng.normal(size=(8, 1)))
    assert all(np.all(p.grad == 0.25) for p in big.parameters())


def test_clipping_a_zero_gradient_warns_of_nothing() -> None:
    model = nn.Sequential(nn.Linear(1, 1, bias=False, rng=0), nn.ReLU())
    model[0].weight.data[:] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # max_norm / tiny overflowed: a RuntimeWarning for a right answer
        minibatch.clipped_mean(model, nn.mse_loss, np.array([[-1.0], [2.0]]), np.array([[0.0], [1.0]]), 10.0)


def test_a_plain_function_among_the_layers_is_refused_with_the_usual_reason() -> None:
    model = nn.MLP([2, 3, 1], rng=0)
    model.layers.append(lambda x: x - x.mean(axis=0, keepdims=True))  # mixes the samples
    with pytest.raises(TypeError, match="per_sample_gradients: cannot vectorise over layer"):
        minibatch.per_sample_gradients(model, nn.mse_loss, np.ones((3, 2)), np.ones((3, 1)))


def test_gradient_noise_scale_names_itself_for_a_layer_used_twice() -> None:
    layer = nn.Linear(2, 2, rng=0)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    with pytest.raises(ValueError, match="^gradient_noise_scale: parameter .* is used by two layers"):
        minibatch.gradient_noise_scale(model, nn.mse_loss, np.ones((3, 2)), np.ones((3, 2)))


def test_the_noise_scale_warnings_say_exactly_what_happened() -> None:
    model, X, y = one_sample_with_a_gradient(2.0)
    with pytest.warns(RuntimeWarning) as caught:
        minibatch.gradient_noise_scale(model, nn.mse_loss, X, y)
    assert str(caught[0].message).endswith("the noise dominates this batch of 2; returning inf (use a larger batch "
                                           "to measure it)")
    fitted = nn.Linear(2, 1, rng=0)
    X2 = np.random.default_rng(0).normal(size=(4, 2))
    with pytest.warns(RuntimeWarning) as caught:
        minibatch.gradient_noise_scale(fitted, nn.mse_loss, X2, fitted(X2).data.copy())
    assert str(caught[0].message) == ("gradient_noise_scale: every sample's gradient is 0 (a perfect fit, or units "
                                      "that pass no gradient): there is neither signal nor noise to measure; "
                                      "returning nan")


@pytest.mark.parametrize("tool", [minibatch.per_sample_gradients, minibatch.per_sample_grad_norms])
def test_a_one_dimensional_batch_is_refused_with_the_shape_it_needs(tool) -> None:
    """X of shape (3,) fed a Linear(3, 2) as ONE sample: a raw numpy reshape error before."""
    with pytest.raises(ValueError, match=r"^per_sample_\w+: X must hold one sample per row, shape \(batch, "
                                         r"features\), got \(3,\); for one feature per sample use X.reshape"):
        tool(nn.Linear(3, 2, rng=0), nn.mse_loss, np.array([1.0, 2.0, 3.0]), np.zeros((3, 2)))
