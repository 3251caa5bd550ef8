"""Every Tensor operation: forward values equal numpy's, gradients equal finite differences.

The gradient check: for inputs x_1..x_k and a random, non-uniform upstream gradient u of the
output's shape, backward(u) must give d/dx_j of s = sum(op(x_1..x_k) * u), which is computed
independently by central differences (s(x + eps e) - s(x - eps e)) / (2 eps) for every
element. A uniform u would hide a backward that mixes up elements; a random one does not.

Tolerances (float64, eps = 1e-6): central differences err by about eps^2 * |s'''| (< 1e-10
here: inputs are bounded and kept away from kinks and poles) plus rounding of about
1e-16 * |s| / eps (< 1e-8 for |s| < 100). The checks allow ATOL = 1e-6 + RTOL = 1e-5 relative,
a hundred times that, while a wrong derivative is off by O(1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    arrays,
    away_from_zero,
    axis_and_keepdims,
    broadcastable_pair,
    positive,
    separated,
    shapes,
    upstream_like,
)

from tinygrad_mb import Tensor, no_grad

EPS = 1e-6
ATOL = 1e-6
RTOL = 1e-5


# ------------------------------------------------------------------------------ helpers
def numeric_gradients(fn: Callable[..., Tensor], inputs: Sequence[np.ndarray],
                      upstream: np.ndarray) -> list[np.ndarray]:
    """Central-difference gradients of sum(fn(*inputs) * upstream), one array per input."""

    def s(values: list[np.ndarray]) -> float:
        with no_grad():
            return float(np.sum(fn(*[Tensor(v) for v in values]).data * upstream))

    grads = []
    for i, x in enumerate(inputs):
        g = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            plus = [v.copy() for v in inputs]
            minus = [v.copy() for v in inputs]
            plus[i][idx] += EPS
            minus[i][idx] -= EPS
            g[idx] = (s(plus) - s(minus)) / (2 * EPS)
        grads.append(g)
    return grads


def backprop(fn: Callable[..., Tensor], inputs: Sequence[np.ndarray],
             upstream: np.ndarray) -> tuple[Tensor, list[np.ndarray]]:
    """The output and the engine's gradients after backward(upstream)."""
    tensors = [Tensor(x, requires_grad=True) for x in inputs]
    out = fn(*tensors)
    out.backward(upstream)
    grads = [t.grad for t in tensors]
    assert all(g is not None for g in grads), "backward did not reach every input"
    return out, grads  # type: ignore[return-value]


def assert_gradients_match_finite_differences(fn: Callable[..., Tensor], inputs: Sequence[np.ndarray],
                                              upstream: np.ndarray) -> None:
    out, analytic = backprop(fn, inputs, upstream)
    assert out.shape == np.shape(upstream)
    for x, a, n in zip(inputs, analytic, numeric_gradients(fn, inputs, upstream)):
        assert a.shape == x.shape, f"gradient shape {a.shape} differs from input shape {x.shape}"
        np.testing.assert_allclose(a, n, rtol=RTOL, atol=ATOL)


def output_shape(fn: Callable[..., Tensor], inputs: Sequence[np.ndarray]) -> tuple[int, ...]:
    with no_grad():
        return fn(*[Tensor(x) for x in inputs]).shape


def check_op(data: st.DataObject, fn: Callable[..., Tensor], *inputs: np.ndarray) -> None:
    """Draw a non-uniform upstream gradient for fn's output and compare the gradients."""
    upstream = data.draw(upstream_like(output_shape(fn, inputs)), label="upstream")
    assert_gradients_match_finite_differences(fn, inputs, upstream)


# ------------------------------------------------------------------------------ binary ops
BINARY: dict[str, tuple[Callable[[Any, Any], Any], bool]] = {
    # name: (operation, whether the right operand must stay away from zero)
    "add": (lambda a, b: a + b, False),
    "sub": (lambda a, b: a - b, False),
    "mul": (lambda a, b: a * b, False),
    "div": (lambda a, b: a / b, True),
}


@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data(), pair=broadcastable_pair())
def test_binary_op_gradient_matches_finite_differences_with_broadcasting(name, data, pair):
    op, nonzero_right = BINARY[name]
    a = data.draw(arrays(pair[0]), label="a")
    b = data.draw(away_from_zero(pair[1], margin=0.5) if nonzero_right else arrays(pair[1]), label="b")
    check_op(data, op, a, b)


