"""Findings of an adversarial review of the trainer, checkpoints and optimizers, one test each.

Every test names the property that was broken: bad input that changed the trainer before it
failed, a diverged or foreign state that was recorded or written, a file that was overwritten or
that made a read hang. Each failed before its fix.
"""

from __future__ import annotations

import copy
import io
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygrad_mb import Tensor, checkpoint, nn, optim
from tinygrad_mb.checkpoint import CheckpointError, read_checkpoint
from tinygrad_mb.data import make_moons
from tinygrad_mb.train import Trainer

X, Y = make_moons(12, noise=0.1, seed=0)


def adam_trainer(**kwargs: Any) -> Trainer:
    model = nn.MLP([2, 4, 2], rng=0)
    kwargs.setdefault("progress", False)
    return Trainer(model, nn.cross_entropy, optim.Adam(model.parameters(), lr=0.05), **kwargs)


def everything_of(trainer: Trainer) -> dict[str, Any]:
    """Parameters, their .grad, the optimizer's state, epochs done and history, copied."""
    params = trainer.model.parameters()
    return {"data": [p.data.copy() for p in params],
            "grad": [None if p.grad is None else p.grad.copy() for p in params],
            "optimizer": trainer.optimizer.state_dict(),
            "epochs_done": trainer.epochs_done, "history": copy.deepcopy(trainer.history)}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def reseal(source: Path, target: Path, edit: Any) -> None:
    """Copy a checkpoint with ``edit(header)`` applied and a recomputed checksum (a deliberate edit)."""
    with np.load(source, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    header = json.loads(arrays.pop("header").tobytes())
    edit(header)
    header["sha256"] = checkpoint.checksum(header, arrays)
    with open(target, "wb") as f:
        np.savez(f, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)


# ------------------------------------------------------------------------------ fit
def test_a_bad_label_in_a_late_batch_changes_nothing() -> None:
    """Batches 1-2 used to step before batch 3's label failed: bad data changed the parameters."""
    trainer = adam_trainer()
    trainer.fit(X, Y, batch_size=4, epochs=1)
    before = everything_of(trainer)
    bad = Y.copy()
    bad[-1] = 5
    with pytest.raises(ValueError, match=r"epoch 2, batch 3\): cross_entropy: label 5 is out of range"):
        trainer.fit(X, bad, batch_size=4, epochs=2, shuffle=False)
    assert same(everything_of(trainer), before)
    trainer.fit(X, Y, batch_size=4, epochs=2)  # and the trainer goes on from where it was
    assert trainer.epochs_done == 2


@pytest.mark.parametrize("case", ["one sample", "a shared layer"])
def test_a_noise_scale_that_cannot_be_measured_changes_nothing(case: str) -> None:
    """The noise scale failed only after the first epoch had trained; now before any training."""
    if case == "one sample":
        model: nn.Module = nn.MLP([2, 4, 2], rng=0)
        data = X[:1], Y[:1]
    else:
        shared = nn.Linear(2, 2, rng=0)
        model = nn.Sequential(shared, nn.Tanh(), shared)
        data = X, Y
    if case == "a shared layer":  # refused when the trainer is built, before any fit
        with pytest.raises(ValueError, match=r"^Trainer\(noise_scale=True\): parameter .* is used by two layers"):
            Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1), noise_scale=True)
        return
    trainer = Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1), progress=False,
                      noise_scale=True)
    before = everything_of(trainer)
    with pytest.raises(ValueError, match=r"^Trainer.fit: noise_scale=True .* at least 2 samples, got 1"):
        trainer.fit(*data, batch_size=4, epochs=2)  # refused before the first epoch
    assert same(everything_of(trainer), before)


@pytest.mark.parametrize("first, then", [(True, False), (False, True)])
def test_a_resumed_fit_must_record_the_metrics_the_history_holds(tmp_path: Path, first: bool, then: bool) -> None:
    """With validation in one fit and not in the next, val_loss[i] no longer belonged to epoch i."""
    trainer = adam_trainer(checkpoint=tmp_path / "run.ckpt")
    trainer.fit(X, Y, batch_size=4, epochs=2, validation=(X, Y) if first else None)
    before = everything_of(trainer)
    with pytest.raises(ValueError, match=r"would no longer line up epoch by epoch; pass the same validation="):
        trainer.fit(X, Y, batch_size=4, epochs=4, validation=(X, Y) if then else None)
    assert same(everything_of(trainer), before)
    resumed = adam_trainer()
    resumed.load(tmp_path / "run.ckpt")
    with pytest.raises(ValueError, match=r"would no longer line up"):
        resumed.fit(X, Y, batch_size=4, epochs=4, validation=(X, Y) if then else None)
    resumed.fit(X, Y, batch_size=4, epochs=4, validation=(X, Y) if first else None)
    assert all(len(values) == 4 for values in resumed.history.values())


