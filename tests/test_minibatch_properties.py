"""The mathematics of mini-batch gradients, proved on random networks and batches.

The facts are those stated in the module docstring of ``tinygrad_mb/minibatch.py`` (linearity,
the strategies that agree, unbiasedness, sum versus mean) and in ``minibatch.error_first``'s
docstring (the error-first variants, when they happen to be exact, the mean_residual identity);
the README and tutorials 2 and 3 explain them.

Random MLPs (0-3 hidden layers of width 1-8; tanh, relu or sigmoid), random batches of 1-16
samples, squared error and cross-entropy, all in float64 (see ``model_strategies``).

Tolerances. "Equal" means equal up to float64 rounding: the largest entry of the difference is
at most ROUNDING_TOL = 1e-11 times the size of the per-sample gradients (the derivation is next
to the constant). "Differs" means the difference exceeds GENERIC_GAP = 1e-6 of that size, six
orders of magnitude above rounding. A difference can only vanish on a degenerate draw; every
such case is named and excluded with ``assume`` (dead ReLU layers, errors that are all zero,
a short chunk whose mean gradient happens to equal the others') and never by loosening a
tolerance.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from model_strategies import (
    GENERIC_GAP,
    Problem,
    assert_same_gradient,
    last_hidden_activations,
    make_problem,
    max_abs,
    max_abs_diff,
    max_pairwise_distance,
    min_pairwise_distance,
    output_errors,
    output_gradients,
    per_sample_reference,
    problems,
    relu_dead_everywhere,
)

from tinygrad_mb import Tensor, minibatch, nn, optim
from tinygrad_mb.train import Trainer

# Each example takes milliseconds, so these tests run four times the profile's number of examples
# (tests/conftest.py: dev and ci 25, thorough 500); the profile's other settings apply unchanged.
SETTINGS = settings(max_examples=4 * settings().max_examples)
EXACT_WHEN_ALIKE = ("mean_input", "last_sample", "mean_residual")


def variants_for(problem: Problem) -> list[str]:
    """The error-first variants that apply to this loss (mean_residual needs squared error)."""
    return [v for v in minibatch.ERROR_FIRST_VARIANTS if v != "mean_residual" or problem.loss_name == "mse"]


def true_gradient(problem: Problem) -> minibatch.Gradients:
    return minibatch.batched_mean(problem.model, problem.loss_fn, problem.X, problem.y)


def size_of(per_sample: list[np.ndarray]) -> float:
    """The scale rounding is measured against: the largest entry of any per-sample gradient."""
    return max_abs(per_sample)


# ------------------------------------------------------------------------------ the correct strategies
@SETTINGS
@given(problems())
def test_per_sample_average_equals_batched_mean(problem: Problem) -> None:
    scale = size_of(per_sample_reference(problem))
    averaged = minibatch.per_sample_average(problem.model, problem.loss_fn, problem.X, problem.y)
    batched = true_gradient(problem)
    assert_same_gradient(averaged, batched, scale, "per_sample_average vs batched_mean")
    assert averaged.loss == pytest.approx(batched.loss, rel=1e-12, abs=1e-12)


@SETTINGS
@given(problems())
def test_accumulated_equals_batched_mean_for_every_micro_batch_size(problem: Problem) -> None:
    scale = size_of(per_sample_reference(problem))
    batched = true_gradient(problem)
    for m in range(1, problem.batch_size + 2):  # includes m = B (one chunk) and m > B
        accumulated = minibatch.accumulated(problem.model, problem.loss_fn, problem.X, problem.y, m)
        assert_same_gradient(accumulated, batched, scale, f"accumulated(m={m}) vs batched_mean")
        assert accumulated.loss == pytest.approx(batched.loss, rel=1e-12, abs=1e-12)


@SETTINGS
@given(problems())
def test_per_sample_gradients_average_to_batched_mean(problem: Problem) -> None:
    scale = size_of(per_sample_reference(problem))
    stacked = minibatch.per_sample_gradients(problem.model, problem.loss_fn, problem.X, problem.y)
    assert_same_gradient([s.mean(axis=0) for s in stacked], true_gradient(problem), scale,
                         "mean of per_sample_gradients vs batched_mean")


@SETTINGS
@given(problems())
def test_each_row_of_per_sample_gradients_is_that_sample_alone(problem: Problem) -> None:
    reference = per_sample_reference(problem)  # sample i forwarded and backpropagated alone
    stacked = minibatch.per_sample_gradients(problem.model, problem.loss_fn, problem.X, problem.y)
    for s, p in zip(stacked, problem.model.parameters()):
        assert s.shape == (problem.batch_size, *p.shape)
    assert_same_gradient(stacked, reference, size_of(reference), "per_sample_gradients rows vs single samples")


@SETTINGS
@given(problems(min_batch=2), st.data())
def test_naive_accumulated_equals_batched_mean_when_all_chunks_are_equal(problem: Problem, data: st.DataObject) -> None:
    B = problem.batch_size
    m = data.draw(st.sampled_from([m for m in range(1, B + 1) if B % m == 0]), label="micro_batch (divides B)")
    naive = minibatch.naive_accumulated(problem.model, problem.loss_fn, problem.X, problem.y, m)
    assert_same_gradient(naive, true_gradient(problem), size_of(per_sample_reference(problem)),
                         f"naive_accumulated(m={m}) with equal chunks vs batched_mean")


@SETTINGS
@given(problems(min_batch=3), st.data())
def test_naive_accumulated_differs_when_the_last_chunk_is_short(problem: Problem, data: st.DataObject) -> None:
    """With K chunks, the last one of r < m samples: naive - true = (K-1)(m-r)/(KB) (mean_last - mean_rest).

    The coefficient is positive, so the naive gradient is wrong exactly when the short chunk's
    mean gradient differs from the other samples' mean gradient (the generic case; a draw where
    they coincide is excluded, not hoped away).
    """
    B = problem.batch_size
    m = data.draw(st.sampled_from([m for m in range(2, B) if B % m != 0]), label="micro_batch (does not divide B)")
    K, r = -(-B // m), B % m
    per_sample = per_sample_reference(problem)
    scale = size_of(per_sample)
    mean_last = [g[B - r:].mean(axis=0) for g in per_sample]
    mean_rest = [g[:B - r].mean(axis=0) for g in per_sample]
    coefficient = (K - 1) * (m - r) / (K * B)
    predicted_error = [coefficient * (a - b) for a, b in zip(mean_last, mean_rest)]
    assume(max_abs(predicted_error) > 2 * GENERIC_GAP * max(1.0, scale))  # not a coincidence of means

    naive = minibatch.naive_accumulated(problem.model, problem.loss_fn, problem.X, problem.y, m)
    true = true_gradient(problem)
    assert_same_gradient([n - t for n, t in zip(naive, true)], predicted_error, scale,
                         "naive - true vs (K-1)(m-r)/(KB) (mean_last - mean_rest)")
    assert max_abs_diff(naive, true) > GENERIC_GAP * max(1.0, scale)
    correct = minibatch.accumulated(problem.model, problem.loss_fn, problem.X, problem.y, m)
    assert_same_gradient(correct, true, scale, "accumulated with the same short chunk")


@SETTINGS
@given(problems())
def test_sum_reduction_gives_batch_size_times_the_mean_gradient(problem: Problem) -> None:
    B = problem.batch_size

    def summed(pred: Tensor, target: np.ndarray) -> Tensor:
        return problem.loss_fn(pred, target, reduction="sum")

    mean_grad = true_gradient(problem)
    sum_grad = minibatch.batched_mean(problem.model, summed, problem.X, problem.y)
    scale = B * size_of(per_sample_reference(problem))
    assert_same_gradient(sum_grad, [B * g for g in mean_grad], scale, "sum-reduced vs B x mean-reduced")
    assert sum_grad.loss == pytest.approx(B * mean_grad.loss, rel=1e-12, abs=1e-12)


@SETTINGS
@given(problems(min_batch=2, max_batch=6), st.data())
def test_batch_gradient_averaged_over_all_batches_is_the_full_data_gradient(problem: Problem,
                                                                          data: st.DataObject) -> None:
    """Unbiasedness: E over the C(N, M) equally likely batches of the batch gradient = full gradient."""
    N = problem.batch_size  # here the whole (small) data set
    M = data.draw(st.integers(1, N), label="batch size M")  # M = 1 is classic SGD
    batches = list(itertools.combinations(range(N), M))
    total = [np.zeros_like(p.data) for p in problem.model.parameters()]
    for idx in batches:
        rows = list(idx)
        g = minibatch.batched_mean(problem.model, problem.loss_fn, problem.X[rows], problem.y[rows])
        total = [t + gi for t, gi in zip(total, g)]
    average = [t / len(batches) for t in total]
    assert_same_gradient(average, true_gradient(problem), size_of(per_sample_reference(problem)),
                         f"average over all C({N}, {M}) batches vs full-data gradient")


# ------------------------------------------------------------------------------ error first: when it is exact
@SETTINGS
@given(problems(max_batch=1))
def test_error_first_is_exact_for_a_batch_of_one(problem: Problem) -> None:
    true = true_gradient(problem)
    scale = size_of(per_sample_reference(problem))
    for variant in EXACT_WHEN_ALIKE:
        if variant in variants_for(problem):
            g = minibatch.error_first(problem.model, problem.loss_fn, problem.X, problem.y, variant=variant)
            assert_same_gradient(g, true, scale, f"error_first({variant}) with B = 1")


@SETTINGS
@given(problems(min_batch=2))
def test_error_first_is_exact_when_every_input_is_the_same(problem: Problem) -> None:
    """Identical inputs, different targets: all activations coincide, and backward is linear in ḡ."""
    problem.X = np.repeat(problem.X[:1], problem.batch_size, axis=0)
    true = true_gradient(problem)
    scale = size_of(per_sample_reference(problem))
    for variant in EXACT_WHEN_ALIKE:
        if variant in variants_for(problem):
            g = minibatch.error_first(problem.model, problem.loss_fn, problem.X, problem.y, variant=variant)
            assert_same_gradient(g, true, scale, f"error_first({variant}) with identical inputs")


def test_loss_as_gradient_moves_a_converged_model_away_from_the_optimum() -> None:
    """Tutorial 2's worked example: data (x=1, y=2) and (x=1, y=4); the model predicts 3."""
    model = nn.Linear(1, 1)
    assert model.bias is not None
    model.weight.data[...] = 1.0
    model.bias.data[...] = 2.0  # 1 * 1 + 2 = 3, the least-squares optimum
    X, y = np.array([[1.0], [1.0]]), np.array([[2.0], [4.0]])

    true = minibatch.batched_mean(model, nn.mse_loss, X, y)
    assert true.loss == 1.0  # ((3-2)^2 + (3-4)^2) / 2
    assert all(np.all(g == 0.0) for g in true)  # (2(3-2) + 2(3-4)) / 2 = 0: stay put
    mean_input = minibatch.error_first(model, nn.mse_loss, X, y, variant="mean_input")
    assert all(np.all(g == 0.0) for g in mean_input)  # identical inputs: exact here

    wrong = minibatch.error_first(model, nn.mse_loss, X, y, variant="loss_as_gradient")
    assert [g.tolist() for g in wrong] == [[[1.0]], [1.0]]  # the loss value 1, sent back as the error

    optimizer = optim.SGD(model.parameters(), lr=0.1)
    optimizer.step()  # .grad holds the loss_as_gradient gradient
    prediction = model(Tensor([[1.0]])).item()
    assert prediction == pytest.approx(2.8, abs=1e-15)  # 3 - 0.1 * (1 + 1)
    assert minibatch.batched_mean(model, nn.mse_loss, X, y).loss == pytest.approx(1.04, abs=1e-14)  # worse than 1


