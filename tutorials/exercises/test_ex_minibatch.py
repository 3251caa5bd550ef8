"""Checkers for exercises 6-8 (my_minibatch.py). Run one task, e.g.:

    pytest tutorials/exercises -m ex_weighted_accumulation

Each checker compares your gradient with one computed in a single batched pass. When they
differ, it recomputes the usual mistakes and, if yours is one of them, says which and what to
try instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import pytest
from checker_tools import (
    RecordingModel,
    assert_gradients_close,
    check_strategy_contract,
    diagnose,
    expect_error,
    gradients_close,
    micro_batch_sizes,
    near,
    ratio,
    refusing_calls,
)

from tinygrad_mb import Tensor, minibatch, nn
from tinygrad_mb.grad_mode import grads_put_back

# The library's own answers, kept here for the diagnoses before the fixture below hides them.
library_accumulated = minibatch.accumulated
library_naive_accumulated = minibatch.naive_accumulated
library_sum_estimate = minibatch.sum_estimate


@pytest.fixture(autouse=True)
def library_answers_hidden(my_minibatch: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Calling minibatch.accumulated or minibatch.sum_estimate would copy the answer, not write it:
    while your functions run, a call to one of them (by any name) is refused."""
    for answer, task in [("accumulated", "ex_weighted_accumulation"), ("sum_estimate", "ex_sum_estimate"),
                         ("token_weighted_accumulated", "ex_token_weighted_accumulation")]:
        forbidden = {library: (f"you called tinygrad_mb.minibatch.{library.__name__}, the library's own answer: write "
                               f"the loop yourself (hints: python tutorials/exercises/hints.py {task} 1)")
                     for library in (library_accumulated, library_naive_accumulated, library_sum_estimate)}
        monkeypatch.setattr(my_minibatch, answer, refusing_calls(getattr(my_minibatch, answer), forbidden))
    yield


def gradient_of(model: nn.Module, loss: Callable[[], Tensor]) -> list[np.ndarray]:
    """∇ of the scalar ``loss()``, in one backward pass; the parameters' .grad are left as they were."""
    params = model.parameters()
    with grads_put_back(params):
        loss().backward()
        return [np.zeros_like(p.data) if p.grad is None else p.grad.copy() for p in params]


