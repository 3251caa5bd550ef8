"""Checkers for exercises 1-3 (my_ops.py). Run one task: pytest tutorials/exercises -m ex_leaky_relu

Each backward is checked against finite differences with ``gradcheck``, which reduces the
output with random weights, so a backward that is right only for an all-ones upstream
gradient still fails.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from checker_tools import check_gradient, expect_error
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_mb import Tensor, no_grad

finite = st.floats(-50, 50, allow_nan=False, width=64)
arrays = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=finite)


def away_from(values: np.ndarray, kink: float = 0.0, gap: float = 0.1) -> np.ndarray:
    """Move values off a kink, where a finite difference would straddle two slopes."""
    near = np.abs(values - kink) < gap
    return np.where(near, kink + gap * np.where(values >= kink, 2.0, -2.0), values)


def is_one_operation(out: Tensor, op: str, *inputs: Tensor) -> bool:
    return out.op == op and len(out.parents) == len(inputs) and all(
        p is x for p, x in zip(out.parents, inputs))


# ------------------------------------------------------------------ exercise 1: leaky_relu
@pytest.mark.ex_leaky_relu
def test_leaky_relu_forward_keeps_positives_and_scales_negatives(my_ops: ModuleType) -> None:
    x = Tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    out = my_ops.leaky_relu(x, slope=0.1)
    np.testing.assert_allclose(out.data, [-0.2, -0.05, 0.0, 0.5, 3.0], err_msg=(
        "leaky_relu's forward with slope 0.1: keep x where x > 0 and take slope * x elsewhere (np.where)"))


@pytest.mark.ex_leaky_relu
def test_leaky_relu_is_one_operation_named_leaky_relu(my_ops: ModuleType) -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    out = my_ops.leaky_relu(x)
    assert is_one_operation(out, "leaky_relu", x), (
        f"expected one 'leaky_relu' node whose only parent is x; got op {out.op!r} with "
        f"{len(out.parents)} parent(s). Use Tensor.record, not a combination of existing ops."
    )


@pytest.mark.ex_leaky_relu
def test_leaky_relu_gradient_is_one_or_slope(my_ops: ModuleType) -> None:
    x = Tensor([[-3.0, 2.0], [0.5, -0.25]], requires_grad=True)
    upstream = np.array([[1.0, -2.0], [3.0, 0.5]])
    my_ops.leaky_relu(x, slope=0.2).backward(upstream)
    assert x.grad is not None, "no gradient reached x: return (g * local_derivative,) from your backward"
    np.testing.assert_allclose(x.grad, upstream * np.array([[0.2, 1.0], [1.0, 0.2]]), err_msg=(
        "the gradient must be the upstream g times 1 where x > 0 and times slope elsewhere (0.2 here; "
        "not 0 as for ReLU)"))


@pytest.mark.ex_leaky_relu
@settings(max_examples=25, deadline=None)
@given(values=arrays, slope=st.floats(0.0, 0.5))
def test_leaky_relu_passes_gradcheck(my_ops: ModuleType, values: np.ndarray, slope: float) -> None:
    x = Tensor(away_from(values), requires_grad=True)
    check_gradient(lambda t: my_ops.leaky_relu(t, slope=slope), [x],
                   f"leaky_relu's backward must return g times 1 where x > 0 and g times slope ({slope:g}) elsewhere")


@pytest.mark.ex_leaky_relu
def test_leaky_relu_with_slope_zero_is_relu(my_ops: ModuleType) -> None:
    values = np.linspace(-2, 2, 9)
    np.testing.assert_array_equal(my_ops.leaky_relu(Tensor(values), slope=0.0).data, Tensor(values).relu().data,
                                  err_msg="with slope 0 the negative inputs must give 0, as relu does: use slope "
                                          "as given, not a default")


@pytest.mark.ex_leaky_relu
def test_leaky_relu_records_no_graph_under_no_grad(my_ops: ModuleType) -> None:
    x = Tensor([1.0, -1.0], requires_grad=True)
    with no_grad():
        out = my_ops.leaky_relu(x)
    assert not out.requires_grad and out.parents == (), (
        "inside no_grad() the result must record no graph: build it with Tensor.record, which checks the mode "
        "for you, not by setting parents or requires_grad yourself"
    )


@pytest.mark.ex_leaky_relu
def test_leaky_relu_keeps_float32(my_ops: ModuleType) -> None:
    out = my_ops.leaky_relu(Tensor(np.array([-1.0, 2.0], dtype=np.float32)))
    assert out.dtype == np.float32, (
        f"float32 in gave {out.dtype} out: keep the input's dtype, e.g. data.astype(x.dtype, copy=False)"
    )


@pytest.mark.ex_leaky_relu
def test_leaky_relu_keeps_float32_in_value_and_gradient(my_ops: ModuleType) -> None:
    x = Tensor(np.array([[-1.5, 2.0], [0.25, -4.0]], dtype=np.float32), requires_grad=True)
    out = my_ops.leaky_relu(x, slope=0.25)
    assert out.data.dtype == np.float32, (
        f"the value is {out.data.dtype}; float32 in must stay float32: cast with data.astype(x.dtype, copy=False)"
    )
    np.testing.assert_array_equal(out.data, np.array([[-0.375, 2.0], [0.25, -1.0]], dtype=np.float32),
                                  err_msg="the forward: x where x > 0, slope * x elsewhere (slope 0.25)")
    upstream = np.array([[1.0, -2.0], [3.0, 0.5]], dtype=np.float32)
    out.backward(upstream)
    assert x.grad is not None and x.grad.dtype == np.float32, (
        "the gradient of a float32 input must be float32: return g * local_derivative from backward"
    )
    np.testing.assert_array_equal(x.grad, upstream * np.array([[0.25, 1.0], [1.0, 0.25]], dtype=np.float32),
                                  err_msg="the gradient: g times 1 where x > 0 and times slope elsewhere")


# ------------------------------------------------------------------ exercise 2: logsumexp
@pytest.mark.ex_logsumexp
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_the_definition(my_ops: ModuleType, axis: int, keepdims: bool) -> None:
    values = np.random.default_rng(0).normal(size=(3, 4))
    out = my_ops.logsumexp(Tensor(values), axis=axis, keepdims=keepdims)
    expected = np.log(np.exp(values).sum(axis=axis, keepdims=keepdims))
    assert out.shape == expected.shape, (
        f"axis={axis}, keepdims={keepdims}: the result has shape {out.shape}, expected {expected.shape}: reduce "
        f"along axis only, and keep it as size 1 only when keepdims (np.squeeze(out, axis=axis) otherwise)"
    )
    np.testing.assert_allclose(out.data, expected, err_msg=(
        f"axis={axis}: logsumexp must equal log(sum(exp(x))) along the axis: if you subtracted m = max "
        f"before np.exp, add the same m back after np.log"))


@pytest.mark.ex_logsumexp
def test_logsumexp_does_not_overflow_or_underflow(my_ops: ModuleType) -> None:
    shift = ("subtract m = the max along the axis (x.data.max(axis, keepdims=True)) before np.exp, so the "
             "largest term is exp(0) = 1, and add m back after np.log")
    try:
        with np.errstate(all="raise"):  # an overflow inside the forward pass is an error here
            big = my_ops.logsumexp(Tensor([[1000.0, 1000.0], [-1000.0, -1000.0]]), axis=1)
    except FloatingPointError as error:
        raise AssertionError(f"logsumexp of ±1000: {error}. exp(1000) overflows float64, and exp(-1000) - "
                             f"exp(m) with one max for the whole array underflows to log(0): {shift}") from None
    np.testing.assert_allclose(big.data, [1000.0 + np.log(2.0), -1000.0 + np.log(2.0)],
                               err_msg=f"logsumexp of [1000, 1000] is 1000 + log 2: {shift}")


@pytest.mark.ex_logsumexp
def test_logsumexp_gradient_is_softmax(my_ops: ModuleType) -> None:
    values = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])  # exp(1000) overflows float64
    x = Tensor(values, requires_grad=True)
    upstream = np.array([2.0, -1.0])
    out = my_ops.logsumexp(x, axis=1)
    axis_advice = ("the upstream gradient g has the result's shape (2,), without the reduced axis 1: put it back "
                   "with np.expand_dims(g, axis) (unless keepdims) before multiplying by the softmax")
    try:
        out.backward(upstream)
    except ValueError as error:
        raise AssertionError(f"{error}\n{axis_advice}") from None
    np.testing.assert_allclose(x.grad, upstream[:, None] * Tensor(values).softmax(axis=1).data, atol=1e-12, err_msg=(
        "the gradient must be the upstream gradient g (here [2, -1], one value per row) times softmax(x) along "
        f"the axis, computed from the shifted exponentials so that it stays finite; {axis_advice}"))
    assert np.all(np.isfinite(x.grad)), (
        "the gradient holds nan or inf: compute the softmax as exp(x - m) / Σ exp(x - m), m the max")


def reused(op: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """op inside a bigger graph: its input h = x * 1 is used again, so the add node sends the SAME
    gradient array g to op and to h. A backward that changes g in place (g *= local) changes h's too."""
    def bigger(x: Tensor, *rest: Tensor) -> Tensor:
        h = x * 1.0
        return op(h, *rest) + h
    return bigger