@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data(), pair=broadcastable_pair())
def test_binary_op_forward_equals_numpy_with_broadcasting(name, data, pair):
    op, nonzero_right = BINARY[name]
    a = data.draw(arrays(pair[0]))
    b = data.draw(away_from_zero(pair[1], margin=0.5) if nonzero_right else arrays(pair[1]))
    out = op(Tensor(a), Tensor(b))
    expected = op(a, b)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.data, expected)


@given(data=st.data(), shape=shapes())
def test_a_tensor_used_as_both_operands_gets_both_contributions(data, shape):
    x = data.draw(away_from_zero(shape, margin=0.5))
    check_op(data, lambda t: t * t + t / t - t, x)


# ------------------------------------------------------------------------------ numbers and arrays on either side
REFLECTED: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("name", list(REFLECTED))
@pytest.mark.parametrize("kind", ["python number", "numpy scalar", "numpy array", "list"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_numbers_and_arrays_work_on_either_side_of_an_operator(name, kind, side):
    op = REFLECTED[name]
    x = np.array([[0.5, -1.5, 2.0], [1.25, -0.75, 3.0]])
    constant = {"python number": 2.5, "numpy scalar": np.float64(2.5),
                "numpy array": np.array([1.5, -2.0, 0.5]), "list": [1.5, -2.0, 0.5]}[kind]
    t = Tensor(x, requires_grad=True)
    out = op(constant, t) if side == "left" else op(t, constant)
    expected = op(np.asarray(constant), x) if side == "left" else op(x, np.asarray(constant))
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, expected, rtol=1e-15)
    upstream = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])
    check = (lambda v: op(constant, v)) if side == "left" else (lambda v: op(v, constant))
    assert_gradients_match_finite_differences(check, [x], upstream)


@pytest.mark.parametrize("side", ["left", "right"])
def test_matmul_accepts_a_numpy_array_on_either_side(side):
    W = np.array([[1.0, 2.0], [-1.0, 0.5], [0.25, 3.0]])
    x = np.array([[0.5, -1.0, 2.0]])
    if side == "left":  # array @ Tensor
        out = x @ Tensor(W, requires_grad=True)
        np.testing.assert_allclose(out.data, x @ W)
        assert_gradients_match_finite_differences(lambda w: x @ w, [W], np.array([[1.0, -2.0]]))
    else:  # Tensor @ array
        out = Tensor(x, requires_grad=True) @ W
        np.testing.assert_allclose(out.data, x @ W)
        assert_gradients_match_finite_differences(lambda v: v @ W, [x], np.array([[1.0, -2.0]]))


def test_a_number_raised_to_a_tensor_matches_numpy_and_its_gradient():
    x = np.array([-1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose((2.0 ** Tensor(x)).data, 2.0**x, rtol=1e-14)
    assert_gradients_match_finite_differences(lambda t: 3.0**t, [x], np.array([1.0, -0.5, 2.0, 0.25]))


# ------------------------------------------------------------------------------ pow and neg
@pytest.mark.parametrize("exponent", [2, 3, -1, 0.5, 1.5, -2.5])
@given(data=st.data(), shape=shapes())
def test_pow_gradient_matches_finite_differences(exponent, data, shape):
    # negative and fractional powers need positive inputs (pole at 0, no real roots below)
    x = data.draw(positive(shape) if exponent < 0 or exponent != int(exponent) else arrays(shape))
    np.testing.assert_allclose((Tensor(x) ** exponent).data, x**exponent, rtol=1e-14)
    check_op(data, lambda t: t**exponent, x)


@given(data=st.data(), shape=shapes())
def test_neg_gradient_matches_finite_differences(data, shape):
    x = data.draw(arrays(shape))
    np.testing.assert_array_equal((-Tensor(x)).data, -x)
    check_op(data, lambda t: -t, x)


# ------------------------------------------------------------------------------ unary ops
def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # an independent, overflow-free formula


UNARY: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[np.ndarray], np.ndarray], str]] = {
    # name: (engine op, numpy reference, input domain)
    "exp": (Tensor.exp, np.exp, "any"),
    "log": (Tensor.log, np.log, "positive"),
    "sqrt": (Tensor.sqrt, np.sqrt, "positive"),
    "abs": (Tensor.abs, np.abs, "nonzero"),
    "tanh": (Tensor.tanh, np.tanh, "any"),
    "sigmoid": (Tensor.sigmoid, _stable_sigmoid, "any"),
    "relu": (Tensor.relu, lambda x: np.maximum(x, 0.0), "nonzero"),
}
DOMAINS = {"any": arrays, "positive": positive, "nonzero": away_from_zero}


@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data(), shape=shapes())
def test_unary_op_gradient_matches_finite_differences(name, data, shape):
    op, _, domain = UNARY[name]
    check_op(data, op, data.draw(DOMAINS[domain](shape), label="x"))


