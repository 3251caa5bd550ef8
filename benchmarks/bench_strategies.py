"""What does each way of computing the mini-batch gradient cost, in time and in memory?

1. ``per_sample_average`` (a forward and backward pass per sample, then an SGD update) over a
   batch of 64, against the hand-written numpy *batched* training step of the same network.
   Target: at most 25 times the numpy step (a per-sample loop in an eager framework such as
   PyTorch measures 35-55 times on this comparison).
2. ``per_sample_gradients`` (vectorised: one batched pass, then outer products) against a
   hand-written numpy computation of the same per-sample gradients. Target: at most 1.3 times.
   For context (no target) also against numpy computing everything the engine returns: the
   per-sample gradients, their mean (left in .grad) and the loss.
3. ``per_sample_grad_norms`` (each sample's gradient norm from row norms, no per-sample
   gradients) against the numpy batched step. Target: at most 1.5 times.
4. Peak memory, measured with tracemalloc, of ``per_sample_average``, ``accumulated(m=16)``
   and ``batched_mean`` at B = 256 and B = 2048 on a wide network (64-1024-1024-10): the first
   two keep the activations of one sample or one chunk, so their peak must not grow with B;
   the batched mean holds the activations of the whole batch, so its peak does. Then the peak
   of ``per_sample_grad_norms`` against ``per_sample_gradients`` at B = 1024 on that network
   (the stacked gradients take B × parameters × 8 bytes, about 8.6 GiB).

The network of 1 and 2 is the MLP 64-128-128-10 (tanh, mean softmax cross-entropy) of
``benchmarks.common``. Timings are medians of interleaved repeats with BLAS pinned to one
thread, and each ratio is taken between timings of the same run. Before timing, every engine
result is checked against the numpy reference.

    python -m benchmarks.bench_strategies       (or: python -m benchmarks strategies)
"""

from __future__ import annotations

import functools
import gc
import math
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.common import (
    SIZES,
    fixed_malloc_thresholds,
    init_params,
    numpy_forward,
    numpy_mlp_loss_and_grads,
    numpy_sgd_step,
    one_blas_thread,
    random_digits_like,
    time_calls,
)
from tinygrad_mb import minibatch, nn, optim

PER_SAMPLE_TARGET = 25.0
PER_SAMPLE_GRADIENTS_TARGET = 1.3
NORMS_TARGET = 1.5  # per_sample_grad_norms / the numpy batched step
NORMS_BATCH = 1024  # the memory comparison of the norms on the wide model
LR = 1e-3
WIDE_SIZES = (64, 1024, 1024, 10)
MEMORY_BATCHES = (256, 2048)
MICRO_BATCH = 16


