"""Small built-in data sets, generated with numpy (no download), and batching helpers.

Every argument is checked before anything is drawn, so a bad one gives an error naming the
function and the value (never numpy's "scale < 0" or "negative dimensions are not allowed").
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .checks import check_flag, check_int, check_number, check_seed, describe

Seed = int | np.random.Generator | None


def make_moons(n: int = 200, noise: float = 0.1, seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: X of shape (n, 2), integer labels y of shape (n,) in {0, 1}."""
    n = check_int(n, "make_moons", "n (the number of samples)", minimum=2)
    noise = check_number(noise, "make_moons", "noise (a standard deviation)", minimum=0.0)
    rng = np.random.default_rng(check_seed(seed, "make_moons"))
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
                 seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms: X of shape (n, 2), labels y of shape (n,)."""
    classes = check_int(classes, "make_spirals", "classes", minimum=2)
    n = check_int(n, "make_spirals", "n (the number of samples, at least one per class)", minimum=classes)
    noise = check_number(noise, "make_spirals", "noise (a standard deviation)", minimum=0.0)
    rng = np.random.default_rng(check_seed(seed, "make_spirals"))
    y = np.arange(n) % classes
    r = np.linspace(0.05, 1.0, n)
    theta = y * (2 * np.pi / classes) + 4.0 * r + rng.normal(0.0, noise, n)
    X = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
    order = rng.permutation(n)
    return X[order], y[order].astype(np.int64)


def make_regression(n: int = 100, in_features: int = 1, out_features: int = 1, noise: float = 0.1,
                    seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth nonlinear target: y = sin(x @ A) + noise, X of shape (n, in), y of shape (n, out)."""
    n = check_int(n, "make_regression", "n (the number of samples)", minimum=1)
    in_features = check_int(in_features, "make_regression", "in_features", minimum=1)
    out_features = check_int(out_features, "make_regression", "out_features", minimum=1)
    noise = check_number(noise, "make_regression", "noise (a standard deviation)", minimum=0.0)
    rng = np.random.default_rng(check_seed(seed, "make_regression"))
    X = rng.uniform(-2.0, 2.0, (n, in_features))
    A = rng.normal(0.0, 1.0, (in_features, out_features))
    y = np.sin(X @ A) + rng.normal(0.0, noise, (n, out_features))
    return X, y


def batches(n: int, batch_size: int, shuffle: bool = False,
            rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index arrays covering range(n) in chunks of ``batch_size``; the last may be shorter."""
    n = check_int(n, "batches", "n (the number of samples)", minimum=0)
    batch_size = check_int(batch_size, "batches", "batch_size", minimum=1)
    shuffle = check_flag(shuffle, "batches", "shuffle")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"batches: rng must be a numpy Generator (np.random.default_rng(seed)) or None, "
                        f"got {describe(rng)}")
    return _batches(n, batch_size, shuffle, rng)


def _batches(n: int, batch_size: int, shuffle: bool, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    # A generator of its own, so that batches() checks its arguments when called, not at the first batch.
    order = (rng or np.random.default_rng()).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
