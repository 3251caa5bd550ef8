"""Checkers for exercise 4 (my_strategy.py). Run: pytest tutorials/exercises -m ex_clipped_average"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from checker_tools import assert_gradients_close, check_strategy_contract, expect_error, refusing_calls

from tinygrad_mb import Tensor, minibatch, nn

pytestmark = pytest.mark.ex_clipped_average


@pytest.fixture(autouse=True)
def library_answer_hidden(my_strategy: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """minibatch.clipped_mean computes this exercise's answer: while yours runs, calling it is refused."""
    message = ("you called tinygrad_mb.minibatch.clipped_mean, the library's own answer: clip each sample's "
               "gradient yourself (hints: python tutorials/exercises/hints.py ex_clipped_average 1)")
    monkeypatch.setattr(my_strategy, "clipped_per_sample_average",
                        refusing_calls(my_strategy.clipped_per_sample_average, {minibatch.clipped_mean: message}))


def batch(loss_fn=nn.mse_loss, size: int = 7, seed: int = 0) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """A small tanh network and a batch of ``size`` samples for ``loss_fn``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(size, 4))
    y = rng.normal(size=(size, 3)) if loss_fn is nn.mse_loss else rng.integers(0, 3, size=size)
    return nn.MLP([4, 6, 3], activation="tanh", rng=seed), X, y


def one_sample_gradients(model: nn.Module, loss_fn, X: np.ndarray, y: np.ndarray) -> list[list[np.ndarray]]:
    """∇ℓ_i for each sample i, each by its own backward pass."""
    return [minibatch.batched_mean(model, loss_fn, X[i:i + 1], y[i:i + 1]) for i in range(len(X))]


def norm(grads: list[np.ndarray]) -> float:
    """The norm over all parameters together."""
    return float(np.sqrt(sum(np.sum(g ** 2) for g in grads)))


def unless_almost(got: list, expected: list[np.ndarray], advice: str) -> Callable[[], str]:
    """``advice``, or, when ``got`` is off by less than 0.01 %, what makes an answer almost right."""
    def text() -> str:
        off = norm([np.asarray(g) - e for g, e in zip(got, expected)]) / max(norm(expected), 1e-300)
        if off < 1e-4:
            return (f"yours is off by only {off:.1e} of the gradient's size: an epsilon in the scale (max_norm / "
                    f"(norm + 1e-6)) does that. Scale by exactly min(1, max_norm / norm) and keep a zero gradient "
                    f"as it is (divide by np.maximum(norm, np.finfo(float).tiny)).")
        return advice
    return text


@pytest.mark.parametrize("loss_fn", [nn.mse_loss, nn.cross_entropy])
def test_clipped_average_with_a_huge_max_norm_is_the_batched_mean(my_strategy: ModuleType, loss_fn) -> None:
    model, X, y = batch(loss_fn)
    got = my_strategy.clipped_per_sample_average(model, loss_fn, X, y, max_norm=1e12)
    expected = minibatch.batched_mean(model, loss_fn, X, y)
    assert_gradients_close(got, expected, (
        "with a max_norm no gradient reaches, nothing is clipped and the result must be the batched mean "
        "(1/B) Σ_i ∇ℓ_i: check that you average over the B samples (axis 0 of the per-sample gradients) and "
        "that the scale min(1, max_norm/norm) is 1 here"))


def test_clipped_average_of_one_sample_is_its_gradient_scaled_down_to_max_norm(my_strategy: ModuleType) -> None:
    model, X, y = batch(size=1)
    g = minibatch.batched_mean(model, nn.mse_loss, X, y)
    c = norm(g) / 4
    got = my_strategy.clipped_per_sample_average(model, nn.mse_loss, X, y, max_norm=c)
    assert_gradients_close(got, [gi / 4 for gi in g], (
        "a single sample whose gradient has 4 times the norm max_norm must come back scaled by 1/4, to norm "
        "max_norm exactly: scale by min(1, max_norm / norm), with the norm over all parameters together"))


@pytest.mark.parametrize("loss_fn", [nn.mse_loss, nn.cross_entropy])
def test_clipped_average_clips_each_sample_before_averaging(my_strategy: ModuleType, loss_fn) -> None:
    model, X, y = batch(loss_fn, seed=3)
    singles = one_sample_gradients(model, loss_fn, X, y)
    norms = np.array([norm(g) for g in singles])
    c = float(np.median(norms))  # clips about half of the samples
    got = my_strategy.clipped_per_sample_average(model, loss_fn, X, y, max_norm=c)
    expected = [np.mean([s[k] * min(1.0, c / n) for s, n in zip(singles, norms)], axis=0)
                for k in range(len(singles[0]))]
    assert_gradients_close(got, expected, unless_almost(got, expected, (
        "about half of these samples have gradients longer than max_norm. Clip each sample's gradient on its "
        "own, with its norm taken over all parameters together (the square root of the sum of squares of "
        "every entry of every parameter's gradient, not one norm per parameter), then average the B clipped "
        "gradients")))


def test_clipped_average_keeps_a_zero_gradient_without_dividing_by_zero(my_strategy: ModuleType) -> None:
    """A sample the model fits exactly has gradient 0 and norm 0: it contributes 0 and still counts in B."""
    model, X, y = batch(size=5, seed=5)
    fitted = 2
    y[fitted] = model(Tensor(X)).data[fitted]  # that sample's error, and so its gradient, is exactly 0
    per_sample = minibatch.per_sample_gradients(model, nn.mse_loss, X, y)
    assert all(np.all(g[fitted] == 0.0) for g in per_sample), "set-up: the fitted sample's gradient is 0"
    singles = one_sample_gradients(model, nn.mse_loss, X, y)
    norms = np.array([norm(g) for g in singles])
    c = float(np.median(norms[norms > 0]))  # clips some of the other samples
    zero_advice = ("sample 2's gradient is 0, a norm of 0: min(1, max_norm / 0) divides by zero. Keep a zero "
                   "gradient as it is (scale 1), e.g. divide by np.maximum(norm, np.finfo(float).tiny). (np.where "
                   "does not help: it computes both branches, max_norm / 0 included, before choosing.)")
    try:
        with np.errstate(divide="raise", invalid="raise"):  # a division by zero is an error here
            got = my_strategy.clipped_per_sample_average(model, nn.mse_loss, X, y, max_norm=c)
    except FloatingPointError as error:
        raise AssertionError(f"{error}: {zero_advice}") from None
    assert all(np.all(np.isfinite(g)) for g in got), f"your gradient holds nan or inf: {zero_advice}"
    # Σ over the other samples of their clipped gradients, divided by all B = 5 samples.
    expected = [sum(s[k] * min(1.0, c / n) for i, (s, n) in enumerate(zip(singles, norms)) if i != fitted) / 5
                for k in range(len(singles[0]))]
    assert_gradients_close(got, expected, unless_almost(got, expected, (
        "the fitted sample contributes a zero gradient but still counts as one of the B = 5 samples: divide "
        "the sum of the clipped gradients by B, not by the number of nonzero ones")))


@pytest.mark.parametrize("max_norm", [1e-3, 0.1, 1.0])
def test_clipped_average_has_norm_at_most_max_norm(my_strategy: ModuleType, max_norm: float) -> None:
    model, X, y = batch(size=9, seed=1)
    got = my_strategy.clipped_per_sample_average(model, nn.mse_loss, X, y, max_norm=max_norm)
    assert norm(got) <= max_norm * (1 + 1e-9), (  # an average of vectors no longer than c
        f"the result has norm {norm(got):.4g} > max_norm = {max_norm}, impossible for an average of vectors "
        f"no longer than max_norm: scale each sample's gradient by min(1, max_norm / its norm), the norm over "
        f"all parameters together, before averaging"
    )


def test_clipping_each_sample_differs_from_clipping_the_average(my_strategy: ModuleType) -> None:
    model, X, y = batch(seed=2)
    mean = minibatch.batched_mean(model, nn.mse_loss, X, y)
    c = norm(mean) / 2
    clipped_average = [g * c / norm(mean) for g in mean]
    got = my_strategy.clipped_per_sample_average(model, nn.mse_loss, X, y, max_norm=c)
    assert not all(np.allclose(g, e) for g, e in zip(got, clipped_average)), (
        "the result equals the clipped batch gradient, which bounds no single sample's influence: clip each "
        "sample's gradient, then average (minibatch.per_sample_gradients gives them all)"
    )


def test_clipped_average_follows_the_strategy_contract(my_strategy: ModuleType) -> None:
    model, X, y = batch(seed=4)
    check_strategy_contract(lambda: my_strategy.clipped_per_sample_average(model, nn.mse_loss, X, y, max_norm=0.5),
                            model, "clipped_per_sample_average", {"X": X, "y": y})


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_clipped_average_rejects_a_max_norm_that_is_not_positive(my_strategy: ModuleType, bad: float) -> None:
    model, X, y = batch()
    with expect_error(ValueError, "clipped_per_sample_average.*max_norm",
                      f"max_norm = {bad} cannot bound a norm: check it first and raise ValueError(f'"
                      f"clipped_per_sample_average: max_norm must be positive, got {{max_norm!r}}')"):
        my_strategy.clipped_per_sample_average(model, nn.mse_loss, X, y, max_norm=bad)
