"""Checkers for exercise 5 (my_property.py). Run: pytest tutorials/exercises -m ex_property

A property test is only as good as the bugs it catches. These checkers hand your property
correct strategies, which it must accept, and broken ones, which it must reject.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from tinygrad_mb import minibatch

pytestmark = pytest.mark.ex_property


def mean_of_per_sample_gradients(model, loss_fn, X, y):
    return [g.mean(axis=0) for g in minibatch.per_sample_gradients(model, loss_fn, X, y)]


CORRECT = {
    "per_sample_average": minibatch.per_sample_average,
    "batched_mean": minibatch.batched_mean,
    "accumulated in chunks of 3": lambda model, loss_fn, X, y: minibatch.accumulated(model, loss_fn, X, y, 3),
    "mean of per_sample_gradients": mean_of_per_sample_gradients,
}


def summed(model, loss_fn, X, y):
    """The gradient of the summed loss: B times too large, right only when B = 1."""
    return [g * len(X) for g in minibatch.batched_mean(model, loss_fn, X, y)]


def last_sample_only(model, loss_fn, X, y):
    """One sample's gradient instead of the batch's: right only when B = 1."""
    return minibatch.batched_mean(model, loss_fn, X[-1:], y[-1:])


WRONG = {
    "gradient of the summed loss": summed,
    "last sample only": last_sample_only,
    "error first (mean input)": lambda model, loss_fn, X, y: minibatch.error_first(
        model, loss_fn, X, y, variant="mean_input"),
    # Right whenever the batch splits into equal chunks: catching these needs batch sizes
    # that do not (and, for chunks of 5, batches larger than 5).
    "mean of chunk means, chunks of 3": lambda model, loss_fn, X, y: minibatch.naive_accumulated(
        model, loss_fn, X, y, 3),
    "mean of chunk means, chunks of 5": lambda model, loss_fn, X, y: minibatch.naive_accumulated(
        model, loss_fn, X, y, 5),
}


@pytest.mark.parametrize("name", CORRECT)
def test_property_accepts_a_correct_strategy(my_property: ModuleType, name: str) -> None:
    my_property.check_strategy_returns_batch_gradient(CORRECT[name])


@pytest.mark.parametrize("name", WRONG)
def test_property_rejects_a_wrong_strategy(my_property: ModuleType, name: str) -> None:
    try:
        my_property.check_strategy_returns_batch_gradient(WRONG[name])
    except NotImplementedError:
        raise
    except Exception:  # an AssertionError, or hypothesis's report of one or several
        return
    pytest.fail(f"your property accepted a wrong strategy: {name} ({WRONG[name].__doc__ or ''})")


def test_property_tries_many_batches_of_different_sizes(my_property: ModuleType) -> None:
    sizes: list[int] = []

    def recording(model, loss_fn, X, y):
        sizes.append(len(X))
        return minibatch.batched_mean(model, loss_fn, X, y)

    my_property.check_strategy_returns_batch_gradient(recording)
    assert len(sizes) >= 10, f"the property tried only {len(sizes)} batch(es); let hypothesis try many"
    assert len(set(sizes)) >= 3, f"the property tried only batch sizes {sorted(set(sizes))}; vary them"