@SETTINGS
@given(st.data())
def test_loss_as_gradient_differs_from_the_true_gradient_even_for_one_sample(data: st.DataObject) -> None:
    """B = 1, one output, squared error: ℓ = e² with e = ŷ − y.

    With B = 1 the mean input is the sample itself, so loss_as_gradient and the true gradient
    backpropagate through the same graph; the true one sends the output error g = dℓ/dŷ = 2e,
    loss_as_gradient the loss value ℓ = e². Backward is linear in what it is sent, so

        loss_as_gradient − true = (e² − 2e) ∇ŷ,

    and for the output bias ∇ŷ = 1: that entry differs by exactly |e(e − 2)|. It vanishes only
    at e = 0 (the model fits the sample) and at e = 2 (the accidental coincidence e² = 2e).
    Both are excluded with a margin: |e| ≥ 0.01 and |e − 2| ≥ 0.01. On that set |e(e − 2)| is
    smallest at the margins' edges, where it is 0.01 · 1.99 = 0.0199, so the output bias
    gradient is off by at least 0.0199 (rounding is some 1e-16 of that).
    """
    depth = data.draw(st.integers(0, 3), label="hidden layers")
    sizes = [data.draw(st.integers(1, 8), label="inputs"),
             *data.draw(st.lists(st.integers(1, 8), min_size=depth, max_size=depth), label="hidden widths"), 1]
    activation = data.draw(st.sampled_from(["tanh", "relu", "sigmoid"]), label="activation")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    problem = make_problem(sizes, activation, "mse", 1, seed)
    model, X, y = problem.model, problem.X, problem.y
    e = float(model(Tensor(X)).data[0, 0] - y[0, 0])
    assume(abs(e) >= 0.01 and abs(e - 2.0) >= 0.01)  # away from both coincidences, e = 0 and e = 2

    true = true_gradient(problem)
    wrong = minibatch.error_first(model, nn.mse_loss, X, y, variant="loss_as_gradient")
    predicted = [(e * e - 2.0 * e) * g for g in output_gradients(model, X[0])[0]]  # (e² − 2e) ∇ŷ
    scale = max(size_of(per_sample_reference(problem)), max_abs(predicted), max_abs(wrong))
    assert_same_gradient([w - t for w, t in zip(wrong, true)], predicted, scale,
                         "loss_as_gradient - true vs (e² - 2e) ∇ŷ")
    bias_gap = abs(float(wrong[-1][0] - true[-1][0]))  # the output bias: ∇ŷ = 1
    assert bias_gap == pytest.approx(abs(e * (e - 2.0)), rel=1e-12)
    assert bias_gap >= 0.0199 * (1 - 1e-9)
    assert max_abs_diff(wrong, true) > GENERIC_GAP * max(1.0, scale)


