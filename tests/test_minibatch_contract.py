"""The contract every strategy of ``tinygrad_mb.minibatch`` keeps (its module docstring, "Common contract").

Each strategy returns one array per parameter, aligned with ``model.parameters()``; leaves
the parameter values unchanged; leaves each ``.grad`` equal to what it returns (for
``per_sample_gradients``: the mean over the batch); and reports the true mean loss. Bad input
is refused with a message that names the problem, before anything changes: a wrong call
leaves the parameters and whatever ``.grad`` held untouched.
"""

from __future__ import annotations

import functools
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from model_strategies import ROUNDING_TOL, make_problem

from tinygrad_mb import Tensor, minibatch, nn

Strategy = Callable[[nn.Module, Any, Any, Any], minibatch.Gradients]

STRATEGIES: dict[str, Strategy] = {
    "per_sample_average": minibatch.per_sample_average,
    "batched_mean": minibatch.batched_mean,
    "accumulated(m=3)": functools.partial(minibatch.accumulated, micro_batch=3),
    "naive_accumulated(m=3)": functools.partial(minibatch.naive_accumulated, micro_batch=3),
    "per_sample_gradients": minibatch.per_sample_gradients,
    **{f"error_first({v})": functools.partial(minibatch.error_first, variant=v)
       for v in minibatch.ERROR_FIRST_VARIANTS},
}
CASES = [(name, loss) for name in STRATEGIES for loss in ("mse", "cross_entropy")
         if not (name == "error_first(mean_residual)" and loss == "cross_entropy")]


def problem_for(loss: str, batch_size: int = 7):
    """A small tanh network with two hidden layers; 7 samples, so chunks of 3 leave a short one."""
    return make_problem([3, 5, 4, 2], "tanh", loss, batch_size, seed=1234)


def fill_grads(params: list[Tensor], value: float = 7.0) -> list[np.ndarray]:
    """Put recognisable stale arrays in .grad; return them."""
    stale = [np.full(p.shape, value) for p in params]
    for p, g in zip(params, stale):
        p.grad = g
    return stale


def assert_untouched(params: list[Tensor], values: list[np.ndarray], grads: list[np.ndarray]) -> None:
    """Parameters hold their old values and .grad the very arrays it held, unchanged."""
    for p, v, g in zip(params, values, grads):
        assert np.array_equal(p.data, v)
        assert p.grad is g and np.all(g == 7.0)


# ------------------------------------------------------------------------------ the shape of the answer
@pytest.mark.parametrize("name, loss", CASES)
def test_strategy_returns_one_gradient_per_parameter_in_order(name: str, loss: str) -> None:
    problem = problem_for(loss)
    params = problem.model.parameters()
    grads = STRATEGIES[name](problem.model, problem.loss_fn, problem.X, problem.y)
    assert isinstance(grads, list) and len(grads) == len(params)
    B = problem.batch_size
    for g, p in zip(grads, params):
        expected = (B, *p.shape) if name == "per_sample_gradients" else p.shape
        assert isinstance(g, np.ndarray) and g.shape == expected and g.dtype == np.float64
        assert np.all(np.isfinite(g))


@pytest.mark.parametrize("name, loss", CASES)
def test_strategy_leaves_parameter_values_unchanged(name: str, loss: str) -> None:
    problem = problem_for(loss)
    params = problem.model.parameters()
    before = [p.data.copy() for p in params]
    STRATEGIES[name](problem.model, problem.loss_fn, problem.X, problem.y)
    for p, b in zip(params, before):
        assert np.array_equal(p.data, b)


@pytest.mark.parametrize("name, loss", CASES)
def test_strategy_leaves_grad_equal_to_the_returned_gradient(name: str, loss: str) -> None:
    problem = problem_for(loss)
    params = problem.model.parameters()
    grads = STRATEGIES[name](problem.model, problem.loss_fn, problem.X, problem.y)
    for p, g in zip(params, grads):
        assert p.grad is not None and p.grad.shape == p.shape
        if name == "per_sample_gradients":  # the batched gradient: the rows' mean, up to rounding
            np.testing.assert_allclose(p.grad, g.mean(axis=0), rtol=0, atol=ROUNDING_TOL)
        else:
            assert np.array_equal(p.grad, g)
            assert p.grad is not g  # a copy: updating .grad in place cannot change the answer


@pytest.mark.parametrize("name, loss", CASES)
def test_strategy_starts_from_clean_grad_whatever_grad_held(name: str, loss: str) -> None:
    problem = problem_for(loss)
    params = problem.model.parameters()
    clean = STRATEGIES[name](problem.model, problem.loss_fn, problem.X, problem.y)
    fill_grads(params)  # what a previous backward or a forgotten zero_grad() leaves behind
    stale = STRATEGIES[name](problem.model, problem.loss_fn, problem.X, problem.y)
    for a, b in zip(clean, stale):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name, loss", CASES)
