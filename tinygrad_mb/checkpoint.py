"""Checkpoints: a training run saved as data only, and read back only after the whole file is checked.

Why not pickle? Unpickling runs whatever code the file asks for, so opening a checkpoint from
somewhere else could do anything. A checkpoint here is an ``.npz`` file (numpy's zip of ``.npy``
arrays) read with ``allow_pickle=False``: it can only ever be numbers and text.

What the file holds:

- ``model/<name>``: one array per parameter, named as in ``model.state_dict()`` (``0.weight``, ...);
- ``optimizer/<state>/<i>``: one array per entry of the optimizer's state (``velocity``, ``m``,
  ``steps``, ...) for parameter ``i``; an entry that is None (SGD's velocity before the first
  step) has no array, only a ``null`` in the header;
- ``header``: UTF-8 JSON stored as a uint8 array: the format name and version, the list of arrays
  (key, dtype, shape), the parameter names, the optimizer's kind, hyperparameters and state layout,
  ``epochs_done``, the history, and ``sha256``.

The checksum is the SHA-256 of the header without its ``sha256`` field, written as canonical
JSON (sorted keys, no spaces), followed by every array's bytes in C order, in the order of the
header's ``arrays`` list. That list gives each array's key, dtype and shape, so a changed value,
two swapped arrays, another dtype or shape, or an edited header all change the digest. (The zip's
own CRC-32 catches most flipped bits first; the checksum also catches a file edited and re-zipped.)

Writing never leaves half a file where the checkpoint was: the bytes go to a temporary file
``.<name>.partial-<8 hex digits>`` beside it, are flushed and fsynced, and the file is renamed over
the checkpoint (an atomic step), then the directory is fsynced so that the rename survives a power
cut. A crash leaves at most that temporary file, which the next save removes. One process should
write a given checkpoint at a time. A write replaces only an earlier checkpoint (or an empty file):
any other file at the path is refused, never overwritten; through a symbolic link it replaces the
file the link points to.

Reading refuses what is not a regular file (a pipe would block) and members that are compressed
(a checkpoint never is; unpacking one could take far more memory than the file holds).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import with_article

FORMAT = "tinygrad_mb checkpoint"
VERSION = 1
HEADER = "header"  # the npz member holding the JSON header
HEADER_FIELDS = {"format", "version", "arrays", "model", "optimizer", "epochs_done", "history", "sha256"}
ZIP_MAGIC = b"PK\x03\x04"  # how every non-empty zip (so every npz) starts
PathLike = str | os.PathLike[str]


class CheckpointError(ValueError):
    """A checkpoint cannot be read, does not fit the trainer, or cannot be written; its message names the file."""


@dataclass
class Checkpoint:
    """The state of a run: what ``model.state_dict()`` and ``optimizer.state_dict()`` return, and the loop's."""

    model: dict[str, np.ndarray]
    optimizer: dict[str, Any]
    epochs_done: int
    history: dict[str, list[float]]
    path: str = ""  # where it was read from (for error messages)


def _error(where: str, path: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{where}: '{path}' {problem}")


def _expand(path: PathLike) -> str:
    return os.path.expanduser(os.fspath(path))


# ------------------------------------------------------------------------------ writing
def write_checkpoint(path: PathLike, state: Checkpoint, where: str = "write_checkpoint") -> None:
    """Write ``state`` to ``path`` atomically; refuse (keeping the old file) if it holds NaN or inf."""
    path = _expand(path)
    _refuse_non_finite(state, path, where)
    if not _one_per_epoch(state.history, state.epochs_done):
        raise _error(where, path, f"was not written: its history does not hold exactly one value per epoch done "
                                  f"({state.epochs_done}) for each metric, so it could not be loaded; lengths: "
                                  f"{ {key: len(values) for key, values in state.history.items()} }")
    _check_target(path, where)
    arrays = _pack(state)
    # through a symbolic link: replace the file it points to, not the link
    directory, name = os.path.split(os.path.realpath(path))
    try:
        _remove_leftovers(directory, name)  # first: a crash's leftover may be what fills the disk
        _write_then_rename(arrays, directory, name)
    except OSError as exc:
        # the same kind of OSError (same errno), restated with the path
        message = (f"{where}: could not write the checkpoint '{path}': {exc.strerror or exc}. A checkpoint is "
                   f"written to a temporary file that is then renamed over the old one, so '{path}' is never "
                   f"left half-written.")
        raise (OSError(exc.errno, message) if exc.errno else OSError(message)) from exc


def _refuse_non_finite(state: Checkpoint, path: str, where: str) -> None:
    """A diverged state must not replace the last good checkpoint."""
    bad = [f"parameter {name!r}" for name, a in state.model.items() if not np.all(np.isfinite(a))]
    bad += [f"optimizer state {name!r} of parameter {i}" for name, entries in state.optimizer["state"].items()
            for i, a in enumerate(entries) if a is not None and not np.all(np.isfinite(a))]
    # only the training loss tells of divergence: an infinite noise scale is a measurement
    # ("the noise dominates"), and a validation loss is checked by fit before training
    loss = state.history.get("loss", [])
    bad += [f"the last 'loss' of the history ({loss[-1]})"] if loss and not math.isfinite(loss[-1]) else []
    if bad:
        raise _error(where, path, f"was not written: the state holds NaN or inf in {', '.join(bad)}. The previous "
                                  f"checkpoint is kept; resume from it with a smaller learning rate (after "
                                  f"trainer.load, set trainer.optimizer.lr: load restores the saved one).")


def _pack(state: Checkpoint) -> dict[str, np.ndarray]:
    """The arrays to save, with the header (and its checksum) as the uint8 array ``header``."""
    arrays = {f"model/{name}": np.array(a, order="C") for name, a in state.model.items()}
    layout: dict[str, list[str | None]] = {}
    for name, entries in state.optimizer["state"].items():
        layout[name] = [None if a is None else f"optimizer/{name}/{i}" for i, a in enumerate(entries)]
        arrays.update({key: np.array(a, order="C") for key, a in zip(layout[name], entries) if key is not None})
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "arrays": [{"key": key, "dtype": a.dtype.str, "shape": list(a.shape)} for key, a in arrays.items()],
        "model": list(state.model),
        "optimizer": {"kind": state.optimizer["kind"], "hyperparameters": state.optimizer["hyperparameters"],
                      "state": layout},
        "epochs_done": int(state.epochs_done),
        "history": {key: [float(v) for v in values] for key, values in state.history.items()},
    }
    header["sha256"] = checksum(header, arrays)
    return {**arrays, HEADER: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}