@SETTINGS
@given(problems(losses=("mse",)))
def test_mean_residual_error_is_the_covariance_of_errors_and_their_gradients(problem: Problem) -> None:
    """true − mean_residual = (2/D) Σ_d Cov_i(e_id, ∇e_id), with each sample's ∇e_id computed alone."""
    model, X, y = problem.model, problem.X, problem.y
    B, D = y.shape
    errors = model(Tensor(X)).data - y  # e_id; its gradient is ∇ŷ_id, y being a constant
    grads = [output_gradients(model, X[i]) for i in range(B)]  # grads[i][d][k]: parameter k
    mean_errors = errors.mean(axis=0)
    covariance_term = []
    for k, p in enumerate(model.parameters()):
        total = np.zeros_like(p.data)
        for d in range(D):
            mean_grad = sum(grads[i][d][k] for i in range(B)) / B
            cov = sum((errors[i, d] - mean_errors[d]) * (grads[i][d][k] - mean_grad) for i in range(B)) / B
            total += cov
        covariance_term.append(2.0 / D * total)

    true = true_gradient(problem)
    mean_residual = minibatch.error_first(model, nn.mse_loss, X, y, variant="mean_residual")
    scale = size_of(per_sample_reference(problem))
    assert_same_gradient([t - r for t, r in zip(true, mean_residual)], covariance_term, scale,
                         "true - mean_residual vs (2/D) Σ_d Cov(e_d, ∇e_d)")


