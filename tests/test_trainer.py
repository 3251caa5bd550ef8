"""The training loop: history, determinism, batches, the NaN guard, checkpoints, arguments.

Every test builds its own small network and data, trains for a few epochs and checks one
promise of ``tinygrad_mb.train.Trainer``. Progress bars are off unless a test is about them.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygrad_mb import Tensor, minibatch, nn, optim
from tinygrad_mb.checkpoint import CheckpointError, is_leftover, read_checkpoint
from tinygrad_mb.data import make_moons, make_regression
from tinygrad_mb.train import Trainer

TRAINER_STRATEGIES: list[tuple[str, dict[str, Any], str]] = [  # (id, Trainer keywords, loss)
    ("batched_mean", {"strategy": "batched_mean"}, "cross_entropy"),
    ("per_sample", {"strategy": "per_sample"}, "cross_entropy"),
    ("accumulated", {"strategy": "accumulated", "micro_batch": 3}, "cross_entropy"),
    ("naive_accumulated", {"strategy": "naive_accumulated", "micro_batch": 3}, "cross_entropy"),
    ("per_sample_gradients", {"strategy": "per_sample_gradients"}, "cross_entropy"),
    *[(f"error_first-{v}", {"strategy": "error_first", "variant": v}, "mse" if v == "mean_residual" else
       "cross_entropy") for v in minibatch.ERROR_FIRST_VARIANTS],
]
CORRECT = {"batched_mean", "per_sample", "accumulated", "per_sample_gradients"}


def classification(n: int = 23, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return make_moons(n, noise=0.1, seed=seed)


def regression(n: int = 23, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return make_regression(n, in_features=2, out_features=2, noise=0.05, seed=seed)


def data_for(loss: str, n: int = 23) -> tuple[np.ndarray, np.ndarray]:
    return classification(n) if loss == "cross_entropy" else regression(n)


def new_trainer(loss: str = "cross_entropy", lr: float = 0.3, seed: int = 0, optimizer: str = "sgd",
                **kwargs: Any) -> Trainer:
    """A fresh 2-8-2 tanh network (weights from ``seed``) with its own optimizer."""
    model = nn.MLP([2, 8, 2], activation="tanh", rng=seed)
    if optimizer == "sgd":
        opt: optim.Optimizer = optim.SGD(model.parameters(), lr=lr)
    elif optimizer == "momentum":
        opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.cross_entropy if loss == "cross_entropy" else nn.mse_loss
    kwargs.setdefault("progress", False)
    return Trainer(model, loss_fn, opt, **kwargs)


def parameters_of(trainer: Trainer) -> list[np.ndarray]:
    return [p.data.copy() for p in trainer.model.parameters()]


def record_batches(trainer: Trainer) -> list[np.ndarray]:
    """Make ``trainer`` remember the inputs of every batch it computes a gradient for."""
    seen: list[np.ndarray] = []
    original = trainer.gradient

    def recording(Xb: np.ndarray, yb: np.ndarray) -> minibatch.Gradients:
        seen.append(Xb.copy())
        return original(Xb, yb)

    trainer.gradient = recording  # type: ignore[method-assign]
    return seen


def record_steps(trainer: Trainer) -> list[list[np.ndarray]]:
    """Make ``trainer``'s optimizer remember the parameters after every step it takes."""
    after: list[list[np.ndarray]] = []
    original = trainer.optimizer.step

    def recording() -> None:
        original()
        after.append(parameters_of(trainer))

    trainer.optimizer.step = recording  # type: ignore[method-assign]
    return after


# ------------------------------------------------------------------------------ history
def test_history_holds_loss_and_accuracy_per_epoch_for_classification() -> None:
    X, y = classification()
    trainer = new_trainer()
    history = trainer.fit(X, y, batch_size=5, epochs=4)
    assert set(history) == {"loss", "accuracy"}
    assert len(history["loss"]) == len(history["accuracy"]) == 4
    # The epoch's loss is the trained model's mean loss on the whole training set, recomputed here.
    final_full_data_loss = nn.cross_entropy(trainer.model(Tensor(X)), y).item()
    assert history["loss"][-1] == pytest.approx(final_full_data_loss, rel=1e-12)
    predicted = trainer.model(Tensor(X)).data.argmax(axis=1)
    assert history["accuracy"][-1] == np.mean(predicted == y)


def test_history_holds_only_loss_for_regression() -> None:
    X, y = regression()
    history = new_trainer("mse", lr=0.1).fit(X, y, batch_size=5, epochs=3)
    assert set(history) == {"loss"} and len(history["loss"]) == 3


def test_training_lowers_the_loss() -> None:
    X, y = classification(60)
    history = new_trainer().fit(X, y, batch_size=8, epochs=15)
    assert history["loss"][-1] < 0.8 * history["loss"][0]


