"""Checkpoints: data-only files that resume a run bit for bit and refuse anything else unchanged.

Each test trains a tiny network (2-4-2, eight samples, two batches per epoch) and checks one
promise of ``tinygrad_mb.checkpoint``: a round trip resumes exactly; every damaged, foreign,
incompatible or malicious file is refused with a ``CheckpointError`` naming the file, before
anything of the trainer changes; a write that fails, a diverged state or a process killed at any
moment never costs the last good checkpoint.
"""

from __future__ import annotations

import copy
import errno
import io
import json
import os
import pickle
import random
import select
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygrad_mb import checkpoint, nn, optim
from tinygrad_mb.checkpoint import CheckpointError
from tinygrad_mb.data import make_moons
from tinygrad_mb.train import Trainer

X, Y = make_moons(8, noise=0.1, seed=0)
FIT: dict[str, Any] = {"batch_size": 4, "seed": 1}
REPO = Path(__file__).resolve().parent.parent


def tiny_trainer(optimizer: str = "adam", seed: int = 0, sizes: tuple[int, ...] = (2, 4, 2),
                 **kwargs: Any) -> Trainer:
    """A 2-4-2 tanh network (weights from ``seed``) with Adam or SGD with momentum."""
    model = nn.MLP(list(sizes), rng=seed)
    if optimizer == "adam":
        opt: optim.Optimizer = optim.Adam(model.parameters(), lr=0.05)
    else:
        opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    return Trainer(model, nn.cross_entropy, opt, progress=False, **kwargs)


def parameters_of(trainer: Trainer) -> list[np.ndarray]:
    return [p.data.copy() for p in trainer.model.parameters()]


def same(a: Any, b: Any) -> bool:
    """Exact equality of nested dicts, lists, arrays (dtype included) and numbers."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype \
            and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def everything_of(trainer: Trainer) -> dict[str, Any]:
    """What a load may change: parameters, optimizer state, epochs done, history."""
    return {"parameters": parameters_of(trainer), "optimizer": trainer.optimizer.state_dict(),
            "epochs_done": trainer.epochs_done, "history": copy.deepcopy(trainer.history)}


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A checkpoint of two epochs of Adam."""
    path = tmp_path / "good.ckpt"
    tiny_trainer(checkpoint=path).fit(X, Y, epochs=2, **FIT)
    return path


@pytest.fixture
def victim() -> Trainer:
    """A trainer in the middle of its own run, so that any change a failed load makes shows."""
    trainer = tiny_trainer(seed=7)
    trainer.fit(X, Y, epochs=3, **FIT)
    return trainer


def assert_refused(trainer: Trainer, path: Path, *fragments: str) -> CheckpointError:
    """Loading ``path`` raises CheckpointError naming the file and the problem; the trainer is unchanged."""
    before = everything_of(trainer)
    with pytest.raises(CheckpointError) as caught:
        trainer.load(path)
    message = str(caught.value)
    assert message.startswith("Trainer.load: ") and str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert same(everything_of(trainer), before)
    return caught.value


def rewrite(source: Path, target: Path, edit: Callable[[dict[str, Any], dict[str, np.ndarray]], None],
            reseal: bool = True) -> None:
    """Copy a checkpoint with ``edit(header, arrays)`` applied, with valid zip CRCs and, if ``reseal``, a
    recomputed checksum: what a deliberate edit (or a tool that re-zips) produces."""
    with np.load(source, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    header = json.loads(arrays.pop("header").tobytes())
    edit(header, arrays)
    if reseal and all(entry["key"] in arrays for entry in header["arrays"]):  # (a missing array: nothing to seal)
        header["sha256"] = checkpoint.checksum(header, arrays)
    with open(target, "wb") as f:
        np.savez(f, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)


# ------------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_resuming_from_a_checkpoint_reaches_the_parameters_of_an_uninterrupted_run_bit_for_bit(
        tmp_path: Path, optimizer: str) -> None:
    uninterrupted = tiny_trainer(optimizer)
    uninterrupted.fit(X, Y, epochs=6, **FIT)

    path = tmp_path / "run.ckpt"
    tiny_trainer(optimizer, checkpoint=path).fit(X, Y, epochs=3, **FIT)
    resumed = tiny_trainer(optimizer, seed=99)  # other initial weights and a fresh optimizer: load replaces them
    resumed.load(path)
    assert resumed.epochs_done == 3
    resumed.fit(X, Y, epochs=6, **FIT)

    assert same(everything_of(resumed), everything_of(uninterrupted))