def batch(loss_fn: Callable = nn.mse_loss, size: int = 7, seed: int = 0) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """A small tanh network and a batch of ``size`` samples for ``loss_fn``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(size, 3))
    y = rng.normal(size=(size, 2)) if loss_fn is nn.mse_loss else rng.integers(0, 2, size=size)
    return nn.MLP([3, 5, 2], activation="tanh", rng=seed), X, y


# ================================================================ exercise 6: weighted accumulation
def chunk_gradient(model: nn.Module, loss_fn: Callable, X: np.ndarray, y: np.ndarray, m: int,
                   weight: Callable[[int, int, int], float]) -> list[np.ndarray]:
    """Σ_c weight(|c|, B, K) · ∇ mean_{i∈c} ℓ_i over micro-batches of at most m: the right answer and the mistakes."""
    B, sizes = len(X), micro_batch_sizes(len(X), m)
    return gradient_of(model, lambda: sum(
        (loss_fn(model(Tensor(X[s:s + n])), y[s:s + n]) * weight(n, B, len(sizes))
         for s, n in zip(itertools.accumulate([0, *sizes]), sizes)), start=Tensor(0.0)))


def accumulation_advice(got: list, model: nn.Module, loss_fn: Callable, X: np.ndarray, y: np.ndarray,
                        m: int) -> Callable[[], str]:
    B, sizes = len(X), micro_batch_sizes(len(X), m)
    where = f"Here B = {B} samples in micro-batches of at most {m}: sizes {sizes}."

    def advice() -> str:
        return diagnose(got, [
            (lambda: chunk_gradient(model, loss_fn, X, y, m, lambda n, B, K: 1 / K),
             f"Your gradient is the mean of the micro-batches' mean losses, each weighted 1/K: the mistake of "
             f"the 2024 gradient-accumulation bug (there with tokens), wrong whenever the micro-batches differ "
             f"in size. {where} Weight micro-batch c's mean loss by |c|/B, its share of the samples."),
            (lambda: chunk_gradient(model, loss_fn, X, y, m, lambda n, B, K: 1.0),
             f"Your gradient adds up the micro-batches' mean losses without weights. {where} Weight "
             f"micro-batch c's mean loss by |c|/B, its share of the samples."),
            (lambda: chunk_gradient(model, loss_fn, X, y, m, lambda n, B, K: float(n)),
             f"Your gradient is that of the SUM of the samples' losses, B = {B} times too large: divide by B "
             f"(weight micro-batch c's mean loss by |c|/B, not by |c|)."),
        ], f"{where} Backpropagate loss_fn(model(X_c), y_c) * (|c|/B) for each micro-batch c, and let .grad "
           f"add them up (cleared once, before the first).")
    return advice


@pytest.mark.ex_weighted_accumulation
@pytest.mark.parametrize("loss_fn", [nn.mse_loss, nn.cross_entropy], ids=["mse", "cross_entropy"])
@pytest.mark.parametrize("size, m", [(7, 3), (10, 4), (6, 2), (5, 5), (9, 1), (2, 8)])
def test_accumulated_equals_the_batched_mean_for_any_micro_batch(my_minibatch: ModuleType, loss_fn: Callable,
                                                                  size: int, m: int) -> None:
    model, X, y = batch(loss_fn, size=size, seed=size + m)
    got = my_minibatch.accumulated(model, loss_fn, X, y, m)
    expected = gradient_of(model, lambda: loss_fn(model(Tensor(X)), y))
    assert_gradients_close(got, expected, accumulation_advice(got, model, loss_fn, X, y, m))


@pytest.mark.ex_weighted_accumulation
def test_accumulated_weights_a_short_last_micro_batch_by_its_size(my_minibatch: ModuleType) -> None:
    """7 samples in micro-batches of 3 are 3 + 3 + 1: the mean of the micro-batches' means over-weights the 1."""
    model, X, y = batch(size=7, seed=11)
    expected = gradient_of(model, lambda: nn.mse_loss(model(Tensor(X)), y))
    naive = library_naive_accumulated(model, nn.mse_loss, X, y, 3)
    assert not gradients_close(naive, expected), "set-up: the mean of micro-batch means differs here"
    got = my_minibatch.accumulated(model, nn.mse_loss, X, y, 3)
    assert not gradients_close(got, naive), (
        "your gradient equals the mean of the micro-batches' mean losses (3 + 3 + 1 samples, each micro-batch "
        "weighted 1/3): the lone last sample counts as much as three. Weight micro-batch c's mean loss by "
        "|c|/B instead (3/7, 3/7, 1/7)."
    )
    assert_gradients_close(got, expected, accumulation_advice(got, model, nn.mse_loss, X, y, 3))


@pytest.mark.ex_weighted_accumulation
@pytest.mark.parametrize("size, m", [(7, 3), (8, 4), (3, 5)])
def test_accumulated_forwards_micro_batches_of_at_most_micro_batch_samples(my_minibatch: ModuleType,
                                                                             size: int, m: int) -> None:
    inner, X, y = batch(size=size, seed=2)
    model = RecordingModel(inner)
    my_minibatch.accumulated(model, nn.mse_loss, X, y, m)
    expected = micro_batch_sizes(size, m)
    assert sorted(model.forward_sizes) == sorted(expected), (
        f"your forward passes saw {model.forward_sizes} samples; split the {size} samples into micro-batches "
        f"of at most micro_batch = {m} ({expected}) and forward each once, never the whole batch: holding one "
        f"micro-batch's activations at a time is what accumulation is for"
    )