def numpy_per_sample_gradients(params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The B per-sample gradients of the tanh MLP's cross-entropy, vectorised by hand.

    One batched forward and backward pass, with the output error of each sample *not* divided
    by B, then for each layer the outer products of inputs and output errors (weights) and the
    output errors themselves (biases). Returns arrays of shape (B, *param.shape), aligned with
    ``params``.
    """
    return _numpy_per_sample(params, X, y, also_mean=False)[0]


def numpy_per_sample_gradients_mean_and_loss(params: Sequence[np.ndarray], X: np.ndarray,
                                             y: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Everything ``per_sample_gradients`` delivers, by hand: the per-sample gradients, their
    mean (the batched gradient, which the engine leaves in .grad) and the mean loss.

    Not a target: it shows how much of the engine's time over ``numpy_per_sample_gradients``
    is this extra output and how much is the engine itself.
    """
    return _numpy_per_sample(params, X, y, also_mean=True)


def _numpy_per_sample(params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray,
                      also_mean: bool) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    Ws = params[0::2]
    B = X.shape[0]
    hs, logits = numpy_forward(params, X)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    d = exp / sum_exp  # ∂ℓ_i/∂logits_i = softmax - onehot
    d[np.arange(B), y] -= 1
    loss = float(np.mean(np.log(sum_exp[:, 0]) - shifted[np.arange(B), y])) if also_mean else math.nan
    grads: list[np.ndarray] = []
    means: list[np.ndarray] = []
    for layer in range(len(Ws) - 1, -1, -1):
        h = hs[layer]
        grads.append(d)                                # bias
        grads.append(np.einsum("bi,bo->bio", h, d))    # weight: outer(h_i, d_i) per sample
        if also_mean:
            means += [d.mean(axis=0), h.T @ d / B]
        if layer:
            d = (d @ Ws[layer].T) * (1 - h * h)
    grads.reverse()
    means.reverse()
    return grads, means, loss


def engine_model(sizes: Sequence[int] = SIZES, seed: int = 0) -> nn.MLP:
    """The engine's MLP with the reference's starting weights."""
    model = nn.MLP(list(sizes), activation="tanh")
    for p, value in zip(model.parameters(), init_params(sizes, np.float64, seed)):
        p.data = value
    return model


def check_agreement() -> None:
    """The strategies compute what the numpy references compute (float64 rounding apart)."""
    X, y = random_digits_like()
    params = init_params(SIZES)
    model = engine_model()
    _, batched = numpy_mlp_loss_and_grads(params, X, y)
    for name, grads in (("per_sample_average", minibatch.per_sample_average(model, nn.cross_entropy, X, y)),
                        ("accumulated", minibatch.accumulated(model, nn.cross_entropy, X, y, MICRO_BATCH)),
                        ("batched_mean", minibatch.batched_mean(model, nn.cross_entropy, X, y))):
        for g, ref in zip(grads, batched):
            np.testing.assert_allclose(g, ref, rtol=0, atol=1e-12, err_msg=name)
    stacked = minibatch.per_sample_gradients(model, nn.cross_entropy, X, y)
    per_sample, means, loss = numpy_per_sample_gradients_mean_and_loss(params, X, y)
    for g, ref in zip(stacked, numpy_per_sample_gradients(params, X, y)):
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-12, err_msg="per_sample_gradients")
    for g, ref, mean, p in zip(stacked, per_sample, means, model.parameters()):
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-12, err_msg="per-sample gradients beside their mean")
        np.testing.assert_allclose(p.grad, mean, rtol=0, atol=1e-12, err_msg="per_sample_gradients' .grad")
    np.testing.assert_allclose(stacked.loss, loss, rtol=1e-12, err_msg="per_sample_gradients' loss")


def per_sample_step(model: nn.MLP, opt: optim.SGD, X: np.ndarray, y: np.ndarray) -> None:
    minibatch.per_sample_average(model, nn.cross_entropy, X, y)
    opt.step()


