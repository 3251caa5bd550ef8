"""Wrong answers to exercises 6-8 (see __init__.py): each function is one mistake, named after it."""

from __future__ import annotations

from typing import Any

import numpy as np
from solutions.my_minibatch import LossFn, _gradients, token_losses

from tinygrad_mb import Tensor, minibatch, nn
from tinygrad_mb.minibatch import accumulated as library_accumulated  # taken before any checker runs


def _chunks(n: int, m: int) -> list[slice]:
    return [slice(start, start + m) for start in range(0, n, m)]


# ---------------------------------------------------------------- exercise 6: accumulated
def _weighted(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, micro_batch: int, weight) -> list[np.ndarray]:
    if micro_batch < 1:
        raise ValueError(f"accumulated: micro_batch must be >= 1, got {micro_batch!r}")
    X, y = np.asarray(X), np.asarray(y)
    chunks = _chunks(len(X), micro_batch)
    model.zero_grad()
    for c in chunks:
        (loss_fn(model(Tensor(X[c])), y[c]) * weight(len(X[c]), len(X), len(chunks))).backward()
    return _gradients(model)


def mean_of_chunk_means(model, loss_fn, X, y, micro_batch):
    """Each micro-batch's mean loss divided by the number of micro-batches K: the 2024 bug."""
    return _weighted(model, loss_fn, X, y, micro_batch, lambda n, B, K: 1 / K)


def unweighted_sum_of_chunk_means(model, loss_fn, X, y, micro_batch):
    """The micro-batches' mean losses simply backpropagated one after the other."""
    return _weighted(model, loss_fn, X, y, micro_batch, lambda n, B, K: 1.0)


def sum_of_sample_losses(model, loss_fn, X, y, micro_batch):
    """Each micro-batch's summed loss (mean × |c|), never divided by B."""
    return _weighted(model, loss_fn, X, y, micro_batch, lambda n, B, K: float(n))


def one_batched_pass(model, loss_fn, X, y, micro_batch):
    """The right number, without accumulating: the whole batch forwarded at once."""
    if micro_batch < 1:
        raise ValueError(f"accumulated: micro_batch must be >= 1, got {micro_batch!r}")
    model.zero_grad()
    loss_fn(model(Tensor(np.asarray(X))), y).backward()
    return _gradients(model)


def keeps_stale_gradients(model, loss_fn, X, y, micro_batch):
    """The right weights, but .grad is never cleared: whatever was there before is added in."""
    if micro_batch < 1:
        raise ValueError(f"accumulated: micro_batch must be >= 1, got {micro_batch!r}")
    X, y = np.asarray(X), np.asarray(y)
    for c in _chunks(len(X), micro_batch):
        (loss_fn(model(Tensor(X[c])), y[c]) * (len(X[c]) / len(X))).backward()
    return _gradients(model)


def calls_the_library(model, loss_fn, X, y, micro_batch):
    """The library's answer, copied instead of written."""
    return minibatch.accumulated(model, loss_fn, X, y, micro_batch)


def imports_the_library_answer_by_name(model, loss_fn, X, y, micro_batch):
    """The library's answer through a name imported at the top of the file."""
    return library_accumulated(model, loss_fn, X, y, micro_batch)


def shuffles_the_callers_batch_in_place(model, loss_fn, X, y, micro_batch):
    """The right weights, after shuffling the caller's own X and y in place (X[...] = X[perm])."""
    perm = np.random.default_rng(0).permutation(len(X))
    X[...], y[...] = X[perm], y[perm]  # the mean over the batch does not care; the caller does
    return _weighted(model, loss_fn, X, y, micro_batch, lambda n, B, K: n / B)


def accepts_a_micro_batch_of_zero(model, loss_fn, X, y, micro_batch):
    """The right loop with no check of micro_batch: 0 fails inside range(), -2 splits nothing."""
    X, y = np.asarray(X), np.asarray(y)
    model.zero_grad()
    for start in range(0, len(X), micro_batch):
        c = slice(start, start + micro_batch)
        (loss_fn(model(Tensor(X[c])), y[c]) * (len(X[c]) / len(X))).backward()
    return _gradients(model)