@pytest.mark.ex_weighted_accumulation
def test_accumulated_follows_the_strategy_contract(my_minibatch: ModuleType) -> None:
    model, X, y = batch(size=7, seed=4)
    check_strategy_contract(lambda: my_minibatch.accumulated(model, nn.mse_loss, X, y, 3), model, "accumulated",
                            {"X": X, "y": y})


@pytest.mark.ex_weighted_accumulation
@pytest.mark.parametrize("bad", [0, -2])
def test_accumulated_rejects_a_micro_batch_below_one(my_minibatch: ModuleType, bad: int) -> None:
    model, X, y = batch()
    with expect_error(ValueError, r"accumulated.*micro_batch",
                      f"Check micro_batch = {bad} first: raise ValueError(f'accumulated: micro_batch must be a "
                      f"whole number >= 1, got {{micro_batch!r}}') (a step of 0 or less splits nothing)"):
        my_minibatch.accumulated(model, nn.mse_loss, X, y, bad)


# ================================================================ exercise 7: the (N/M) sum estimate
def sum_advice(r: float | None, N: int, M: int) -> str:
    """What a wrong factor in front of the batch-mean gradient says about the estimate."""
    if near(r, 1.0):
        return (f"You returned the batch-MEAN gradient, ∇(1/M) Σ_batch ℓ_i; the objective is the SUM of all "
                f"N = {N} losses: multiply by N = dataset_size")
    if near(r, M):
        return (f"You returned the gradient of the batch's SUM, which holds only M = {M} of the N = {N} terms: "
                f"scale it by N/M (equivalently, N times the batch-mean gradient)")
    if near(r, N / M):
        return (f"You scaled the batch MEAN by N/M; the estimator scales the batch SUM by N/M, which is N "
                f"times the batch mean: multiply the batch-mean gradient by N = {N}")
    if r is not None:
        return (f"Your estimate is {r:.4g} times the batch-mean gradient; it must be N = dataset_size = {N} "
                f"times it")
    return ("Your estimate is not a multiple of the batch-mean gradient: compute the batch-mean gradient (one "
            "forward of the batch, loss_fn as given, one backward) and multiply every parameter's gradient by N")


@pytest.mark.ex_sum_estimate
@pytest.mark.parametrize("loss_fn", [nn.mse_loss, nn.cross_entropy], ids=["mse", "cross_entropy"])
def test_sum_estimate_is_n_times_the_batch_mean_gradient(my_minibatch: ModuleType, loss_fn: Callable) -> None:
    N, M = 50, 7
    model, X, y = batch(loss_fn, size=M, seed=3)
    got = my_minibatch.sum_estimate(model, loss_fn, X, y, N)
    mean = gradient_of(model, lambda: loss_fn(model(Tensor(X)), y))
    assert_gradients_close(got, [N * g for g in mean], lambda: sum_advice(ratio(got, mean), N, M))


@pytest.mark.ex_sum_estimate
@pytest.mark.parametrize("M", [1, 2, 6])
def test_sum_estimate_averaged_over_every_batch_is_the_gradient_of_the_sum(my_minibatch: ModuleType, M: int) -> None:
    """Unbiased: the mean of the estimate over all C(N, M) batches is ∇ Σ_j ℓ_j exactly (M = N: no estimate)."""
    N = 6
    model, data_X, data_y = batch(size=N, seed=5)
    full_sum = gradient_of(model, lambda: nn.mse_loss(model(Tensor(data_X)), data_y, reduction="sum"))
    batches = list(itertools.combinations(range(N), M))
    estimates = [my_minibatch.sum_estimate(model, nn.mse_loss, data_X[list(b)], data_y[list(b)], N) for b in batches]
    average = [np.mean([np.asarray(e[k]) for e in estimates], axis=0) for k in range(len(full_sum))]

    def advice() -> str:
        r = ratio(average, full_sum)
        what = (f"Averaged over all {len(batches)} batches of {M} from N = {N}, your estimate is "
                + (f"{r:.4g} times" if r is not None else "not a multiple of") + " the gradient of the sum Σ_j ℓ_j. ")
        if near(r, M / N):
            return what + "That is the batch SUM's gradient, which sees M of the N terms: scale it by N/M."
        if near(r, 1 / N):
            return what + ("That is the gradient of the data set's MEAN, E_j[∇ℓ_j]; the sum's gradient is N "
                           "times it: multiply the batch-mean gradient by N.")
        return what + "Return N times the batch-mean gradient: (N/M) Σ_batch ∇ℓ_i."
    assert_gradients_close(average, full_sum, advice, rtol=1e-8, atol=1e-10)


