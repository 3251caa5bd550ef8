"""Per-sample gradient norms without per-sample gradients, the gradient noise scale, DP-SGD clipping.

Reference values come from ``per_sample_gradients``, which materialises every sample's gradient.
Tolerance: the two routes compute the same float64 sums in different orders; for values of
order 1 over a few hundred terms their rounding differs by well under 1e-12, so rtol=1e-9
with atol=1e-12 leaves a wide margin while any missing factor (a forgotten ×B, a bias left
out, h_i and g_i swapped) changes the result by orders of magnitude more.
"""

from __future__ import annotations

import functools
import math
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mb import Tensor, minibatch, nn

RTOL, ATOL = 1e-9, 1e-12


def problem(seed: int, sizes: list[int], batch: int, loss: str, activation: str = "tanh"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, sizes[0]))
    if loss == "mse":
        return nn.MLP(sizes, activation=activation, rng=seed), nn.mse_loss, X, rng.normal(size=(batch, sizes[-1]))
    return nn.MLP(sizes, activation=activation, rng=seed), nn.cross_entropy, X, rng.integers(0, sizes[-1], batch)


def reference_norms(model, loss_fn, X, y) -> np.ndarray:
    stacked = minibatch.per_sample_gradients(model, loss_fn, X, y)
    return np.sqrt(sum(np.sum(g.reshape(len(X), -1) ** 2, axis=1) for g in stacked))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), widths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       batch=st.integers(1, 9), loss=st.sampled_from(["mse", "cross_entropy"]),
       activation=st.sampled_from(["tanh", "relu", "sigmoid"]))
def test_per_sample_grad_norms_equal_the_row_norms_of_per_sample_gradients(seed, widths, batch, loss, activation):
    sizes = [3, *widths, 2 if loss == "cross_entropy" else 2]
    model, loss_fn, X, y = problem(seed, sizes, batch, loss, activation)
    norms = minibatch.per_sample_grad_norms(model, loss_fn, X, y)
    assert norms.shape == (batch,)
    np.testing.assert_allclose(norms, reference_norms(model, loss_fn, X, y), rtol=RTOL, atol=ATOL)


def test_norms_leave_the_batched_gradient_in_grad():
    model, loss_fn, X, y = problem(0, [4, 5, 3], 6, "cross_entropy")
    minibatch.per_sample_grad_norms(model, loss_fn, X, y)
    left = [p.grad.copy() for p in model.parameters()]
    for a, b in zip(left, minibatch.batched_mean(model, loss_fn, X, y)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_norms_with_extra_axes_sum_the_outer_products_over_them():
    rng = np.random.default_rng(3)
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Tanh(), nn.Linear(4, 2, rng=1))
    X, y = rng.normal(size=(5, 3, 3)), rng.normal(size=(5, 3, 2))
    np.testing.assert_allclose(minibatch.per_sample_grad_norms(model, nn.mse_loss, X, y),
                               reference_norms(model, nn.mse_loss, X, y), rtol=RTOL, atol=ATOL)


def test_norms_skip_frozen_parameters():
    model, loss_fn, X, y = problem(1, [3, 4, 2], 5, "mse")
    model.layers[0].weight.requires_grad = False
    np.testing.assert_allclose(minibatch.per_sample_grad_norms(model, loss_fn, X, y),
                               reference_norms(model, loss_fn, X, y), rtol=RTOL, atol=ATOL)


def test_norms_refuse_a_parameter_shared_by_two_layers_and_models_whose_samples_interact():
    shared = nn.Linear(3, 3, rng=0)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    X, y = np.ones((2, 3)), np.ones((2, 3))
    with pytest.raises(ValueError, match="per_sample_grad_norms: parameter W is used by two layers"):
        minibatch.per_sample_grad_norms(model, nn.mse_loss, X, y)
    assert all(p.grad is None for p in model.parameters())

    class BatchCentred(nn.Module):  # mixes samples: subtracts the batch mean
        def __init__(self):
            self.lin = nn.Linear(3, 3, rng=0)

        def forward(self, x):
            h = self.lin(x)
            return h - h.mean(axis=0, keepdims=True)

    with pytest.raises(TypeError, match="per_sample_grad_norms: cannot vectorise over layer"):
        minibatch.per_sample_grad_norms(BatchCentred(), nn.mse_loss, X, y)
    with pytest.raises(TypeError, match="per_sample_grad_norms: loss_fn must be one of this library's losses"):
        minibatch.per_sample_grad_norms(nn.MLP([3, 3]), lambda p, t: nn.mse_loss(p, t), X, y)