@SETTINGS
@given(problems())
def test_output_bias_gradient_is_right_under_error_first_for_any_network(problem: Problem) -> None:
    """The output bias's gradient is ḡ however the error is averaged (its local derivative is 1)."""
    true = true_gradient(problem)
    scale = size_of(per_sample_reference(problem))
    for variant in EXACT_WHEN_ALIKE:
        if variant in variants_for(problem):
            g = minibatch.error_first(problem.model, problem.loss_fn, problem.X, problem.y, variant=variant)
            assert_same_gradient(g[-1:], true[-1:], scale, f"output bias under error_first({variant})")


# ------------------------------------------------------------------------------ error first: when it is wrong
def assume_generic(problem: Problem) -> None:
    """Exclude the degenerate draws on which an error-first variant can agree, or nearly, by accident.

    The gaps are products of spreads over the batch (mean_input's, for one, is about the
    covariance of the output layer's inputs and the output errors), so samples that the network
    barely tells apart give gaps below GENERIC_GAP even though they are not zero: a deep sigmoid
    network, say, squeezes nearby inputs together. So the samples must be distinct, reach the
    output layer at least 0.1 apart, and get output errors at least 0.1 apart; and no ReLU layer
    may be dead for the whole batch (it would cut every weight off the loss).
    """
    assume(min_pairwise_distance(problem.X) > 1e-3)
    assume(not relu_dead_everywhere(problem))
    assume(max_pairwise_distance(last_hidden_activations(problem)) > 0.1)
    assume(max_pairwise_distance(output_errors(problem)) > 0.1)