@pytest.mark.ex_sum_estimate
def test_sum_estimate_follows_the_strategy_contract(my_minibatch: ModuleType) -> None:
    model, X, y = batch(size=5, seed=6)
    check_strategy_contract(lambda: my_minibatch.sum_estimate(model, nn.mse_loss, X, y, 40), model, "sum_estimate",
                            {"X": X, "y": y})


@pytest.mark.ex_sum_estimate
def test_sum_estimate_rejects_a_data_set_smaller_than_the_batch(my_minibatch: ModuleType) -> None:
    model, X, y = batch(size=5)
    with expect_error(ValueError, r"sum_estimate.*dataset_size",
                      "A batch of 5 cannot be drawn from a data set of 3: check dataset_size first and raise "
                      "ValueError(f'sum_estimate: dataset_size must be >= the batch size ..., got {dataset_size!r}')"):
        my_minibatch.sum_estimate(model, nn.mse_loss, X, y, 3)


# ================================================================ exercise 8: token-weighted accumulation
def sequences(lengths: list[int], T: int = 5, seed: int = 0) -> tuple[nn.Module, np.ndarray, np.ndarray, np.ndarray]:
    """A token-wise model and S padded sequences of the given lengths: X (S, T, 3), labels (S, T), mask (S, T)."""
    rng = np.random.default_rng(seed)
    S = len(lengths)
    X = rng.normal(size=(S, T, 3))
    labels = rng.integers(0, 4, size=(S, T))  # padded positions get labels too: only the mask hides them
    mask = (np.arange(T)[None, :] < np.array(lengths)[:, None]).astype(float)
    return nn.MLP([3, 6, 4], activation="tanh", rng=seed), X, labels, mask


