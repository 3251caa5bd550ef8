"""The benchmarks' hand-written numpy references compute what the engine computes.

``make bench`` checks this before it times anything, but it is not part of the suite; these
tests run the same checks (no timing), so a reference that drifts from the engine fails here,
not in a benchmark report that compares two different computations.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bench_engine, bench_strategies, bench_sum_objectives


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_training_step_reference_matches_the_engine(dtype) -> None:
    bench_engine.check_agreement(dtype)


def test_the_strategy_references_match_the_engine() -> None:
    bench_strategies.check_agreement()  # per-sample gradients, their mean in .grad, the loss


def test_the_vae_and_sgld_references_match_the_engine() -> None:
    bench_sum_objectives.check_vae_agreement()
    bench_sum_objectives.check_sgld_agreement()


def test_the_per_sample_reference_with_mean_and_loss_is_what_it_says() -> None:
    """The context-only reference: its means are the batched gradient, its loss the batch mean loss."""
    X, y = bench_strategies.random_digits_like()
    params = bench_strategies.init_params()
    per_sample, means, loss = bench_strategies.numpy_per_sample_gradients_mean_and_loss(params, X, y)
    ref_loss, batched = bench_strategies.numpy_mlp_loss_and_grads(params, X, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for stacked, mean, grad in zip(per_sample, means, batched):
        # Each side sums B terms in its own order: each is within (B - 1)·eps·max|term| of the exact mean.
        bound = 2 * len(X) * np.finfo(np.float64).eps * np.abs(stacked).max()
        np.testing.assert_allclose(mean, grad, rtol=0, atol=bound)
        np.testing.assert_allclose(stacked.mean(axis=0), grad, rtol=0, atol=bound)