def test_optimizer_state_that_is_none_is_kept_as_none(tmp_path: Path) -> None:
    """SGD's velocity is None before the first step; it is a null in the header, not an array."""
    path = tmp_path / "run.ckpt"
    tiny_trainer("momentum").save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert not any(key.startswith("optimizer/") for key in npz.files)
    loaded = tiny_trainer("momentum", seed=5)
    loaded.optimizer.velocity = [np.ones_like(p.data) for p in loaded.model.parameters()]  # type: ignore[attr-defined]
    loaded.load(path)
    assert loaded.optimizer.velocity == [None] * 4  # type: ignore[attr-defined]


def test_the_file_is_an_npz_of_plain_arrays_with_a_json_header(good: Path) -> None:
    with np.load(good, allow_pickle=False) as npz:
        header = json.loads(npz["header"].tobytes())
        assert npz["model/layers.0.weight"].shape == (2, 4) and npz["optimizer/steps/0"].dtype == np.int64
        assert header["sha256"] == checkpoint.checksum(header, {key: npz[key] for key in npz.files})
    assert (header["format"], header["version"], header["epochs_done"]) == ("tinygrad_mb checkpoint", 1, 2)
    assert header["model"] == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
    assert header["optimizer"]["kind"] == "Adam" and header["optimizer"]["hyperparameters"]["betas"] == [0.9, 0.999]
    assert {"key": "model/layers.0.bias", "dtype": "<f8", "shape": [4]} in header["arrays"]
    assert len(header["history"]["loss"]) == 2


def test_a_path_with_a_tilde_is_in_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    trainer = tiny_trainer(checkpoint="~/runs/run.ckpt")
    trainer.fit(X, Y, epochs=1, **FIT)
    assert (tmp_path / "runs" / "run.ckpt").is_file()
    resumed = tiny_trainer(seed=3)
    resumed.load("~/runs/run.ckpt")
    assert same(everything_of(resumed), everything_of(trainer))


# ------------------------------------------------------------------------------ files that are refused
def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def foreign_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    return buffer.getvalue()


def someone_elses_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.ones((2, 4)), bias=np.zeros(4))
    return buffer.getvalue()


@pytest.mark.parametrize("content, fragment", [
    (b"", "is empty (0 bytes)"),
    (pickle.dumps({"model": {}, "epochs_done": 3}), "is a pickle"),
    (b"epoch 3: loss 0.25\n", "is not a checkpoint: a checkpoint is an .npz (zip) file"),
    (foreign_zip(), "['readme.txt'] are not .npy arrays"),
    (someone_elses_npz(), "it has no header"),
], ids=["empty", "pickle", "text", "zip", "npz"])
def test_a_file_that_is_not_a_checkpoint_is_refused_changing_nothing(tmp_path: Path, victim: Trainer,
                                                                     content: bytes, fragment: str) -> None:
    assert_refused(victim, write_bytes(tmp_path / "run.ckpt", content), fragment)


def test_a_missing_file_is_refused_changing_nothing(tmp_path: Path, victim: Trainer) -> None:
    assert_refused(victim, tmp_path / "nowhere.ckpt", "cannot be read: No such file")


@pytest.mark.parametrize("keep", [0.01, 0.3, 0.6, 0.9, 0.999])
def test_a_truncated_checkpoint_is_refused_changing_nothing(tmp_path: Path, good: Path, victim: Trainer,
                                                            keep: float) -> None:
    data = good.read_bytes()
    bad = write_bytes(tmp_path / "bad.ckpt", data[:max(4, int(len(data) * keep))])
    assert_refused(victim, bad, "is damaged or not a checkpoint")


