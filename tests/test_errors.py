"""Errors teach: each names the operation and the shapes (as Python tuples) and suggests the fix,
and a failed call changes nothing (no parameter, gradient or optimizer state is touched)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tinygrad_mb import GradcheckError, Tensor, gradcheck, nn, optim


def message_of(error: type[Exception], call: Callable[[], Any]) -> str:
    """Run ``call``, expect ``error``, and return its message."""
    with pytest.raises(error) as info:
        call()
    # KeyError's str() wraps the message in quotes; the message itself is args[0]
    return str(info.value.args[0])


def assert_mentions(message: str, *fragments: str) -> None:
    missing = [f for f in fragments if f not in message]
    assert not missing, f"message {message!r} lacks {missing}"


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("op, fn", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b), ("div", lambda a, b: a / b),
])
def test_broadcast_error_names_the_op_both_shapes_and_the_rule(op, fn):
    a, b = Tensor(np.ones((2, 3)), requires_grad=True), Tensor(np.ones((4, 5)))
    assert_mentions(message_of(ValueError, lambda: fn(a, b)), f"{op}:", "(2, 3)", "(4, 5)", "equal or 1")
    # with a numpy array on the left, too
    assert_mentions(message_of(ValueError, lambda: fn(np.ones(4), a)), f"{op}:", "(4,)", "(2, 3)")


def test_matmul_error_names_both_shapes_and_suggests_a_transpose():
    msg = message_of(ValueError, lambda: Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5))))
    assert_mentions(msg, "matmul: cannot multiply (2, 3) by (4, 5)", ".T")
    assert_mentions(message_of(ValueError, lambda: Tensor(np.ones(3)) @ Tensor(np.ones(4))),
                    "matmul", "(3,)", "(4,)")
    assert_mentions(message_of(ValueError, lambda: Tensor(2.0) @ Tensor(np.ones((2, 2)))),
                    "matmul", "()", "(2, 2)", "use *")
    assert_mentions(message_of(ValueError, lambda: Tensor(np.ones((2, 2, 3))) @ Tensor(np.ones((3, 3, 4)))),
                    "matmul", "(2, 2, 3)", "(3, 3, 4)", "batch axes")


def test_reshape_and_transpose_errors_name_the_shapes():
    x = Tensor(np.ones((2, 3)))
    assert_mentions(message_of(ValueError, lambda: x.reshape(4, 2)), "reshape", "(2, 3)", "(4, 2)", "-1")
    assert_mentions(message_of(ValueError, lambda: x.transpose(0, 0)), "transpose", "(0, 0)", "(2, 3)")
    assert_mentions(message_of(ValueError, lambda: x.transpose(0, 3)), "transpose", "(0, 3)", "(2, 3)")


@pytest.mark.parametrize("op", ["sum", "mean", "max", "softmax", "log_softmax"])
def test_an_axis_out_of_range_is_named(op):
    msg = message_of(ValueError, lambda: getattr(Tensor(np.ones((2, 3))), op)(axis=2))
    assert_mentions(msg, f"{op}:", "axis 2", "2 dimensions")


def test_an_index_out_of_range_names_the_shape():
    assert_mentions(message_of(IndexError, lambda: Tensor(np.ones((2, 3)))[[0, 7]]), "index", "7", "(2, 3)")


def test_pow_needs_a_number_exponent_and_a_positive_base():
    x = Tensor(np.ones(2), requires_grad=True)
    assert_mentions(message_of(TypeError, lambda: x**x), "pow", "exponent", ".exp()")
    assert_mentions(message_of(ValueError, lambda: (-2.0) ** x), "pow", "positive base", "-2")


def test_item_of_a_tensor_with_several_elements_says_how_to_reduce_it():
    assert_mentions(message_of(ValueError, lambda: Tensor(np.ones((2, 3))).item()),
                    "item", "(2, 3)", ".sum()")


# ------------------------------------------------------------------------------ backward
def test_backward_without_grad_on_a_non_scalar_names_the_shape_and_changes_nothing():
    w = Tensor(np.ones((2, 3)), requires_grad=True)
    y = w * 2.0
    assert_mentions(message_of(RuntimeError, y.backward), "backward", "(2, 3)", ".mean()", "grad=")
    assert w.grad is None and y.grad is None


def test_backward_on_a_tensor_that_does_not_require_grad_says_why():
    x = Tensor(np.ones(3))
    assert_mentions(message_of(RuntimeError, lambda: (x * 2.0).sum().backward()),
                    "backward", "does not require grad", "requires_grad=True")


def test_backward_with_a_grad_of_the_wrong_shape_names_both_shapes_and_changes_nothing():
    w = Tensor(np.ones((2, 3)), requires_grad=True)
    y = w * 2.0
    assert_mentions(message_of(ValueError, lambda: y.backward(np.ones(3))), "backward", "(3,)", "(2, 3)")
    assert w.grad is None


# ------------------------------------------------------------------------------ data
@pytest.mark.parametrize("data, fragment", [
    (["a", "b"], "<U1"), (object(), "object"), (None, "object"), ([[1.0, 2.0], [3.0]], "list"),
    (np.array([1 + 2j]), "complex128"),
])
def test_data_that_is_not_real_numbers_is_refused_with_the_dtype(data, fragment):
    assert_mentions(message_of(TypeError, lambda: Tensor(data)), "Tensor", fragment)


def test_the_data_error_suggests_a_conversion():
    assert_mentions(message_of(TypeError, lambda: Tensor(["1.5"])), "real numbers", "dtype=float")


# ------------------------------------------------------------------------------ losses
def test_mse_loss_refuses_shapes_that_would_broadcast_silently():
    pred = Tensor(np.ones((4, 1)), requires_grad=True)
    msg = message_of(ValueError, lambda: nn.mse_loss(pred, np.ones(4)))
    assert_mentions(msg, "mse_loss", "(4, 1)", "(4,)", "reshape(-1, 1)")


@pytest.mark.parametrize("loss", [nn.mse_loss, nn.cross_entropy])
def test_an_unknown_reduction_lists_the_valid_ones(loss):
    target = np.ones((2, 3)) if loss is nn.mse_loss else np.array([0, 1])
    msg = message_of(ValueError, lambda: loss(Tensor(np.ones((2, 3))), target, reduction="avg"))
    assert_mentions(msg, loss.__name__, "'avg'", "'mean'", "'sum'", "'none'")


@pytest.mark.parametrize("labels, fragments", [
    ([0, 3], ("label 3", "3 classes", "0 to 2")),
    ([-1, 0], ("label -1", "0 to 2")),
])
def test_cross_entropy_labels_out_of_range_name_the_label_and_the_classes(labels, fragments):
    logits = Tensor(np.zeros((2, 3)), requires_grad=True)
    assert_mentions(message_of(ValueError, lambda: nn.cross_entropy(logits, labels)), "cross_entropy", *fragments)


@pytest.mark.parametrize("labels, fragments", [
    ([0.5, 1.0], ("float64", "0.5", "argmax")),
    ([np.nan, 1.0], ("nan",)),
    (["a", "b"], ("<U1",)),
    ([True, False], ("bool",)),
])
def test_cross_entropy_labels_that_are_not_integers_are_refused(labels, fragments):
    logits = Tensor(np.zeros((2, 3)), requires_grad=True)
    msg = message_of(TypeError, lambda: nn.cross_entropy(logits, labels))
    assert_mentions(msg, "cross_entropy", "integer class ids", *fragments)


def test_cross_entropy_accepts_whole_number_floats_as_labels():
    logits = Tensor(np.array([[2.0, 0.0], [0.0, 2.0]]))
    assert nn.cross_entropy(logits, [0.0, 1.0]).item() == nn.cross_entropy(logits, [0, 1]).item()


def test_cross_entropy_labels_of_the_wrong_shape_name_both_and_hint_at_one_hot():
    logits = Tensor(np.zeros((2, 3)))
    assert_mentions(message_of(ValueError, lambda: nn.cross_entropy(logits, [0, 1, 2])),
                    "cross_entropy", "(3,)", "2 samples", "(2,)")
    assert_mentions(message_of(ValueError, lambda: nn.cross_entropy(logits, np.eye(3)[:2])),
                    "(2, 3)", "argmax(axis=1)")


def test_cross_entropy_needs_a_batch_of_logits():
    assert_mentions(message_of(ValueError, lambda: nn.cross_entropy(Tensor(np.ones(3)), [0])),
                    "cross_entropy", "(batch, classes)", "(3,)", "reshape(1, -1)")


# ------------------------------------------------------------------------------ modules
def test_linear_names_the_expected_and_the_given_input_shape():
    layer = nn.Linear(3, 2, rng=0)
    assert_mentions(message_of(ValueError, lambda: layer(Tensor(np.ones((5, 4))))),
                    "Linear", "3 features", "(5, 4)", "(batch_size, 3)")


@pytest.mark.parametrize("make, fragments", [
    (lambda: nn.Linear(0, 2), ("Linear", "in_features=0")),
    (lambda: nn.MLP([2, 3], activation="gelu"), ("MLP", "'gelu'", "'tanh'")),
    (lambda: nn.MLP([2]), ("MLP", "[2]")),
])
def test_bad_layer_arguments_are_named(make, fragments):
    assert_mentions(message_of(ValueError, make), *fragments)


def test_load_state_dict_with_a_mismatched_shape_names_it_and_leaves_parameters_untouched():
    model = nn.MLP([2, 3, 1], rng=0)
    before = model.state_dict()
    state = nn.MLP([2, 3, 1], rng=1).state_dict()
    last = list(state)[-2]  # a late parameter: earlier ones would load fine if checked one by one
    state[last] = np.ones((4, 1))
    msg = message_of(ValueError, lambda: model.load_state_dict(state))
    assert_mentions(msg, "load_state_dict", repr(last), "(4, 1)", "(3, 1)")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_with_missing_or_extra_names_lists_them_and_changes_nothing():
    model = nn.MLP([2, 3, 1], rng=0)
    before = model.state_dict()
    state = nn.MLP([2, 3, 1], rng=1).state_dict()
    missing = list(state)[1]
    del state[missing]
    state["extra"] = np.ones(2)
    msg = message_of(KeyError, lambda: model.load_state_dict(state))
    assert_mentions(msg, "load_state_dict", missing, "extra")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_with_a_non_numeric_value_changes_nothing():
    model = nn.MLP([2, 3, 1], rng=0)
    before = model.state_dict()
    state = nn.MLP([2, 3, 1], rng=1).state_dict()
    state[list(state)[-1]] = np.array(["x"])
    message_of(TypeError, lambda: model.load_state_dict(state))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


# ------------------------------------------------------------------------------ optimizers
@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", None, True])
@pytest.mark.parametrize("make", [optim.SGD, optim.Adam])
def test_an_optimizer_with_a_bad_learning_rate_is_refused(make, lr):
    p = Tensor(np.ones(2), requires_grad=True)
    assert_mentions(message_of(ValueError, lambda: make([p], lr=lr)), make.__name__, "lr", "positive")
    np.testing.assert_array_equal(p.data, [1.0, 1.0])


@pytest.mark.parametrize("make, fragments", [
    (lambda p: optim.SGD(p, lr=0.1, momentum=1.0), ("SGD", "momentum", "1.0")),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), ("SGD", "momentum")),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1.0), ("SGD", "weight_decay")),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ("Adam", "betas")),
    (lambda p: optim.Adam(p, eps=0.0), ("Adam", "eps")),
])
def test_bad_optimizer_settings_are_named(make, fragments):
    assert_mentions(message_of(ValueError, lambda: make([Tensor(np.ones(2), requires_grad=True)])), *fragments)


def test_an_optimizer_needs_parameters_that_require_grad():
    assert_mentions(message_of(ValueError, lambda: optim.SGD([], lr=0.1)), "SGD", "empty", "model.parameters()")
    assert_mentions(message_of(ValueError, lambda: optim.Adam([Tensor(np.ones(2))])),
                    "Adam", "parameter 0", "requires_grad=True")


# ------------------------------------------------------------------------------ gradcheck
def test_gradcheck_refuses_float32_and_inputs_without_grad():
    assert_mentions(message_of(TypeError, lambda: gradcheck(lambda x: x * 2.0,
                                                            [Tensor(np.ones(2, np.float32), requires_grad=True)])),
                    "gradcheck", "float32", "float64")
    assert_mentions(message_of(ValueError, lambda: gradcheck(lambda x: x * 2.0, [Tensor(np.ones(2))])),
                    "gradcheck", "requires_grad=True")


def test_gradcheck_error_leaves_the_inputs_values_and_grads_as_they_were():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    x.grad = np.array([7.0, 8.0])

    def wrong(t: Tensor) -> Tensor:
        y = t * 1.0
        y._backward = lambda g: (2.0 * g, None)  # claims d(t*1)/dt = 2
        return y

    message_of(GradcheckError, lambda: gradcheck(wrong, [x]))
    np.testing.assert_array_equal(x.data, [0.5, -1.0])
    np.testing.assert_array_equal(x.grad, [7.0, 8.0])
