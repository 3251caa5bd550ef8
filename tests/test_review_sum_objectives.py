"""Finds of the adversarial review of the sum objectives, SGLD and the VAE, each with its test.

(Refusals that must change nothing are in the catalogue, tests/test_bad_input.py: SGLD steps
with a complex or object .grad, dataset sizes too large for a float, polynomial_decay's unusable
step sizes, aevb_step with SGLD, with another model's optimizer, with a bad learning rate, and
with a batch that is not (batch, pixels) of probabilities.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_mb import Tensor, nn, optim
from tinygrad_mb.vae import VAE, aevb_step


@pytest.mark.parametrize("logvar", [1e-9, -1e-9, 1e-6, 1e-3])
def test_gaussian_kl_keeps_its_digits_near_logvar_zero(logvar: float) -> None:
    """e^v − 1 − v = v²/2 + v³/6 + ...: computed as exp(v) − 1 − v, v = 1e-9 gave 4.1e-17 for 5e-19.

    With expm1, the one rounding left is in expm1(v) − v: about eps·|v| absolute, so relative
    to v²/2 at most 2·eps/|v| (2e-7 at |v| = 1e-9, smaller for larger v).
    """
    kl = nn.gaussian_kl(Tensor(np.zeros((1, 1))), Tensor(np.full((1, 1), logvar))).item()
    exact = 0.5 * sum(logvar**k / math.factorial(k) for k in range(2, 8))  # the series, to well below eps
    assert kl == pytest.approx(exact, rel=4 * np.finfo(np.float64).eps / abs(logvar) + 1e-15, abs=0)


def test_gaussian_kl_in_float32_near_logvar_zero() -> None:
    """float32 at v = 1e-3 was 25% off; now within float32 rounding of the exact value."""
    v = np.float32(1e-3)
    kl = nn.gaussian_kl(Tensor(np.zeros((1, 1), np.float32)), Tensor(np.full((1, 1), v))).item()
    exact = 0.5 * sum(float(v) ** k / math.factorial(k) for k in range(2, 8))
    assert kl == pytest.approx(exact, rel=4 * float(np.finfo(np.float32).eps) / float(v), abs=0)


def test_binary_cross_entropy_checks_float32_targets_before_rounding_them() -> None:
    """1 + 1e-9 rounds to 1 in float32: the check must see the value that was passed."""
    with pytest.raises(ValueError, match=r"targets must be probabilities in \[0, 1\], got 1\.000000001"):
        nn.binary_cross_entropy(Tensor(np.zeros(2, np.float32)), np.array([1 + 1e-9, 0.0]))


def test_a_refused_aevb_step_leaves_the_noise_of_later_steps_unchanged() -> None:
    """A bad learning rate is refused after ε was drawn: the generator is put back, so the run
    continues exactly as if the refused call had never happened."""
    x = (np.arange(24).reshape(6, 4) % 2).astype(float)
    runs = []
    for refuse_first in (False, True):
        vae, rng = VAE(data_dim=4, hidden=3, latent=2, rng=0), np.random.default_rng(1)
        opt = optim.SGD(vae.parameters(), lr=0.01)
        if refuse_first:
            opt.lr = -1.0
            with pytest.raises(ValueError, match="SGD.step: lr"):
                aevb_step(vae, opt, x, 60, rng)
            opt.lr = 0.01
        losses = [aevb_step(vae, opt, x, 60, rng) for _ in range(3)]
        runs.append((losses, [p.data.copy() for p in vae.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
