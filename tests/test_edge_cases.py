"""Edge cases where a learner would otherwise meet a silent wrong answer or a raw traceback."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinygrad_mb import Tensor, gradcheck, minibatch, nn, optim
from tinygrad_mb.data import make_moons, make_regression
from tinygrad_mb.train import Trainer


# ------------------------------------------------------------------------------ engine
def test_leaf_gradients_are_separate_arrays_so_clipping_one_in_place_leaves_the_others():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    c = a + b  # add hands the same upstream array to both operands
    c.sum().backward()
    assert a.grad is not None and b.grad is not None
    assert not np.shares_memory(a.grad, b.grad) and not np.shares_memory(a.grad, c.grad)
    a.grad *= 0.5
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(c.grad, [1.0, 1.0])


def test_a_bias_gradient_from_a_batch_of_one_is_not_a_view_of_the_layer_output_gradient():
    layer = nn.Linear(3, 2, rng=0)
    out = layer(Tensor(np.ones((1, 3))))
    out.backward(np.array([[1.0, 2.0]]))
    assert layer.bias.grad is not None and layer.bias.grad.flags.owndata
    assert not np.shares_memory(layer.bias.grad, out.grad)


def test_pow_zero_has_zero_gradient_even_at_zero():
    x = Tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [None, (0, 1)])
def test_softmax_family_refuses_anything_but_one_axis_clearly(op, axis):
    with pytest.raises(TypeError, match=rf"{op}: axis must be a single int .* got {re.escape(repr(axis))}"):
        getattr(Tensor(np.ones((2, 3))), op)(axis=axis)


def test_gradcheck_puts_the_input_back_when_fn_raises_midway():
    x = Tensor([1.0, 0.0], requires_grad=True)

    def fails_for_negative_values(t: Tensor) -> Tensor:
        if (t.data < 0).any():
            raise ValueError("negative input")
        return (t * t).sum()

    with pytest.raises(ValueError, match="negative input"):
        gradcheck(fails_for_negative_values, [x])  # x[1] - eps is negative
    np.testing.assert_array_equal(x.data, [1.0, 0.0])


def test_linear_refuses_a_bias_of_the_wrong_shape_naming_both_shapes():
    with pytest.raises(ValueError, match=r"linear: the bias has shape \(1, 4\) but the weight \(3, 4\) .* \(4,\)"):
        nn.linear(Tensor(np.ones(3)), Tensor(np.ones((3, 4))), Tensor(np.ones((1, 4))))


def test_a_model_accepts_a_plain_numpy_batch():
    model = nn.MLP([2, 3, 2], rng=0)
    X = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_array_equal(model(X).data, model(Tensor(X)).data)


# ------------------------------------------------------------------------------ strategies
def test_per_sample_gradients_skip_a_frozen_first_layer():
    model = nn.MLP([2, 3, 2], rng=0)
    model[0].weight.requires_grad = model[0].bias.requires_grad = False
    X, y = make_moons(6, seed=1)
    stacked = minibatch.per_sample_gradients(model, nn.cross_entropy, X, y)
    batched = minibatch.batched_mean(model, nn.cross_entropy, X, y)
    assert [s.shape for s in stacked] == [(6, 3, 2), (6, 2)]
    for rows, mean in zip(stacked, batched):
        np.testing.assert_allclose(rows.mean(axis=0), mean, rtol=0, atol=1e-15)


def test_per_sample_gradients_of_a_float32_model_are_float32_even_for_float64_data():
    model = nn.MLP([2, 3, 2], rng=0, dtype=np.float32)
    X, y = make_moons(5, seed=0)  # float64 data
    assert all(g.dtype == np.float32 for g in minibatch.per_sample_gradients(model, nn.cross_entropy, X, y))


# ------------------------------------------------------------------------------ trainer
def _trainer(**kwargs) -> Trainer:
    model = nn.MLP([2, 4, 2], rng=0)
    return Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1), progress=False, **kwargs)


def test_a_second_fit_with_epochs_not_above_those_done_is_refused_not_silently_skipped():
    X, y = make_moons(20, seed=0)
    trainer = _trainer()
    trainer.fit(X, y, batch_size=8, epochs=3)
    before = [p.data.copy() for p in trainer.model.parameters()]
    with pytest.raises(ValueError, match=r"already trained 3 epochs.*pass epochs=4 or more"):
        trainer.fit(X, y, batch_size=8, epochs=3)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, trainer.model.parameters()))


def test_fitting_again_to_a_larger_total_equals_one_uninterrupted_run():
    X, y = make_moons(20, seed=0)
    in_two, in_one = _trainer(), _trainer()
    in_two.fit(X, y, batch_size=8, epochs=2, seed=5)
    in_two.fit(X, y, batch_size=8, epochs=5, seed=5)
    in_one.fit(X, y, batch_size=8, epochs=5, seed=5)
    assert in_two.epochs_done == 5 and in_two.history == in_one.history
    for a, b in zip(in_two.model.parameters(), in_one.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_regression_reports_no_accuracy_even_with_integer_targets():
    X, y = make_regression(12, in_features=2, out_features=1, seed=0)
    model = nn.MLP([2, 3, 1], rng=0)
    trainer = Trainer(model, nn.mse_loss, optim.SGD(model.parameters(), lr=0.01), progress=False)
    history = trainer.fit(X, np.round(y).astype(np.int64), batch_size=4, epochs=1)
    assert set(history) == {"loss"}


def test_loading_a_checkpoint_of_another_optimizer_is_refused_before_anything_changes(tmp_path):
    X, y = make_moons(20, seed=0)
    path = tmp_path / "run.ckpt"
    adam_model = nn.MLP([2, 4, 2], rng=0)
    Trainer(adam_model, nn.cross_entropy, optim.Adam(adam_model.parameters()), progress=False,
            checkpoint=path).fit(X, y, batch_size=8, epochs=1)
    trainer = _trainer()
    before = [p.data.copy() for p in trainer.model.parameters()]
    with pytest.raises(ValueError, match=r"holds the state of an Adam optimizer but this trainer uses SGD"):
        trainer.load(path)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, trainer.model.parameters()))
    assert not hasattr(trainer.optimizer, "m") and trainer.epochs_done == 0