def test_validation_data_adds_validation_metrics() -> None:
    X, y = classification(23)
    X_val, y_val = classification(11, seed=1)
    trainer = new_trainer()
    history = trainer.fit(X, y, batch_size=5, epochs=3, validation=(X_val, y_val))
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.values())
    assert history["val_loss"][-1] == pytest.approx(nn.cross_entropy(trainer.model(Tensor(X_val)), y_val).item(),
                                                    rel=1e-12)
    assert history["val_loss"][-1] != history["loss"][-1]  # measured on the other data


# ------------------------------------------------------------------------------ determinism and batches
def test_the_same_seed_gives_the_same_run() -> None:
    X, y = classification()
    runs = []
    for _ in range(2):
        trainer = new_trainer()
        history = trainer.fit(X, y, batch_size=4, epochs=3, seed=7)
        runs.append((parameters_of(trainer), history))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[1][0]))
    assert runs[0][1] == runs[1][1]


def test_another_seed_gives_another_run() -> None:
    X, y = classification()
    first, second = new_trainer(), new_trainer()
    first.fit(X, y, batch_size=4, epochs=2, seed=1)
    second.fit(X, y, batch_size=4, epochs=2, seed=2)
    assert max(np.max(np.abs(a - b)) for a, b in zip(parameters_of(first), parameters_of(second))) > 1e-6


def row_indices(X: np.ndarray, rows: np.ndarray) -> list[int]:
    """Which rows of X these are (X's rows are distinct)."""
    return [int(np.flatnonzero((X == r).all(axis=1))[0]) for r in rows]


def test_each_epoch_draws_a_fresh_permutation_from_the_seeded_generator() -> None:
    X, y = classification(10)
    trainer = new_trainer()
    seen = record_batches(trainer)
    trainer.fit(X, y, batch_size=4, epochs=3, seed=11)
    rng = np.random.default_rng(11)
    expected = [rng.permutation(10) for _ in range(3)]
    orders = [row_indices(X, np.concatenate(seen[3 * e:3 * e + 3])) for e in range(3)]
    assert [len(b) for b in seen] == [4, 4, 2] * 3
    assert orders == [e.tolist() for e in expected]
    # Not one permutation reused: every pair of epochs differs (a != b != c would not compare a with c).
    assert all(orders[i] != orders[j] for i, j in itertools.combinations(range(3), 2))


def test_without_shuffle_the_batches_follow_the_data_order() -> None:
    X, y = classification(10)
    trainer = new_trainer()
    seen = record_batches(trainer)
    trainer.fit(X, y, batch_size=4, epochs=2, shuffle=False)
    assert [row_indices(X, b) for b in seen] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2


