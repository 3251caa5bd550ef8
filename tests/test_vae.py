"""The VAE's losses against closed forms, and a VAE trained with AEVB that learns.

Tolerances: the closed forms and the engine evaluate the same float64 expressions in a
different order, so values agree to ~1e-15 relative; 1e-12 leaves room and still catches any
wrong term. gradcheck uses central differences (error O(eps²) = 1e-12) with its default
tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinygrad_mb import Tensor, gradcheck, minibatch, nn, optim
from tinygrad_mb.vae import VAE, aevb_step, binarised_digits

# The direct formula loses digits in log(1 − σ(x)) as σ → 1: at |x| ≤ 10 its error is about
# 1e-16 / (1 − σ(10)) ≈ 2e-12, far inside rtol=1e-9; larger logits are tested against exact values.
logit_values = st.floats(-10.0, 10.0, allow_nan=False, width=64)
probabilities = st.floats(0.0, 1.0, allow_nan=False, width=64)


def bce_by_hand(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """−[t log σ(x) + (1 − t) log(1 − σ(x))] written directly (fine for moderate x)."""
    s = 1 / (1 + np.exp(-x))
    return -(t * np.log(s) + (1 - t) * np.log(1 - s))


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64, (4, 3), elements=logit_values), t=arrays(np.float64, (4, 3), elements=probabilities))
def test_binary_cross_entropy_equals_the_closed_form_and_is_the_mean_over_outputs(x, t):
    per_sample = nn.binary_cross_entropy(Tensor(x), t, reduction="none").data
    np.testing.assert_allclose(per_sample, bce_by_hand(x, t).mean(axis=1), rtol=1e-9, atol=1e-12)
    mean = nn.binary_cross_entropy(Tensor(x), t).item()
    total = nn.binary_cross_entropy(Tensor(x), t, reduction="sum").item()
    assert mean == pytest.approx(per_sample.mean(), rel=1e-12) and total == pytest.approx(4 * mean, rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(x=arrays(np.float64, (3, 2), elements=st.floats(-6, 6, width=64)),
       t=arrays(np.float64, (3, 2), elements=probabilities))
def test_binary_cross_entropy_passes_gradcheck(x, t):
    assert gradcheck(lambda z: nn.binary_cross_entropy(z, t, reduction="none"), [Tensor(x, requires_grad=True)])


def test_binary_cross_entropy_gradient_is_sigmoid_minus_target_everywhere_including_zero():
    x = Tensor(np.array([[0.0, 0.0, 3.0, -1e4, 1e4]]), requires_grad=True)
    t = np.array([[1.0, 0.0, 0.25, 1.0, 0.0]])
    loss = nn.binary_cross_entropy(x, t)
    loss.backward()
    sigma = np.array([[0.5, 0.5, 1 / (1 + np.exp(-3.0)), 0.0, 1.0]])
    np.testing.assert_allclose(x.grad, (sigma - t) / 5, rtol=1e-12, atol=1e-300)


def test_binary_cross_entropy_is_finite_and_exact_at_extreme_logits():
    x = Tensor(np.array([[1e4, -1e4, 1e4, -1e4]]))
    values = nn.binary_cross_entropy(x, np.array([[1.0, 0.0, 0.0, 1.0]]), reduction="none")
    assert np.isfinite(values.data).all()
    assert values.item() == pytest.approx((0 + 0 + 1e4 + 1e4) / 4, rel=1e-12)


@pytest.mark.parametrize("targets, fragment", [
    (np.full((2, 3), 1.5), "targets must be probabilities in [0, 1], got 1.5"),
    (np.full((2, 3), np.nan), "targets must be probabilities in [0, 1]"),
    (np.ones((2, 2)), "logits have shape (2, 3) but targets have shape (2, 2)"),
])
def test_binary_cross_entropy_refuses_targets_that_are_not_probabilities(targets, fragment):
    with pytest.raises(ValueError) as info:
        nn.binary_cross_entropy(Tensor(np.zeros((2, 3))), targets)
    assert fragment in str(info.value)


def kl_by_hand(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(μ, σ²) ‖ N(0, 1)) = log(1/σ) + (σ² + μ²)/2 − 1/2 per dimension, summed."""
    sigma = np.exp(0.5 * logvar)
    return (np.log(1 / sigma) + (sigma**2 + mu**2) / 2 - 0.5).sum(axis=1)


