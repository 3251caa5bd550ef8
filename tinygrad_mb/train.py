"""The training loop: batches, a gradient strategy, an optimizer step, a history.

    trainer = Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1),
                      strategy="per_sample")
    history = trainer.fit(X, y, batch_size=32, epochs=10)

Every strategy of ``tinygrad_mb.minibatch`` can drive the same loop, so two trainers that
differ only in their strategy show directly whether the strategies agree: ``per_sample``,
``batched_mean`` and ``accumulated`` follow the same trajectory (up to rounding);
``naive_accumulated`` and ``error_first`` do not.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import minibatch, nn
from .checkpoint import Checkpoint, check_destination, read_checkpoint, restore, write_checkpoint
from .checks import shape_str
from .data import batches as batch_indices
from .grad_mode import grads_put_back, no_grad
from .optim import SGLD, Optimizer
from .tensor import Tensor

if TYPE_CHECKING:
    from .distributed import DataParallel


def whole_number(value: Any, name: str, minimum: int) -> int:
    """An integer argument of fit, or an error naming it (2.5, "3" and True are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Trainer.fit: {name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def targets_are_class_ids(pred: np.ndarray, y: Any) -> bool:
    """Whether ``y`` holds one class id per row of the (B, C) scores ``pred``, C >= 2."""
    y = np.asarray(y)
    if pred.ndim != 2 or pred.shape[1] < 2 or y.shape != (len(pred),) or y.dtype.kind not in "iuf":
        return False
    return bool(np.all((y == np.round(y)) & (y >= 0) & (y < pred.shape[1])))


class Trainer:
    """Trains ``model`` on ``loss_fn`` with ``optimizer``, computing each batch's gradient by ``strategy``.

    Args:
        model: an ``nn.Module``.
        loss_fn: mean-reduced loss ``loss_fn(pred, target)``, e.g. ``nn.mse_loss``.
        optimizer: an optimizer over ``model.parameters()``.
        strategy: "batched_mean", "per_sample", "accumulated", "naive_accumulated",
            "per_sample_gradients" or "error_first" (see ``tinygrad_mb.minibatch``), or
            "data_parallel" (see ``tinygrad_mb.distributed``): run the same script on every MPI
            rank, with the same X, y and seed; each rank computes its slice of every batch.
        micro_batch: chunk size, required by "accumulated" and "naive_accumulated".
        variant: the error-first variant, required by "error_first".
        progress: show a tqdm progress bar over epochs.
        comm: the MPI communicator of "data_parallel" (default ``MPI.COMM_WORLD``).
        checkpoint: a file path (``~`` expanded); if given, ``fit`` checks that it can be written
            before the first epoch and saves the state there after every epoch, as ``save`` does.
        noise_scale: also record, after every epoch, the gradient noise scale B_simple of the
            whole training set (``minibatch.gradient_noise_scale``) as history["noise_scale"]:
            roughly the batch size beyond which larger batches stop paying off.
    """

    def __init__(self, model: nn.Module, loss_fn: nn.LossFn, optimizer: Optimizer,
                 strategy: str = "batched_mean", micro_batch: int | None = None,
                 variant: str | None = None, progress: bool = True,
                 checkpoint: str | os.PathLike[str] | None = None, noise_scale: bool = False, comm: Any = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"Trainer: model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Trainer: optimizer must be one of tinygrad_mb.optim's optimizers (e.g. "
                            f"optim.SGD(model.parameters(), lr=0.1)), got {type(optimizer).__name__}")
        if not isinstance(strategy, str):
            raise ValueError(f"Trainer: strategy must be a name such as 'batched_mean', got {strategy!r}")
        if not isinstance(progress, (bool, np.bool_)):
            raise ValueError(f"Trainer: progress must be True or False, got {progress!r}")
        if strategy not in minibatch.STRATEGIES and strategy != "data_parallel":
            raise ValueError(f"Trainer: unknown strategy {strategy!r}; choose one of "
                             f"{sorted([*minibatch.STRATEGIES, 'data_parallel'])}")
        if comm is not None and strategy != "data_parallel":
            raise ValueError(f"Trainer: comm is used only by strategy 'data_parallel', not {strategy!r}")
        needs_chunks = strategy in ("accumulated", "naive_accumulated")
        if needs_chunks:
            minibatch.check_micro_batch(micro_batch, f"Trainer(strategy={strategy!r})")
        elif micro_batch is not None:
            raise ValueError(f"Trainer: micro_batch is used only by 'accumulated' strategies, not {strategy!r}")
        if strategy == "error_first":
            if variant not in minibatch.ERROR_FIRST_VARIANTS:
                raise ValueError(
                    f"Trainer: strategy 'error_first' needs variant= one of "
                    f"{list(minibatch.ERROR_FIRST_VARIANTS)}, got {variant!r}"
                )
        elif variant is not None:
            raise ValueError(f"Trainer: variant is used only by strategy 'error_first', not {strategy!r}")
        self.loss_info = minibatch.check_loss_fn(loss_fn, "Trainer")
        if strategy == "error_first":
            minibatch.check_variant(variant, loss_fn, "Trainer")  # type: ignore[arg-type]
        model_params = {id(p) for p in model.parameters()}
        if any(id(p) not in model_params for p in optimizer.params):
            raise ValueError("Trainer: the optimizer holds tensors that are not parameters of the model; "
                             "build it from model.parameters()")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.strategy, self.micro_batch, self.variant = strategy, micro_batch, variant
        self.progress = progress
        if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"Trainer: checkpoint must be a file path (a str or pathlib.Path), got {checkpoint!r}")
        self.checkpoint = None if checkpoint is None else os.path.expanduser(os.fspath(checkpoint))
        if noise_scale:  # refuse a model or loss the norms cannot handle now, not after an epoch
            minibatch.check_grad_norms(model, loss_fn, "Trainer(noise_scale=True)")
        self.noise_scale = bool(noise_scale)
        self.epochs_done = 0
        self.history: dict[str, list[float]] = {}
        # Imported only when asked for: mpi4py is optional, and `python -m tinygrad_mb.distributed`
        # must not find its module already loaded by the package.
        self.parallel: DataParallel | None = None
        if strategy == "data_parallel":
            from .distributed import DataParallel
            self.parallel = DataParallel(comm)
        self.is_root = self.parallel is None or self.parallel.is_root  # shows progress, writes checkpoints

    # ------------------------------------------------------------------ one step
    def gradient(self, Xb: np.ndarray, yb: np.ndarray) -> minibatch.Gradients:
        """The batch gradient by this trainer's strategy (left in .grad as well)."""
        if self.parallel is not None:  # this rank's slice of the batch, then one all-reduce of sums and counts
            return self.parallel.gradient(self.model, self.loss_fn, Xb, yb)
        fn = minibatch.STRATEGIES[self.strategy]
        if self.micro_batch is not None:
            return fn(self.model, self.loss_fn, Xb, yb, self.micro_batch)
        if self.variant is not None:
            return fn(self.model, self.loss_fn, Xb, yb, variant=self.variant)
        return fn(self.model, self.loss_fn, Xb, yb)

    def measure_noise_scale(self, X: np.ndarray, y: np.ndarray) -> float:
        """B_simple with (X, y) as the whole data set (|G|² is then exact), leaving .grad as it was."""
        with grads_put_back(self.model.parameters()), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # inf is recorded, no need to warn each epoch
            return minibatch.gradient_noise_scale(self.model, self.loss_fn, X, y, dataset_size=len(X))

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """Mean loss on a data set, and accuracy where it applies, recording no graph.

        Accuracy applies to a classification loss (``nn.cross_entropy``, also through
        ``functools.partial``); for a loss function of your own, when the targets are class
        ids of the predictions: one whole number in [0, C) per sample for (B, C) scores, C >= 2.
        """
        X, y, _ = minibatch.check_batch(self.model, X, y, "Trainer.evaluate")  # a Tensor y: its array
        with no_grad():
            pred = self.model(Tensor(X))
            result = {"loss": minibatch.scalar_loss(self.loss_fn(pred, y), "Trainer.evaluate").item()}
            classification = self.loss_info.classification
            if classification is None:
                classification = targets_are_class_ids(pred.data, y)
            if classification:
                result["accuracy"] = float(np.mean(pred.data.argmax(axis=1) == np.asarray(y)))
        return result

    # ------------------------------------------------------------------ the loop
    def fit(self, X: Any, y: Any, batch_size: int = 32, epochs: int = 10, shuffle: bool = True,
            seed: int = 0, validation: tuple[Any, Any] | None = None) -> dict[str, list[float]]:
        """Train until ``epochs`` epochs are done, in batches of ``batch_size`` (the last may be shorter).

        ``epochs`` counts the total, as when resuming: a fresh trainer trains that many epochs, and
        one that has trained 4 (in an earlier ``fit`` or a loaded checkpoint) trains the 6 missing
        for ``epochs=10``. Each epoch's order is a fresh permutation from
        ``np.random.default_rng(seed)``, drawn for the epochs already done as well, so a resumed
        run sees exactly the batches of an uninterrupted one.

        Returns:
            The history, a dict of per-epoch lists measured after each epoch on the whole
            training set: "loss" (and "accuracy" with ``nn.cross_entropy``), plus "val_loss" and
            "val_accuracy" when ``validation=(X_val, y_val)`` is given.

        Raises:
            FloatingPointError: when a batch's loss or gradient is NaN or infinite (the parameters
                and their .grad are left as they were before that step), or when the loss over the
                training set, a parameter or the optimizer's state is after an epoch (its steps
                diverged: nothing of that epoch is recorded or saved).
            ValueError, TypeError, IndexError: for bad arguments or data, before training; for data
                that fails only in a later batch (a class id out of range, say), the parameters,
                their .grad and the optimizer's state are first put back as they were before that
                epoch, whose steps are then undone.
            CheckpointError: before the first epoch, when the ``checkpoint`` path cannot be written.
        """
        try:  # every check before training; under data_parallel every rank must pass them
            X, y, batch_size, epochs, seed, validation = self._check_fit(X, y, batch_size, epochs, shuffle, seed,
                                                                         validation)
        except Exception as exc:
            if self.parallel is not None:
                self.parallel.agree(exc)  # the other ranks raise too, instead of waiting for this one
            raise
        if self.parallel is not None:
            self.parallel.agree(None)

        rng = np.random.default_rng(seed)
        if self.parallel is not None:  # the same run on every rank, all starting from rank 0's weights
            self.parallel.start(self.model, self.optimizer, self.epochs_done, X, y, batch_size, epochs,
                                bool(shuffle), seed)
        bar = self._progress_bar(epochs) if self.is_root else None
        try:
            for epoch in range(epochs):
                batches = list(batch_indices(len(X), batch_size, shuffle, rng))
                if epoch < self.epochs_done:
                    continue  # already trained: its permutation is drawn, so later epochs match
                put_back = self._snapshot()
                try:
                    for batch, idx in enumerate(batches):
                        where = f"epoch {epoch + 1}, batch {batch + 1}"
                        self._with_context(where, self._step, X[idx], y[idx], epoch, batch)
                    metrics = self.evaluate(X, y)
                    if self.noise_scale:
                        metrics["noise_scale"] = self._with_context(f"epoch {epoch + 1}, the noise scale",
                                                                    self.measure_noise_scale, X, y)
                    if validation is not None:
                        metrics.update({"val_" + k: v for k, v in self.evaluate(*validation).items()})
                except (ValueError, TypeError, IndexError):
                    put_back()  # bad input met during the epoch: the trainer is as it was before it
                    raise
                diverged = self._non_finite_state()
                if not np.isfinite(metrics["loss"]) or diverged:
                    what = (f"the loss over the training set is {metrics['loss']}" if not diverged
                            else f"{diverged} holds NaN or inf")
                    kept = f" (the checkpoint keeps epoch {self.epochs_done})" if self.checkpoint else ""
                    raise FloatingPointError(
                        f"Trainer.fit: {what} after epoch {epoch + 1}: its steps diverged. Nothing of this "
                        f"epoch was recorded or saved{kept}. Try a smaller learning rate (after trainer.load, "
                        f"set trainer.optimizer.lr: load restores the saved one)."
                    )
                for key, value in metrics.items():
                    self.history.setdefault(key, []).append(value)
                self.epochs_done = epoch + 1
                if self.checkpoint is not None and self.is_root:
                    self.save(self.checkpoint)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{self.history['loss'][-1]:.4f}")
        except BaseException as exc:
            if self.parallel is not None:
                self.parallel.abort(exc)  # the other ranks would wait forever at their next all-reduce
            raise
        finally:
            if bar is not None:
                bar.close()
        return self.history

    def _check_fit(self, X: Any, y: Any, batch_size: Any, epochs: Any, shuffle: Any, seed: Any,
                   validation: tuple[Any, Any] | None) -> tuple[np.ndarray, np.ndarray, int, int, int,
                                                                tuple[Any, Any] | None]:
        """fit's arguments checked, before anything trains: X, y, batch_size, epochs, seed, validation."""
        X, y, _ = minibatch.check_batch(self.model, X, y, "Trainer.fit")
        batch_size = whole_number(batch_size, "batch_size", minimum=1)
        epochs = whole_number(epochs, "epochs", minimum=0)
        seed = whole_number(seed, "seed", minimum=0)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"Trainer.fit: shuffle must be True or False, got {shuffle!r}")
        if self.epochs_done and epochs <= self.epochs_done:
            raise ValueError(
                f"Trainer.fit: this trainer has already trained {self.epochs_done} epochs, and epochs "
                f"counts the total (as when resuming from a checkpoint); pass "
                f"epochs={self.epochs_done + 1} or more to train further."
            )
        if isinstance(self.optimizer, SGLD) and self.optimizer.dataset_size != len(X):
            raise ValueError(
                f"Trainer.fit: the SGLD optimizer has dataset_size={self.optimizer.dataset_size} but X holds "
                f"{len(X)} samples; SGLD scales each batch's mean gradient by the number of samples the batches "
                f"are drawn from, so build it with dataset_size={len(X)}."
            )
        names = {"loss"}  # the metrics each epoch will record
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise TypeError(f"Trainer.fit: validation must be a pair (X_val, y_val), got "
                                f"{type(validation).__name__} {validation!r:.80}")
            X_val, y_val, _ = minibatch.check_batch(self.model, *validation, "Trainer.fit (validation)")
            if X_val.shape[1:] != X.shape[1:]:
                raise ValueError(
                    f"Trainer.fit: validation samples have shape {shape_str(X_val.shape[1:])} but "
                    f"training samples {shape_str(X.shape[1:])}; they must match."
                )
            before = self._with_context("the validation data, checked before training", self.evaluate, X_val, y_val)
            if not np.isfinite(before["loss"]):
                raise ValueError(f"Trainer.fit: the validation loss is {before['loss']} before training; check "
                                 f"X_val and y_val for NaN or inf values (or values too large to square).")
            names |= {"val_" + key for key in before}
        if self.history:  # resuming: every metric must go on where it left off
            self._check_same_metrics(names, X, y)
        if self.noise_scale and len(X) < 2:
            raise ValueError("Trainer.fit: noise_scale=True measures the noise between samples, which needs a "
                             f"training set of at least 2 samples, got {len(X)}")
        if self.checkpoint is not None and self.is_root:  # only rank 0 writes it (and probes it)
            check_destination(self.checkpoint, "Trainer.fit")  # fail now, not after an epoch of work

        return X, y, batch_size, epochs, seed, (None if validation is None else (X_val, y_val))

    @staticmethod
    def _with_context(where: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn``; a bad-input error from inside it says where in training it happened."""
        try:
            return fn(*args)
        except (ValueError, TypeError, IndexError) as exc:
            raise type(exc)(f"Trainer.fit ({where}): {exc}") from exc

    def _check_same_metrics(self, names: set[str], X: np.ndarray, y: np.ndarray) -> None:
        """Refuse a resumed fit whose epochs would record other metrics than the history holds."""
        classification = self.loss_info.classification
        if classification is None:  # as evaluate decides it, from the shape of the predictions
            with no_grad():
                pred = self._with_context("the training data, checked before training", self.model, Tensor(X))
            classification = targets_are_class_ids(pred.data, y)
        names |= {"accuracy"} if classification else set()
        names |= {"noise_scale"} if self.noise_scale else set()
        if names != set(self.history):
            raise ValueError(
                f"Trainer.fit: the history of the {self.epochs_done} epochs done holds {sorted(self.history)}, but "
                f"this fit would record {sorted(names)}, so the lists would no longer line up epoch by epoch; "
                f"pass the same validation= (and noise_scale=) as the run so far."
            )

    def _snapshot(self) -> Callable[[], None]:
        """A function that puts the parameters, their .grad and the optimizer's state back as they are now."""
        params = self.model.parameters()
        values = [p.data.copy() for p in params]
        grads = [None if p.grad is None else p.grad.copy() for p in params]
        state = {name: copy.deepcopy(getattr(self.optimizer, name)) for name in self.optimizer.state_kinds}

        def put_back() -> None:
            for p, value, grad in zip(params, values, grads):
                p.data, p.grad = value, grad
            for name, entries in state.items():
                setattr(self.optimizer, name, entries)
        return put_back

    def _non_finite_state(self) -> str:
        """What of the parameters or optimizer state holds NaN or inf (what a checkpoint refuses), or ''."""
        bad = [f"parameter {name!r}" for name, p in self.model.named_parameters() if not np.all(np.isfinite(p.data))]
        bad += [f"optimizer state {name!r} of parameter {i}" for name in self.optimizer.state_kinds
                for i, entry in enumerate(getattr(self.optimizer, name))
                if entry is not None and not np.all(np.isfinite(entry))]
        return ", ".join(bad)

    def _step(self, Xb: np.ndarray, yb: np.ndarray, epoch: int, batch: int) -> None:
        params = self.model.parameters()
        earlier = [p.grad for p in params]
        grads = self.gradient(Xb, yb)
        if not np.isfinite(grads.loss) or not all(np.all(np.isfinite(g)) for g in grads):
            for p, grad in zip(params, earlier):  # this step changes nothing, .grad included
                p.grad = grad
            what = "loss" if not np.isfinite(grads.loss) else "gradient"
            raise FloatingPointError(
                f"Trainer.fit: the {what} became non-finite (loss {grads.loss}) at epoch {epoch + 1}, "
                f"batch {batch + 1}; the parameters are left as they were before this step. "
                f"Try a smaller learning rate or check the data for NaN/inf."
            )
        self.optimizer.step()

    def _progress_bar(self, epochs: int) -> Any:
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is optional: train silently without it
            return None
        return tqdm(total=epochs, initial=min(self.epochs_done, epochs), desc=f"training ({self.strategy})",
                    unit="epoch")

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the model, optimizer state, epochs done and history to ``path`` (see ``tinygrad_mb.checkpoint``).

        The file is data only (an .npz with a JSON header and a SHA-256), written atomically.
        A state holding NaN or inf is refused with a ``CheckpointError``, keeping the previous file.
        """
        state = Checkpoint(self.model.state_dict(), self.optimizer.state_dict(), self.epochs_done, self.history)
        write_checkpoint(path, state, "Trainer.save")

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by ``save``; a following ``fit`` continues the saved run exactly.

        The whole file (format, version, checksum, every part) and its fit to this model and
        optimizer are checked before anything changes; any problem raises ``CheckpointError``.
        """
        saved = read_checkpoint(path, "Trainer.load")
        lr = getattr(self.optimizer, "lr", None)
        restore(saved, self.model, self.optimizer, "Trainer.load")
        self.epochs_done, self.history = saved.epochs_done, saved.history
        if lr != getattr(self.optimizer, "lr", None):
            warnings.warn(f"Trainer.load: the checkpoint's learning rate lr={self.optimizer.lr!r} replaces this "
                          f"optimizer's lr={lr!r} (a checkpoint restores the hyperparameters of the saved run); "
                          f"to train on with another, set trainer.optimizer.lr after load.", UserWarning, stacklevel=2)