def compare_times() -> None:
    X, y = random_digits_like()
    params = init_params(SIZES)
    model = engine_model()
    opt = optim.SGD(model.parameters(), lr=LR)
    psg_model = engine_model()
    norms_model = engine_model()
    step, psa, ref_psg, ref_all, psg, norms = time_calls([
        ("numpy batched step", lambda: numpy_sgd_step(params, X, y, LR)),
        ("per_sample_average + SGD step", lambda: per_sample_step(model, opt, X, y)),
        ("numpy per-sample gradients", lambda: numpy_per_sample_gradients(params, X, y)),
        ("numpy per-sample + mean + loss", lambda: numpy_per_sample_gradients_mean_and_loss(params, X, y)),
        ("per_sample_gradients", lambda: minibatch.per_sample_gradients(psg_model, nn.cross_entropy, X, y)),
        ("per_sample_grad_norms", lambda: minibatch.per_sample_grad_norms(norms_model, nn.cross_entropy, X, y)),
    ])
    for timing in (step, psa, ref_psg, ref_all, psg, norms):
        print(f"  {timing}")
    ratio = psa.median / step.median
    print(f"  per_sample_average / numpy batched step   = {ratio:6.2f}  "
          f"({verdict(ratio <= PER_SAMPLE_TARGET)} the target <= {PER_SAMPLE_TARGET:g})")
    ratio = psg.median / ref_psg.median
    print(f"  per_sample_gradients / numpy per-sample   = {ratio:6.2f}  "
          f"({verdict(ratio <= PER_SAMPLE_GRADIENTS_TARGET)} the target <= {PER_SAMPLE_GRADIENTS_TARGET:g})")
    print(f"  (per_sample_gradients / numpy per-sample + mean + loss = {psg.median / ref_all.median:.2f}: "
          f"the engine also leaves the mean in .grad and returns the loss; not a target)")
    ratio = norms.median / step.median
    print(f"  per_sample_grad_norms / numpy batched step = {ratio:5.2f}  "
          f"({verdict(ratio <= NORMS_TARGET)} the target <= {NORMS_TARGET:g})")
    print(f"  (numpy per-sample / numpy batched step    = {ref_psg.median / step.median:6.2f})")


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak memory allocated while ``fn`` runs, beyond what was allocated before it (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def compare_memory() -> None:
    model = engine_model(WIDE_SIZES)
    strategies: list[tuple[str, Callable[..., Any]]] = [
        ("per_sample_average", minibatch.per_sample_average),
        (f"accumulated(m={MICRO_BATCH})", functools.partial(minibatch.accumulated, micro_batch=MICRO_BATCH)),
        ("batched_mean", minibatch.batched_mean),
    ]
    n_params = sum(p.data.size for p in model.parameters())
    print(f"  MLP {'-'.join(map(str, WIDE_SIZES))}: {n_params:,} parameters "
          f"= {n_params * 8 / 2**20:.1f} MiB per copy (values, .grad, returned gradients)")
    header = "".join(f"{f'B = {b}':>14}" for b in MEMORY_BATCHES)
    print(f"  {'peak memory (MiB)':<24}{header}{'growth':>10}")
    for name, strategy in strategies:
        peaks = []
        for batch in MEMORY_BATCHES:
            X, y = random_digits_like(batch=batch, features=WIDE_SIZES[0], classes=WIDE_SIZES[-1])
            peaks.append(peak_bytes(lambda: strategy(model, nn.cross_entropy, X, y)))  # noqa: B023
            for p in model.parameters():
                p.grad = None  # each measurement starts from the same state
        growth = peaks[-1] / peaks[0]
        shape = "flat" if growth < 1.1 else "grows with B"
        cells = "".join(f"{peak / 2**20:14.1f}" for peak in peaks)
        print(f"  {name:<24}{cells}{growth:9.2f}x  {shape}")


def compare_norms_memory() -> None:
    """Peak memory of the norms against stacking per-sample gradients, on the wide model."""
    model = engine_model(WIDE_SIZES)
    X, y = random_digits_like(batch=NORMS_BATCH, features=WIDE_SIZES[0], classes=WIDE_SIZES[-1])
    peaks = {}
    for name, fn in (("per_sample_gradients", minibatch.per_sample_gradients),
                     ("per_sample_grad_norms", minibatch.per_sample_grad_norms)):
        peaks[name] = peak_bytes(lambda: fn(model, nn.cross_entropy, X, y))  # noqa: B023
        for p in model.parameters():
            p.grad = None
    for name, peak in peaks.items():
        print(f"  {name:<24}{peak / 2**20:10.1f} MiB")
    ratio = peaks["per_sample_gradients"] / peaks["per_sample_grad_norms"]
    print(f"  per_sample_gradients / per_sample_grad_norms = {ratio:.1f}x the memory")


def main() -> None:
    sizes = "-".join(map(str, SIZES))
    print(f"Mini-batch strategies vs hand-written numpy, MLP {sizes} (tanh), batch 64, "
          f"cross-entropy; one BLAS thread")
    fixed_malloc_thresholds()
    with one_blas_thread():
        check_agreement()
        compare_times()
        print(f"\nPeak memory with tracemalloc (one gradient of a batch; B = {MEMORY_BATCHES})")
        compare_memory()
        sizes_wide = "-".join(map(str, WIDE_SIZES))
        print(f"\nPeak memory of per-sample gradient norms, MLP {sizes_wide}, B = {NORMS_BATCH}")
        compare_norms_memory()


if __name__ == "__main__":
    main()
