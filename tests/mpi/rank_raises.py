"""Run under mpiexec by tests/test_distributed.py: rank 1 raises at its 4th step, the others go on.

The other ranks enter the next step's all-reduce and would wait there forever; the whole job
must end instead, with a message naming rank 1.

    mpiexec -n 3 python tests/mpi/rank_raises.py trainer   # rank 1's optimizer raises inside Trainer.fit
    mpiexec -n 3 python tests/mpi/rank_raises.py loop      # a hand-written loop under abort_on_error
"""

from __future__ import annotations

import sys

from mpi4py import MPI

from tinygrad_mb import nn, optim
from tinygrad_mb.data import make_moons
from tinygrad_mb.distributed import abort_on_error, data_parallel_gradient, shard

comm = MPI.COMM_WORLD
rank, K = comm.Get_rank(), comm.Get_size()
steps = 0


class FailingSGD(optim.SGD):
    def step(self) -> None:
        global steps
        steps += 1
        if rank == 1 and steps == 4:
            raise RuntimeError("rank 1's optimizer fails on purpose at step 4")
        super().step()


X, y = make_moons(40, seed=0)
model = nn.MLP([2, 8, 2], rng=0)
opt = FailingSGD(model.parameters(), lr=0.1)
if sys.argv[1] == "trainer":
    from tinygrad_mb.train import Trainer

    Trainer(model, nn.cross_entropy, opt, strategy="data_parallel", comm=comm, progress=False).fit(
        X, y, batch_size=8, epochs=50, seed=0)
else:
    with abort_on_error(comm):
        for _ in range(200):
            mine = shard(len(X), rank, K)
            data_parallel_gradient(model, nn.cross_entropy, X[mine], y[mine], comm)
            opt.step()
print(f"rank {rank} finished: the failure did not stop it", flush=True)