# ---------------------------------------------------------------- exercise 7: sum_estimate
def _scaled_batch_mean(model, loss_fn, X, y, dataset_size, factor) -> list[np.ndarray]:
    if dataset_size < len(X):
        raise ValueError(f"sum_estimate: dataset_size must be >= the batch size, got {dataset_size!r}")
    for p, g in zip(model.parameters(), minibatch.batched_mean(model, loss_fn, X, y)):
        p.grad = g * factor(dataset_size, len(X))
    return _gradients(model)


def batch_mean_without_n(model, loss_fn, X, y, dataset_size):
    """The batch-mean gradient, as if the objective were a mean."""
    return _scaled_batch_mean(model, loss_fn, X, y, dataset_size, lambda N, M: 1.0)


def batch_sum_without_n_over_m(model, loss_fn, X, y, dataset_size):
    """The gradient of the batch's sum: M of the N terms, never scaled up."""
    return _scaled_batch_mean(model, loss_fn, X, y, dataset_size, lambda N, M: float(M))


def n_over_m_times_the_batch_mean(model, loss_fn, X, y, dataset_size):
    """N/M applied to the batch MEAN instead of the batch sum."""
    return _scaled_batch_mean(model, loss_fn, X, y, dataset_size, lambda N, M: N / M)


def accepts_a_too_small_dataset_size(model, loss_fn, X, y, dataset_size):
    """The right estimate, with no check that the batch could have come from the data set."""
    for p, g in zip(model.parameters(), minibatch.batched_mean(model, loss_fn, X, y)):
        p.grad = g * dataset_size
    return _gradients(model)


# ---------------------------------------------------------------- exercise 8: token-weighted
def _token_weighted(model, X, labels, mask, micro_batch, weight, use_mask: bool = True) -> list[np.ndarray]:
    mask = np.asarray(mask, dtype=float)
    chunks = _chunks(len(X), micro_batch)
    model.zero_grad()
    for c in chunks:
        m = mask[c] if use_mask else np.ones_like(mask[c])
        ((token_losses(model, X[c], labels[c]) * m).sum() * weight(mask[c], mask, len(chunks))).backward()
    return _gradients(model)


def own_token_count_per_micro_batch(model, X, labels, mask, micro_batch):
    """Each micro-batch's token mean (its own count), averaged over the micro-batches: the 2024 bug."""
    return _token_weighted(model, X, labels, mask, micro_batch, lambda mc, mask, K: 1 / (K * mc.sum()))


def sequence_weighted_token_means(model, X, labels, mask, micro_batch):
    """Each micro-batch's token mean weighted by its share of the sequences, |c|/S (exercise 6's fix)."""
    return _token_weighted(model, X, labels, mask, micro_batch,
                           lambda mc, mask, K: len(mc) / (len(mask) * mc.sum()))


def padding_counted_in_the_total(model, X, labels, mask, micro_batch):
    """Masked token losses divided by every position of the batch, padding included (S × T)."""
    return _token_weighted(model, X, labels, mask, micro_batch, lambda mc, mask, K: 1 / mask.size)


def mask_forgotten(model, X, labels, mask, micro_batch):
    """Every position's loss, padding included, divided by the real token count."""
    return _token_weighted(model, X, labels, mask, micro_batch, lambda mc, mask, K: 1 / mask.sum(),
                           use_mask=False)


def whole_batch_at_once(model, X, labels, mask, micro_batch):
    """The right loss in one batched pass: no accumulation."""
    mask = np.asarray(mask, dtype=float)
    model.zero_grad()
    ((token_losses(model, X, labels) * mask).sum() / mask.sum()).backward()
    return _gradients(model)


def normalises_the_callers_mask_in_place(model, X, labels, mask, micro_batch):
    """The right weights, from the caller's own mask divided by its sum in place."""
    w = np.asarray(mask, dtype=float)  # no copy when the mask is already float
    w /= w.sum()
    model.zero_grad()
    for c in _chunks(len(X), micro_batch):
        (token_losses(model, X[c], labels[c]) * w[c]).sum().backward()
    return _gradients(model)