@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data(), shape=shapes())
def test_unary_op_forward_equals_numpy(name, data, shape):
    op, reference, domain = UNARY[name]
    x = data.draw(DOMAINS[domain](shape))
    out = op(Tensor(x))
    assert out.shape == x.shape
    np.testing.assert_allclose(out.data, reference(x), rtol=1e-14, atol=1e-15)


def test_relu_and_abs_use_the_subgradient_zero_at_zero():
    x = Tensor([0.0, 0.0], requires_grad=True)
    (x.relu() + x.abs()).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


# ------------------------------------------------------------------------------ reductions
@pytest.mark.parametrize("name", ["sum", "mean"])
@given(data=st.data(), shape=shapes())
def test_sum_and_mean_gradients_match_finite_differences_for_every_axis(name, data, shape):
    axis, keepdims = data.draw(axis_and_keepdims(len(shape)), label="axis, keepdims")
    x = data.draw(arrays(shape), label="x")
    op = lambda t: getattr(t, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    np.testing.assert_allclose(op(Tensor(x)).data, getattr(np, name)(x, axis=axis, keepdims=keepdims),
                               rtol=1e-14, atol=1e-15)
    check_op(data, op, x)


@given(data=st.data(), shape=shapes())
def test_max_gradient_matches_finite_differences_for_every_axis(data, shape):
    axis, keepdims = data.draw(axis_and_keepdims(len(shape)), label="axis, keepdims")
    x = data.draw(separated(shape), label="x")  # no ties: max is differentiable there
    op = lambda t: t.max(axis=axis, keepdims=keepdims)  # noqa: E731
    np.testing.assert_array_equal(op(Tensor(x)).data, np.max(x, axis=axis, keepdims=keepdims))
    check_op(data, op, x)


def test_max_shares_the_gradient_equally_between_tied_maxima():
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(axis=1).backward(np.array([4.0, 1.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 2.0, 2.0], [1.0, 0.0, 0.0]])


def test_reduction_gradients_are_writable_arrays():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    (x.sum() + x.mean(axis=0).sum()).backward()
    assert x.grad is not None and x.grad.flags.writeable
    x.grad *= 0.5  # gradient clipping and similar updates work in place
    np.testing.assert_allclose(x.grad, 0.5 * (1.0 + 1.0 / 2.0))


# ------------------------------------------------------------------------------ matmul
@st.composite
def matmul_shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Operand shapes for every matmul case: vector or matrix on each side, and batches."""
    n, k, m, b = (draw(st.integers(1, 4), label=s) for s in "nkmb")
    case = draw(st.sampled_from(["mat@mat", "vec@mat", "mat@vec", "vec@vec", "batch@mat",
                                 "batch@batch", "broadcast batches", "vec@batch"]))
    return {
        "mat@mat": ((n, k), (k, m)),
        "vec@mat": ((k,), (k, m)),
        "mat@vec": ((n, k), (k,)),
        "vec@vec": ((k,), (k,)),
        "batch@mat": ((b, n, k), (k, m)),
        "batch@batch": ((b, n, k), (b, k, m)),
        "broadcast batches": ((1, n, k), (b, k, m)),
        "vec@batch": ((k,), (b, k, m)),
    }[case]


@given(data=st.data(), operand_shapes=matmul_shapes())
def test_matmul_gradient_matches_finite_differences(data, operand_shapes):
    a = data.draw(arrays(operand_shapes[0]), label="a")
    b = data.draw(arrays(operand_shapes[1]), label="b")
    np.testing.assert_allclose((Tensor(a) @ Tensor(b)).data, a @ b, rtol=1e-14, atol=1e-14)
    check_op(data, lambda x, y: x @ y, a, b)


def test_matmul_of_matrices_uses_the_transposes_in_backward():
    A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    B = np.array([[1.0, -1.0], [0.5, 2.0], [-2.0, 1.0]])
    G = np.array([[1.0, 0.0], [2.0, -1.0]])
    _, (gA, gB) = backprop(lambda x, y: x @ y, [A, B], G)
    np.testing.assert_allclose(gA, G @ B.T)
    np.testing.assert_allclose(gB, A.T @ G)


# ------------------------------------------------------------------------------ shape ops
@given(data=st.data(), shape=shapes(min_dims=1))
def test_reshape_gradient_matches_finite_differences(data, shape):
    x = data.draw(arrays(shape))
    new_shape = data.draw(st.sampled_from([(-1,), (x.size, 1), (1, -1), tuple(reversed(shape))]))
    np.testing.assert_array_equal(Tensor(x).reshape(*new_shape).data, x.reshape(new_shape))
    np.testing.assert_array_equal(Tensor(x).reshape(new_shape).data, x.reshape(new_shape))
    check_op(data, lambda t: t.reshape(*new_shape), x)


@given(data=st.data(), shape=shapes(min_dims=1))
def test_transpose_gradient_matches_finite_differences_for_any_permutation(data, shape):
    x = data.draw(arrays(shape))
    perm = data.draw(st.permutations(list(range(len(shape)))), label="perm")
    # the same axes written with negative numbers must mean the same thing
    perm = [a - len(shape) if data.draw(st.booleans(), label="negative") else a for a in perm]
    np.testing.assert_array_equal(Tensor(x).transpose(*perm).data, x.transpose(perm))
    check_op(data, lambda t: t.transpose(*perm), x)


@given(data=st.data(), shape=shapes())
def test_T_reverses_the_axes_and_its_gradient_matches(data, shape):
    x = data.draw(arrays(shape))
    np.testing.assert_array_equal(Tensor(x).T.data, x.T)
    check_op(data, lambda t: t.T, x)


@given(data=st.data(), shape=shapes(min_dims=1))
def test_basic_indexing_forward_and_gradient(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True), label="index")
    np.testing.assert_array_equal(Tensor(x)[index].data, x[index])
    check_op(data, lambda t: t[index], x)


@given(data=st.data(), shape=shapes(min_dims=1))
def test_integer_array_indexing_forward_and_gradient_even_with_repeated_picks(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(hnp.integer_array_indices(shape, result_shape=shapes(max_dims=2, max_side=5)),
                      label="index")
    np.testing.assert_array_equal(Tensor(x)[index].data, x[index])
    check_op(data, lambda t: t[index], x)


@given(data=st.data(), shape=shapes(min_dims=1))
def test_boolean_mask_indexing_forward_and_gradient(data, shape):
    x = data.draw(arrays(shape))
    mask = data.draw(hnp.arrays(bool, shape), label="mask")
    np.testing.assert_array_equal(Tensor(x)[mask].data, x[mask])
    check_op(data, lambda t: t[mask], x)


def test_an_element_picked_twice_receives_both_gradients():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 2, 0, 0]].backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(x.grad, [1101.0, 0.0, 10.0])


def test_cross_entropy_style_pick_rows_and_labels():
    logits = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    rows, labels = np.arange(2), np.array([2, 0])
    np.testing.assert_array_equal(Tensor(logits)[rows, labels].data, [3.0, 4.0])
    assert_gradients_match_finite_differences(lambda t: t[rows, labels], [logits], np.array([2.0, -1.0]))
    # a Tensor of whole numbers and a list work as indices too
    np.testing.assert_array_equal(Tensor(logits)[Tensor(rows), [2, 0]].data, [3.0, 4.0])


def test_slicing_with_a_step_and_a_negative_index():
    x = np.arange(12.0).reshape(3, 4)
    assert_gradients_match_finite_differences(lambda t: t[::2, -1], [x], np.array([1.0, -3.0]))
    np.testing.assert_array_equal(Tensor(x)[::2, -1].data, x[::2, -1])


# ------------------------------------------------------------------------------ softmax family
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data(), shape=shapes(min_dims=1))
def test_softmax_family_gradient_matches_finite_differences_along_any_axis(name, data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    x = data.draw(arrays(shape, -3.0, 3.0))
    op = lambda t: getattr(t, name)(axis=axis)  # noqa: E731
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    softmax = e / e.sum(axis=axis, keepdims=True)
    expected = softmax if name == "softmax" else np.log(softmax)
    np.testing.assert_allclose(op(Tensor(x)).data, expected, rtol=1e-12, atol=1e-14)
    check_op(data, op, x)


# ------------------------------------------------------------------------------ numerics
def test_sigmoid_is_stable_and_exact_at_plus_minus_a_thousand():
    x = Tensor([-1000.0, -710.0, 0.0, 710.0, 1000.0], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is exact
        y = x.sigmoid()
        y.backward(np.ones(5))
    # sigmoid(-710) = e^-710 / (1 + e^-710) = e^-710 to double precision (a subnormal number)
    np.testing.assert_allclose(y.data, [0.0, math.exp(-710.0), 0.5, 1.0, 1.0], rtol=1e-9, atol=0)
    assert np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(x.grad, [0.0, 0.0, 0.25, 0.0, 0.0], atol=1e-300)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_is_stable_for_logits_of_ten_thousand(name):
    logits = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4 + 2.0, -1e4 + 1.0]])
    x = Tensor(logits, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = getattr(x, name)(axis=1)
        y.backward(np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]]))
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))
    # shifting the logits by a constant changes nothing: compare with the small logits
    small = logits - logits.max(axis=1, keepdims=True)
    expected = getattr(Tensor(small), name)(axis=1).data
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    if name == "log_softmax":
        np.testing.assert_allclose(y.data[0, :2], [-np.log1p(np.exp(-1.0)), -1.0 - np.log1p(np.exp(-1.0))],
                                   rtol=1e-12)
    else:
        np.testing.assert_allclose(y.data.sum(axis=1), [1.0, 1.0], rtol=1e-15)


# ------------------------------------------------------------------------------ dtypes
FLOAT32_OPS: dict[str, Callable[[Tensor], Tensor]] = {
    "x + 1": lambda x: x + 1, "1 + x": lambda x: 1 + x, "x - 0.5": lambda x: x - 0.5,
    "2.5 - x": lambda x: 2.5 - x, "x * 2.0": lambda x: x * 2.0, "np.float64(2) * x": lambda x: np.float64(2) * x,
    "x / 3": lambda x: x / 3, "1 / x": lambda x: 1 / x, "x ** 2": lambda x: x**2, "2 ** x": lambda x: 2**x,
    "-x": lambda x: -x, "x * x": lambda x: x * x, "x @ x.T": lambda x: x @ x.T,
    "exp": Tensor.exp, "log": Tensor.log, "sqrt": Tensor.sqrt, "abs": Tensor.abs,
    "tanh": Tensor.tanh, "sigmoid": Tensor.sigmoid, "relu": Tensor.relu,
    "sum": lambda x: x.sum(axis=0), "mean": lambda x: x.mean(), "max": lambda x: x.max(axis=1),
    "reshape": lambda x: x.reshape(-1), "transpose": lambda x: x.T, "index": lambda x: x[[0, 1], [1, 0]],
    "softmax": lambda x: x.softmax(), "log_softmax": lambda x: x.log_softmax(axis=0),
}


@pytest.mark.parametrize("name", list(FLOAT32_OPS))
def test_float32_stays_float32_in_values_and_gradients(name):
    x = Tensor(np.array([[0.5, 1.5, 2.0], [1.0, 0.25, 3.0]], dtype=np.float32), requires_grad=True)
    y = FLOAT32_OPS[name](x)
    assert y.dtype == np.float32, f"{name} gave {y.dtype}"
    y.backward(np.ones(y.shape, dtype=np.float32))
    assert x.grad is not None and x.grad.dtype == np.float32


def test_float64_is_the_default_and_integers_become_float64():
    assert Tensor([1, 2, 3]).dtype == np.float64
    assert Tensor(2).dtype == np.float64
    assert Tensor(np.array([1, 2], dtype=np.int32)).dtype == np.float64
    assert Tensor([0.5]).dtype == np.float64


def test_a_float32_tensor_with_a_float64_array_follows_numpy_and_grads_keep_each_dtype():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    w = Tensor(np.full(3, 2.0), requires_grad=True)
    y = x * w
    assert y.dtype == np.float64  # as numpy: float32 * float64 -> float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_a_parameter_does_not_share_memory_with_the_array_it_was_made_from():
    values = np.array([1.0, 2.0])
    p = Tensor(values, requires_grad=True)
    p.data -= 1.0  # what an optimizer does
    np.testing.assert_array_equal(values, [1.0, 2.0])


@pytest.mark.parametrize("name", list(FLOAT32_OPS))
def test_results_and_gradients_are_numpy_arrays_even_with_zero_dimensions(name):
    # numpy turns 0-d results into numpy scalars; the API promises np.ndarray for .data and .grad
    x = Tensor(np.array([[0.5, 1.5, 2.0], [1.0, 0.25, 3.0]]), requires_grad=True)
    y = FLOAT32_OPS[name](x).sum()
    assert type(y.data) is np.ndarray and y.data.shape == ()
    y.backward()
    assert type(x.grad) is np.ndarray and type(y.grad) is np.ndarray


def test_a_scalar_tensor_computes_with_arrays_not_numpy_scalars():
    scalar = Tensor(0.5, requires_grad=True)
    z = (scalar * 2.0).exp() - scalar.tanh()
    z.backward()
    assert type(z.data) is np.ndarray and type(scalar.grad) is np.ndarray


def test_the_tensor_module_is_reachable_by_its_dotted_name():
    import importlib

    import tinygrad_mb

    module = importlib.import_module("tinygrad_mb.tensor")
    assert tinygrad_mb.tensor is module  # not shadowed by a function of the same name
    assert module.Tensor is Tensor