IN_PLACE = ("the gradient is wrong once your op sits in a bigger graph (op(h) + h): a backward that changes "
            "its g in place (g *= ..., g[...] = ...) also changes the gradient add sent to h, the same array. "
            "Return a new array instead, g * local")


@pytest.mark.ex_leaky_relu
def test_leaky_relu_backward_leaves_g_unchanged(my_ops: ModuleType) -> None:
    x = Tensor([[-3.0, 2.0, 0.5], [1.5, -0.25, -1.0]], requires_grad=True)
    check_gradient(reused(lambda t: my_ops.leaky_relu(t, slope=0.2)), [x], IN_PLACE)


@pytest.mark.ex_logsumexp
def test_logsumexp_backward_leaves_g_and_its_softmax_unchanged(my_ops: ModuleType) -> None:
    values = np.random.default_rng(3).normal(size=(2, 3))
    check_gradient(reused(lambda t: my_ops.logsumexp(t, axis=1, keepdims=True)), [Tensor(values, requires_grad=True)],
                   IN_PLACE)
    x = Tensor(values, requires_grad=True)
    out = my_ops.logsumexp(x, axis=1)
    out.backward(np.array([2.0, -1.0]))
    first = x.grad.copy()
    out.backward(np.array([2.0, -1.0]))  # a second pass adds the same gradient again
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-12, err_msg=(
        "a second backward pass through the same graph gave another gradient: your backward changes an "
        "array it keeps (the softmax, or g) in place; compute g * softmax as a new array"))


