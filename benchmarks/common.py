"""Shared helpers for the benchmarks: one BLAS thread, median timings, and a numpy reference.

The reference is the same network the benchmarks train with the engine, written out by hand
in numpy: an MLP with tanh hidden layers, a softmax cross-entropy loss averaged over the
batch, and a plain SGD step. It is the fastest straightforward numpy code for that model, so
"engine time / reference time" measures what the engine's bookkeeping costs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

# The model every benchmark uses: the 8x8 digits shape (64 features, 10 classes).
SIZES: tuple[int, ...] = (64, 128, 128, 10)
BATCH = 64


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Pin numpy's BLAS to one thread, so timings compare Python overhead, not core counts."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl the timings are still valid, just noisier
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def fixed_malloc_thresholds() -> None:
    """Stop glibc from moving its mmap threshold while the benchmark runs.

    glibc serves large blocks (128 KiB and up, such as a 128x128 float64 gradient) with mmap
    and raises that threshold the first time such a block is freed; until then every large
    array is a fresh mapping whose pages fault in on first touch. Which code runs first then
    decides whether the engine or the numpy reference pays those page faults, and a ratio can
    swing by 2x. Fixing the thresholds gives both the same allocator, whatever the order.
    Elsewhere than Linux with glibc this does nothing.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # the mallopt parameter numbers of glibc
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # serve blocks below 32 MiB from the heap
    libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)  # and keep freed heap memory for reuse


@dataclass
class Timing:
    """Median and spread of repeated timings of one function, in seconds per call."""

    label: str
    median: float
    best: float
    repeats: int
    calls_per_repeat: int
    page_faults_per_call: float | None = None

    def __str__(self) -> str:
        faults = ("" if self.page_faults_per_call is None
                  else f", {self.page_faults_per_call:.1f} page faults/call")
        return (f"{self.label:<34} median {self.median * 1e6:8.1f} us   "
                f"best {self.best * 1e6:8.1f} us   ({self.repeats} x {self.calls_per_repeat} calls"
                f"{faults})")


try:
    import resource
except ImportError:  # Windows: no page-fault counts
    resource = None  # type: ignore[assignment]


def _minor_page_faults() -> int:
    """Page faults served without disk so far in this process (0 where the OS does not say).

    Many per call mean the memory allocator gives memory back to the operating system and
    takes it again on every call, which can cost more than the arithmetic.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def _calls_lasting(fn: Callable[[], Any], seconds: float) -> int:
    """How many calls of ``fn`` in a row take at least ``seconds`` (a power of two)."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start >= seconds:
            return calls
        calls *= 2


def time_calls(fns: Sequence[tuple[str, Callable[[], Any]]], repeats: int = 21,
               min_seconds_per_repeat: float = 0.02, warmup: int = 3) -> list[Timing]:
    """Time several functions, interleaved: repeat r times each of them once in turn.

    Each repeat runs a function enough times in a row to last ``min_seconds_per_repeat``.
    Interleaving means a slow spell of the machine affects every function alike, and the
    median over repeats ignores the occasional slow repeat (another process, the GC).
    """
    for _, fn in fns:
        for _ in range(warmup):
            fn()
    calls = [_calls_lasting(fn, min_seconds_per_repeat) for _, fn in fns]
    per_call: list[list[float]] = [[] for _ in fns]
    faults = [0 for _ in fns]
    for _ in range(repeats):
        for i, ((_, fn), n, samples) in enumerate(zip(fns, calls, per_call)):
            faults_before = _minor_page_faults()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - start) / n)
            faults[i] += _minor_page_faults() - faults_before
    return [Timing(label, statistics.median(s), min(s), repeats, n,
                   f / (repeats * n) if resource else None)
            for (label, _), n, s, f in zip(fns, calls, per_call, faults)]


def random_digits_like(batch: int = BATCH, features: int = SIZES[0], classes: int = SIZES[-1],
                       dtype: Any = np.float64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random data of the digits shape: X (batch, features) in [0, 16] like pixel counts, labels."""
    rng = np.random.default_rng(seed)
    X = (rng.uniform(0.0, 16.0, (batch, features)) / 16.0).astype(dtype)
    y = rng.integers(0, classes, batch)
    return X, y


def init_params(sizes: Sequence[int] = SIZES, dtype: Any = np.float64,
                seed: int = 0) -> list[np.ndarray]:
    """Weights (in, out) and biases (out,), uniform in ±1/sqrt(in): [W1, b1, W2, b2, ...]."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_in)
        params.append(rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype))
        params.append(rng.uniform(-bound, bound, (n_out,)).astype(dtype))
    return params


def numpy_forward(params: Sequence[np.ndarray], X: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The tanh MLP's forward pass by hand: each layer's input (X first) and the output logits."""
    Ws, bs = params[0::2], params[1::2]
    hs = [X]
    for W, b in zip(Ws[:-1], bs[:-1]):
        hs.append(np.tanh(hs[-1] @ W + b))
    return hs, hs[-1] @ Ws[-1] + bs[-1]


def numpy_mlp_loss_and_grads(params: Sequence[np.ndarray], X: np.ndarray,
                             y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Mean softmax cross-entropy of a tanh MLP and its gradients, by hand.

    Args:
        params: [W1, b1, W2, b2, ...], W of shape (in, out), b of shape (out,).
        X: inputs, shape (B, in). y: integer labels, shape (B,).

    Returns:
        The loss and the gradients aligned with ``params``.
    """
    Ws = params[0::2]
    B = X.shape[0]
    hs, logits = numpy_forward(params, X)  # keeps every layer's input for the backward pass
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    rows = np.arange(B)
    loss = float(np.mean(np.log(sum_exp[:, 0]) - shifted[rows, y]))
    # backward: d(mean CE)/d logits = (softmax - onehot) / B
    d = exp / sum_exp
    d[rows, y] -= 1
    d /= B
    grads: list[np.ndarray] = []
    for layer in range(len(Ws) - 1, -1, -1):
        h = hs[layer]
        grads.append(d.sum(axis=0))  # bias
        grads.append(h.T @ d)        # weight
        if layer:
            d = (d @ Ws[layer].T) * (1 - h * h)  # through tanh: 1 - tanh^2
    grads.reverse()
    return loss, grads


def numpy_sgd_step(params: list[np.ndarray], X: np.ndarray, y: np.ndarray, lr: float) -> float:
    """One training step of the hand-written reference: forward, loss, backward, SGD update."""
    loss, grads = numpy_mlp_loss_and_grads(params, X, y)
    for p, g in zip(params, grads):
        p -= lr * g
    return loss