@pytest.mark.parametrize("name, kwargs, loss", TRAINER_STRATEGIES, ids=[t[0] for t in TRAINER_STRATEGIES])
def test_every_strategy_takes_exactly_its_own_step_on_a_short_last_batch(name: str, kwargs: dict[str, Any],
                                                                        loss: str) -> None:
    """10 samples in batches of 4: the last batch has 2. Replaying the strategy by hand on the
    same batches gives the trainer's parameters exactly; the correct strategies also agree with
    batched_mean."""
    X, y = data_for(loss, 10)
    trainer = new_trainer(loss, lr=0.2, **kwargs)
    seen = record_batches(trainer)
    trainer.fit(X, y, batch_size=4, epochs=2, shuffle=False)
    assert [len(b) for b in seen] == [4, 4, 2, 4, 4, 2]

    by_hand = new_trainer(loss, lr=0.2, **kwargs)  # same initial weights
    strategy = minibatch.STRATEGIES[kwargs["strategy"]]
    extra = {k: v for k, v in kwargs.items() if k != "strategy"}
    for _ in range(2):
        for start in (0, 4, 8):
            strategy(by_hand.model, by_hand.loss_fn, X[start:start + 4], y[start:start + 4], **extra)
            for p in by_hand.model.parameters():
                assert p.grad is not None
                p.data = p.data - 0.2 * p.grad
    for a, b in zip(parameters_of(trainer), parameters_of(by_hand)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)

    if name in CORRECT:
        reference = new_trainer(loss, lr=0.2, strategy="batched_mean")
        reference.fit(X, y, batch_size=4, epochs=2, shuffle=False)
        for a, b in zip(parameters_of(trainer), parameters_of(reference)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ the NaN guard
def loss_that_breaks_on_call(k: int, value: float, loss_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``loss_fn``, except that its k-th call (counting from 1) returns ``value`` times the loss."""
    calls = 0

    def loss(pred: Tensor, target: Any) -> Tensor:
        nonlocal calls
        calls += 1
        result = loss_fn(pred, target)
        return result * value if calls == k else result

    return loss


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_loss_stops_training_naming_epoch_and_batch(bad: float) -> None:
    """10 samples, batches of 4: 3 loss calls per epoch plus 1 for the history, so call 6 is epoch 2, batch 2."""
    X, y = classification(10)
    trainer = new_trainer()
    trainer.loss_fn = loss_that_breaks_on_call(6, bad, nn.cross_entropy)
    steps = record_steps(trainer)
    with np.errstate(invalid="ignore"), \
            pytest.raises(FloatingPointError, match=r"loss became non-finite .* at epoch 2, batch 2; the parameters "
                                                    r"are left as they were before this step"):
        trainer.fit(X, y, batch_size=4, epochs=3, shuffle=False)
    assert len(steps) == 4  # epoch 1: three steps; epoch 2: one
    for p, before in zip(parameters_of(trainer), steps[-1]):
        assert np.array_equal(p, before)
    assert all(np.all(np.isfinite(p)) for p in parameters_of(trainer))


def test_a_nan_in_the_data_is_caught_at_its_batch_by_the_per_sample_strategy() -> None:
    X, y = classification(10)
    X[5, 0] = np.nan  # sample 5 lies in batch 2 (samples 4-7)
    trainer = new_trainer(strategy="per_sample")
    initial = parameters_of(trainer)
    steps = record_steps(trainer)
    with pytest.raises(FloatingPointError, match=r"at epoch 1, batch 2"):
        trainer.fit(X, y, batch_size=4, epochs=2, shuffle=False)
    assert len(steps) == 1
    assert all(np.array_equal(p, s) for p, s in zip(parameters_of(trainer), steps[0]))
    assert any(not np.array_equal(p, s) for p, s in zip(initial, steps[0]))  # the first step did happen


def test_a_non_finite_gradient_with_a_finite_loss_is_caught_too() -> None:
    """Root-mean-square error at a perfect fit: the loss is 0, its gradient 0 * (1/0) = NaN."""
    X, _ = regression(8)
    trainer = new_trainer("mse")
    with_no_grad = trainer.model(Tensor(X)).data
    trainer.loss_fn = lambda pred, target: nn.mse_loss(pred, target).sqrt()
    initial = parameters_of(trainer)
    with np.errstate(divide="ignore", invalid="ignore"), \
            pytest.raises(FloatingPointError, match=r"gradient became non-finite \(loss 0.0\) at epoch 1, batch 1"):
        trainer.fit(X, with_no_grad, batch_size=4, epochs=1, shuffle=False)
    assert all(np.array_equal(p, q) for p, q in zip(parameters_of(trainer), initial))


# ------------------------------------------------------------------------------ checkpoints
def test_a_checkpoint_is_written_atomically_after_every_epoch(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = classification()
    path = tmp_path / "run.ckpt"
    replaced: list[tuple[str, str, int]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        replaced.append((str(src), str(dst), read_checkpoint(src).epochs_done))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    new_trainer(checkpoint=path).fit(X, y, batch_size=5, epochs=3)
    assert [(Path(src).parent, dst, done) for src, dst, done in replaced] == [(tmp_path, str(path), e)
                                                                              for e in (1, 2, 3)]
    assert all(is_leftover(Path(src).name, "run.ckpt") for src, _, _ in replaced)  # a temporary file, then a rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # nothing left behind


def test_a_failed_checkpoint_write_leaves_the_previous_checkpoint_whole(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = classification()
    path = tmp_path / "run.ckpt"
    trainer = new_trainer(checkpoint=path)
    trainer.fit(X, y, batch_size=5, epochs=2)
    good = path.read_bytes()

    def crash(f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match=re.escape(f"could not write the checkpoint '{path}': disk full")):
        trainer.fit(X, y, batch_size=5, epochs=3)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_ends(tmp_path: Path, optimizer: str) -> None:
    """The optimizer's state (momentum, Adam's moments) and the epoch count travel in the file."""
    X, y = classification()
    uninterrupted = new_trainer(optimizer=optimizer, lr=0.1)
    full_history = uninterrupted.fit(X, y, batch_size=5, epochs=5, seed=3)

    path = tmp_path / "run.ckpt"
    new_trainer(optimizer=optimizer, lr=0.1, checkpoint=path).fit(X, y, batch_size=5, epochs=2, seed=3)
    resumed = new_trainer(optimizer=optimizer, lr=0.1, seed=99)  # other initial weights: load replaces them
    resumed.load(path)
    assert resumed.epochs_done == 2
    history = resumed.fit(X, y, batch_size=5, epochs=5, seed=3)

    assert all(np.array_equal(a, b) for a, b in zip(parameters_of(resumed), parameters_of(uninterrupted)))
    assert history == full_history


def test_loading_a_checkpoint_of_another_architecture_changes_nothing(tmp_path: Path) -> None:
    X, y = classification()
    path = tmp_path / "run.ckpt"
    new_trainer(checkpoint=path).fit(X, y, batch_size=5, epochs=1)
    model = nn.MLP([2, 5, 2], rng=0)
    other = Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1), progress=False)
    before = parameters_of(other)
    with pytest.raises(CheckpointError, match=re.escape(f"'{path}' does not fit this model") + ".*shape mismatch"):
        other.load(path)
    assert all(np.array_equal(a, b) for a, b in zip(parameters_of(other), before))
    assert other.epochs_done == 0


# ------------------------------------------------------------------------------ progress bar
def test_no_progress_bar_when_progress_is_false(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    tqdm_auto = pytest.importorskip("tqdm.auto")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tqdm was used although progress=False")

    monkeypatch.setattr(tqdm_auto, "tqdm", refuse)
    X, y = classification()
    new_trainer(progress=False).fit(X, y, batch_size=5, epochs=2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_progress_bar_counts_epochs_when_progress_is_true(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    X, y = classification()
    new_trainer(progress=True).fit(X, y, batch_size=5, epochs=2)
    err = capsys.readouterr().err
    assert "training (batched_mean)" in err and "2/2" in err and "loss=" in err


# ------------------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "mean"}, r"unknown strategy 'mean'; choose one of \["),
    ({"strategy": "accumulated"}, r"micro_batch must be a whole number of samples >= 1, got None"),
    ({"strategy": "accumulated", "micro_batch": 0}, r"micro_batch must be a whole number of samples >= 1, got 0"),
    ({"strategy": "batched_mean", "micro_batch": 4}, r"micro_batch is used only by 'accumulated' strategies"),
    ({"strategy": "error_first"}, r"strategy 'error_first' needs variant= one of \['mean_input'"),
    ({"strategy": "error_first", "variant": "median"}, r"needs variant= one of .* got 'median'"),
    ({"strategy": "per_sample", "variant": "mean_input"}, r"variant is used only by strategy 'error_first'"),
], ids=["unknown strategy", "no micro_batch", "micro_batch 0", "micro_batch unused", "no variant",
        "unknown variant", "variant unused"])
def test_bad_trainer_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    model = nn.MLP([2, 3, 2], rng=0)
    with pytest.raises(ValueError, match=message):
        Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1), progress=False, **kwargs)


def test_an_optimizer_over_another_models_parameters_is_refused() -> None:
    model, other = nn.MLP([2, 3, 2], rng=0), nn.MLP([2, 3, 2], rng=1)
    with pytest.raises(ValueError, match="optimizer holds tensors that are not parameters of the model"):
        Trainer(model, nn.cross_entropy, optim.SGD(other.parameters(), lr=0.1), progress=False)


@pytest.mark.parametrize("change, message", [
    (lambda X, y: {"X": X, "y": y[:-1]}, r"Trainer.fit: X holds 23 samples \(shape \(23, 2\)\) but y holds 22 "
                                         r"\(shape \(22,\)\); pass one target per sample"),
    (lambda X, y: {"X": X[:0], "y": y[:0]}, r"Trainer.fit: the batch is empty"),
    (lambda X, y: {"batch_size": 0}, r"batch_size must be a whole number >= 1, got 0"),
    (lambda X, y: {"batch_size": 2.5}, r"batch_size must be a whole number >= 1, got 2.5"),
    (lambda X, y: {"batch_size": True}, r"batch_size must be a whole number >= 1, got True"),
    (lambda X, y: {"epochs": -1}, r"epochs must be a whole number >= 0, got -1"),
    (lambda X, y: {"validation": (X, y[:-1])}, r"Trainer.fit \(validation\): X holds 23 samples .* but y holds 22"),
    (lambda X, y: {"validation": (X[:, :1], y)}, r"validation samples have shape \(1,\) but training samples \(2,\)"),
], ids=["lengths differ", "empty", "batch_size 0", "batch_size 2.5", "batch_size True", "epochs -1",
        "validation lengths differ", "validation features differ"])
def test_bad_fit_arguments_are_refused_before_any_step(change: Callable[..., dict[str, Any]], message: str) -> None:
    X, y = classification()
    trainer = new_trainer()
    before = parameters_of(trainer)
    arguments = {"X": X, "y": y, "batch_size": 5, "epochs": 2, **change(X, y)}
    with pytest.raises(ValueError, match=message):
        trainer.fit(**arguments)
    assert all(np.array_equal(a, b) for a, b in zip(parameters_of(trainer), before))
    assert trainer.history == {} and trainer.epochs_done == 0
