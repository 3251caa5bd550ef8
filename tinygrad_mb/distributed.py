"""Data parallelism: K workers, each with a shard of the batch, and one all-reduce.

Worker k holds n_k samples of a batch of B = Σ_k n_k (the n_k need not be equal). The batch-mean
gradient is a sum over all samples divided by their number:

    ∇L_B = (Σ_k Σ_{i∈shard k} ∇ℓ_i) / Σ_k n_k

So each worker computes the SUM of its samples' gradients and its count n_k; one all-reduce
adds both up over the workers; every worker divides and holds the same batch-mean gradient.
Averaging the workers' *mean* gradients instead weights every worker equally, whatever its
shard size: the gradient-accumulation bug again, across machines (``weighting="equal"``).

The workers are MPI processes (mpi4py, with the MPICH runtime from its PyPI wheel:
``pip install 'tinygrad-mb[distributed]'``). mpi4py is imported only when a function here
runs, so the engine itself needs numpy alone. Every rank runs the same script::

    mpiexec -n 3 python -m tinygrad_mb.distributed --demo
    mpiexec -f hostfile -n 6 python train.py        # across machines: one "host:processes" per line
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from . import nn, optim
from .checks import describe
from .data import make_moons
from .grad_mode import grads_put_back
from .minibatch import Gradients, batched_mean, check_loss_fn
from .tensor import Tensor

if TYPE_CHECKING:
    from mpi4py import MPI

WEIGHTINGS = ("samples", "equal")
# The all-reduced buffer: every parameter's gradient, flattened one after the other, then these
# three numbers (indices from the end), so that sums and counts travel together.
LOSS, COUNT, EMPTY = -3, -2, -1


def _mpi() -> Any:
    """The mpi4py.MPI module, or an error saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "tinygrad_mb.distributed needs mpi4py and an MPI runtime: pip install 'tinygrad-mb[distributed]' "
            "(mpi4py and the mpich wheel), then start the script with mpiexec -n 3 python your_script.py"
        ) from exc
    return MPI


def communicator(comm: MPI.Comm | None = None, op: str = "comm") -> MPI.Comm:
    """``comm``, or MPI.COMM_WORLD (every process mpiexec started) when it is None."""
    MPI = _mpi()
    if comm is None:
        return MPI.COMM_WORLD
    # what is used of it, so that a wrapper (one that times the calls, say) works too; COMM_NULL has
    # the methods but no processes
    needed = ("Get_rank", "Get_size", "Allreduce", "Bcast", "bcast", "allreduce", "Abort")
    if not all(callable(getattr(comm, name, None)) for name in needed) or comm == MPI.COMM_NULL:
        raise TypeError(f"{op}: comm must be an MPI communicator of processes such as MPI.COMM_WORLD (or None, "
                        f"which means it), got {describe(comm)}")
    return comm