@pytest.mark.ex_logsumexp
def test_logsumexp_keeps_float32(my_ops: ModuleType) -> None:
    x = Tensor(np.array([[1.0, 2.0], [3.0, -1.0]], dtype=np.float32), requires_grad=True)
    out = my_ops.logsumexp(x, axis=1)
    assert out.data.dtype == np.float32, (
        f"float32 in gave {out.data.dtype} out: keep the input's dtype (numpy keeps float32 through exp, log "
        f"and sum; a float64 constant or np.float64(...) turns it into float64)")
    out.backward(np.ones(2, dtype=np.float32))
    assert x.grad.dtype == np.float32, "the gradient of a float32 input must be float32"


@pytest.mark.ex_maximum
def test_maximum_backward_leaves_g_unchanged(my_ops: ModuleType) -> None:
    a = Tensor([[1.0, -2.0, 3.5], [0.25, 4.0, -1.0]], requires_grad=True)
    b = Tensor([0.5, 1.5, -0.75], requires_grad=True)
    check_gradient(reused(my_ops.maximum), [a, b], IN_PLACE)


@pytest.mark.ex_maximum
def test_maximum_keeps_float32_with_a_number(my_ops: ModuleType) -> None:
    a = Tensor(np.array([-1.0, 2.0], dtype=np.float32), requires_grad=True)
    out = my_ops.maximum(a, 0.5)
    assert out.data.dtype == np.float32, (
        f"float32 a and the number 0.5 gave {out.data.dtype}: turn the number into a Tensor like a, with "
        f"as_operand(b, like=a) (Tensor(b) would make it float64, and the result with it)")
    out.backward(np.ones(2, dtype=np.float32))
    assert a.grad.dtype == np.float32, "the gradient of a float32 input must be float32"


