"""Small built-in data sets, generated with numpy (no download), and batching helpers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def make_moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: X of shape (n, 2), integer labels y of shape (n,) in {0, 1}."""
    if n < 2:
        raise ValueError(f"make_moons: need at least 2 samples, got n={n}")
    rng = np.random.default_rng(seed)
    n_top = n // 2
    t_top = np.linspace(0, np.pi, n_top)
    t_bottom = np.linspace(0, np.pi, n - n_top)
    top = np.stack([np.cos(t_top), np.sin(t_top)], axis=1)
    bottom = np.stack([1 - np.cos(t_bottom), 0.5 - np.sin(t_bottom)], axis=1)
    X = np.concatenate([top, bottom]) + rng.normal(0.0, noise, (n, 2))
    y = np.concatenate([np.zeros(n_top, dtype=np.int64), np.ones(n - n_top, dtype=np.int64)])
    order = rng.permutation(n)
    return X[order], y[order]


def make_spirals(n: int = 300, classes: int = 3, noise: float = 0.2,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms: X of shape (n, 2), labels y of shape (n,)."""
    if classes < 2 or n < classes:
        raise ValueError(f"make_spirals: need classes >= 2 and n >= classes, got n={n}, classes={classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    r = np.linspace(0.05, 1.0, n)
    theta = y * (2 * np.pi / classes) + 4.0 * r + rng.normal(0.0, noise, n)
    X = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
    order = rng.permutation(n)
    return X[order], y[order].astype(np.int64)


def make_regression(n: int = 100, in_features: int = 1, out_features: int = 1, noise: float = 0.1,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth nonlinear target: y = sin(x @ A) + noise, X of shape (n, in), y of shape (n, out)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2.0, 2.0, (n, in_features))
    A = rng.normal(0.0, 1.0, (in_features, out_features))
    y = np.sin(X @ A) + rng.normal(0.0, noise, (n, out_features))
    return X, y


def batches(n: int, batch_size: int, shuffle: bool = False,
            rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index arrays covering range(n) in chunks of ``batch_size``; the last may be shorter."""
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be at least 1, got {batch_size}")
    order = (rng or np.random.default_rng()).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
