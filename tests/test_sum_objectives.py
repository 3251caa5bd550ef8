"""Sum objectives: the (N/M) estimator is unbiased, and SGLD samples the right posterior.

Tolerances are derived, not tuned:

- ``sum_estimate``: the average over all C(N, M) batches is a finite sum of at most 63 float64
  gradients of size ~1, so it equals ∇Σℓ up to rounding: 1e-10 absolute is far above it.
- SGLD on a Gaussian mean with C independent chains side by side. With the full batch the update
  is θ' − μ = ρ(θ − μ) + √ε ξ with ρ = 1 − εΛ/2 (Λ the posterior precision), an AR(1) process
  whose stationary law is N(μ, s²), s² = ε / (1 − ρ²) = 1 / (Λ (1 − εΛ/4)): the exact posterior
  variance 1/Λ inflated by the step size. After K burn-in steps the chains' start is forgotten up
  to ρ^K < 1e-6, so the C final values are independent draws: their mean is off by at most 5 s/√C
  and their variance by a relative 5 √(2/(C − 1)) (five standard errors; the seeds are fixed,
  so the test is deterministic, and the bound would hold for all but ~1e-6 of seeds).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinygrad_mb import Tensor, minibatch, nn, optim

floats = st.floats(-2.0, 2.0, allow_nan=False, width=64)


@settings(max_examples=15, deadline=None)
@given(X=arrays(np.float64, (6, 2), elements=floats), y=arrays(np.float64, (6, 1), elements=floats),
       seed=st.integers(0, 2**16))
def test_sum_estimate_is_unbiased_for_the_gradient_of_the_sum_for_every_batch_size(X, y, seed):
    N = len(X)
    model = nn.MLP([2, 3, 1], activation="tanh", rng=seed)
    full_sum = [g * N for g in minibatch.batched_mean(model, nn.mse_loss, X, y)]  # ∇ Σ_j ℓ_j
    for M in range(1, N + 1):
        batches = list(itertools.combinations(range(N), M))
        average = [np.zeros_like(g) for g in full_sum]
        for rows in batches:
            estimate = minibatch.sum_estimate(model, nn.mse_loss, X[list(rows)], y[list(rows)], dataset_size=N)
            for acc, g in zip(average, estimate):
                acc += g / len(batches)
        for a, b in zip(average, full_sum):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=f"M = {M}")


def test_the_mean_of_per_sample_gradients_is_the_sums_gradient_divided_by_n():
    """The seed answer's slip: E_j[∇ℓ_j] is ∇(Σℓ)/N, not ∇(Σℓ)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 2)), rng.normal(size=(8, 1))
    model = nn.MLP([2, 4, 1], rng=1)
    per_sample_mean = [g.mean(axis=0) for g in minibatch.per_sample_gradients(model, nn.mse_loss, X, y)]
    total = minibatch.sum_estimate(model, nn.mse_loss, X, y, dataset_size=8)
    for mean, s in zip(per_sample_mean, total):
        np.testing.assert_allclose(mean * 8, s, rtol=1e-12, atol=1e-14)
        assert not np.allclose(mean, s)  # off by the factor N


def test_sum_estimate_leaves_grad_equal_to_the_result_and_scales_the_loss():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(5, 3)), rng.integers(0, 2, 5)
    model = nn.MLP([3, 4, 2], rng=0)
    mean = minibatch.batched_mean(model, nn.cross_entropy, X, y)
    estimate = minibatch.sum_estimate(model, nn.cross_entropy, X, y, dataset_size=40)
    assert math.isclose(estimate.loss, 40 * mean.loss, rel_tol=1e-12)
    for p, g, m in zip(model.parameters(), estimate, mean):
        np.testing.assert_array_equal(p.grad, g)
        np.testing.assert_allclose(g, 40 * m, rtol=1e-12)


@pytest.mark.parametrize("bad", [0, 3, 2.5, True, "10", None])
def test_sum_estimate_refuses_a_dataset_size_smaller_than_the_batch_or_not_whole(bad):
    model = nn.MLP([2, 2, 1], rng=0)
    params = model.parameters()
    before = [p.data.copy() for p in params]
    with pytest.raises(ValueError, match="sum_estimate: dataset_size must be a whole number N >= the batch size 4"):
        minibatch.sum_estimate(model, nn.mse_loss, np.ones((4, 2)), np.ones((4, 1)), dataset_size=bad)
    assert all(p.grad is None for p in params)
    assert all(np.array_equal(p.data, b) for p, b in zip(params, before))


