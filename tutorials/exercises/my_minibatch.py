"""Exercises 6-8: the question itself. What exactly gets averaged over a mini-batch?

Three strategies to write, each in the contract of ``tinygrad_mb.minibatch`` (read that module
first): it returns one numpy array per parameter, aligned with ``list(model.parameters())``,
leaves the parameter values unchanged, and leaves each parameter's ``.grad`` equal to the array
it returns (so clear ``.grad`` before the first backward pass: gradients accumulate).

6. ``accumulated``: gradient accumulation over micro-batches, equal to one batched pass for
   any micro-batch sizes, a short last one included.
7. ``sum_estimate``: the mini-batch estimate of the gradient of a SUM over a whole data set
   (a log-likelihood, an evidence lower bound), as SGLD and variational autoencoders use it.
8. ``token_weighted_accumulated``: accumulation when the loss is an average over *tokens*,
   and sequences hold different numbers of them. Normalising each micro-batch by its own token
   count is the gradient-accumulation bug that affected major training libraries in 2024.

The library has its own ``minibatch.accumulated`` and ``minibatch.sum_estimate``; the checkers
refuse an answer that calls them. Stuck? Hints come in three tiers (the idea, the formula, the
code), one at a time, from the repository root:

    python tutorials/exercises/hints.py ex_weighted_accumulation 1

Check a task with its marker:

    pytest tutorials/exercises -m ex_weighted_accumulation
    pytest tutorials/exercises -m ex_sum_estimate
    pytest tutorials/exercises -m ex_token_weighted_accumulation
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_mb import Tensor, minibatch, nn  # noqa: F401  (you will need some of these)

LossFn = Callable[[Tensor, Any], Tensor]


# ------------------------------------------------------------ exercise 6: weighted accumulation
def accumulated(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, micro_batch: int) -> list[np.ndarray]:
    """∇ of the batch's mean loss (1/B) Σ_i ℓ_i, accumulated over micro-batches of at most m samples.

    Split the B samples, in order, into micro-batches of ``micro_batch`` samples (the last one
    may be shorter). Forward and backpropagate one micro-batch at a time, never the whole batch,
    so that only one micro-batch's activations are held at once; ``.grad`` adds up what each
    backward pass contributes. The result must equal ``minibatch.batched_mean`` for every batch
    size and every micro-batch size.

    Args:
        model: any ``nn.Module``.
        loss_fn: ``nn.mse_loss`` or ``nn.cross_entropy``: the MEAN loss of the samples it is given.
        X, y: the batch, one sample per row.
        micro_batch: m >= 1, the most samples forwarded at once.

    Returns:
        One gradient per parameter, in ``model.parameters()`` order; each ``.grad`` equals it.

    Raises:
        ValueError: if micro_batch is not a whole number >= 1 (the message names this
            function and micro_batch).
    """
    raise NotImplementedError(
        "accumulated: exercise 6, not written yet. Hints, one at a time: "
        "python tutorials/exercises/hints.py ex_weighted_accumulation 1 (then 2, then 3)"
    )


# ------------------------------------------------------------ exercise 7: the (N/M) sum estimate
def sum_estimate(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, dataset_size: int) -> list[np.ndarray]:
    """An unbiased estimate of ∇ Σ_{j=1}^N ℓ_j, the gradient of a SUM over a data set of N samples.

    The batch (X, y) holds M samples drawn uniformly at random from the N. Averaged over every
    batch of M that could have been drawn, your estimate must equal the gradient of the sum of
    all N losses exactly (for M = N, the batch is the data set and there is nothing to estimate).

    Args:
        model: any ``nn.Module``.
        loss_fn: ``nn.mse_loss`` or ``nn.cross_entropy``: the MEAN loss of the samples it is given.
        X, y: the batch of M samples, one per row.
        dataset_size: N, the number of samples the batch was drawn from.

    Returns:
        One gradient per parameter, in ``model.parameters()`` order; each ``.grad`` equals it.

    Raises:
        ValueError: if dataset_size is smaller than the batch (the message names this function
            and dataset_size).
    """
    raise NotImplementedError(
        "sum_estimate: exercise 7, not written yet. Hints, one at a time: "
        "python tutorials/exercises/hints.py ex_sum_estimate 1 (then 2, then 3)"
    )


# ------------------------------------------------------------ exercise 8: token-weighted loss
# A batch of S sequences, padded to T positions: X has shape (S, T, F), one feature vector per
# token; labels (S, T) hold each token's class id (a next-token id, say); mask (S, T) holds 1.0
# for a real token and 0.0 for padding (the labels there are arbitrary). The model maps
# (n, T, F) to logits (n, T, V), token by token (an nn.MLP does). The two functions below are
# given, not exercises: they define the problem.


def token_losses(model: nn.Module, X: np.ndarray, labels: np.ndarray) -> Tensor:
    """Each token's cross-entropy loss ℓ_st, shape (n, T), for n sequences (padding included)."""
    logits = model(Tensor(X))
    n, T, V = logits.shape
    per_token = nn.cross_entropy(logits.reshape(n * T, V), np.asarray(labels).reshape(n * T), reduction="none")
    return per_token.reshape(n, T)


def token_mean_loss(model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> Tensor:
    """The batch loss L = Σ_st mask_st · ℓ_st / Σ_st mask_st: the mean over the batch's REAL tokens.

    This is the definition, in one batched pass: every real token of the batch weighs the same,
    however its sequence is padded and whichever micro-batch it lands in.
    """
    mask = np.asarray(mask, dtype=float)
    return (token_losses(model, X, labels) * mask).sum() / mask.sum()


def token_weighted_accumulated(model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                               micro_batch: int) -> list[np.ndarray]:
    """∇ of ``token_mean_loss``, accumulated over micro-batches of at most ``micro_batch`` sequences.

    Split the S sequences, in order, into micro-batches of ``micro_batch`` sequences (the last
    one may be shorter) and forward and backpropagate one micro-batch at a time, never the whole
    batch. The micro-batches hold different numbers of real tokens (some may hold none); the
    result must still equal the gradient of ``token_mean_loss`` over the whole batch, computed
    in one pass.

    Args:
        model: maps (n, T, F) inputs to (n, T, V) logits.
        X: (S, T, F) token features. labels: (S, T) class ids. mask: (S, T), 1.0 for a real token.
        micro_batch: the most sequences forwarded at once (>= 1).

    Returns:
        One gradient per parameter, in ``model.parameters()`` order; each ``.grad`` equals it.
    """
    raise NotImplementedError(
        "token_weighted_accumulated: exercise 8, not written yet. Hints, one at a time: "
        "python tutorials/exercises/hints.py ex_token_weighted_accumulation 1 (then 2, then 3)"
    )
