"""Run under mpiexec by tests/test_distributed.py: every rank checks, rank 0 prints one report.

    mpiexec -n 3 python tests/mpi/checks.py TMPDIR

Each rank computes, besides its own share, the single-process answer on the whole batch (every
rank holds all the data), so it can compare the two itself. Rank 0 gathers the ranks' results
and prints them as one line "REPORT {json}"; the test file asserts on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from mpi4py import MPI

from tinygrad_mb import minibatch, nn, optim
from tinygrad_mb.data import make_moons, make_regression
from tinygrad_mb.distributed import abort_on_error, data_parallel_gradient

comm = MPI.COMM_WORLD
rank, K = comm.Get_rank(), comm.Get_size()
# Uneven shard sizes (rank 0 first), each layout with and without an empty shard.
LAYOUTS: dict[int, list[tuple[int, ...]]] = {2: [(5, 1), (0, 4)], 3: [(5, 3, 1), (4, 0, 2)]}


def max_diff(a: Sequence[Any], b: Sequence[Any]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def digest(arrays: Sequence[np.ndarray]) -> str:
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


def gradient_case(loss_fn: Callable[..., Any], X: np.ndarray, y: np.ndarray, sizes: Sequence[int]) -> dict:
    bounds = np.cumsum([0, *sizes])
    shards = [slice(bounds[k], bounds[k + 1]) for k in range(K)]
    mine = shards[rank]
    model = nn.MLP([2, 8, 2], rng=0)
    params = model.parameters()
    before = [p.data.copy() for p in params]
    result: dict[str, Any] = {"sizes": list(sizes)}

    true = minibatch.batched_mean(model, loss_fn, X, y)  # one process, the concatenated batch
    means = [minibatch.batched_mean(model, loss_fn, X[s], y[s]) for s in shards if s.stop > s.start]
    equal_formula = [np.mean(gs, axis=0) for gs in zip(*means)]  # (1/K) Σ_k mean gradient of shard k

    got = data_parallel_gradient(model, loss_fn, X[mine], y[mine])
    result.update(samples_diff=max_diff(got, true), loss_diff=abs(got.loss - true.loss),
                  grad_is_result=max_diff([p.grad for p in params], got) == 0.0,
                  params_unchanged=max_diff([p.data for p in params], before) == 0.0,
                  digest=digest(got))

    sentinel = [np.full(p.shape, 7.0) for p in params]
    for p, s in zip(params, sentinel):
        p.grad = s.copy()
    try:
        equal = data_parallel_gradient(model, loss_fn, X[mine], y[mine], weighting="equal")
        result.update(equal_diff=max_diff(equal, true), equal_vs_formula=max_diff(equal, equal_formula))
    except ValueError as exc:
        result.update(equal_error=str(exc), equal_grad_kept=max_diff([p.grad for p in params], sentinel) == 0.0)

    # The last rank passes a broken shard (one target missing): it raises its own error, the
    # others learn of it through the all-reduce, and no rank's .grad changes.
    for p, s in zip(params, sentinel):
        p.grad = s.copy()
    y_mine = y[mine][:-1] if rank == K - 1 else y[mine]
    X_mine = X[mine] if len(X[mine]) else X[:1]  # an empty shard gets one sample, so it mismatches
    try:
        data_parallel_gradient(model, loss_fn, X_mine if rank == K - 1 else X[mine], y_mine)
        result["failure"] = "no error"
    except (ValueError, RuntimeError) as exc:
        result["failure"] = f"{type(exc).__name__}: {exc}"
    result["failure_grad_kept"] = max_diff([p.grad for p in params], sentinel) == 0.0
    return result


def gradient_checks() -> list[dict]:
    results = []
    for sizes in LAYOUTS[K]:
        n = sum(sizes)
        problems: list[tuple[str, Callable[..., Any], tuple[np.ndarray, np.ndarray]]] = [
            ("cross_entropy", nn.cross_entropy, make_moons(n, seed=1)),
            ("mse", nn.mse_loss, make_regression(n, 2, 2, seed=1))]
        for name, loss_fn, (X, y) in problems:
            results.append({"loss_fn": name, **gradient_case(loss_fn, X, y, sizes)})
    return results


def trainer_checks(tmp: str) -> dict:
    """3 epochs of batches of 5 from 22 samples (the last batch 2: an empty shard on 3 ranks)."""
    from tinygrad_mb.train import Trainer

    X, y = make_moons(22, noise=0.1, seed=2)

    def sgd(model: nn.Module) -> optim.SGD:
        return optim.SGD(model.parameters(), lr=0.3, momentum=0.9)

    reference = nn.MLP([2, 8, 2], rng=0)
    ref_history = Trainer(reference, nn.cross_entropy, sgd(reference), progress=False).fit(
        X, y, batch_size=5, epochs=3, seed=0)
    model = nn.MLP([2, 8, 2], rng=0 if rank == 0 else 100 + rank)  # rank 0's weights must reach all
    stderr = io.StringIO()
    try:
        trainer = Trainer(model, nn.cross_entropy, sgd(model), strategy="data_parallel", comm=comm,
                          progress=True, checkpoint=os.path.join(tmp, f"checkpoint-rank{rank}.pkl"))
        with contextlib.redirect_stderr(stderr):
            history = trainer.fit(X, y, batch_size=5, epochs=3, seed=0)
    except Exception as exc:  # before train.py knows "data_parallel", every rank raises the same error
        return {"error": f"{type(exc).__name__}: {exc}"}
    final = [p.data for p in model.parameters()]
    return {"param_diff": max_diff(final, [p.data for p in reference.parameters()]),
            "loss_diff": max(abs(a - b) for a, b in zip(history["loss"], ref_history["loss"])),
            "digest": digest(final),
            "progress_shown": "training (data_parallel)" in stderr.getvalue(),
            "checkpoint_written": os.path.exists(os.path.join(tmp, f"checkpoint-rank{rank}.pkl"))}


def main() -> None:
    with abort_on_error(comm):  # a rank failing alone must not leave the others waiting
        mine = {"rank": rank, "gradients": gradient_checks(), "trainer": trainer_checks(sys.argv[1])}
        everyone = comm.gather(mine, root=0)
    if rank == 0:
        print("REPORT " + json.dumps({"size": K, "ranks": everyone}), flush=True)


if __name__ == "__main__":
    main()
