"""Checkers for exercise 5 (my_property.py). Run: pytest tutorials/exercises -m ex_property

A property test is only as good as the bugs it catches. These checkers hand your property
correct strategies, which it must accept, and broken ones, which it must reject.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
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


def one_percent_too_large(model, loss_fn, X, y):
    """A factor slightly off (a loss scaled by mistake): caught only by a tolerance for rounding."""
    return [g * 1.01 for g in minibatch.batched_mean(model, loss_fn, X, y)]


def zeros(model, loss_fn, X, y):
    """No gradient at all: caught only by a comparison that is relative to the gradient's size."""
    return [np.zeros_like(p.data) for p in model.parameters()]


TOLERANCE = ("compare with a tolerance for rounding only, np.allclose(got, expected) with its defaults (or "
             "rtol=1e-6): a looser tolerance lets a wrong factor through")

# name -> (the wrong strategy, why it is wrong and which batches expose it: what your property must draw)
WRONG = {
    "one percent too large": (one_percent_too_large, f"its gradients are 1.01 times the right ones: {TOLERANCE}"),
    "all zeros": (zeros, f"it returns zeros, which a relative tolerance of 1 or more accepts: {TOLERANCE}"),
    "gradient of the summed loss": (
        summed,
        "it is B times the mean's gradient, so it agrees when B = 1: draw batches of more than one sample"),
    "last sample only": (
        last_sample_only,
        "it agrees when B = 1: draw batches of more than one sample, with different targets"),
    "error first (mean input)": (
        lambda model, loss_fn, X, y: minibatch.error_first(model, loss_fn, X, y, variant="mean_input"),
        "it agrees when B = 1 or when every sample has the same input: draw batches of several samples with "
        "different inputs (random rows of X)"),
    # Right whenever the batch splits into equal chunks: catching these needs batch sizes
    # that do not (and, for chunks of 5, batches larger than 5).
    "mean of chunk means, chunks of 2": (
        lambda model, loss_fn, X, y: minibatch.naive_accumulated(model, loss_fn, X, y, 2),
        "it agrees whenever the batch size is even, and for batches of 1 or 2: draw odd batch sizes too, such as "
        "3, 5 or 7"),
    "mean of chunk means, chunks of 3": (
        lambda model, loss_fn, X, y: minibatch.naive_accumulated(model, loss_fn, X, y, 3),
        "it agrees whenever 3 divides the batch size, and for batches of 3 or fewer (one chunk): draw batch "
        "sizes that 3 does not divide, such as 4, 5 or 7"),
    "mean of chunk means, chunks of 5": (
        lambda model, loss_fn, X, y: minibatch.naive_accumulated(model, loss_fn, X, y, 5),
        "it agrees whenever the batch splits into equal chunks of 5, and for every batch of 5 or fewer (one "
        "chunk): your property needs a batch size above 5 that 5 does not divide, such as 6, 7 or 11; let "
        "hypothesis draw batch sizes up to 12 or so"),
}


@pytest.mark.parametrize("name", CORRECT)
def test_property_accepts_a_correct_strategy(my_property: ModuleType, name: str) -> None:
    try:
        my_property.check_strategy_returns_batch_gradient(CORRECT[name])
    except NotImplementedError:
        raise
    except Exception as error:  # an AssertionError, or hypothesis's report of one or several
        raise AssertionError(
            f"your property rejected a correct strategy, {name}: {type(error).__name__}: {error}\n"
            f"Compare against the gradient of the batch's MEAN loss on the same model and the same batch, "
            f"parameter by parameter, with a tolerance for rounding (np.allclose(got, expected)), not ==; and "
            f"draw batches of at least one sample (the mean over an empty batch is nan)."
        ) from None


@pytest.mark.parametrize("name", WRONG)
def test_property_rejects_a_wrong_strategy(my_property: ModuleType, name: str) -> None:
    strategy, why = WRONG[name]
    try:
        my_property.check_strategy_returns_batch_gradient(strategy)
    except NotImplementedError:
        raise
    except Exception:  # an AssertionError, or hypothesis's report of one or several
        return
    pytest.fail(
        f"your property accepted a wrong strategy, {name}: {why}. (If your property already draws such "
        f"batches, check that it compares the values, np.allclose on every parameter, not only the shapes.)"
    )


def test_property_tries_many_batches_of_different_sizes(my_property: ModuleType) -> None:
    sizes: list[int] = []

    def recording(model, loss_fn, X, y):
        sizes.append(len(X))
        return minibatch.batched_mean(model, loss_fn, X, y)

    my_property.check_strategy_returns_batch_gradient(recording)
    assert len(sizes) >= 10, (
        f"the property tried only {len(sizes)} batch(es): let hypothesis draw them, with @given(...) on an inner "
        f"function and @settings(max_examples=40) or so, and call that function"
    )
    assert len(set(sizes)) >= 3, (
        f"the property tried only batch sizes {sorted(set(sizes))}: let hypothesis draw the batch size too, "
        f"e.g. st.integers(1, 12)"
    )
