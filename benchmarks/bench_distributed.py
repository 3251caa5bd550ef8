"""Does data parallelism pay? One training step on 1 and on 2 MPI ranks, and what the all-reduce costs.

The step is ``data_parallel_gradient`` (each rank: forward and backward of its share of the
batch, then ONE all-reduce of the flat gradient buffer) followed by an SGD update, on an MLP
64-512-512-10 (tanh, mean cross-entropy) with a batch of 512: big enough for the arithmetic to
dominate. Target: a speed-up of at least 1.6 on 2 ranks (one per core of a 2-core machine).

Each rank pins its BLAS to one thread, so that 2 ranks use 2 cores and 1 rank uses 1. One run
of 2 ranks measures everything, interleaved within each repeat so that a slow spell of the
machine affects every figure alike: the 2-rank step (from a barrier until the slower rank is
done), and the 1-rank step, run by rank 0 alone on MPI.COMM_SELF while the other rank sleeps,
beside the single-process ``batched_mean`` step. Medians over the repeats, and their ratios;
besides the step times:

- the all-reduce alone (the same 2.4 MB buffer, after a barrier) as a share of the step, and
  the time spent inside the all-reduce during the steps (which also counts waiting for the
  slower rank);
- the all-reduce's bandwidth (buffer bytes / time) against ``numpy.copyto`` of the same buffer
  in one process, the local memory-copy limit: between processes on one machine the all-reduce
  moves the data through shared memory, at best a few copies' worth;
- the 2-rank step without its all-reduce (each rank ``batched_mean`` on its half): the speed-up
  the cores allow at that moment.

Run it on a quiet machine: another busy process takes a core from one of the ranks, and the
other waits for it at every all-reduce (the last figure then drops well below 2).

Before timing, each rank checks that its data-parallel gradient equals the single-process
``batched_mean`` of the whole batch. ``main()`` starts the ranks with the ``mpiexec`` next to
this Python, so ``python -m benchmarks distributed`` runs it like any other benchmark:

    python -m benchmarks distributed
    mpiexec -n 2 python -m benchmarks.bench_distributed --worker     # the measurements, as JSON
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import fixed_malloc_thresholds, init_params, one_blas_thread, random_digits_like

SIZES = (64, 512, 512, 10)
BATCH = 512
LR = 1e-3
REPEATS = 21
TARGET_SPEEDUP = 1.6
ROOT = Path(__file__).resolve().parent.parent


class TimedComm:
    """A communicator that behaves like ``comm`` and records how long each Allreduce took."""

    def __init__(self, comm: Any):
        self.comm = comm
        self.seconds: list[float] = []

    def Allreduce(self, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        self.comm.Allreduce(*args, **kwargs)
        self.seconds.append(time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.comm, name)


def interleaved(comm: Any, fns: list[tuple[str, bool, Callable[[], Any]]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed in turn within every repeat (so a slow spell of the
    machine affects all alike), from a barrier until the slowest rank is done.

    ``fns`` holds (label, every_rank, fn): with every_rank False only rank 0 runs fn and the other
    ranks wait without spinning, so rank 0 has the machine to itself, as a single process would.
    """
    mine: dict[str, list[float]] = {label: [] for label, _, _ in fns}
    for _ in range(repeats):
        for label, every_rank, fn in fns:
            comm.Barrier()
            start = time.perf_counter()
            if every_rank or comm.Get_rank() == 0:
                fn()
            mine[label].append(time.perf_counter() - start)
            if not every_rank:  # sleep in small steps rather than spin in a blocking barrier
                request = comm.Ibarrier()
                while not request.Test():
                    time.sleep(1e-4)
    everyone = comm.allgather(mine)
    return {label: statistics.median([max(ts) for ts in zip(*(r[label] for r in everyone))] if every_rank
                                     else mine[label]) for label, every_rank, _ in fns}


