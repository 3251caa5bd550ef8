"""Reference solution to exercise 5 (see ../my_property.py for the task)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_mb import Tensor, nn

Strategy = Callable[[nn.Module, Callable[[Tensor, Any], Tensor], np.ndarray, np.ndarray], list[np.ndarray]]


def batch_gradient(model: nn.Module, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """∇ (1/B) Σ_i ℓ_i, computed directly: one forward of the batch, the mean loss, one backward."""
    model.zero_grad()
    nn.mse_loss(model(Tensor(X)), y).backward()
    return [p.grad.copy() for p in model.parameters()]


def check_strategy_returns_batch_gradient(strategy: Strategy) -> None:
    """Raise AssertionError unless ``strategy`` returns the gradient of the batch's mean loss."""

    # Batch sizes from 1 to 12: some bugs (mean of chunk means) show only when the batch
    # does not split into equal chunks, others (a sum instead of a mean) only when B > 1.
    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(batch_size=st.integers(1, 12), seed=st.integers(0, 2**16))
    def returns_batch_gradient(batch_size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        model = nn.MLP([3, 5, 2], activation="tanh", rng=seed)  # a hidden layer, as in real use
        X = rng.normal(size=(batch_size, 3))
        y = rng.normal(size=(batch_size, 2))
        expected = batch_gradient(model, X, y)
        got = strategy(model, nn.mse_loss, X, y)
        assert len(got) == len(expected), f"{len(got)} gradients for {len(expected)} parameters"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert np.shape(g) == e.shape, f"parameter {i}: shape {np.shape(g)}, expected {e.shape}"
            assert np.allclose(g, e, rtol=1e-7, atol=1e-10), (
                f"parameter {i}, batch of {batch_size}: largest difference {np.max(np.abs(g - e)):.3g}"
            )

    returns_batch_gradient()