def test_norms_memory_grows_with_the_widths_not_with_the_number_of_parameters():
    """MLP [w, w, w] at B = 64: parameters grow like w², activations like B·w.

    From w = 64 to w = 512 the parameters grow 64-fold. The peak memory holds the batched
    gradient left in .grad (parameters × 8 bytes, unavoidable) plus the rows of activations and
    output gradients: that rest must grow like the widths (8-fold; allow 16), and the whole peak
    must stay far below the B × parameters × 8 bytes per-sample gradients take (34 MB at w = 512).
    """
    def peak(width: int) -> tuple[int, int]:
        model, loss_fn, X, y = problem(0, [width, width, width], 64, "cross_entropy")
        minibatch.per_sample_grad_norms(model, loss_fn, X, y)  # warm up
        tracemalloc.start()
        minibatch.per_sample_grad_norms(model, loss_fn, X, y)
        used = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return used, sum(p.size for p in model.parameters())

    (small, small_parameters), (large, parameters) = peak(64), peak(512)
    assert (large - 8 * parameters) / (small - 8 * small_parameters) < 16
    assert large < 64 * parameters * 8 / 8


# ------------------------------------------------------------------------------ noise scale
def noise_scale_by_formula(model, loss_fn, X, y) -> float:
    stacked = minibatch.per_sample_gradients(model, loss_fn, X, y)
    flat = np.concatenate([g.reshape(len(X), -1) for g in stacked], axis=1)
    mean = flat.mean(axis=0)
    B = len(X)
    trace = np.sum((flat - mean) ** 2) / (B - 1)
    return trace / (np.sum(mean**2) - trace / B)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 12), loss=st.sampled_from(["mse", "cross_entropy"]))
def test_gradient_noise_scale_equals_the_formula_from_per_sample_gradients(seed, batch, loss):
    model, loss_fn, X, y = problem(seed, [3, 4, 2], batch, loss)
    expected = noise_scale_by_formula(model, loss_fn, X, y)
    if expected <= 0 or not np.isfinite(expected):
        with pytest.warns(RuntimeWarning, match="noise dominates"):
            assert minibatch.gradient_noise_scale(model, loss_fn, X, y) == math.inf
    else:
        assert minibatch.gradient_noise_scale(model, loss_fn, X, y) == pytest.approx(expected, rel=1e-7)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(2, 10), extra=st.integers(0, 30))
def test_the_finite_data_set_correction_shrinks_the_batch_variance_by_n_minus_b_over_n(seed, batch, extra):
    model, loss_fn, X, y = problem(seed, [3, 4, 2], batch, "mse")
    N = batch + extra
    stacked = minibatch.per_sample_gradients(model, loss_fn, X, y)
    flat = np.concatenate([g.reshape(batch, -1) for g in stacked], axis=1)
    mean = flat.mean(axis=0)
    trace = np.sum((flat - mean) ** 2) / (batch - 1)
    signal = np.sum(mean**2) - trace / batch * (N - batch) / N
    if signal <= 0:
        with pytest.warns(RuntimeWarning):
            assert minibatch.gradient_noise_scale(model, loss_fn, X, y, dataset_size=N) == math.inf
    else:
        assert minibatch.gradient_noise_scale(model, loss_fn, X, y, dataset_size=N) == pytest.approx(
            trace / signal, rel=1e-7)


def test_the_noise_scale_of_the_whole_data_set_is_never_inf_while_the_gradient_is_not_zero():
    model, loss_fn, X, y = problem(3, [3, 4, 2], 12, "cross_entropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(minibatch.gradient_noise_scale(model, loss_fn, X, y, dataset_size=12))
    with pytest.raises(ValueError, match="dataset_size must be a whole number N >= the batch size 12"):
        minibatch.gradient_noise_scale(model, loss_fn, X, y, dataset_size=11)


def test_identical_samples_have_no_noise():
    model = nn.MLP([3, 4, 1], rng=0)
    X, y = np.tile([[0.5, -1.0, 2.0]], (6, 1)), np.full((6, 1), 0.3)
    assert minibatch.gradient_noise_scale(model, nn.mse_loss, X, y) == pytest.approx(0.0, abs=1e-9)


def test_gradient_noise_scale_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        minibatch.gradient_noise_scale(nn.MLP([2, 1]), nn.mse_loss, np.ones((1, 2)), np.ones((1, 1)))


# ------------------------------------------------------------------------------ DP-SGD clipping
def clipped_by_per_sample_gradients(model, loss_fn, X, y, max_norm):
    stacked = minibatch.per_sample_gradients(model, loss_fn, X, y)
    norms = np.sqrt(sum(np.sum(g.reshape(len(X), -1) ** 2, axis=1) for g in stacked))
    factors = np.minimum(1.0, max_norm / np.maximum(norms, 1e-300))
    return [np.tensordot(factors, g, axes=1) / len(X) for g in stacked]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 8), max_norm=st.floats(0.01, 5.0),
       loss=st.sampled_from(["mse", "cross_entropy"]))