@SETTINGS
@given(problems(min_depth=1, min_batch=2, input_scale=2.0))  # spread inputs: fewer draws excluded
def test_every_error_first_variant_differs_for_a_nonlinear_network_with_distinct_inputs(problem: Problem) -> None:
    assume_generic(problem)
    true = true_gradient(problem)
    scale = size_of(per_sample_reference(problem))
    for variant in variants_for(problem):
        g = minibatch.error_first(problem.model, problem.loss_fn, problem.X, problem.y, variant=variant)
        diff = max_abs_diff(g, true)
        assert diff > GENERIC_GAP * max(1.0, scale), f"error_first({variant}) is off by only {diff:.3e}"


@SETTINGS
@given(problems(max_depth=0, min_batch=2))
def test_for_a_linear_model_error_first_gets_the_weights_wrong_and_the_bias_right(problem: Problem) -> None:
    """ŷ = x W + b: error first gives the weight x̄ ḡᵀ (or x_B ḡᵀ) instead of mean_i x_i g_iᵀ.

    The per-sample output errors g_i are read off the per-sample bias gradients. mean_residual
    gives x̄ ḡᵀ too, because for squared error ḡ = (2/D) ē.
    """
    assume_generic(problem)
    per_sample = per_sample_reference(problem)
    scale = size_of(per_sample)
    g = per_sample[1]  # (B, D): sample i's output error ∂ℓ_i/∂ŷ_i
    g_mean = g.mean(axis=0)
    weight_used = {"mean_input": problem.X.mean(axis=0), "last_sample": problem.X[-1],
                   "mean_residual": problem.X.mean(axis=0)}
    true = true_gradient(problem)
    for variant in EXACT_WHEN_ALIKE:
        if variant not in variants_for(problem):
            continue
        predicted_weight = np.outer(weight_used[variant], g_mean)
        assume(np.max(np.abs(predicted_weight - true[0])) > 2 * GENERIC_GAP * max(1.0, scale))  # Cov(x, g) ≠ 0
        wrong = minibatch.error_first(problem.model, problem.loss_fn, problem.X, problem.y, variant=variant)
        assert_same_gradient([wrong[0]], [predicted_weight], scale, f"weight under error_first({variant})")
        assert max_abs_diff([wrong[0]], [true[0]]) > GENERIC_GAP * max(1.0, scale)
        assert_same_gradient([wrong[1]], [true[1]], scale, f"bias under error_first({variant})")


# ------------------------------------------------------------------------------ training trajectories
@settings(max_examples=settings().max_examples)
@given(st.data())
def test_per_sample_and_batched_mean_training_end_at_the_same_parameters(data: st.DataObject) -> None:
    """Several epochs with shuffling and a short last batch; the trajectories agree to 1e-9.

    Only smooth activations: at a ReLU kink a rounding-level difference could select the other
    branch (a near-tie) and the two runs would then legitimately part ways.
    """
    n = data.draw(st.integers(5, 20), label="data set size")
    batch_size = data.draw(st.sampled_from([b for b in range(2, n) if n % b != 0]), label="batch size")
    activation = data.draw(st.sampled_from(["tanh", "sigmoid"]), label="activation")
    loss_name = data.draw(st.sampled_from(["mse", "cross_entropy"]), label="loss")
    widths = data.draw(st.lists(st.integers(1, 8), min_size=1, max_size=2), label="hidden widths")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    sizes = [3, *widths, 2]

    final = {}
    runs: list[tuple[str, dict[str, Any]]] = [("batched_mean", {}), ("per_sample", {}),
                                              ("accumulated", {"micro_batch": 2})]
    for strategy, extra in runs:
        problem = make_problem(sizes, activation, loss_name, n, seed)  # the same weights and data each time
        trainer = Trainer(problem.model, problem.loss_fn, optim.SGD(problem.model.parameters(), lr=0.2),
                          strategy=strategy, progress=False, **extra)
        trainer.fit(problem.X, problem.y, batch_size=batch_size, epochs=4, seed=seed)
        final[strategy] = [p.data.copy() for p in problem.model.parameters()]

    start = [p.data for p in make_problem(sizes, activation, loss_name, n, seed).model.parameters()]
    assert max_abs_diff(final["batched_mean"], start) > 1e-6  # training did move the parameters
    assert max_abs_diff(final["per_sample"], final["batched_mean"]) <= 1e-9
    assert max_abs_diff(final["accumulated"], final["batched_mean"]) <= 1e-9