def shard(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s part of a batch of ``n`` samples split over ``size`` ranks, as even as possible.

    The first n % size ranks take one sample more: 10 over 3 ranks gives 4, 3, 3; 2 over 3
    gives 1, 1, 0 (an empty shard, which the weighting by counts handles).
    """
    for name, value, least in (("n", n, 0), ("size", size, 1), ("rank", rank, 0)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"shard: {name} must be a whole number >= {least}, got {value!r}")
    if rank >= size:
        raise ValueError(f"shard: rank {rank} does not exist among {size} ranks (ranks run from 0 to {size - 1})")
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def _unflatten(flat: np.ndarray, params: Sequence[Tensor]) -> list[np.ndarray]:
    """Cut a flat float64 buffer back into arrays of the parameters' shapes and dtypes."""
    ends = np.cumsum([p.size for p in params])
    return [flat[end - p.size:end].reshape(p.shape).astype(p.dtype) for p, end in zip(params, ends)]


# ------------------------------------------------------------------------------ the gradient
def data_parallel_gradient(model: nn.Module, loss_fn: nn.LossFn, X_shard: Any, y_shard: Any,
                           comm: MPI.Comm | None = None, weighting: str = "samples") -> Gradients:
    """The batch-mean gradient of a batch split over the ranks:  g = (Σ_k Σ_{i∈shard k} ∇ℓ_i) / Σ_k n_k.

    Every rank calls it with its own shard (n_k samples, possibly none) and the same model. Each
    computes the sum of its samples' gradients, n_k times its shard's mean gradient, and n_k;
    one all-reduce adds them up; every rank divides by the total and ends with the gradient
    ``batched_mean`` computes on the concatenated shards (up to rounding).

    ``weighting="equal"`` is WRONG ON PURPOSE: the mean of the ranks' mean gradients,
    (1/K) Σ_k ∇ mean_{i∈shard k} ℓ_i, which weights a sample of shard k by 1/(K·n_k) instead of
    1/B. It agrees only when all shards have the same size; an empty shard has no mean and is
    an error. Kept for teaching; use "samples".

    Returns:
        A ``Gradients`` list aligned with ``model.parameters()`` and left in their .grad, with
        ``.loss`` the batch's mean loss (for "equal", the mean of the ranks' mean losses). If any
        rank fails, or the ranks' models or weightings differ, every rank raises and no .grad
        changes: no rank is left waiting.
    """
    MPI, comm = _mpi(), communicator(comm, "data_parallel_gradient")
    K = comm.Get_size()
    params = list(model.parameters()) if isinstance(model, nn.Module) else []
    buf = np.zeros(0)
    with grads_put_back(params, on_success=False):
        error = None
        try:  # every check on this rank, then its shard's gradient sum, before any rank waits for another
            if not isinstance(model, nn.Module):
                raise TypeError(f"data_parallel_gradient: model must be an nn.Module, got {describe(model)}")
            if weighting not in WEIGHTINGS:
                raise ValueError(f"data_parallel_gradient: weighting must be one of {list(WEIGHTINGS)}, "
                                 f"got {weighting!r}")
            check_loss_fn(loss_fn, "data_parallel_gradient")
            if not params:
                raise ValueError("data_parallel_gradient: the model has no parameters (tensors with "
                                 "requires_grad=True)")
            X, y = shard_arrays(X_shard, y_shard)
            buf = np.zeros(sum(p.size for p in params) + 3)
            if len(X):
                local = batched_mean(model, loss_fn, X, y)  # this shard's mean gradient and loss
                scale = len(X) if weighting == "samples" else 1  # the sum over its samples, or the mean
                np.concatenate([g.ravel() for g in local], out=buf[:LOSS])
                buf[:LOSS] *= scale
                buf[LOSS], buf[COUNT] = local.loss * scale, len(X)
            else:
                buf[EMPTY] = 1  # adds nothing to the sums; counted so that "equal" can refuse it
        except Exception as exc:  # take part in the agreement anyway, so that no rank waits forever
            error = exc
        # First a few bytes: did every rank succeed, with the same parameter shapes, dtypes and
        # weighting? Ranks that disagree must all stop here, not wait in an all-reduce of buffers
        # of different lengths, which MPI cannot even detect.
        agree(comm, error, "data_parallel_gradient", "its shard", "the model's parameter shapes and dtypes, "
              "and weighting", [weighting, *[(p.shape, p.dtype.str) for p in params]],
              "build the same model on every rank and pass the same weighting.")
        # ONE call for every gradient: each collective makes every rank wait for all the others and
        # pays a fixed latency (microseconds between processes, far more across a network),
        # whatever its size; one call per parameter would pay it once per parameter. One large
        # buffer lets MPI choose its bandwidth-optimal algorithm, and the counts ride along.
        # The upper-case Allreduce sends the raw float64 memory; lower-case allreduce would
        # pickle Python objects.
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        if weighting == "equal" and buf[EMPTY]:
            raise ValueError(
                f"data_parallel_gradient(weighting='equal'): {int(buf[EMPTY])} of the {K} shards "
                f"{'is' if buf[EMPTY] == 1 else 'are'} empty (this rank's holds {len(X)} samples), and the mean "
                f"loss of no samples is 0/0. Averaging the ranks' means is the mistake anyway: use "
                f"weighting='samples', which sums and counts."
            )
        if not buf[COUNT]:
            raise ValueError(f"data_parallel_gradient: every one of the {K} shards is empty; the batch "
                             f"needs at least one sample.")
        buf /= buf[COUNT] if weighting == "samples" else K  # the sums become means
        grads = _unflatten(buf[:LOSS], params)
        for p, g in zip(params, grads):
            p.grad = g
        return Gradients([g.copy() for g in grads], buf[LOSS])


def agree(comm: MPI.Comm, error: BaseException | None, op: str, what_failed: str, what: str = "",
          values: Sequence[Any] = (), fix: str = "") -> None:
    """Raise on every rank unless every rank got here without ``error`` and with the same ``values``.

    One small all-reduce (the largest of each number): a flag for a failure, and a fingerprint
    of ``values`` with its negative, whose largest value is minus the smallest, so that two
    different fingerprints show. The rank that failed raises its own error; the others say that
    a rank failed, so no rank is left waiting for one that stopped.
    """
    MPI = _mpi()
    mark = float(int.from_bytes(_fingerprint(values)[:6], "big"))  # 48 bits: exact in a float64
    flags = np.array([float(error is not None), mark, -mark])
    comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
    if error is not None:
        raise error
    K = comm.Get_size()
    if flags[0]:
        raise RuntimeError(f"{op}: a rank among the {K} failed on {what_failed} (its own error says why), so "
                           f"every rank raises here instead of waiting for it; nothing was changed.")
    if flags[1] != -flags[2]:
        raise ValueError(f"{op}: {what} differ between the {K} ranks; {fix}")


def _fingerprint(values: Sequence[Any]) -> bytes:
    """A digest of ``values``: an array by its dtype, shape and bytes; anything else by its repr."""
    digest = hashlib.sha256()
    for v in values:
        if isinstance(v, np.ndarray):
            digest.update(f"{v.dtype.str}{v.shape}".encode() + np.ascontiguousarray(v).tobytes())
        else:
            digest.update(repr(v).encode())
        digest.update(b"|")  # so that (1, 23) and (12, 3) differ
    return digest.digest()


def shard_arrays(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """A shard as arrays, one sample per row; unlike a batch it may be empty."""
    X = np.asarray(X.data if isinstance(X, Tensor) else X)
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ValueError(
            f"data_parallel_gradient: X_shard (shape {X.shape}) and y_shard (shape {y.shape}) must hold "
            f"one sample per row, the same number of each; pass X[s], y[s] for the same slice s."
        )
    return X, y


# ------------------------------------------------------------------------------ keeping the ranks together
def check_same_on_every_rank(comm: MPI.Comm, op: str, what: str, values: Sequence[Any], fix: str) -> None:
    """Raise on every rank (so none waits) unless ``values`` are the same on every rank as on rank 0."""
    mine = _fingerprint(values).hex()
    this_differs = mine != comm.bcast(mine, root=0)
    differ = comm.allreduce(int(this_differs))
    if differ:
        raise ValueError(f"{op}: {what} differ between ranks (ranks that disagree with rank 0: {differ} of "
                         f"{comm.Get_size()}, rank {comm.Get_rank()} {'among them' if this_differs else 'not'}); {fix}")


def broadcast_parameters(model: nn.Module, comm: MPI.Comm | None = None) -> None:
    """Overwrite every rank's tensors of ``model`` with rank 0's: the parameters, and the frozen
    ones (requires_grad=False), which take part in every forward pass too.

    Ranks that start identical stay identical: each step they all receive the same summed
    gradient and their optimizers take the same step, so parameters never need sending again.
    """
    comm = communicator(comm, "broadcast_parameters")
    tensors = [t for _, t in model.named_parameters(frozen=True)]
    check_same_on_every_rank(comm, "broadcast_parameters", "the model's tensors (shapes, dtypes, which are trainable)",
                             [(t.shape, t.dtype.str, t.requires_grad) for t in tensors],
                             "build the same model on every rank.")
    if not tensors:
        return
    flat = np.concatenate([t.data.ravel() for t in tensors], dtype=np.float64)  # holds float32 exactly
    comm.Bcast(flat, root=0)
    for t, value in zip(tensors, _unflatten(flat, tensors)):
        t.data[...] = value


def abort(comm: MPI.Comm, exc: BaseException) -> None:
    """End every rank because this one raised ``exc``: print why, then MPI_Abort.

    At each all-reduce every rank waits for all the others, so a rank that stops alone leaves
    the rest waiting forever. With a single rank nobody waits: this returns, and the caller
    re-raises; otherwise it never returns.
    """
    rank, K = comm.Get_rank(), comm.Get_size()
    if K == 1:
        return
    # The one-line reason first: an abort can cut off what mpiexec has not yet forwarded.
    print(f"tinygrad_mb.distributed: rank {rank} of {K} raised {type(exc).__name__}: {exc}\n"
          f"tinygrad_mb.distributed: aborting all {K} ranks, which would otherwise wait forever for "
          f"rank {rank} at their next all-reduce.", file=sys.stderr, flush=True)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(0.5)  # give mpiexec's output forwarding a moment before the abort ends every process
    comm.Abort(1)  # asks mpiexec to end every rank, and may return before it has ended this one:
    os._exit(1)  # end it now, or the exception would be printed a second time on the way out


@contextmanager
def abort_on_error(comm: MPI.Comm | None = None) -> Iterator[None]:
    """Run a block; if it raises on any rank, end every rank (see ``abort``)."""
    comm = communicator(comm)
    try:
        yield
    except BaseException as exc:
        abort(comm, exc)
        raise


class DataParallel:
    """What ``Trainer(strategy="data_parallel", comm=comm)`` needs: every rank passes the whole
    data set and takes its own slice of each global batch."""

    def __init__(self, comm: MPI.Comm | None = None):
        self.comm = communicator(comm, "Trainer")
        self.is_root = self.comm.Get_rank() == 0  # shows the progress bar and writes the checkpoint

    def agree(self, error: BaseException | None) -> None:
        """Every rank checked fit's arguments: raise on every rank if any rank refused them."""
        agree(self.comm, error, "Trainer.fit (data_parallel)", "the checks before training")

    def start(self, model: nn.Module, optimizer: optim.Optimizer, epochs_done: int, *run: Any) -> None:
        """Check that every rank runs the same training (``run``: X, y, fit's arguments) with the same
        optimizer, then give every rank rank 0's tensors."""
        check_same_on_every_rank(
            self.comm, "Trainer.fit (data_parallel)", "the epochs already trained", [epochs_done],
            "call trainer.load(path) on every rank, not on rank 0 alone.")
        check_same_on_every_rank(
            self.comm, "Trainer.fit (data_parallel)", "X, y or fit's arguments", run,
            "every rank must pass the same X, y, batch_size, epochs, shuffle and seed, and takes its own "
            "slice of each batch itself: do not split the data between the ranks yourself.")
        state = optimizer.state_dict()
        check_same_on_every_rank(
            self.comm, "Trainer.fit (data_parallel)", "the optimizers (kind, hyperparameters, state)",
            [state["kind"], repr(state["hyperparameters"]),
             *[a if a is not None else "none" for entries in state["state"].values() for a in entries]],
            "build the optimizer with the same arguments on every rank; for SGLD pass the same seed=, since "
            "each rank would draw its own and the ranks' models would drift apart.")
        broadcast_parameters(model, self.comm)

    def gradient(self, model: nn.Module, loss_fn: nn.LossFn, X_batch: np.ndarray, y_batch: np.ndarray) -> Gradients:
        """The batch-mean gradient of the global batch, this rank computing only its slice of it."""
        mine = shard(len(X_batch), self.comm.Get_rank(), self.comm.Get_size())
        return data_parallel_gradient(model, loss_fn, X_batch[mine], y_batch[mine], self.comm)

    def abort(self, exc: BaseException) -> None:
        abort(self.comm, exc)


# ------------------------------------------------------------------------------ the demo
def demo(comm: MPI.Comm | None = None, epochs: int = 30, lr: float = 0.5) -> dict[str, float]:
    """Train one model three ways and print, on rank 0, how they compare; return the final losses.

    Rank k holds a share of every batch proportional to k + 1, as when machines hold different
    amounts of data, and the same part of each batch every epoch (no shuffling): "samples"
    follows single-process ``batched_mean`` to rounding, "equal" does not.
    """
    MPI, comm = _mpi(), communicator(comm)
    rank, K = comm.Get_rank(), comm.Get_size()
    parts = K * (K + 1) // 2  # rank k holds k + 1 parts of each batch
    B = 4 * parts
    X, y = make_moons(18 * parts, noise=0.2, seed=0)  # 4 full batches and a half one
    models = {name: nn.MLP([2, 16, 2], rng=0) for name in ("batched_mean", *WEIGHTINGS)}
    opts = {name: optim.SGD(m.parameters(), lr=lr) for name, m in models.items()}
    worst = {w: 0.0 for w in WEIGHTINGS}
    say = print if rank == 0 else (lambda *args, **kwargs: None)
    vendor, version = MPI.get_vendor()
    say(f"Data-parallel gradient on {K} MPI ranks ({vendor} {'.'.join(map(str, version))}): MLP 2-16-2 (tanh),\n"
        f"cross-entropy, {len(X)} samples in batches of {B} (the last one {len(X) % B}), SGD lr {lr}, "
        f"{epochs} epochs.\n"
        f"Rank k holds a share of every batch proportional to k + 1 (machines rarely hold equal shares),\n"
        f"the same share every epoch; each gradient is compared with batched_mean on the whole batch.\n")
    say(f"step  shard sizes (rank 0..{K - 1})   largest |data parallel - batched_mean|")
    say(f"{'':34}weighting='samples'  weighting='equal'")
    for epoch in range(epochs):
        for step, start in enumerate(range(0, len(X), B)):
            Xb, yb = X[start:start + B], y[start:start + B]
            sizes = [len(Xb) // parts * (k + 1) for k in range(K)]
            mine = slice(sum(sizes[:rank]), sum(sizes[:rank + 1]))
            batched_mean(models["batched_mean"], nn.cross_entropy, Xb, yb)  # one process, whole batch
            diff = {}
            for w in WEIGHTINGS:
                true = batched_mean(models[w], nn.cross_entropy, Xb, yb)  # at this model's parameters
                got = data_parallel_gradient(models[w], nn.cross_entropy, Xb[mine], yb[mine], comm, weighting=w)
                diff[w] = max(float(np.max(np.abs(a - b))) for a, b in zip(got, true))
                worst[w] = max(worst[w], diff[w])
            for opt in opts.values():
                opt.step()
            if epoch == 0:
                say(f"{step + 1:4}  {', '.join(map(str, sizes)):<28}{diff['samples']:9.1e}{diff['equal']:20.1e}")
    losses = {name: nn.cross_entropy(m(Tensor(X)), y).item() for name, m in models.items()}
    moved = {name: max(float(np.max(np.abs(p.data - q.data)))
                       for p, q in zip(m.parameters(), models["batched_mean"].parameters()))
             for name, m in models.items()}
    steps = epochs * len(range(0, len(X), B))
    say(f"(epoch 1 shown; every epoch has the same shards)\n\nlargest difference over all {steps} steps: "
        f"'samples' {worst['samples']:.1e}, 'equal' {worst['equal']:.1e}"
        f"{'' if K > 1 else '  (one rank: the two coincide; try mpiexec -n 3)'}\n\n"
        f"{f'after {epochs} epochs, all {len(X)} samples':<34}{'loss':>8}   weights' largest difference "
        f"from batched_mean's")
    for name, label in [("batched_mean", "single process, batched_mean"), ("samples", "data parallel, 'samples'"),
                        ("equal", "data parallel, 'equal'  WRONG")]:
        say(f"  {label:<34}{losses[name]:.6f}   {moved[name]:.1e}")
    if K > 1:
        say(f"\n'equal' descends another loss, in which each of rank 0's samples weighs {K} times as much as\n"
            f"each of rank {K - 1}'s (1/(K n_k) instead of 1/B), so its weights leave batched_mean's path.\n"
            f"Whether its loss ends lower or higher is luck; every one of its gradients was wrong.")
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinygrad_mb.distributed",
        description="Data-parallel gradients over MPI: mpiexec -n 3 python -m tinygrad_mb.distributed --demo")
    parser.add_argument("--demo", action="store_true", help="compare 'samples' and 'equal' weighting on uneven shards")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the demo (default 30)")
    args = parser.parse_args(argv)
    if args.epochs < 0:
        parser.error(f"--epochs must be 0 or more, got {args.epochs}")
    if not args.demo:
        parser.print_help()
        return 2
    with abort_on_error():
        demo(epochs=args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