def test_strategy_reports_the_true_mean_loss_of_the_batch(name: str, loss: str) -> None:
    problem = problem_for(loss)
    expected = problem.loss_fn(problem.model(Tensor(problem.X)), problem.y).item()
    grads = STRATEGIES[name](problem.model, problem.loss_fn, problem.X, problem.y)
    assert grads.loss == pytest.approx(expected, rel=1e-13, abs=1e-13)


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_accepts_tensors_and_nested_lists_as_data(name: str) -> None:
    problem = problem_for("mse")
    as_arrays = STRATEGIES[name](problem.model, problem.loss_fn, problem.X, problem.y)
    as_tensors = STRATEGIES[name](problem.model, problem.loss_fn, Tensor(problem.X), Tensor(problem.y))
    as_lists = STRATEGIES[name](problem.model, problem.loss_fn, problem.X.tolist(), problem.y.tolist())
    for a, b, c in zip(as_arrays, as_tensors, as_lists):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_per_sample_gradients_of_a_bare_linear_layer() -> None:
    rng = np.random.default_rng(5)
    layer = nn.Linear(3, 2, rng=rng)
    X, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    stacked = minibatch.per_sample_gradients(layer, nn.mse_loss, X, y)
    assert layer.bias is not None
    error = 2.0 / 2 * (X @ layer.weight.data + layer.bias.data - y)  # ∂ℓ_i/∂ŷ_i for mean over 2 outputs
    np.testing.assert_allclose(stacked[0], np.einsum("bi,bo->bio", X, error), rtol=0, atol=ROUNDING_TOL)
    np.testing.assert_allclose(stacked[1], error, rtol=0, atol=ROUNDING_TOL)


def test_per_sample_gradients_add_up_a_layer_used_twice() -> None:
    rng = np.random.default_rng(6)
    shared = nn.Linear(2, 2, rng=rng)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    X, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    stacked = minibatch.per_sample_gradients(model, nn.mse_loss, X, y)
    assert len(stacked) == 2  # the shared weight and bias are listed once
    for i in range(5):
        single = minibatch.batched_mean(model, nn.mse_loss, X[i:i + 1], y[i:i + 1])
        for s, g in zip(stacked, single):
            np.testing.assert_allclose(s[i], g, rtol=0, atol=ROUNDING_TOL)


# ------------------------------------------------------------------------------ bad input, refused early
@pytest.mark.parametrize("name", STRATEGIES)
def test_mismatched_lengths_of_X_and_y_are_refused_before_anything_changes(name: str) -> None:
    problem = problem_for("mse")
    params = problem.model.parameters()
    values, grads = [p.data.copy() for p in params], fill_grads(params)
    with pytest.raises(ValueError, match=r"X holds 7 samples \(shape \(7, 3\)\) but y holds 6"):
        STRATEGIES[name](problem.model, problem.loss_fn, problem.X, problem.y[:6])
    assert_untouched(params, values, grads)


@pytest.mark.parametrize("name", STRATEGIES)
def test_an_empty_batch_is_refused_before_anything_changes(name: str) -> None:
    problem = problem_for("mse")
    params = problem.model.parameters()
    values, grads = [p.data.copy() for p in params], fill_grads(params)
    with pytest.raises(ValueError, match="the batch is empty"):
        STRATEGIES[name](problem.model, problem.loss_fn, problem.X[:0], problem.y[:0])
    assert_untouched(params, values, grads)


@pytest.mark.parametrize("strategy", [minibatch.accumulated, minibatch.naive_accumulated])
@pytest.mark.parametrize("micro_batch", [0, -3, 1.5, True, "4", None])
def test_micro_batch_must_be_a_whole_number_at_least_one(strategy: Callable[..., minibatch.Gradients],
                                                         micro_batch: Any) -> None:
    problem = problem_for("mse")
    params = problem.model.parameters()
    values, grads = [p.data.copy() for p in params], fill_grads(params)
    with pytest.raises(ValueError, match=r"micro_batch must be a whole number of samples >= 1, got " +
                       repr(micro_batch).replace(".", r"\.")):
        strategy(problem.model, problem.loss_fn, problem.X, problem.y, micro_batch)
    assert_untouched(params, values, grads)


def test_an_unknown_error_first_variant_is_refused_naming_the_choices() -> None:
    problem = problem_for("mse")
    params = problem.model.parameters()
    values, grads = [p.data.copy() for p in params], fill_grads(params)
    with pytest.raises(ValueError, match=r"unknown variant 'median'; choose one of \['mean_input'"):
        minibatch.error_first(problem.model, problem.loss_fn, problem.X, problem.y, variant="median")
    assert_untouched(params, values, grads)


def test_mean_residual_with_cross_entropy_is_refused() -> None:
    problem = problem_for("cross_entropy")
    params = problem.model.parameters()
    values, grads = [p.data.copy() for p in params], fill_grads(params)
    with pytest.raises(ValueError, match=r"'mean_residual' .* needs loss_fn=nn.mse_loss"):
        minibatch.error_first(problem.model, problem.loss_fn, problem.X, problem.y, variant="mean_residual")
    assert_untouched(params, values, grads)