def test_clipped_mean_via_norms_equals_clipping_per_sample_gradients(seed, batch, max_norm, loss):
    model, loss_fn, X, y = problem(seed, [3, 5, 2], batch, loss)
    expected = clipped_by_per_sample_gradients(model, loss_fn, X, y, max_norm)
    got = minibatch.clipped_mean(model, loss_fn, X, y, max_norm)
    for g, e, p in zip(got, expected, model.parameters()):
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(p.grad, g)


def test_clipped_mean_with_a_huge_bound_is_the_batched_gradient():
    model, loss_fn, X, y = problem(4, [3, 5, 2], 6, "cross_entropy")
    for a, b in zip(minibatch.clipped_mean(model, loss_fn, X, y, 1e9), minibatch.batched_mean(model, loss_fn, X, y)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_clipped_mean_refuses_a_bad_bound(bad):
    model, loss_fn, X, y = problem(0, [3, 2], 4, "mse")
    with pytest.raises(ValueError, match="clipped_mean: max_norm must be a positive number"):
        minibatch.clipped_mean(model, loss_fn, X, y, bad)
    assert all(p.grad is None for p in model.parameters())


def test_a_partial_of_a_known_loss_works_for_the_norms():
    model, _, X, y = problem(0, [3, 4, 2], 5, "cross_entropy")
    direct = minibatch.per_sample_grad_norms(model, nn.cross_entropy, X, y)
    partial = minibatch.per_sample_grad_norms(model, functools.partial(nn.cross_entropy, reduction="mean"), X, y)
    np.testing.assert_array_equal(direct, partial)
    assert isinstance(Tensor(direct), Tensor)


# ------------------------------------------------------------------------------ in the trainer
def test_trainer_records_the_noise_scale_each_epoch_and_leaves_grad_alone():
    from tinygrad_mb import optim
    from tinygrad_mb.train import Trainer

    model, loss_fn, X, y = problem(5, [3, 6, 2], 40, "cross_entropy")
    trainer = Trainer(model, loss_fn, optim.SGD(model.parameters(), lr=0.1), progress=False, noise_scale=True)
    history = trainer.fit(X, y, batch_size=8, epochs=3, seed=0)
    assert len(history["noise_scale"]) == 3
    grads = [None if p.grad is None else p.grad.copy() for p in model.parameters()]
    scale = trainer.measure_noise_scale(X, y)
    for p, g in zip(model.parameters(), grads):
        assert (p.grad is None and g is None) or np.array_equal(p.grad, g)
    stacked = minibatch.per_sample_gradients(model, loss_fn, X, y)
    flat = np.concatenate([g.reshape(len(X), -1) for g in stacked], axis=1)
    mean = flat.mean(axis=0)
    trace = np.sum((flat - mean) ** 2) / (len(X) - 1)
    assert scale == pytest.approx(trace / np.sum(mean**2), rel=1e-7)  # the whole data set: |G|² = ‖ḡ‖²
    assert scale == pytest.approx(history["noise_scale"][-1], rel=1e-12)


def test_trainer_refuses_the_noise_scale_for_a_loss_it_cannot_split_before_training():
    from tinygrad_mb import optim
    from tinygrad_mb.train import Trainer

    model = nn.MLP([2, 3, 1], rng=0)
    with pytest.raises(TypeError, match=r"Trainer\(noise_scale=True\): loss_fn must be one of this library's"):
        Trainer(model, lambda p, t: nn.mse_loss(p, t), optim.SGD(model.parameters(), lr=0.1), noise_scale=True)


def test_gradient_noise_scale_names_itself_when_the_loss_cannot_be_split():
    model, _, X, y = problem(0, [3, 4, 2], 5, "mse")
    with pytest.raises(TypeError, match="^gradient_noise_scale: loss_fn must be one of this library's losses"):
        minibatch.gradient_noise_scale(model, lambda p, t: nn.mse_loss(p, t), X, y)