def token_loss_sums(model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> Tensor:
    """Σ_st mask_st · ℓ_st, each token's cross-entropy ℓ_st (the checkers' own copy of the definition)."""
    logits = model(Tensor(X))
    n, T, V = logits.shape
    per_token = nn.cross_entropy(logits.reshape(n * T, V), labels.reshape(n * T), reduction="none").reshape(n, T)
    return (per_token * mask).sum()


def token_gradient(model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """∇ L, L = Σ_st mask_st ℓ_st / Σ_st mask_st, in ONE batched pass: the definition."""
    return gradient_of(model, lambda: token_loss_sums(model, X, labels, mask) / mask.sum())


def per_micro_batch(model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray, m: int,
                    weight: Callable[[np.ndarray, int], float], use_mask: bool = True) -> list[np.ndarray]:
    """Σ_c weight(mask_c, K) · Σ_{st∈c} (mask_st) ℓ_st: the right answer and the mistakes, by their weights."""
    starts = range(0, len(X), m)
    return gradient_of(model, lambda: sum(
        (token_loss_sums(model, X[s:s + m], labels[s:s + m], mask[s:s + m] if use_mask else np.ones_like(mask[s:s + m]))
         * weight(mask[s:s + m], len(starts)) for s in starts), start=Tensor(0.0)))


@np.errstate(divide="ignore", invalid="ignore")  # a micro-batch of padding only gives 0/0 here
def own_count_bug(model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray, m: int) -> list[np.ndarray]:
    """The 2024 bug: each micro-batch normalised by its OWN token count, the K micro-batches averaged."""
    return per_micro_batch(model, X, labels, mask, m, lambda mc, K: 1 / (K * mc.sum()))


def token_advice(got: list, model: nn.Module, X: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                 m: int) -> Callable[[], str]:
    counts = [int(mask[s:s + m].sum()) for s in range(0, len(X), m)]
    S, T, N = len(X), mask.shape[1], int(mask.sum())
    where = (f"Here {S} sequences in micro-batches of at most {m} hold {counts} real tokens, N = {N} in all.")

    @np.errstate(divide="ignore", invalid="ignore")  # some mistakes divide an empty micro-batch by 0
    def advice() -> str:
        return diagnose(got, [
            (lambda: own_count_bug(model, X, labels, mask, m),
             f"Your gradient divides each micro-batch's token loss by its OWN token count and averages the "
             f"micro-batches: the gradient-accumulation bug of 2024. A token in a micro-batch with few tokens "
             f"then weighs more than one in a long micro-batch. {where} Divide every micro-batch's summed masked "
             f"token losses by N, the real tokens of the whole batch (mask.sum() over all sequences, counted "
             f"before the loop), and do not divide by the number of micro-batches."),
            (lambda: per_micro_batch(model, X, labels, mask, m, lambda mc, K: len(mc) / (S * mc.sum())),
             f"Your gradient weights each micro-batch's token mean by its share of the SEQUENCES, |c|/S: the fix "
             f"for per-sample losses, but here the loss averages tokens. {where} A micro-batch's weight must be "
             f"its share of real tokens, n_c/N, so backpropagate (Σ_c mask·ℓ) / N for each micro-batch c."),
            (lambda: per_micro_batch(model, X, labels, mask, m, lambda mc, K: 1 / (S * T)),
             f"Your gradient divides by every position, padding included (S × T = {S * T}): divide by the number "
             f"of real tokens, N = mask.sum() = {N}."),
            (lambda: per_micro_batch(model, X, labels, mask, m, lambda mc, K: 1 / N, use_mask=False),
             f"Your gradient includes the padded positions' losses: multiply the per-token losses by the mask "
             f"before summing them. {where}"),
        ], f"{where} For each micro-batch c, backpropagate (token_losses(model, X_c, labels_c) * mask_c).sum() / N, "
           f"with N the real tokens of the WHOLE batch, and let .grad add them up (cleared once, before the first).")
    return advice


TOKEN_CASES = {
    "token counts differ": ([5, 5, 1, 1, 4, 2], 2),  # micro-batches of 10, 2 and 6 tokens
    "short last micro-batch": ([2, 5, 3, 4, 1], 2),  # 7, 7 and 1 tokens
    "one sequence each": ([4, 1, 3, 5], 1),
    "one micro-batch": ([4, 1, 3, 5], 4),
}


@pytest.mark.ex_token_weighted_accumulation
@pytest.mark.parametrize("case", TOKEN_CASES)
def test_token_weighted_accumulation_equals_one_batched_pass(my_minibatch: ModuleType, case: str) -> None:
    lengths, m = TOKEN_CASES[case]
    model, X, labels, mask = sequences(lengths, seed=len(case))
    got = my_minibatch.token_weighted_accumulated(model, X, labels, mask, m)
    expected = token_gradient(model, X, labels, mask)
    assert_gradients_close(got, expected, token_advice(got, model, X, labels, mask, m))


@pytest.mark.ex_token_weighted_accumulation
def test_normalising_each_micro_batch_by_its_own_token_count_is_wrong_when_counts_differ(
        my_minibatch: ModuleType) -> None:
    """The 2024 bug, shown: micro-batches of 10, 2 and 6 tokens each normalised by their own count."""
    model, X, labels, mask = sequences([5, 5, 1, 1, 4, 2], seed=7)
    expected = token_gradient(model, X, labels, mask)
    bug = own_count_bug(model, X, labels, mask, 2)
    assert not gradients_close(bug, expected), "set-up: with unequal token counts the bug changes the gradient"
    got = my_minibatch.token_weighted_accumulated(model, X, labels, mask, 2)
    assert not gradients_close(got, bug), (
        "your gradient equals the per-micro-batch-normalised one (each micro-batch's loss divided by its own 10, "
        "2 or 6 tokens, then averaged): the 2 tokens of the middle micro-batch count as much as 10. Divide every "
        "micro-batch's summed masked loss by the 18 real tokens of the whole batch instead."
    )
    assert_gradients_close(got, expected, token_advice(got, model, X, labels, mask, 2))


@pytest.mark.ex_token_weighted_accumulation
def test_with_equal_token_counts_the_bug_would_hide(my_minibatch: ModuleType) -> None:
    """Micro-batches of 5 tokens each: the own-count version agrees, which is how the bug went unnoticed."""
    model, X, labels, mask = sequences([3, 2, 4, 1, 5, 0], seed=8)
    expected = token_gradient(model, X, labels, mask)
    assert gradients_close(own_count_bug(model, X, labels, mask, 2), expected), "set-up: equal counts agree"
    got = my_minibatch.token_weighted_accumulated(model, X, labels, mask, 2)
    assert_gradients_close(got, expected, token_advice(got, model, X, labels, mask, 2))


@pytest.mark.ex_token_weighted_accumulation
def test_a_micro_batch_of_padding_only_adds_nothing(my_minibatch: ModuleType) -> None:
    """Two empty sequences make a micro-batch with no real token: it contributes 0, without 0/0."""
    model, X, labels, mask = sequences([3, 4, 0, 0, 5, 2], seed=9)
    try:
        with np.errstate(divide="raise", invalid="raise"):  # a division by zero is an error here
            got = my_minibatch.token_weighted_accumulated(model, X, labels, mask, 2)
    except FloatingPointError as error:
        raise AssertionError(
            f"dividing by zero ({error}): the second micro-batch holds no real token. Dividing a micro-batch by "
            f"its own token count fails here (0/0); divide by the real tokens of the whole batch, N = 14"
        ) from None
    assert all(np.all(np.isfinite(g)) for g in got), (
        "a micro-batch with no real token turned your gradient into nan or inf: divide every micro-batch by the "
        "whole batch's token count, never by its own"
    )
    assert_gradients_close(got, token_gradient(model, X, labels, mask), token_advice(got, model, X, labels, mask, 2))


@pytest.mark.ex_token_weighted_accumulation
def test_token_weighted_accumulation_forwards_micro_batches_of_at_most_micro_batch_sequences(
        my_minibatch: ModuleType) -> None:
    inner, X, labels, mask = sequences([5, 5, 1, 1, 4], seed=10)
    model = RecordingModel(inner)
    my_minibatch.token_weighted_accumulated(model, X, labels, mask, 2)
    assert sorted(model.forward_sizes) == [1, 2, 2], (
        f"your forward passes saw {model.forward_sizes} sequences; forward the 5 sequences in micro-batches of at "
        f"most micro_batch = 2 ([2, 2, 1]), each once, never the whole batch (count the real tokens with "
        f"mask.sum(), which needs no forward pass)"
    )


@pytest.mark.ex_token_weighted_accumulation
def test_token_weighted_accumulation_follows_the_strategy_contract(my_minibatch: ModuleType) -> None:
    model, X, labels, mask = sequences([5, 5, 1, 1, 4, 2], seed=11)
    check_strategy_contract(lambda: my_minibatch.token_weighted_accumulated(model, X, labels, mask, 2), model,
                            "token_weighted_accumulated", {"X": X, "labels": labels, "mask": mask})