@pytest.mark.ex_logsumexp
def test_logsumexp_is_one_operation_named_logsumexp(my_ops: ModuleType) -> None:
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    out = my_ops.logsumexp(x)
    assert is_one_operation(out, "logsumexp", x), (
        f"expected one 'logsumexp' node whose only parent is x; got op {out.op!r}. Use one "
        f"Tensor.record(data, (x,), 'logsumexp', backward), not a combination of existing ops."
    )


@pytest.mark.ex_logsumexp
@settings(max_examples=25, deadline=None)
@given(values=arrays, data=st.data())
def test_logsumexp_passes_gradcheck(my_ops: ModuleType, values: np.ndarray, data: st.DataObject) -> None:
    axis = data.draw(st.integers(-values.ndim, values.ndim - 1), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    x = Tensor(values / 10, requires_grad=True)
    check_gradient(lambda t: my_ops.logsumexp(t, axis=axis, keepdims=keepdims), [x],
                   f"axis={axis}, keepdims={keepdims}: the backward must return np.expand_dims(g, axis) (just g when "
                   f"keepdims) times softmax(x) along the axis; multiply by the upstream gradient g, whatever it is")


# ------------------------------------------------------------------ exercise 3: maximum
@pytest.mark.ex_maximum
def test_maximum_broadcasts_like_numpy(my_ops: ModuleType) -> None:
    a = np.arange(3.0).reshape(3, 1)
    b = np.array([0.5, 1.5, 2.5, -1.0])
    out = my_ops.maximum(Tensor(a), Tensor(b))
    assert out.shape == (3, 4), (
        f"(3, 1) and (4,) broadcast to (3, 4), got {out.shape}: compute the forward with "
        f"apply_elementwise('maximum', np.maximum, a, b)"
    )
    np.testing.assert_array_equal(out.data, np.maximum(a, b), err_msg="the forward must be np.maximum(a, b)")


@pytest.mark.ex_maximum
def test_maximum_sends_the_gradient_to_the_larger_input(my_ops: ModuleType) -> None:
    a = Tensor([1.0, 5.0, -2.0], requires_grad=True)
    b = Tensor([3.0, 4.0, -3.0], requires_grad=True)
    my_ops.maximum(a, b).backward(np.array([10.0, 20.0, 30.0]))
    larger = "each element's gradient g goes to the input that is larger there, and 0 to the other"
    np.testing.assert_array_equal(a.grad, [0.0, 20.0, 30.0], err_msg=f"a's gradient: {larger}")
    np.testing.assert_array_equal(b.grad, [10.0, 0.0, 0.0], err_msg=f"b's gradient: {larger}")


@pytest.mark.ex_maximum
def test_maximum_splits_the_gradient_on_a_tie(my_ops: ModuleType) -> None:
    a = Tensor([2.0, 1.0], requires_grad=True)
    b = Tensor([2.0, 0.0], requires_grad=True)
    my_ops.maximum(a, b).backward(np.array([4.0, 4.0]))
    tie = ("a and b tie at element 0 (both 2.0): on a tie give each input half of the gradient, g/2, as "
           "Tensor.max does; share_a = (a > b) + 0.5 * (a == b), and b gets 1 - share_a")
    np.testing.assert_array_equal(a.grad, [2.0, 4.0], err_msg=tie)
    np.testing.assert_array_equal(b.grad, [2.0, 0.0], err_msg=tie)


@pytest.mark.ex_maximum
def test_maximum_reduces_broadcast_gradients_to_each_shape(my_ops: ModuleType) -> None:
    rng = np.random.default_rng(1)
    a = Tensor(rng.normal(size=(3, 1)), requires_grad=True)
    b = Tensor(rng.normal(size=(4,)), requires_grad=True)
    unbroadcast_advice = ("a (3, 1) and b (4,) were broadcast to (3, 4): sum each input's gradient back to its "
                          "own shape with unbroadcast(g * share, x.shape), since a broadcast copy's gradients add up")
    check_gradient(my_ops.maximum, [a, b], unbroadcast_advice)
    assert a.grad is None and b.grad is None, "set-up: gradcheck leaves .grad as it was"
    my_ops.maximum(a, b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,), unbroadcast_advice
    assert a.grad.sum() + b.grad.sum() == pytest.approx(12.0), (  # every output element sends 1 somewhere
        f"each of the 12 output elements must send its gradient 1 to a or to b (half to each on a tie), so the "
        f"gradients add up to 12, got {a.grad.sum() + b.grad.sum():g}; {unbroadcast_advice}"
    )


@st.composite
def untied_broadcastable_pair(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of broadcastable shapes (a missing leading axis, axes of size 1) and no ties.

    a holds whole numbers + 0.25 and b whole numbers - 0.25, so every pair a_i - b_j is a whole
    number + 0.5: at least 0.5 from a tie, where maximum has a kink that finite differences
    would straddle.
    """
    shape_a, shape_b = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                              max_side=4)).input_shapes
    whole = st.integers(-4, 4)
    a = draw(hnp.arrays(np.int64, shape_a, elements=whole)) + 0.25
    b = draw(hnp.arrays(np.int64, shape_b, elements=whole)) - 0.25
    return a, b


@pytest.mark.ex_maximum
@settings(max_examples=25, deadline=None)
@given(pair=untied_broadcastable_pair())
def test_maximum_passes_gradcheck_on_broadcastable_shapes(my_ops: ModuleType,
                                                          pair: tuple[np.ndarray, np.ndarray]) -> None:
    a = Tensor(pair[0], requires_grad=True)
    b = Tensor(pair[1], requires_grad=True)
    out = my_ops.maximum(a, b)
    assert out.shape == np.broadcast_shapes(a.shape, b.shape), (
        f"shapes {a.shape} and {b.shape} broadcast to {np.broadcast_shapes(a.shape, b.shape)}, got {out.shape}: "
        f"use apply_elementwise('maximum', np.maximum, a, b)"
    )
    np.testing.assert_array_equal(out.data, np.maximum(pair[0], pair[1]), err_msg="the forward is np.maximum(a, b)")
    check_gradient(my_ops.maximum, [a, b],
                   f"shapes {a.shape} and {b.shape}: the larger input gets g, the other 0, and each gradient is "
                   f"summed back to its input's own shape with unbroadcast(..., x.shape)")


@pytest.mark.ex_maximum
def test_maximum_with_a_number_is_relu_when_the_number_is_zero(my_ops: ModuleType) -> None:
    x = Tensor([-1.0, 2.0, -3.0, 4.0], requires_grad=True)
    out = my_ops.maximum(x, 0.0)
    np.testing.assert_array_equal(out.data, [0.0, 2.0, 0.0, 4.0], err_msg=(
        "maximum(x, 0.0) must work with a plain number: turn it into a Tensor with as_operand(b, like=a)"))
    out.backward(np.ones(4))
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 1.0], err_msg=(
        "x gets the gradient where x > 0 and nothing where the number 0 is larger"))


@pytest.mark.ex_maximum
def test_maximum_is_one_operation_with_both_inputs_as_parents(my_ops: ModuleType) -> None:
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([2.0, 1.0], requires_grad=True)
    out = my_ops.maximum(a, b)
    assert is_one_operation(out, "maximum", a, b), (
        f"expected one 'maximum' node whose parents are a and b; got op {out.op!r} with {len(out.parents)} "
        f"parent(s). Use one Tensor.record(data, (a, b), 'maximum', backward)."
    )


@pytest.mark.ex_maximum
def test_maximum_names_itself_and_the_shapes_when_they_do_not_broadcast(my_ops: ModuleType) -> None:
    with expect_error(ValueError, r"maximum.*\(2, 3\).*\(4,\)",
                      "compute the forward with apply_elementwise('maximum', np.maximum, a, b) from "
                      "tinygrad_mb.checks: it raises the engine's error naming the op and both shapes"):
        my_ops.maximum(Tensor(np.ones((2, 3))), Tensor(np.ones(4)))
