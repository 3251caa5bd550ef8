"""Wrong answers to exercise 4 (see __init__.py): each function is one mistake, named after it."""

from __future__ import annotations

from typing import Any

import numpy as np
from solutions.my_strategy import LossFn

from tinygrad_mb import minibatch, nn


def _store(model: nn.Module, grads: list[np.ndarray]) -> list[np.ndarray]:
    for p, g in zip(model.parameters(), grads):
        p.grad = g.astype(p.dtype, copy=True)
    return [p.grad.copy() for p in model.parameters()]


def _check(max_norm: float) -> None:
    if not max_norm > 0:
        raise ValueError(f"clipped_per_sample_average: max_norm must be positive, got {max_norm!r}")


def clips_the_average(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, max_norm: float) -> list[np.ndarray]:
    """The batch gradient, clipped once: no sample's influence is bounded."""
    _check(max_norm)
    mean = minibatch.batched_mean(model, loss_fn, X, y)
    norm = np.sqrt(sum(np.sum(g**2) for g in mean))
    scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
    return _store(model, [g * scale for g in mean])


def clips_each_parameter_separately(model: nn.Module, loss_fn: LossFn, X: Any, y: Any,
                                    max_norm: float) -> list[np.ndarray]:
    """Each sample's gradient clipped parameter by parameter, each to norm max_norm."""
    _check(max_norm)
    per_sample = minibatch.per_sample_gradients(model, loss_fn, X, y)
    B = len(X)
    out = []
    for g in per_sample:
        norms = np.sqrt(np.sum(g.reshape(B, -1) ** 2, axis=1))
        scale = np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(float).tiny))
        out.append(np.tensordot(scale, g, axes=1) / B)
    return _store(model, out)


def divides_by_a_zero_norm(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, max_norm: float) -> list[np.ndarray]:
    """min(1, c / norm) as written: a sample with gradient 0 divides by 0."""
    _check(max_norm)
    per_sample = minibatch.per_sample_gradients(model, loss_fn, X, y)
    B = len(X)
    norms = np.sqrt(sum(np.sum(g.reshape(B, -1) ** 2, axis=1) for g in per_sample))
    scale = np.minimum(1.0, max_norm / norms)
    return _store(model, [np.tensordot(scale, g, axes=1) / B for g in per_sample])


def accepts_any_max_norm(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, max_norm: float) -> list[np.ndarray]:
    """The right clipping, with no check that max_norm is positive."""
    per_sample = minibatch.per_sample_gradients(model, loss_fn, X, y)
    B = len(X)
    norms = np.sqrt(sum(np.sum(g.reshape(B, -1) ** 2, axis=1) for g in per_sample))
    scale = np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(float).tiny))
    return _store(model, [np.tensordot(scale, g, axes=1) / B for g in per_sample])


def calls_the_library_clipped_mean(model: nn.Module, loss_fn: LossFn, X: Any, y: Any,
                                   max_norm: float) -> list[np.ndarray]:
    """The library's answer, copied instead of written."""
    _check(max_norm)
    return list(minibatch.clipped_mean(model, loss_fn, X, y, max_norm))