class Residual(nn.Sequential):
    """A Sequential whose forward is not a plain chain: h + layers(h)."""

    def forward(self, x: Tensor) -> Tensor:
        return x + super().forward(x)


class ScaledLinear(nn.Linear):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * 2.0


class Normalise(nn.Module):
    """Subtracts the batch mean: samples interact, as in batch normalisation."""

    def forward(self, x: Tensor) -> Tensor:
        return x - x.mean(axis=0, keepdims=True)


@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Linear(3, 4, rng=0), Normalise(), nn.Linear(4, 2, rng=1)),
    Residual(nn.Linear(3, 3, rng=0), nn.Tanh(), nn.Linear(3, 3, rng=1)),
    nn.Sequential(ScaledLinear(3, 2, rng=0)),
], ids=["batch-mixing layer", "Sequential with its own forward", "Linear with its own forward"])
def test_per_sample_gradients_refuses_layers_it_cannot_vectorise(model: nn.Module) -> None:
    rng = np.random.default_rng(0)
    out = model(Tensor(np.zeros((1, 3)))).shape[1]
    X, y = rng.normal(size=(4, 3)), rng.normal(size=(4, out))
    params = model.parameters()
    values, grads = [p.data.copy() for p in params], fill_grads(params)
    with pytest.raises(TypeError, match=r"per_sample_gradients: cannot vectorise over layer .*Loop instead"):
        minibatch.per_sample_gradients(model, nn.mse_loss, X, y)
    assert_untouched(params, values, grads)


@pytest.mark.parametrize("loss_fn, error, fragment", [
    (lambda pred, target: nn.mse_loss(pred, target), TypeError, r"loss_fn must be one of this library's losses"),
    (functools.partial(nn.mse_loss, reduction="sum"), ValueError, r"reduces the samples' losses with 'sum'"),
], ids=["a wrapper function", "sum reduction"])
def test_per_sample_gradients_refuses_losses_it_cannot_split_per_sample(loss_fn: Any, error: type,
                                                                        fragment: str) -> None:
    problem = problem_for("mse")
    params = problem.model.parameters()
    values, grads = [p.data.copy() for p in params], fill_grads(params)
    with pytest.raises(error, match=fragment):
        minibatch.per_sample_gradients(problem.model, loss_fn, problem.X, problem.y)
    assert_untouched(params, values, grads)


def test_per_sample_gradients_accepts_a_partial_of_a_known_mean_loss() -> None:
    problem = problem_for("mse")
    direct = minibatch.per_sample_gradients(problem.model, nn.mse_loss, problem.X, problem.y)
    via_partial = minibatch.per_sample_gradients(problem.model, functools.partial(nn.mse_loss, reduction="mean"),
                                                 problem.X, problem.y)
    for a, b in zip(direct, via_partial):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", [name for name, loss in CASES if loss == "cross_entropy"])
def test_a_failure_midway_puts_the_old_grad_back(name: str) -> None:
    """The last label is out of range: the error comes after earlier samples were backpropagated."""
    problem = problem_for("cross_entropy")
    params = problem.model.parameters()
    values, grads = [p.data.copy() for p in params], fill_grads(params)
    bad_labels = problem.y.copy()
    bad_labels[-1] = 9
    with pytest.raises(ValueError, match="label 9 is out of range for 2 classes"):
        STRATEGIES[name](problem.model, problem.loss_fn, problem.X, bad_labels)
    assert_untouched(params, values, grads)


# ------------------------------------------------------------------------------ memory
def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak memory allocated while ``fn`` runs, beyond what was allocated before (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name, grows", [
    ("per_sample_average", False), ("accumulated(m=8)", False), ("batched_mean", True),
])
def test_only_the_batched_mean_needs_memory_that_grows_with_the_batch(name: str, grows: bool) -> None:
    """Going from 16 to 512 samples: one sample's (or one chunk's) activations at a time stay flat.

    Hidden layers of 256 units: at 512 samples one activation matrix alone is 1 MiB, while the
    parameters, their .grad and the returned gradients take 0.5 MiB each.
    """
    memory_strategies: dict[str, Strategy] = {
        "per_sample_average": minibatch.per_sample_average, "batched_mean": minibatch.batched_mean,
        "accumulated(m=8)": functools.partial(minibatch.accumulated, micro_batch=8)}
    strategy = memory_strategies[name]
    model = nn.MLP([16, 256, 256, 4], rng=0)
    peaks = []
    for batch in (16, 512):
        rng = np.random.default_rng(batch)
        X, y = rng.normal(size=(batch, 16)), rng.integers(0, 4, batch)
        peaks.append(peak_bytes(lambda: strategy(model, nn.cross_entropy, X, y)))  # noqa: B023
        model.zero_grad()
    if grows:
        assert peaks[1] > 3 * peaks[0], peaks
    else:
        assert peaks[1] < 1.1 * peaks[0], peaks