@pytest.mark.parametrize("validation", [(X,), (X, Y, Y), {"X": X, "y": Y}, np.stack([X[:, 0], Y])],
                         ids=["one", "three", "dict", "array"])
def test_validation_that_is_not_a_pair_is_refused_naming_validation(validation: Any) -> None:
    """A 1-tuple gave "check_batch() missing 1 required positional argument: 'op'"."""
    trainer = adam_trainer()
    with pytest.raises(TypeError, match=r"Trainer.fit: validation must be a pair \(X_val, y_val\)"):
        trainer.fit(X, Y, epochs=1, validation=validation)
    assert trainer.epochs_done == 0


def test_validation_data_with_nan_is_refused_before_training(tmp_path: Path) -> None:
    """A NaN in X_val was recorded as val_loss nan, then the checkpoint refused it after the epoch was recorded."""
    trainer = adam_trainer(checkpoint=tmp_path / "run.ckpt")
    before = everything_of(trainer)
    X_val = X.copy()
    X_val[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"the validation loss is nan before training; check X_val and y_val"):
        trainer.fit(X, Y, batch_size=4, epochs=2, validation=(X_val, Y))
    assert same(everything_of(trainer), before)
    assert not (tmp_path / "run.ckpt").exists()


def test_an_infinite_or_undefined_noise_scale_is_recorded_and_saved(tmp_path: Path) -> None:
    """B_simple is inf when the mean gradient is 0, nan when every gradient is; the checkpoint took
    such a history for divergence and refused."""
    x = np.linspace(-1.0, 1.0, 10)[:, None]
    model = nn.Linear(1, 1, rng=0)
    model.weight.data[:] = 2.0
    model.bias.data[:] = 1.0  # the exact fit of y = 2x + 1: every gradient is 0
    trainer = Trainer(model, nn.mse_loss, optim.SGD(model.parameters(), lr=0.1), progress=False,
                      noise_scale=True, checkpoint=tmp_path / "run.ckpt")
    history = trainer.fit(x, 2 * x + 1, batch_size=5, epochs=2)
    assert np.isnan(history["noise_scale"]).all() and len(history["noise_scale"]) == 2
    assert np.isnan(read_checkpoint(tmp_path / "run.ckpt").history["noise_scale"]).all()

    noisy = 2 * x + 1 + 0.1 * np.random.default_rng(0).normal(size=x.shape)
    solution, *_ = np.linalg.lstsq(np.c_[x, np.ones(10)], noisy, rcond=None)
    model.weight.data[:], model.bias.data[:] = solution[:1], solution[1]  # the minimum: mean gradient 0
    trainer = Trainer(model, nn.mse_loss, optim.SGD(model.parameters(), lr=1e-300), progress=False,
                      noise_scale=True, checkpoint=tmp_path / "min.ckpt")  # steps too small to leave it
    history = trainer.fit(x, noisy, batch_size=5, epochs=2)
    assert history["noise_scale"] == [np.inf, np.inf]
    assert read_checkpoint(tmp_path / "min.ckpt").history == history


class WithUnusedParameter(nn.Module):
    def __init__(self) -> None:
        self.layer = nn.Linear(2, 2, rng=0)
        self.unused = Tensor(np.array([1e300]), requires_grad=True)

    def forward(self, x: Any) -> Tensor:
        return self.layer(x)


def test_a_parameter_that_overflows_in_an_epoch_is_caught_before_the_epoch_is_recorded(tmp_path: Path) -> None:
    """Weight decay drove an unused parameter to -inf with a finite loss: the epoch was recorded, then the
    save refused the state with a CheckpointError, leaving epochs_done and the history ahead of the file."""
    model = WithUnusedParameter()
    trainer = Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1, weight_decay=1e10),
                      progress=False, checkpoint=tmp_path / "run.ckpt")
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(FloatingPointError, match=r"parameter 'unused' holds NaN or inf after epoch 1"):
        trainer.fit(X, Y, batch_size=4, epochs=1)
    assert trainer.epochs_done == 0 and trainer.history == {}
    assert not (tmp_path / "run.ckpt").exists()