def checksum(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the header without ``sha256`` (canonical JSON), then of each listed array's bytes in order."""
    rest = {key: value for key, value in header.items() if key != "sha256"}
    digest = hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    for entry in header["arrays"]:
        digest.update(arrays[entry["key"]].tobytes(order="C"))
    return digest.hexdigest()


def _write_then_rename(arrays: dict[str, np.ndarray], directory: str, name: str) -> None:
    temporary = _temporary_path(directory, name)
    try:
        with open(temporary, "xb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # (the stubs fear a key named allow_pickle)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on the disk before the rename makes them the checkpoint
        os.replace(temporary, os.path.join(directory, name))  # atomic: the old file or the new one, never half
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _temporary_path(directory: str, name: str) -> str:
    return os.path.join(directory, f".{name}.partial-{secrets.token_hex(4)}")


def is_leftover(filename: str, name: str) -> bool:
    """Whether ``filename`` is a temporary file of the checkpoint ``name`` (and of no other checkpoint)."""
    return re.fullmatch(re.escape(f".{name}.partial-") + "[0-9a-f]{8}", filename) is not None


def _remove_leftovers(directory: str, name: str) -> None:
    for filename in os.listdir(directory):
        if is_leftover(filename, name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, filename))


def _sync_directory(directory: str) -> None:
    """Make a rename durable: it is a change to the directory, which has its own fsync."""
    if os.name != "posix":  # Windows cannot open a directory for fsync
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_target(path: str, where: str) -> None:
    """Refuse to write over a directory, a device or pipe, or a file that is not a checkpoint.

    Writing renames a new file over ``path``: whatever was there is gone, so only an earlier
    checkpoint (or an empty file) may be replaced, never a user's data or notes.
    """
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise _error(where, path, "names a directory; give the checkpoint a file name, e.g. a 'run.ckpt' inside it.")
    try:
        info = os.stat(path)
    except OSError:
        return  # nothing there yet (or not reachable: the write itself reports that)
    if stat.S_ISDIR(info.st_mode):
        raise _error(where, path, "is a directory; give the checkpoint a file name, e.g. a 'run.ckpt' inside it.")
    if not stat.S_ISREG(info.st_mode):
        raise _error(where, path, "is not a regular file (a device, a pipe or a socket); give the checkpoint a file "
                                  "name of its own.")
    if info.st_size and not _is_checkpoint_file(path):
        raise _error(where, path, "exists and is not a tinygrad_mb checkpoint, so it was not overwritten; choose "
                                  "another path for the checkpoint, or delete the file first if you no longer need it.")


def _is_checkpoint_file(path: str) -> bool:
    """Whether ``path`` is a zip whose ``header`` member names the checkpoint format (the arrays are not read)."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(HEADER + ".npy")
            if info.file_size > os.path.getsize(path) or info.compress_type != zipfile.ZIP_STORED:
                return False
            with z.open(info) as member:
                raw = np.lib.format.read_array(member, allow_pickle=False)
            header = json.loads(raw.tobytes().decode("utf-8"))
        return isinstance(header, dict) and header.get("format") == FORMAT
    except Exception:  # unreadable, not a zip, no header, not JSON: not a checkpoint
        return False


def check_destination(path: PathLike, where: str = "check_destination") -> None:
    """Create the directory of ``path`` if missing and try a write there; raise CheckpointError if it fails."""
    path = _expand(path)
    _check_target(path, where)
    directory, name = os.path.split(os.path.realpath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        _remove_leftovers(directory, name)
        probe = _temporary_path(directory, name)
        with open(probe, "xb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise _error(where, path, f"cannot be written ({exc}); choose a path in a writable directory.") from exc


# ------------------------------------------------------------------------------ reading
def read_checkpoint(path: PathLike, where: str = "read_checkpoint") -> Checkpoint:
    """Read and check a whole checkpoint file; raise CheckpointError naming the problem if anything is off."""
    path = _expand(path)
    arrays = _read_arrays(path, where)
    header = _read_header(arrays.pop(HEADER, None), path, where)
    _check_listed_arrays(header, arrays, path, where)
    if header["sha256"] != checksum(header, arrays):
        raise _error(where, path, "is damaged: its SHA-256 checksum does not match its contents (a flipped bit, a "
                                  "bad copy, or an edit). Use an intact copy.")
    return _unpack(header, arrays, path, where)


def _read_arrays(path: str, where: str) -> dict[str, np.ndarray]:
    """Every array of the file, loaded without pickle: a file that is not a plain npz is refused."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # reading a pipe or a device could block or never end
            raise _error(where, path, "is not a regular file (a directory, a device or a pipe), so not a checkpoint")
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise _error(where, path, f"cannot be read: {exc.strerror or exc}") from exc
    if not raw:
        raise _error(where, path, "is empty (0 bytes), so it is not a checkpoint")
    if raw[:1] == b"\x80":  # how a pickle (protocol 2 and later) starts
        raise _error(where, path, "is a pickle, not a checkpoint (an .npz file). A pickle can run any code when "
                                  "loaded, so it is never opened here (older tinygrad_mb checkpoints were pickles: "
                                  "unpickle one yourself only if you trust where it came from).")
    if not raw.startswith(ZIP_MAGIC):
        raise _error(where, path, f"is not a checkpoint: a checkpoint is an .npz (zip) file, but this file "
                                  f"starts with {raw[:16]!r}")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            packed = [info.filename for info in z.infolist()
                      if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(raw)]
        if packed:  # unpacking could take far more memory than the file (a "zip bomb")
            raise _error(where, path, f"is not a checkpoint: its members {packed} are compressed (or claim to be "
                                      f"larger than the file), but a checkpoint stores its arrays uncompressed "
                                      f"(np.savez), so they are not unpacked")
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            members: dict[str, Any] = {key: npz[key] for key in npz.files}
    except CheckpointError:
        raise
    except Exception as exc:  # a damaged zip can make zipfile or numpy raise almost anything
        raise _error(where, path, f"is damaged or not a checkpoint: {type(exc).__name__}: {exc}") from exc
    others = sorted(key for key, member in members.items() if not isinstance(member, np.ndarray))
    if others:  # np.load returns a zip member that is not an .npy array as raw bytes
        raise _error(where, path, f"is a zip file but not a checkpoint: {others} are not .npy arrays")
    return members


def _read_header(raw: np.ndarray | None, path: str, where: str) -> dict[str, Any]:
    if raw is None:
        raise _error(where, path, "is an .npz file but not a tinygrad_mb checkpoint: it has no header")
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"an array of dtype {raw.dtype} and shape {raw.shape}, not bytes")
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _error(where, path, f"is not a tinygrad_mb checkpoint: its header is not JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _error(where, path, "is an .npz file but not a tinygrad_mb checkpoint (its header names no such format)")
    if not _is_int(header.get("version")) or header["version"] != VERSION:
        raise _error(where, path, f"has checkpoint format version {header.get('version')!r}, but this tinygrad_mb "
                                  f"reads version {VERSION}; load it with the version that wrote it.")
    missing = sorted(HEADER_FIELDS - set(header))
    if missing:
        raise _error(where, path, f"is incomplete: its header is missing {missing}")
    return header


def _check_listed_arrays(header: dict[str, Any], arrays: dict[str, np.ndarray], path: str, where: str) -> None:
    """The header lists exactly the file's arrays, each with its dtype and shape."""
    listed = header["arrays"]
    if not isinstance(listed, list) or not all(_is_array_entry(entry) for entry in listed):
        raise _error(where, path, "is damaged: its header's 'arrays' is not a list of {key, dtype, shape}")
    keys = [entry["key"] for entry in listed]
    missing, unexpected = sorted(set(keys) - set(arrays)), sorted(set(arrays) - set(keys))
    if missing or unexpected or len(set(keys)) != len(keys):
        raise _error(where, path, f"is incomplete or altered: arrays missing from the file: {missing}; arrays "
                                  f"the header does not list: {unexpected}")
    for entry in listed:
        a = arrays[entry["key"]]
        if a.dtype.str != entry["dtype"] or list(a.shape) != entry["shape"]:
            raise _error(where, path, f"is altered: array {entry['key']!r} has dtype {a.dtype.str} and shape "
                                      f"{list(a.shape)}, but the header says {entry['dtype']} and {entry['shape']}")


def _unpack(header: dict[str, Any], arrays: dict[str, np.ndarray], path: str, where: str) -> Checkpoint:
    """The header's parts as a Checkpoint, each checked for its type (the checksum passed: this is rare)."""
    names, optimizer, history = header["model"], header["optimizer"], header["history"]
    checks = [
        (_is_list_of(names, str), "'model' is not a list of parameter names"),
        (_is_optimizer_entry(optimizer), "'optimizer' is not {kind, hyperparameters, state}"),
        (_is_int(header["epochs_done"]) and header["epochs_done"] >= 0, "'epochs_done' is not a whole number >= 0"),
        (_is_history(history), "'history' is not a dict of lists of numbers"),
        (_one_per_epoch(history, header["epochs_done"]),
         f"'history' does not hold exactly one value per epoch done ({header['epochs_done']!r}) for each of its "
         f"metrics, with 'loss' among them"),
    ]
    problems = [problem for ok, problem in checks if not ok]
    if not problems:
        used = [f"model/{name}" for name in names]
        used += [key for keys in optimizer["state"].values() for key in keys if key is not None]
        if sorted(used) != sorted(arrays):
            problems.append("the parameter names and the optimizer state do not use each array exactly once")
    if problems:
        raise _error(where, path, f"is damaged: in its header, {problems[0]}")
    state = {name: [None if key is None else arrays[key] for key in keys] for name, keys in optimizer["state"].items()}
    return Checkpoint(
        model={name: arrays[f"model/{name}"] for name in names},
        optimizer={"kind": optimizer["kind"], "hyperparameters": optimizer["hyperparameters"], "state": state},
        epochs_done=header["epochs_done"],
        history={key: [float(v) for v in values] for key, values in history.items()},
        path=path,
    )


def _one_per_epoch(history: Any, epochs_done: Any) -> bool:
    """Each metric has one value per epoch done (always true of what fit records); other problems pass here."""
    if not _is_history(history) or not _is_int(epochs_done):
        return True  # reported by their own checks
    return all(len(values) == epochs_done for values in history.values()) and (epochs_done == 0 or "loss" in history)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_list_of(x: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(x, list) and all(isinstance(item, kind) and not isinstance(item, bool) for item in x)


def _is_array_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and set(entry) == {"key", "dtype", "shape"} and isinstance(entry["key"], str)
            and isinstance(entry["dtype"], str) and _is_list_of(entry["shape"], int)
            and all(n >= 0 for n in entry["shape"]))


def _is_optimizer_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and set(entry) == {"kind", "hyperparameters", "state"}
            and isinstance(entry["kind"], str) and isinstance(entry["hyperparameters"], dict)
            and isinstance(entry["state"], dict)
            and all(_is_list_of(keys, (str, type(None))) for keys in entry["state"].values()))