@settings(max_examples=40, deadline=None)
@given(mu=arrays(np.float64, (3, 4), elements=st.floats(-5, 5, width=64)),
       logvar=arrays(np.float64, (3, 4), elements=st.floats(-5, 5, width=64)))
def test_gaussian_kl_equals_the_closed_form_and_passes_gradcheck(mu, logvar):
    np.testing.assert_allclose(nn.gaussian_kl(Tensor(mu), Tensor(logvar), reduction="none").data,
                               kl_by_hand(mu, logvar), rtol=1e-9, atol=1e-12)
    assert gradcheck(lambda m, v: nn.gaussian_kl(m, v, reduction="none"),
                     [Tensor(mu, requires_grad=True), Tensor(logvar, requires_grad=True)])


def test_gaussian_kl_is_zero_exactly_at_the_prior_and_refuses_mismatched_shapes():
    assert nn.gaussian_kl(Tensor(np.zeros((2, 3))), Tensor(np.zeros((2, 3)))).item() == 0.0
    with pytest.raises(ValueError, match=r"gaussian_kl: mu and logvar must both have shape \(batch, latent\)"):
        nn.gaussian_kl(Tensor(np.zeros((2, 3))), Tensor(np.zeros((2, 2))))


def test_the_vae_losses_are_known_mean_losses_to_the_strategies():
    for loss in (nn.binary_cross_entropy, nn.gaussian_kl):
        info = nn.loss_info(loss)
        assert info.kind is not None and info.reduction == "mean" and info.classification is False


# ------------------------------------------------------------------------------ the VAE
def held_out_negative_elbo(vae: VAE, x: np.ndarray, draws: int = 5) -> float:
    rng = np.random.default_rng(123)
    from tinygrad_mb import no_grad
    with no_grad():
        return float(np.mean([vae.negative_elbo(x, rng.standard_normal((len(x), vae.latent))).item()
                              for _ in range(draws)]))


def test_aevb_improves_the_elbo_on_held_out_digits():
    """Untrained, −ELBO per digit is about 64·log 2 ≈ 44 nats; five epochs of AEVB must cut it by a third."""
    X, _ = binarised_digits()
    order = np.random.default_rng(0).permutation(len(X))
    train, test = X[order[:1500]], X[order[1500:]]
    vae = VAE(rng=0)
    before = held_out_negative_elbo(vae, test)
    opt = optim.Adam(vae.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    for _ in range(5):
        for start in range(0, len(train), 100):
            aevb_step(vae, opt, train[start:start + 100], dataset_size=len(train), rng=rng)
    after = held_out_negative_elbo(vae, test)
    assert before > 40
    assert after < before * 2 / 3
    samples, recon = vae.sample(16, rng=2), vae.reconstruct(test[:16])
    assert samples.shape == recon.shape == (16, 64)
    assert ((0 <= samples) & (samples <= 1)).all()
    # reconstructions are closer to their own digit than to the average digit
    assert np.mean((recon - test[:16]) ** 2) < np.mean((train.mean(axis=0) - test[:16]) ** 2)


def test_an_aevb_step_follows_the_sum_estimate_of_the_summed_negative_elbo():
    """aevb_step's gradient is N × the batch mean, the (N/M)·Σ estimate sum_estimate computes."""
    X, _ = binarised_digits()
    vae = VAE(hidden=16, latent=2, rng=0)
    eps = np.random.default_rng(5).standard_normal((10, 2))

    class FixedNoise(nn.Module):  # the VAE with this batch's ε, as a model for the strategies
        def __init__(self):
            self.vae = vae

        def forward(self, x):
            return vae.negative_elbo(x, eps).reshape(1)

    mean_of = lambda neg_elbo, _: neg_elbo.mean()  # noqa: E731  (already the batch mean)
    estimate = minibatch.sum_estimate(FixedNoise(), mean_of, X[:10], X[:10], dataset_size=500)

    class Recorder(optim.Optimizer):
        def update(self, i, p, grad):
            self.seen.append(grad.copy())

    recorder = Recorder(vae.parameters(), lr=1.0)
    recorder.seen = []
    aevb_step(vae, recorder, X[:10], dataset_size=500, rng=np.random.default_rng(5))
    for a, b in zip(recorder.seen, estimate):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
