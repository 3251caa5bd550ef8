"""Exercise 4: a new mini-batch strategy, the clipped per-sample average.

Differentially private SGD (DP-SGD) must bound how much any single sample can move the model.
It does so by clipping **each sample's gradient** to a maximum norm c before averaging:

    g = (1/B) Σ_i clip(∇ℓ_i, c),      clip(v, c) = v · min(1, c / ‖v‖),

where ‖v‖ is the norm of sample i's gradient over *all* parameters together (the square root
of the sum of squares of every entry of every parameter's gradient). Clipping the averaged
gradient instead would not bound any one sample's influence, and gives a different result:
the clipping has to happen before the average, so it needs the per-sample gradients.

A sample that its model already fits exactly has a zero gradient, of norm 0: it must stay
zero (and still count as one of the B samples), without a division by zero on the way.

Write ``clipped_per_sample_average`` with the same contract as the strategies in
``tinygrad_mb.minibatch`` (read that module first). Check it from the repository root:

    pytest tutorials/exercises -m ex_clipped_average

Stuck? Hints in three tiers (the idea, the formula, the code), one at a time:

    python tutorials/exercises/hints.py ex_clipped_average 1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_mb import Tensor, minibatch, nn  # noqa: F401  (you will need some of these)

LossFn = Callable[[Tensor, Any], Tensor]


def clipped_per_sample_average(model: nn.Module, loss_fn: LossFn, X: Any, y: Any,
                               max_norm: float) -> list[np.ndarray]:
    """(1/B) Σ_i clip(∇ℓ_i, max_norm): each sample's gradient is clipped, then they are averaged.

    Args:
        model: an ``nn.MLP`` (or any model ``minibatch.per_sample_gradients`` accepts).
        loss_fn: ``nn.mse_loss`` or ``nn.cross_entropy`` (mean reduction).
        X, y: the batch, one sample per row.
        max_norm: c > 0, the largest norm a single sample's gradient may keep.

    Returns:
        One array per parameter, aligned with ``list(model.parameters())``. Like the other
        strategies, it leaves the parameter values unchanged and each parameter's ``.grad``
        equal to the returned array.

    Raises:
        ValueError: if max_norm is not positive (the message names this function and the value).
    """
    raise NotImplementedError(
        "clipped_per_sample_average: exercise 4, not written yet. Hints, one at a time: "
        "python tutorials/exercises/hints.py ex_clipped_average 1 (then 2, then 3)"
    )