# ------------------------------------------------------------------------------ SGLD
class Chains(nn.Module):
    """C values of θ side by side: C independent SGLD chains for the mean of a Gaussian."""

    def __init__(self, chains: int):
        self.theta = Tensor(np.zeros(chains), requires_grad=True, name="θ")

    def forward(self, X: Tensor) -> Tensor:
        return self.theta * Tensor(np.ones((len(X), 1)))  # (B, C): every sample sees every chain


def gaussian_nll(sigma: float):
    """Per-sample NLL (x − θ)²/(2σ²), summed over the chains, averaged over the samples."""
    def loss(pred: Tensor, x) -> Tensor:
        return (((pred - Tensor(np.asarray(x).reshape(-1, 1))) ** 2) * (0.5 / sigma**2)).sum(axis=1).mean()
    return loss


def run_sgld(x: np.ndarray, sigma: float, prior_precision: float, lr: float, steps: int, chains: int,
             dataset_size: int, seed: int = 0) -> np.ndarray:
    model = Chains(chains)
    opt = optim.SGLD(model.parameters(), lr=lr, dataset_size=dataset_size, prior_precision=prior_precision,
                     seed=seed)
    loss = gaussian_nll(sigma)
    for _ in range(steps):
        minibatch.batched_mean(model, loss, x, x)  # full batch: .grad = ∇ mean NLL
        opt.step()
    return model.theta.data.copy()


X_DATA = np.random.default_rng(7).normal(1.5, 2.0, size=50)
SIGMA, PRIOR = 1.0, 1.0
POSTERIOR_PRECISION = PRIOR + len(X_DATA) / SIGMA**2
POSTERIOR_MEAN = (X_DATA.sum() / SIGMA**2) / POSTERIOR_PRECISION


def test_sgld_samples_the_closed_form_posterior_of_a_gaussian_mean():
    lam, chains = POSTERIOR_PRECISION, 1500
    eps = 0.04 / lam  # εΛ = 0.04: ρ = 0.98, and the variance is inflated by 1/(1 − 0.01)
    rho = 1 - eps * lam / 2
    burn_in = math.ceil(math.log(1e-6) / math.log(rho))
    draws = run_sgld(X_DATA, SIGMA, PRIOR, eps, burn_in, chains, dataset_size=len(X_DATA))
    s2 = 1 / (lam * (1 - eps * lam / 4))
    assert abs(draws.mean() - POSTERIOR_MEAN) < 5 * math.sqrt(s2 / chains)
    assert abs(draws.var(ddof=1) / s2 - 1) < 5 * math.sqrt(2 / (chains - 1))
    assert abs(s2 * lam - 1) < 0.011  # and s² is the exact posterior variance 1/Λ up to εΛ/4


def test_sgld_that_forgets_n_samples_a_posterior_far_too_wide():
    """With dataset_size=1 the likelihood counts once instead of N times: precision λ + 1/σ²."""
    chains, wrong_precision = 1000, PRIOR + 1 / SIGMA**2
    eps = 0.04 / wrong_precision
    burn_in = math.ceil(math.log(1e-6) / math.log(1 - eps * wrong_precision / 2))
    draws = run_sgld(X_DATA, SIGMA, PRIOR, eps, burn_in, chains, dataset_size=1)
    s2 = 1 / (wrong_precision * (1 - eps * wrong_precision / 4))
    assert abs(draws.var(ddof=1) / s2 - 1) < 5 * math.sqrt(2 / (chains - 1))
    assert draws.var(ddof=1) > 10 / POSTERIOR_PRECISION  # 25 times the true posterior variance


