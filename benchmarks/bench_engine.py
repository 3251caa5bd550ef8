"""How much does the engine's bookkeeping cost? One training step, engine vs hand-written numpy.

The step is: forward an MLP 64-128-128-10 (tanh) on a batch of 64, mean softmax
cross-entropy, backward, SGD update. Both sides run in this process with BLAS pinned to one
thread, in float64 and in float32. The target is an engine step at most 1.5 times the
numpy step.

Before timing, the two implementations are checked against each other: same starting
weights and data must give the same loss and the same gradients, and float32 must stay
float32 in every value and gradient.

Reading the numbers: each line gives the median over 21 interleaved repeats and the page
faults per step. Page faults near zero mean the memory allocator reuses memory from step to
step; many (tens or more) mean freed memory goes back to the operating system and comes back
on the next step, which costs more than the arithmetic. The engine keeps every intermediate
array and gradient until the graph is dropped, so it is the more exposed of the two; whether
it happens depends on glibc's heuristics and the heap's history, not on the engine's code.
Environment variables that tune OpenBLAS for another CPU (OPENBLAS_CORETYPE, for example)
slow numpy down; leave them unset for this run.

    python -m benchmarks engine
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import (
    BATCH,
    SIZES,
    Timing,
    fixed_malloc_thresholds,
    init_params,
    numpy_mlp_loss_and_grads,
    numpy_sgd_step,
    one_blas_thread,
    random_digits_like,
    time_calls,
)
from tinygrad_mb import Tensor, nn, optim

TARGET_RATIO = 1.5
LR = 0.01


def engine_model(dtype: Any, seed: int = 0) -> nn.MLP:
    """The engine's MLP, with the reference's starting weights."""
    model = nn.MLP(list(SIZES), activation="tanh", dtype=dtype)
    for p, value in zip(model.parameters(), init_params(SIZES, dtype, seed)):
        p.data = value
    return model


class TrainingLoop:
    """The body of a training loop with the engine, exactly as a learner writes it::

        for step in range(n):
            opt.zero_grad()
            loss = nn.cross_entropy(model(Tensor(X)), y)
            loss.backward()
            opt.step()

    As in that loop, ``loss`` (and with it the last step's graph) lives until the next step
    replaces it.
    """

    def __init__(self, model: nn.MLP, opt: optim.Optimizer, X: np.ndarray, y: np.ndarray):
        self.model, self.opt, self.X, self.y = model, opt, X, y
        self.loss: Tensor | None = None

    def step(self) -> None:
        self.opt.zero_grad()
        self.loss = nn.cross_entropy(self.model(Tensor(self.X)), self.y)
        self.loss.backward()
        self.opt.step()


def check_agreement(dtype: Any) -> None:
    """The engine and the reference compute the same loss and gradients; float32 stays float32."""
    X, y = random_digits_like(dtype=dtype)
    model = engine_model(dtype)
    loss = nn.cross_entropy(model(Tensor(X)), y)
    loss.backward()
    ref_loss, ref_grads = numpy_mlp_loss_and_grads(init_params(SIZES, dtype), X, y)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    if loss.dtype != dtype:
        raise AssertionError(f"the loss is {loss.dtype}, expected {np.dtype(dtype)}")
    np.testing.assert_allclose(loss.item(), ref_loss, rtol=tol)
    for p, g in zip(model.parameters(), ref_grads):
        if p.grad is None or p.grad.dtype != dtype:
            raise AssertionError(f"{p.name}.grad is not a {np.dtype(dtype)} array")
        np.testing.assert_allclose(p.grad, g, rtol=tol * 10, atol=tol)
    optim.SGD(model.parameters(), lr=LR).step()
    if any(p.dtype != dtype for p in model.parameters()):
        raise AssertionError("SGD changed a parameter's dtype")


def compare(dtype: Any) -> tuple[Timing, Timing]:
    """Median step time of the engine and of the reference, in the given dtype."""
    X, y = random_digits_like(dtype=dtype)
    model = engine_model(dtype)
    opt = optim.SGD(model.parameters(), lr=LR)
    params = init_params(SIZES, dtype)
    name = np.dtype(dtype).name
    loop = TrainingLoop(model, opt, X, y)
    eng, ref = time_calls([
        (f"tinygrad_mb step ({name})", loop.step),
        (f"numpy reference step ({name})", lambda: numpy_sgd_step(params, X, y, LR)),
    ])
    return eng, ref


def main() -> None:
    sizes = "-".join(map(str, SIZES))
    print(f"One training step, MLP {sizes} (tanh), batch {BATCH}, mean cross-entropy, SGD; "
          f"one BLAS thread")
    fixed_malloc_thresholds()
    with one_blas_thread():
        for dtype in (np.float64, np.float32):
            check_agreement(dtype)
            eng, ref = compare(dtype)
            ratio = eng.median / ref.median
            verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
            print(ref)
            print(eng)
            print(f"  ratio engine / numpy = {ratio:.2f}  ({verdict} the target <= {TARGET_RATIO})")


if __name__ == "__main__":
    main()
