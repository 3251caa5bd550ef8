"""Run under mpiexec by tests/test_distributed.py: ranks that disagree must all raise, never wait.

    mpiexec -n 2 python tests/mpi/disagreements.py TMPDIR

Each case makes one rank differ from the others (an argument, a model, an optimizer, a
checkpoint) and records, on every rank, what the call raised. A case that hangs hangs the
whole launch, which the test's timeout turns into a failure. Rank 0 prints "REPORT {json}".
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI

from tinygrad_mb import nn, optim
from tinygrad_mb.data import make_moons
from tinygrad_mb.distributed import abort_on_error, data_parallel_gradient
from tinygrad_mb.train import Trainer

comm = MPI.COMM_WORLD
rank, K = comm.Get_rank(), comm.Get_size()
X, y = make_moons(12, noise=0.1, seed=3)
TMP = sys.argv[1]


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
        return "ok"
    except Exception as exc:  # what this rank raised, to compare across ranks
        return f"{type(exc).__name__}: {exc}"


def trainer(model: nn.Module | None = None, opt: Callable[[nn.Module], optim.Optimizer] | None = None,
            **kwargs: Any) -> Trainer:
    model = model or nn.MLP([2, 4, 2], rng=0)
    return Trainer(model, nn.cross_entropy, (opt or (lambda m: optim.SGD(m.parameters(), lr=0.1)))(model),
                   strategy="data_parallel", progress=False, **kwargs)


def mine(n: int) -> slice:
    return slice(rank * n // K, (rank + 1) * n // K)


def cases() -> dict[str, Any]:
    report: dict[str, Any] = {}
    s = mine(len(X))
    # data_parallel_gradient: a bad argument on the last rank only; a different weighting; another model
    report["bad_weighting_on_one_rank"] = outcome(lambda: data_parallel_gradient(
        nn.MLP([2, 4, 2], rng=0), nn.cross_entropy, X[s], y[s], weighting="mean" if rank == K - 1 else "samples"))
    report["weightings_differ"] = outcome(lambda: data_parallel_gradient(
        nn.MLP([2, 4, 2], rng=0), nn.cross_entropy, X[s], y[s], weighting="equal" if rank == 0 else "samples"))
    report["models_differ"] = outcome(lambda: data_parallel_gradient(
        nn.MLP([2, 40 if rank == 0 else 4, 2], rng=0), nn.cross_entropy, X[s], y[s]))
    report["dtypes_differ"] = outcome(lambda: data_parallel_gradient(
        nn.MLP([2, 4, 2], rng=0, dtype=np.float32 if rank == 0 else np.float64), nn.cross_entropy, X[s], y[s]))
    report["not_a_communicator"] = outcome(lambda: data_parallel_gradient(
        nn.MLP([2, 4, 2], rng=0), nn.cross_entropy, X[s], y[s], comm="world"))
    report["null_communicator"] = outcome(lambda: trainer(comm=MPI.COMM_NULL))

    # Trainer.fit: a check that fails on one rank only, before training
    report["batch_size_0_on_one_rank"] = outcome(lambda: trainer().fit(X, y, batch_size=0 if rank == K - 1 else 4,
                                                                       epochs=1))
    bad_path = os.path.join(TMP, "a_file", "run.ckpt")  # a folder on the way is a file: rank 0 cannot write it
    open(os.path.join(TMP, "a_file"), "w").close() if rank == 0 else None
    comm.Barrier()
    report["checkpoint_unwritable_on_rank_0"] = outcome(lambda: trainer(
        checkpoint=bad_path if rank == 0 else os.path.join(TMP, "fine.ckpt")).fit(X, y, batch_size=4, epochs=1))
    # the optimizers: SGLD drawing its own seed on every rank; learning rates that differ
    report["sgld_without_a_seed"] = outcome(lambda: trainer(opt=lambda m: optim.SGLD(
        m.parameters(), lr=1e-3, dataset_size=len(X))).fit(X, y, batch_size=4, epochs=1))
    report["learning_rates_differ"] = outcome(lambda: trainer(opt=lambda m: optim.SGD(
        m.parameters(), lr=0.1 * (rank + 1))).fit(X, y, batch_size=4, epochs=1))
    # a checkpoint loaded on rank 0 only
    path = os.path.join(TMP, "resume.ckpt")
    first = trainer(checkpoint=path)
    first.fit(X, y, batch_size=4, epochs=1)
    comm.Barrier()
    resumed = trainer(checkpoint=os.path.join(TMP, "resume2.ckpt"))
    if rank == 0:
        resumed.load(path)
    report["loaded_on_rank_0_only"] = outcome(lambda: resumed.fit(X, y, batch_size=4, epochs=2))

    # frozen tensors start equal on every rank too (they used to keep each rank's own values)
    model = nn.MLP([2, 4, 2], rng=rank)  # every rank builds different weights: rank 0's must reach all
    model[0].weight.requires_grad = False
    frozen_before = model[0].weight.data.copy()
    trainer(model).fit(X, y, batch_size=4, epochs=2)
    gathered = comm.allgather(model[0].weight.data.tolist())
    report["frozen_equal_everywhere"] = all(np.array_equal(g, gathered[0]) for g in gathered)
    report["frozen_is_rank_0s"] = bool(np.array_equal(comm.bcast(frozen_before, root=0), model[0].weight.data))

    # fit after fit with a checkpoint: only rank 0 probes and writes it, so no rank removes rank 0's file
    repeated = trainer(checkpoint=os.path.join(TMP, "repeated.ckpt"))
    report["twenty_fits_with_a_checkpoint"] = outcome(lambda: [repeated.fit(X, y, batch_size=6, epochs=k)
                                                               for k in range(1, 21)])
    return report


def main() -> None:
    with abort_on_error(comm):
        everyone = comm.gather({"rank": rank, **cases()}, root=0)
    if rank == 0:
        print("REPORT " + json.dumps({"size": K, "ranks": everyone}), flush=True)


if __name__ == "__main__":
    main()