def worker() -> dict[str, Any] | None:
    """Measure on 2 ranks; rank 0 returns the medians, the other None.

    The 1-rank figures are measured in the same run, by rank 0 alone on the communicator
    MPI.COMM_SELF, interleaved with the 2-rank ones.
    """
    from mpi4py import MPI

    from tinygrad_mb import minibatch, nn, optim
    from tinygrad_mb.distributed import data_parallel_gradient, shard

    comm = MPI.COMM_WORLD
    rank, K = comm.Get_rank(), comm.Get_size()
    if K != 2:
        raise SystemExit(f"bench_distributed --worker: run it on 2 ranks (mpiexec -n 2), not {K}")
    X, y = random_digits_like(batch=BATCH, features=SIZES[0], classes=SIZES[-1])

    def mlp() -> tuple[nn.MLP, optim.SGD]:
        model = nn.MLP(list(SIZES), activation="tanh")
        for p, value in zip(model.parameters(), init_params(SIZES)):
            p.data = value
        return model, optim.SGD(model.parameters(), lr=LR)

    (model, opt), (model1, opt1), (reference, ref_opt) = mlp(), mlp(), mlp()
    mine = shard(BATCH, rank, K)
    timed_comm: Any = TimedComm(comm)  # passed where an MPI.Comm is expected

    true = minibatch.batched_mean(model, nn.cross_entropy, X, y)
    got = data_parallel_gradient(model, nn.cross_entropy, X[mine], y[mine], comm)
    error = max(float(np.max(np.abs(a - b))) for a, b in zip(got, true))
    if error > 1e-12:
        raise AssertionError(f"rank {rank}: the data-parallel gradient is {error:.1e} from batched_mean's")

    def step_2_ranks() -> None:
        data_parallel_gradient(model, nn.cross_entropy, X[mine], y[mine], timed_comm)
        opt.step()

    def step_1_rank() -> None:
        data_parallel_gradient(model1, nn.cross_entropy, X, y, MPI.COMM_SELF)
        opt1.step()

    def step_single_process() -> None:
        minibatch.batched_mean(reference, nn.cross_entropy, X, y)
        ref_opt.step()

    def half_each() -> None:  # the 2-rank step without its all-reduce: what the cores allow
        minibatch.batched_mean(reference, nn.cross_entropy, X[mine], y[mine])
        ref_opt.step()

    n_floats = sum(p.size for p in model.parameters()) + 4  # the flat buffer: gradients, loss, counts
    buf, dst = np.ones(n_floats), np.empty(n_floats)
    steps = [("single_process", False, step_single_process), ("1_rank", False, step_1_rank),
             ("2_ranks", True, step_2_ranks), ("2_ranks_no_allreduce", True, half_each)]
    interleaved(comm, steps, 3)  # warm up: caches, the allocator, MPI's shared-memory channels
    timed_comm.seconds.clear()
    result = interleaved(comm, steps, REPEATS)
    result["inside_allreduce"] = statistics.median(timed_comm.seconds)  # this rank's, rank 0
    result.update(interleaved(comm, [("allreduce", True, lambda: comm.Allreduce(MPI.IN_PLACE, buf)),
                                     ("copyto", False, lambda: np.copyto(dst, buf))], REPEATS * 5))
    result.update(bytes=buf.nbytes, gradient_error=comm.allreduce(error, op=MPI.MAX))
    return result if rank == 0 else None


def launch() -> dict[str, Any]:
    """Run the worker on 2 ranks with the mpiexec next to this Python; its rank 0's JSON."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run([str(mpiexec), "-n", "2", sys.executable, "-m", "benchmarks.bench_distributed",
                          "--worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise RuntimeError(f"mpiexec -n 2 failed (exit code {run.returncode}):\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    if importlib.util.find_spec("mpi4py") is None:
        print("skipped: mpi4py is not installed (pip install -e '.[distributed]')")
        return
    r = launch()
    ms = 1e3

    def line(label: str, key: str) -> str:
        return f"  {label:<40} median {r[key] * ms:6.2f} ms"

    print(f"One training step, MLP {'-'.join(map(str, SIZES))} (tanh), batch {BATCH}, mean cross-entropy, SGD; "
          f"one BLAS thread per rank; {os.cpu_count()} cores")
    print(f"  data-parallel gradient vs single-process batched_mean: largest difference {r['gradient_error']:.1e}")
    print(line("single process, batched_mean", "single_process"))
    print(line("data parallel on 1 rank", "1_rank"))
    print(line("data parallel on 2 ranks", "2_ranks") + f"   inside the all-reduce {r['inside_allreduce'] * ms:.2f} ms "
          f"({r['inside_allreduce'] / r['2_ranks']:.0%}, waiting included)")
    print(line("2 ranks, each its half, no all-reduce", "2_ranks_no_allreduce")
          + f"   (what the cores allow: {r['1_rank'] / r['2_ranks_no_allreduce']:.2f}x)")
    speedup = r["1_rank"] / r["2_ranks"]
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "MISSES"
    print(f"  speed-up 1 rank / 2 ranks = {speedup:.2f} ({verdict} the target >= {TARGET_SPEEDUP}); "
          f"single process / 2 ranks = {r['single_process'] / r['2_ranks']:.2f}")
    reduce_bw, copy_bw = r["bytes"] / r["allreduce"], r["bytes"] / r["copyto"]
    print(line(f"the all-reduce alone ({r['bytes'] / 1e6:.1f} MB)", "allreduce")
          + f"   = {r['allreduce'] / r['2_ranks']:.0%} of the 2-rank step")
    print(f"  bandwidth: all-reduce {reduce_bw / 1e9:.2f} GB/s, numpy.copyto {copy_bw / 1e9:.2f} GB/s "
          f"(the local limit); all-reduce / copyto = {reduce_bw / copy_bw:.2f}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        fixed_malloc_thresholds()
        with one_blas_thread():
            measured = worker()
        if measured is not None:
            print(json.dumps(measured), flush=True)
    else:
        main()
