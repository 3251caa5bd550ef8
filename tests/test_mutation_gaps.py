"""Tests for mutants that once survived: each one a bug the suite did not notice.

- gradcheck marks the learners' exercises, so with its DEFAULT tolerances it must fail a
  sign-flipped rule (compared as absolute values it would pass), a rule 5% off (it passes
  only when rtol is loosened to 1e-1), and a rule right only for a uniform upstream gradient
  (it passes if the random upstream vector is replaced by ones);
- per_sample_gradients with extra axes (B, T, features) must SUM the bias's gradient over T,
  as each sample's own loss does, not average it.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_mb import GradcheckError, Tensor, gradcheck, minibatch, nn


def cube_with_rule(rule):
    """x³ recorded as one op whose backward is ``rule(g, x)``."""
    def cube(x: Tensor) -> Tensor:
        return Tensor.record(x.data ** 3, (x,), "cube", lambda g: (rule(g, x.data),))
    return cube


X0 = np.array([[0.7, -1.2, 0.4], [1.5, -0.3, 0.9]])


def test_gradcheck_passes_the_right_rule():
    assert gradcheck(cube_with_rule(lambda g, x: g * 3 * x**2), [Tensor(X0.copy(), requires_grad=True)])


@pytest.mark.parametrize("rule", [
    lambda g, x: -g * 3 * x**2,                  # sign flipped
    lambda g, x: g * 3 * x**2 * 1.05,            # 5% off
    lambda g, x: np.full_like(g, g.mean()) * 3 * x**2,  # right only when every upstream value is equal
], ids=["sign flipped", "five percent off", "right only for a uniform upstream gradient"])
def test_gradcheck_with_default_tolerances_fails_a_wrong_rule(rule):
    with pytest.raises(GradcheckError, match="analytic gradient"):
        gradcheck(cube_with_rule(rule), [Tensor(X0.copy(), requires_grad=True)])


def test_the_uniform_upstream_rule_is_right_for_a_uniform_upstream_gradient():
    """Why that mutant survived: with upstream ones it gives the right numbers."""
    x = Tensor(X0.copy(), requires_grad=True)
    cube_with_rule(lambda g, x: np.full_like(g, g.mean()) * 3 * x**2)(x).backward(np.ones_like(X0))
    np.testing.assert_allclose(x.grad, 3 * X0**2)


def test_per_sample_gradients_with_extra_axes_sum_the_bias_gradient_over_them():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(3, 4, rng=1), nn.Tanh(), nn.Linear(4, 2, rng=2))
    X, y = rng.normal(size=(5, 3, 3)), rng.normal(size=(5, 3, 2))  # (B, T, features)
    stacked = minibatch.per_sample_gradients(model, nn.mse_loss, X, y)
    for i in range(len(X)):
        own = minibatch.batched_mean(model, nn.mse_loss, X[i:i + 1], y[i:i + 1])
        for per_sample, g in zip(stacked, own):
            np.testing.assert_allclose(per_sample[i], g, rtol=1e-10, atol=1e-13)
