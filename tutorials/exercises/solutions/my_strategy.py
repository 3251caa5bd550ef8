"""Reference solution to exercise 4 (see ../my_strategy.py for the task)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_mb import Tensor, minibatch, nn

LossFn = Callable[[Tensor, Any], Tensor]


def clipped_per_sample_average(model: nn.Module, loss_fn: LossFn, X: Any, y: Any,
                               max_norm: float) -> list[np.ndarray]:
    """(1/B) Σ_i clip(∇ℓ_i, max_norm): each sample's gradient is clipped, then they are averaged."""
    if not max_norm > 0:
        raise ValueError(f"clipped_per_sample_average: max_norm must be positive, got {max_norm!r}")
    per_sample = minibatch.per_sample_gradients(model, loss_fn, X, y)  # each (B, *param.shape)
    B = len(per_sample[0])
    # Sample i's gradient norm over all parameters together.
    squares = sum(np.sum(g.reshape(B, -1) ** 2, axis=1) for g in per_sample)
    norms = np.sqrt(squares)
    # min(1, c/‖g_i‖); written so that a zero gradient (norm 0) is kept as it is.
    scale = np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(float).tiny))
    clipped = []
    for p, g in zip(model.parameters(), per_sample):
        p.grad = (np.tensordot(scale, g, axes=1) / B).astype(p.dtype, copy=False)  # Σ_i scale_i g_i / B
        clipped.append(p.grad.copy())
    return clipped