def test_sgld_is_deterministic_given_its_seed_and_resumes_exactly_from_its_state():
    a = run_sgld(X_DATA, SIGMA, PRIOR, 1e-3, 20, 5, 50, seed=3)
    b = run_sgld(X_DATA, SIGMA, PRIOR, 1e-3, 20, 5, 50, seed=3)
    c = run_sgld(X_DATA, SIGMA, PRIOR, 1e-3, 20, 5, 50, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)

    model = Chains(5)
    opt = optim.SGLD(model.parameters(), lr=1e-3, dataset_size=50, seed=9)
    loss = gaussian_nll(SIGMA)
    for _ in range(3):
        minibatch.batched_mean(model, loss, X_DATA, X_DATA)
        opt.step()
    saved, values = opt.state_dict(), model.theta.data.copy()
    minibatch.batched_mean(model, loss, X_DATA, X_DATA)
    opt.step()
    expected = model.theta.data.copy()
    resumed_model = Chains(5)
    resumed_model.theta.data[...] = values
    resumed = optim.SGLD(resumed_model.parameters(), lr=1.0, dataset_size=1, seed=0)
    resumed.load_state_dict(saved)
    minibatch.batched_mean(resumed_model, loss, X_DATA, X_DATA)
    resumed.step()
    np.testing.assert_array_equal(resumed_model.theta.data, expected)


def test_sgld_update_is_the_formula_of_welling_and_teh():
    p = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    p.grad = np.array([0.2, 0.4])
    opt = optim.SGLD([p], lr=0.01, dataset_size=100, prior_precision=2.0, seed=5)
    opt.step()
    noise = np.random.default_rng([5, 0, 1]).standard_normal(2)
    expected = np.array([0.5, -1.0]) - 0.005 * (100 * np.array([0.2, 0.4]) + 2.0 * np.array([0.5, -1.0]))
    np.testing.assert_allclose(p.data, expected + 0.1 * noise, rtol=0, atol=1e-15)


def test_a_schedule_sets_lr_between_steps():
    p = Tensor(np.zeros(3), requires_grad=True)
    opt = optim.SGLD([p], lr=0.1, dataset_size=10, seed=0)
    steps = [optim.polynomial_decay(t, a=0.1, b=1.0, gamma=0.55) for t in range(4)]
    assert steps[0] == pytest.approx(0.1) and all(a > b for a, b in zip(steps, steps[1:]))
    for eps in steps:
        opt.lr = eps
        p.grad = np.zeros(3)
        opt.step()
    assert opt.steps == [4]


@pytest.mark.parametrize("kwargs, fragment", [
    ({"dataset_size": 0}, "dataset_size must be a whole number >= 1, got 0"),
    ({"dataset_size": 2.5}, "dataset_size must be a whole number >= 1, got 2.5"),
    ({"dataset_size": True}, "dataset_size must be a whole number >= 1, got True"),
    ({"prior_precision": -1.0}, "prior_precision must be a non-negative number"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"lr": float("nan")}, "lr must be a positive number"),
    ({"seed": -1}, "seed must be a whole number >= 0, got -1"),
    ({"seed": 1.5}, "seed must be a whole number >= 0, got 1.5"),
])
def test_sgld_validates_its_arguments(kwargs, fragment):
    p = Tensor(np.zeros(2), requires_grad=True)
    args = {"lr": 0.1, "dataset_size": 10, **kwargs}
    with pytest.raises(ValueError, match="SGLD: " + fragment.replace("(", r"\(")):
        optim.SGLD([p], **args)


# ------------------------------------------------------------------------------ ∇ and E
def test_reparameterised_gradient_of_a_gaussian_expectation_matches_the_analytic_one():
    """E_ε[f(μ + σε)] with f(z) = (z − a)² is (μ − a)² + σ²: gradient (2(μ − a), 2σ).

    The estimate averages K samples of 2(μ + σε − a) for μ (standard deviation 2σ/√K) and of
    2(μ + σε − a)ε for σ (standard deviation √((4(μ − a)² + 8σ²)/K)); both within 5 of those.
    """
    mu0, sigma0, a, K = 0.7, 1.3, -0.4, 20000
    mu, sigma = Tensor(mu0, requires_grad=True), Tensor(sigma0, requires_grad=True)
    eps = Tensor(np.random.default_rng(11).standard_normal(K))
    ((mu + sigma * eps - a) ** 2).mean().backward()
    assert abs(mu.grad - 2 * (mu0 - a)) < 5 * 2 * sigma0 / math.sqrt(K)
    assert abs(sigma.grad - 2 * sigma0) < 5 * math.sqrt((4 * (mu0 - a) ** 2 + 8 * sigma0**2) / K)