def _is_history(history: Any) -> bool:
    return isinstance(history, dict) and all(_is_list_of(values, (int, float)) for values in history.values())


# ------------------------------------------------------------------------------ restoring
def restore(saved: Checkpoint, model: Any, optimizer: Any, where: str = "restore") -> None:
    """Put ``saved`` into ``model`` and ``optimizer``; both are checked before either changes.

    The optimizer's state is checked first; ``model.load_state_dict`` then checks every name and
    shape before it changes any parameter; last, the optimizer takes its state, which was already
    checked and so cannot fail half-way.
    """
    ours, kind = type(optimizer).__name__, saved.optimizer["kind"]
    if kind != ours:
        raise _error(where, saved.path, f"holds the state of {with_article(kind)} optimizer but this trainer uses "
                                        f"{ours}; build the trainer with the optimizer of the saved run.")
    with _explained(where, saved.path, "does not fit this trainer's optimizer"):
        optimizer.check_state_dict(saved.optimizer)
    with _explained(where, saved.path, "does not fit this model"):
        model.load_state_dict(saved.model)
    optimizer.load_state_dict(saved.optimizer)


@contextlib.contextmanager
def _explained(where: str, path: str, what: str) -> Iterator[None]:
    """Turn a bad-state error of the model or optimizer into a CheckpointError naming the file."""
    try:
        yield
    except (KeyError, ValueError, TypeError) as exc:
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # a KeyError's str adds quotes
        raise _error(where, path, f"{what}: {detail}") from exc
