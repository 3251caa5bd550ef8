"""Exercise 5: write a property test of your own, and prove that it catches bugs.

A property test states a fact that must hold for *every* input, and lets a library
(hypothesis) search for an input that breaks it. The fact here is the heart of this project:

    a correct mini-batch strategy returns ∇_θ (1/B) Σ_i ℓ_i(θ), the gradient of the batch's
    mean loss, for every batch.

Write ``check_strategy_returns_batch_gradient(strategy)``. It must return quietly when
``strategy`` is right and raise AssertionError when it is wrong. The checker tests hand it
correct strategies (``per_sample_average``, ``accumulated``, ...) and deliberately broken
ones, and pass only if your property tells them apart. Some of the broken ones are wrong
only for *some* batches, so think about which batches you generate. Check it from the
repository root:

    pytest tutorials/exercises -m ex_property

Stuck? Hints in three tiers (the idea, the formula, the code), one at a time:

    python tutorials/exercises/hints.py ex_property 1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np  # noqa: F401  (you will need some of these)
from hypothesis import given, settings  # noqa: F401
from hypothesis import strategies as st  # noqa: F401

from tinygrad_mb import Tensor, minibatch, nn  # noqa: F401

# strategy(model, loss_fn, X, y) -> one gradient array per parameter, like minibatch.batched_mean
Strategy = Callable[[nn.Module, Callable[[Tensor, Any], Tensor], np.ndarray, np.ndarray], list[np.ndarray]]


def check_strategy_returns_batch_gradient(strategy: Strategy) -> None:
    """Raise AssertionError unless ``strategy`` returns the gradient of the batch's mean loss.

    Generate many batches with hypothesis and, for each, compare what ``strategy`` returns
    with the gradient of the mean loss computed directly (one forward of the whole batch,
    ``.mean()``-reduced loss, one ``backward``; or ``minibatch.batched_mean``).
    """
    raise NotImplementedError(
        "check_strategy_returns_batch_gradient: exercise 5, not written yet. Hints, one at a time: "
        "python tutorials/exercises/hints.py ex_property 1 (then 2, then 3)"
    )