def test_a_flipped_bit_anywhere_is_caught_or_changes_nothing_that_is_read(tmp_path: Path, good: Path,
                                                                          victim: Trainer) -> None:
    """Bits of the data or header are caught (by the zip's CRC-32 or the checksum); a flip that passes
    can only be in zip metadata such as a timestamp, and then the state read is exactly the saved one."""
    data = good.read_bytes()
    expected = tiny_trainer(seed=7)
    expected.load(good)
    caught = 0
    for position in range(0, len(data), max(1, len(data) // 97)):
        flipped = bytearray(data)
        flipped[position] ^= 1 << (position % 8)
        bad = write_bytes(tmp_path / "bad.ckpt", bytes(flipped))
        trainer = copy.deepcopy(victim)
        try:
            trainer.load(bad)
        except CheckpointError as exc:
            assert str(bad) in str(exc)
            assert same(everything_of(trainer), everything_of(victim))
            caught += 1
        else:
            assert same(everything_of(trainer), everything_of(expected))
    assert caught >= 80


def swap_two_arrays(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    arrays["model/layers.0.weight"], arrays["optimizer/m/0"] = arrays["optimizer/m/0"], arrays["model/layers.0.weight"]


def change_one_value(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    arrays["model/layers.2.bias"] = arrays["model/layers.2.bias"] + np.array([0.0, 1e-12])


def change_epochs(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    header["epochs_done"] = 1


@pytest.mark.parametrize("edit", [swap_two_arrays, change_one_value, change_epochs])
def test_an_edit_behind_valid_zip_crcs_fails_the_checksum_changing_nothing(
        tmp_path: Path, good: Path, victim: Trainer, edit: Callable[..., None]) -> None:
    rewrite(good, tmp_path / "bad.ckpt", edit, reseal=False)
    assert_refused(victim, tmp_path / "bad.ckpt", "is damaged: its SHA-256 checksum does not match")


def drop_an_array(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    del arrays["optimizer/v/1"]


def drop_the_history(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    del header["history"]


def store_float32(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    arrays["model/layers.0.bias"] = arrays["model/layers.0.bias"].astype(np.float32)


def version_2(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    header["version"] = 2


def rename_a_parameter(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    header["model"][0] = "layers.0.kernel"
    arrays["model/layers.0.kernel"] = arrays.pop("model/layers.0.weight")
    header["arrays"][0]["key"] = "model/layers.0.kernel"


def drop_an_optimizer_entry(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    del header["optimizer"]["state"]["steps"][3], arrays["optimizer/steps/3"]
    header["arrays"] = [entry for entry in header["arrays"] if entry["key"] != "optimizer/steps/3"]


def negative_learning_rate(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    header["optimizer"]["hyperparameters"]["lr"] = -0.05


@pytest.mark.parametrize("edit, fragments", [
    (drop_an_array, ["is incomplete or altered: arrays missing from the file: ['optimizer/v/1']"]),
    (drop_the_history, ["is incomplete: its header is missing ['history']"]),
    (store_float32, ["array 'model/layers.0.bias' has dtype <f4", "header says <f8"]),
    (version_2, ["has checkpoint format version 2, but this tinygrad_mb reads version 1"]),
    (rename_a_parameter, ["does not fit this model", "names do not match", "layers.0.kernel"]),
    (drop_an_optimizer_entry, ["does not fit this trainer's optimizer", "'steps' has 3 entries", "4 parameters"]),
    (negative_learning_rate, ["does not fit this trainer's optimizer", "lr must be a positive number"]),
], ids=["missing-array", "missing-history", "other-dtype", "version", "names", "state-length", "lr"])
def test_a_checkpoint_with_a_missing_or_wrong_part_is_refused_changing_nothing(
        tmp_path: Path, good: Path, victim: Trainer, edit: Callable[..., None], fragments: list[str]) -> None:
    rewrite(good, tmp_path / "bad.ckpt", edit)
    assert_refused(victim, tmp_path / "bad.ckpt", *fragments)


def test_a_checkpoint_of_other_layer_sizes_is_refused_changing_nothing(tmp_path: Path, victim: Trainer) -> None:
    path = tmp_path / "wide.ckpt"
    tiny_trainer(sizes=(2, 5, 2), checkpoint=path).fit(X, Y, epochs=1, **FIT)
    # Adam's moments have the saved shapes too: the optimizer, checked first, names the mismatch
    assert_refused(victim, path, "does not fit this trainer's optimizer", "has shape (2, 5)")


def test_a_checkpoint_of_another_optimizer_is_refused_changing_nothing(tmp_path: Path, victim: Trainer) -> None:
    path = tmp_path / "sgd.ckpt"
    tiny_trainer("momentum", checkpoint=path).fit(X, Y, epochs=1, **FIT)
    assert_refused(victim, path, "holds the state of an SGD optimizer but this trainer uses Adam")


def test_an_optimizer_over_fewer_parameters_is_refused_changing_nothing(good: Path) -> None:
    model = nn.MLP([2, 4, 2], rng=7)
    trainer = Trainer(model, nn.cross_entropy, optim.Adam(model.parameters()[:2], lr=0.05), progress=False)
    trainer.fit(X, Y, epochs=1, **FIT)
    assert_refused(trainer, good, "'m' has 4 entries but this optimizer has 2 parameters")


# ------------------------------------------------------------------------------ a malicious file runs nothing
class Payload:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def pickle_as_npz(payload: Payload, protocol: int) -> bytes:
    return pickle.dumps(payload, protocol=protocol)


def pickle_inside_an_npz(payload: Payload, protocol: int) -> bytes:
    """The payload as the header, an object array (numpy pickles those when saving)."""
    buffer = io.BytesIO()
    header = np.empty(1, dtype=object)
    header[0] = payload
    np.savez(buffer, header=header)
    return buffer.getvalue()


@pytest.mark.parametrize("protocol", [0, 5])
@pytest.mark.parametrize("disguise", [pickle_as_npz, pickle_inside_an_npz])
def test_a_malicious_pickle_runs_nothing_and_is_refused(tmp_path: Path, victim: Trainer, protocol: int,
                                                        disguise: Callable[[Payload, int], bytes]) -> None:
    live = tmp_path / "proof-the-payload-works"
    pickle.loads(pickle.dumps(Payload(live), protocol=protocol))
    assert live.exists()  # the payload does run code when unpickled...

    marker = tmp_path / "payload-ran"
    evil = write_bytes(tmp_path / "evil.npz", disguise(Payload(marker), protocol))
    error = assert_refused(victim, evil)
    assert not marker.exists()  # ...but loading it as a checkpoint runs nothing
    assert any(fragment in str(error) for fragment in ("is a pickle", "is not a checkpoint", "is damaged"))


# ------------------------------------------------------------------------------ a failed save keeps the old file
@pytest.mark.parametrize("failing", ["savez", "fsync"])
def test_a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    path = tmp_path / "run.ckpt"
    trainer = tiny_trainer(checkpoint=path)
    trainer.fit(X, Y, epochs=2, **FIT)
    previous = path.read_bytes()

    def full_disk(f: Any, *args: Any, **kwargs: Any) -> None:
        if failing == "savez":
            f.write(b"PK\x03\x04 the first bytes of a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np if failing == "savez" else os, failing, full_disk)
    with pytest.raises(OSError, match="Trainer.save: could not write the checkpoint") as caught:
        trainer.fit(X, Y, epochs=3, **FIT)
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC and str(path) in str(caught.value)
    assert path.read_bytes() == previous
    assert os.listdir(tmp_path) == ["run.ckpt"]
    tiny_trainer().load(path)


def poison_a_parameter(trainer: Trainer) -> None:
    trainer.model.parameters()[1].data[2] = np.nan


def poison_adams_moment(trainer: Trainer) -> None:
    trainer.optimizer.v[3][0] = np.inf  # type: ignore[attr-defined]


def poison_the_last_loss(trainer: Trainer) -> None:
    trainer.history["loss"][-1] = float("nan")


@pytest.mark.parametrize("poison, fragment", [
    (poison_a_parameter, "NaN or inf in parameter 'layers.0.bias'"),
    (poison_adams_moment, "NaN or inf in optimizer state 'v' of parameter 3"),
    (poison_the_last_loss, "NaN or inf in the last 'loss' of the history (nan)"),
])
def test_save_refuses_a_non_finite_state_and_keeps_the_previous_checkpoint(
        tmp_path: Path, poison: Callable[[Trainer], None], fragment: str) -> None:
    path = tmp_path / "run.ckpt"
    trainer = tiny_trainer(checkpoint=path)
    trainer.fit(X, Y, epochs=2, **FIT)
    previous = path.read_bytes()
    poison(trainer)
    with pytest.raises(CheckpointError, match="Trainer.save: ") as caught:
        trainer.save(path)
    assert fragment in str(caught.value) and str(path) in str(caught.value)
    assert path.read_bytes() == previous
    assert os.listdir(tmp_path) == ["run.ckpt"]


def test_a_save_removes_the_leftovers_of_this_checkpoint_only(tmp_path: Path) -> None:
    leftovers = [".run.ckpt.partial-0123abcd", ".run.ckpt.partial-ffffffff"]
    others = [".run.ckpt.partial-0123abcd.bak", ".other.ckpt.partial-0123abcd", "run.ckpt.partial-0123abcd",
              ".run.ckpt.partial-0123abcd.partial-0123abcd"]  # the last: a leftover of '.run.ckpt.partial-0123abcd'
    for name in leftovers + others:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    tiny_trainer().save(tmp_path / "run.ckpt")
    assert sorted(os.listdir(tmp_path)) == sorted(others + ["run.ckpt"])


# ------------------------------------------------------------------------------ fit checks the destination first
def parent_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    return tmp_path / "notes.txt" / "run.ckpt"


def grandparent_is_a_file(tmp_path: Path) -> Path:
    return parent_is_a_file(tmp_path).parent / "runs" / "run.ckpt"


def destination_is_a_directory(tmp_path: Path) -> Path:
    (tmp_path / "run.ckpt").mkdir()
    return tmp_path / "run.ckpt"


def directory_is_read_only(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root may write into a read-only directory")
    (tmp_path / "locked").mkdir(mode=0o500)
    return tmp_path / "locked" / "run.ckpt"


@pytest.mark.parametrize("destination, fragment", [
    (parent_is_a_file, "cannot be written"),
    (grandparent_is_a_file, "cannot be written"),
    (destination_is_a_directory, "is a directory"),
    (directory_is_read_only, "cannot be written"),
])
def test_fit_refuses_an_unwritable_checkpoint_before_any_parameter_changes(
        tmp_path: Path, destination: Callable[[Path], Path], fragment: str) -> None:
    path = destination(tmp_path)
    trainer = tiny_trainer(checkpoint=path)
    before = everything_of(trainer)
    with pytest.raises(CheckpointError, match="Trainer.fit: ") as caught:
        trainer.fit(X, Y, epochs=2, **FIT)
    assert fragment in str(caught.value) and str(path) in str(caught.value)
    assert same(everything_of(trainer), before)


def test_fit_creates_a_missing_checkpoint_directory(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "today" / "run.ckpt"
    tiny_trainer(checkpoint=path).fit(X, Y, epochs=1, **FIT)
    assert os.listdir(path.parent) == ["run.ckpt"]


def test_a_checkpoint_that_is_not_a_path_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Trainer: checkpoint must be a file path .* got 3"):
        tiny_trainer(checkpoint=3)


# ------------------------------------------------------------------------------ killed at random moments
# The run of tiny_trainer("adam") with FIT, in a process of its own that resumes from the
# checkpoint if there is one, says how many epochs it starts from, and trains until killed.
KILLABLE_RUN = """
import os, sys
from tinygrad_mb import nn, optim
from tinygrad_mb.data import make_moons
from tinygrad_mb.train import Trainer

path = sys.argv[1]
model = nn.MLP([2, 4, 2], rng=0)
trainer = Trainer(model, nn.cross_entropy, optim.Adam(model.parameters(), lr=0.05), progress=False,
                  checkpoint=path)
if os.path.exists(path):
    trainer.load(path)
print(trainer.epochs_done, flush=True)
X, y = make_moons(8, noise=0.1, seed=0)
trainer.fit(X, y, batch_size=4, seed=1, epochs=10**9)
"""


def start_and_kill(path: Path, delay: float) -> int:
    """Run KILLABLE_RUN, SIGKILL it ``delay`` seconds into training; return the epochs it started from."""
    child = subprocess.Popen([sys.executable, "-c", KILLABLE_RUN, str(path)], cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None
    try:
        ready, _, _ = select.select([child.stdout], [], [], 30)
        line = child.stdout.readline() if ready else ""
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    assert line.strip().isdigit(), f"the run did not start: {line!r} {err}"
    assert child.returncode == -signal.SIGKILL, err
    return int(line)


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and select on a pipe are POSIX")
def test_a_run_killed_at_random_moments_resumes_to_exactly_the_uninterrupted_parameters(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    delays = random.Random(0)
    saved: list[Trainer] = []  # the checkpoint as loaded after each kill
    for _ in range(20):
        started = start_and_kill(path, delays.uniform(0.0, 0.08))
        others = [name for name in os.listdir(tmp_path) if name != "run.ckpt"]
        assert len(others) <= 1 and all(checkpoint.is_leftover(name, "run.ckpt") for name in others)
        if path.exists():  # the first kill may come before the first save
            saved.append(tiny_trainer(seed=3))
            saved[-1].load(path)
            assert saved[-1].epochs_done >= started
    assert saved and saved[-1].epochs_done >= 20  # the run made progress across the kills

    uninterrupted = tiny_trainer()  # one epoch at a time: the state after each epoch of one run
    for trainer in saved:
        if trainer.epochs_done > uninterrupted.epochs_done:
            uninterrupted.fit(X, Y, epochs=trainer.epochs_done, **FIT)
        assert same(everything_of(trainer), everything_of(uninterrupted))

    target = saved[-1].epochs_done + 5
    resumed = tiny_trainer(seed=3, checkpoint=path)
    resumed.load(path)
    resumed.fit(X, Y, epochs=target, **FIT)
    in_one_go = tiny_trainer()
    in_one_go.fit(X, Y, epochs=target, **FIT)
    assert same(everything_of(resumed), everything_of(in_one_go))
    assert os.listdir(tmp_path) == ["run.ckpt"]  # the next save removed the interrupted write's file