def test_a_non_finite_step_leaves_grad_as_it_was() -> None:
    """The parameters were kept, but .grad was left holding the NaN gradient of the refused step."""
    trainer = adam_trainer()
    trainer.fit(X, Y, batch_size=4, epochs=1)
    before = everything_of(trainer)
    bad = X.copy()
    bad[0, 0] = np.nan
    with np.errstate(invalid="ignore"), pytest.raises(FloatingPointError, match=r"epoch 2, batch 1"):
        trainer.fit(bad, Y, batch_size=4, epochs=2, shuffle=False)
    assert same(everything_of(trainer), before)


def test_sgld_in_the_trainer_must_know_the_size_of_the_training_set() -> None:
    """dataset_size=100 for 12 samples scaled the likelihood 8 times too much, silently."""
    model = nn.MLP([2, 4, 2], rng=0)
    trainer = Trainer(model, nn.cross_entropy, optim.SGLD(model.parameters(), lr=1e-4, dataset_size=100, seed=0),
                      progress=False)
    before = everything_of(trainer)
    with pytest.raises(ValueError, match=r"dataset_size=100 but X holds 12 samples.*dataset_size=12"):
        trainer.fit(X, Y, batch_size=4, epochs=1)
    assert same(everything_of(trainer), before)
    trainer.optimizer.dataset_size = 12  # type: ignore[attr-defined]
    trainer.fit(X, Y, batch_size=4, epochs=1)


def test_load_warns_when_the_checkpoint_replaces_the_learning_rate(tmp_path: Path) -> None:
    """The advice "resume with a smaller learning rate" was silently undone: load restores the saved lr."""
    adam_trainer(checkpoint=tmp_path / "run.ckpt").fit(X, Y, batch_size=4, epochs=1)
    model = nn.MLP([2, 4, 2], rng=0)
    smaller = Trainer(model, nn.cross_entropy, optim.Adam(model.parameters(), lr=0.001), progress=False)
    with pytest.warns(UserWarning, match=r"lr=0.05 replaces this optimizer's lr=0.001.*set trainer.optimizer.lr"):
        smaller.load(tmp_path / "run.ckpt")
    same_lr = adam_trainer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same_lr.load(tmp_path / "run.ckpt")


# ------------------------------------------------------------------------------ checkpoint files
@pytest.mark.parametrize("content", [b"epoch 3: loss 0.25\n", "npz"], ids=["notes", "data"])
def test_a_file_that_is_not_a_checkpoint_is_never_overwritten(tmp_path: Path, content: Any) -> None:
    """Trainer(checkpoint="data.npz") replaced the user's data set with a checkpoint, silently."""
    path = tmp_path / "data.npz"
    if content == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, X=X, y=Y)
        content = buffer.getvalue()
    path.write_bytes(content)
    trainer = adam_trainer(checkpoint=path)
    before = everything_of(trainer)
    with pytest.raises(CheckpointError, match=r"exists and is not a tinygrad_mb checkpoint, so it was not overwritten"):
        trainer.fit(X, Y, batch_size=4, epochs=1)
    with pytest.raises(CheckpointError, match=r"Trainer.save: .* was not overwritten"):
        trainer.save(path)
    assert path.read_bytes() == content
    assert same(everything_of(trainer), before)
    (tmp_path / "empty.ckpt").write_bytes(b"")  # an empty file or an earlier checkpoint may be replaced
    trainer.save(tmp_path / "empty.ckpt")
    trainer.checkpoint = str(tmp_path / "empty.ckpt")
    trainer.fit(X, Y, batch_size=4, epochs=2)
    assert read_checkpoint(tmp_path / "empty.ckpt").epochs_done == 2


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_saving_through_a_symlink_updates_the_file_it_points_to(tmp_path: Path) -> None:
    """The rename replaced the link itself with a file, so the file it pointed to kept the old state."""
    target, link = tmp_path / "runs" / "run-7.ckpt", tmp_path / "latest.ckpt"
    target.parent.mkdir()
    adam_trainer().save(target)
    link.symlink_to(target)
    trainer = adam_trainer(checkpoint=link)
    trainer.fit(X, Y, batch_size=4, epochs=2)
    assert link.is_symlink()
    assert read_checkpoint(target).epochs_done == 2
    assert sorted(os.listdir(target.parent)) == ["run-7.ckpt"]


