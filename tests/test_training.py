"""End to end: an MLP trained with mini-batch SGD on the built-in data sets learns them.

The thresholds are far below what training reaches (every seed tried reaches 99-100%), so
the tests are not fragile, and far above chance (50% for two moons, 33% for three spirals),
so they fail if gradients, the loss or the optimizer are wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tinygrad_mb import Tensor, nn, no_grad, optim
from tinygrad_mb.data import batches, make_moons, make_spirals


def train(X: np.ndarray, y: np.ndarray, sizes: list[int], epochs: int, lr: float, momentum: float,
          batch_size: int = 32, seed: int = 0, dtype: Any = np.float64) -> tuple[nn.MLP, list[float]]:
    """Mini-batch SGD on the mean cross-entropy; returns the model and each epoch's mean loss."""
    model = nn.MLP(sizes, activation="tanh", rng=seed, dtype=dtype)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    rng = np.random.default_rng(seed)
    X = X.astype(dtype)
    losses = []
    for _ in range(epochs):
        epoch_losses = []
        for idx in batches(len(X), batch_size, shuffle=True, rng=rng):
            opt.zero_grad()
            loss = nn.cross_entropy(model(Tensor(X[idx])), y[idx])
            loss.backward()
            opt.step()
            epoch_losses.append(loss.item())
        losses.append(float(np.mean(epoch_losses)))
    return model, losses


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with no_grad():
        return float(np.mean(model(Tensor(X)).data.argmax(axis=1) == y))


@pytest.mark.parametrize("momentum, lr, epochs", [(0.9, 0.1, 100), (0.0, 0.3, 200)])
def test_mlp_trained_with_sgd_separates_two_moons(momentum, lr, epochs):
    X, y = make_moons(200, noise=0.1, seed=0)
    X_test, y_test = make_moons(500, noise=0.1, seed=1)  # fresh samples of the same moons
    model, losses = train(X, y, [2, 16, 16, 2], epochs=epochs, lr=lr, momentum=momentum)
    assert accuracy(model, X, y) >= 0.98
    assert accuracy(model, X_test, y_test) >= 0.97
    assert losses[-1] < losses[0] / 10


def test_mlp_trained_with_sgd_separates_three_spirals():
    X, y = make_spirals(300, classes=3, noise=0.2, seed=0)
    model, losses = train(X, y, [2, 32, 32, 3], epochs=300, lr=0.1, momentum=0.9)
    assert accuracy(model, X, y) >= 0.95
    assert losses[-1] < losses[0] / 10


def test_float32_training_learns_as_well_and_stays_float32():
    X, y = make_moons(200, noise=0.1, seed=0)
    model, _ = train(X, y, [2, 16, 16, 2], epochs=100, lr=0.1, momentum=0.9, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert accuracy(model, X.astype(np.float32), y) >= 0.98


def test_an_untrained_network_is_near_chance_so_the_threshold_means_something():
    X, y = make_moons(200, noise=0.1, seed=0)
    model, _ = train(X, y, [2, 16, 16, 2], epochs=0, lr=0.1, momentum=0.9)
    assert accuracy(model, X, y) < 0.9
