"""Reference solutions to exercises 6-8 (see ../my_minibatch.py for the tasks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_mb import Tensor, minibatch, nn

LossFn = Callable[[Tensor, Any], Tensor]


def _gradients(model: nn.Module) -> list[np.ndarray]:
    """Copies of every .grad (zeros for a parameter the loss never reached), .grad left equal to them."""
    grads = []
    for p in model.parameters():
        if p.grad is None:
            p.grad = np.zeros_like(p.data)
        grads.append(p.grad.copy())
    return grads


def accumulated(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, micro_batch: int) -> list[np.ndarray]:
    """∇ (1/B) Σ_i ℓ_i = Σ_c (|c|/B) ∇ mean_{i∈c} ℓ_i: each micro-batch's mean weighted by its share."""
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, (int, np.integer)) or micro_batch < 1:
        raise ValueError(f"accumulated: micro_batch must be a whole number of samples >= 1, got {micro_batch!r}")
    X, y = np.asarray(X), np.asarray(y)
    B = len(X)
    model.zero_grad()  # .grad accumulates: start from nothing
    for start in range(0, B, micro_batch):
        c = slice(start, start + micro_batch)
        size = len(X[c])  # the last micro-batch may be short
        # Not 1/K per micro-batch: a short last one holds fewer samples and must count less.
        (loss_fn(model(Tensor(X[c])), y[c]) * (size / B)).backward()
    return _gradients(model)


def sum_estimate(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, dataset_size: int) -> list[np.ndarray]:
    """(N/M) Σ_{i∈batch} ∇ℓ_i = N · (the batch-mean gradient): unbiased for ∇ Σ_{j=1}^N ℓ_j."""
    M = len(X)
    if isinstance(dataset_size, bool) or not isinstance(dataset_size, (int, np.integer)) or dataset_size < M:
        raise ValueError(
            f"sum_estimate: dataset_size must be a whole number N >= the batch size {M}, got {dataset_size!r}"
        )
    grads = minibatch.batched_mean(model, loss_fn, X, y)  # ∇ (1/M) Σ_{i∈batch} ℓ_i
    # Each sample lands in the batch with probability M/N; N/M on the batch SUM undoes that,
    # and (N/M) · Σ = N · mean.
    for p, g in zip(model.parameters(), grads):
        p.grad = g * dataset_size
    return _gradients(model)


def token_losses(model: nn.Module, X: np.ndarray, labels: np.ndarray) -> Tensor:
    """Each token's cross-entropy loss ℓ_st, shape (n, T), for n sequences (padding included)."""
    logits = model(Tensor(X))
    n, T, V = logits.shape
    per_token = nn.cross_entropy(logits.reshape(n * T, V), np.asarray(labels).reshape(n * T), reduction="none")
    return per_token.reshape(n, T)


def token_mean_loss(model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> Tensor:
    """The batch loss L = Σ_st mask_st · ℓ_st / Σ_st mask_st: the mean over the batch's REAL tokens."""
    mask = np.asarray(mask, dtype=float)
    return (token_losses(model, X, labels) * mask).sum() / mask.sum()


def token_weighted_accumulated(model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                               micro_batch: int) -> list[np.ndarray]:
    """∇ L = Σ_c ∇ (Σ_{st∈c} mask_st ℓ_st) / N, with N the real tokens of the WHOLE batch."""
    mask = np.asarray(mask, dtype=float)
    total_tokens = mask.sum()  # counted once, over every sequence, before any micro-batch
    model.zero_grad()
    for start in range(0, len(X), micro_batch):
        c = slice(start, start + micro_batch)
        # Divided by the whole batch's count, not this micro-batch's own: every real token
        # weighs 1/N wherever it lands, and a micro-batch of padding only adds nothing.
        ((token_losses(model, X[c], labels[c]) * mask[c]).sum() / total_tokens).backward()
    return _gradients(model)