def test_a_checkpoint_path_that_names_a_directory_is_refused(tmp_path: Path) -> None:
    """"runs/" (not yet a directory) was written as a file named "runs"."""
    trainer = adam_trainer(checkpoint=str(tmp_path / "runs") + os.sep)
    with pytest.raises(CheckpointError, match=r"names a directory; give the checkpoint a file name"):
        trainer.fit(X, Y, batch_size=4, epochs=1)
    with pytest.raises(CheckpointError, match=r"names a directory"):
        trainer.save(str(tmp_path / "runs") + os.sep)
    assert os.listdir(tmp_path) == [] and trainer.epochs_done == 0


def test_a_compressed_member_is_refused_before_it_is_unpacked(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0.2 MB file unpacked to 200 MB (a zip bomb): memory was spent before the file was refused."""
    path = tmp_path / "bomb.ckpt"
    with open(path, "wb") as f:
        np.savez_compressed(f, header=np.zeros(1, np.uint8), bomb=np.zeros(200_000_000, np.uint8))
    assert path.stat().st_size < 1_000_000

    def no_unpacking(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("np.load was called on a compressed file")

    monkeypatch.setattr(np, "load", no_unpacking)
    with pytest.raises(CheckpointError, match=r"are compressed \(or claim to be larger than the file\), but a "
                                              r"checkpoint stores"):
        adam_trainer().load(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_loading_a_pipe_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    """open() of a named pipe waits for a writer: load never returned."""
    path = tmp_path / "run.ckpt"
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            adam_trainer().load(path)
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # release the blocked open, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("loading a named pipe blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], CheckpointError)
    assert "is not a regular file" in str(outcome[0])


@pytest.mark.parametrize("edit", [
    lambda h: h.update(epochs_done=10**12),
    lambda h: h["history"]["loss"].append(0.5),
    lambda h: h.update(history={}),
], ids=["epochs-done", "one-more-loss", "no-history"])
def test_a_history_without_one_value_per_epoch_done_is_refused(tmp_path: Path, edit: Any) -> None:
    """epochs_done=10**12 with 2 losses loaded; fit(epochs=10**12 + 1) then drew 10**12 permutations (hung)."""
    good = tmp_path / "good.ckpt"
    adam_trainer(checkpoint=good).fit(X, Y, batch_size=4, epochs=2)
    reseal(good, tmp_path / "bad.ckpt", edit)
    victim = adam_trainer()
    before = everything_of(victim)
    with pytest.raises(CheckpointError, match=r"'history' does not hold exactly one value per epoch done"):
        victim.load(tmp_path / "bad.ckpt")
    assert same(everything_of(victim), before)
    victim.history = {"loss": [1.0]}  # and such a history is not written either
    with pytest.raises(CheckpointError, match=r"was not written: its history does not hold exactly one value"):
        victim.save(tmp_path / "new.ckpt")


def test_a_step_count_beyond_int64_is_refused() -> None:
    """A uint64 count of 2**64 - 1 loaded, and every later state_dict() (so every save) raised OverflowError."""
    model = nn.Linear(2, 2, rng=0)
    opt = optim.Adam(model.parameters())
    state = opt.state_dict()
    before = copy.deepcopy(state)
    state["state"]["steps"][0] = np.array(2**64 - 1, dtype=np.uint64)
    with pytest.raises(ValueError, match=r"must be a non-negative number of steps below 2\*\*63"):
        opt.load_state_dict(state)
    assert same(opt.state_dict(), before)


def test_evaluate_takes_tensor_targets_like_arrays() -> None:
    """evaluate(X, Tensor(y)) compared class ids with a Tensor object: accuracy 0.0 instead of 0.85, silently."""
    trainer = adam_trainer()
    trainer.fit(X, Y, batch_size=4, epochs=5)
    expected = trainer.evaluate(X, Y)
    assert trainer.evaluate(Tensor(X), Tensor(Y.astype(float))) == expected
    assert trainer.evaluate(X.tolist(), Y.tolist()) == expected
