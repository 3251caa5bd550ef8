"""Properties the rest of the suite left unchecked, found by mutation testing (``make mutate``).

Each test here kills mutants of ``tinygrad_mb`` that every other fast test let survive: a change
to the library that no test noticed. The tests assert what the library promises (an operation's
recorded name, which the graph pictures print; a repr; which gradients an optimizer step uses),
not how it is written. ``scripts/mutation_score.py`` lists the survivors judged equivalent.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable

import numpy as np
import pytest

from tinygrad_mb import (
    GradcheckError,
    Tensor,
    gradcheck,
    is_grad_enabled,
    minibatch,
    nn,
    no_grad,
    optim,
    topological_order,
)
from tinygrad_mb.checks import describe, with_article

# ------------------------------------------------------------------------------ tensor.py
X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
OPS: dict[str, Callable[[Tensor], Tensor]] = {
    "add": lambda x: x + 1.0,
    "sub": lambda x: x - 1.0,
    "mul": lambda x: x * 2.0,
    "div": lambda x: x / 2.0,
    "pow 3": lambda x: x**3,
    "pow 0.5": lambda x: x.abs() ** 0.5,
    "neg": lambda x: -x,
    "matmul": lambda x: x @ np.ones((3, 2)),
    "exp": lambda x: x.exp(),
    "log": lambda x: x.abs().log(),
    "sqrt": lambda x: x.abs().sqrt(),
    "abs": lambda x: x.abs(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": lambda x: x.relu(),
    "sum": lambda x: x.sum(axis=0),
    "mean": lambda x: x.mean(),
    "max": lambda x: x.max(axis=1),
    "reshape": lambda x: x.reshape(3, 2),
    "transpose": lambda x: x.T,
    "index": lambda x: x[0],
    "softmax": lambda x: x.softmax(),
    "log_softmax": lambda x: x.log_softmax(),
}


@pytest.mark.parametrize("requires_grad", [True, False])
@pytest.mark.parametrize("op", OPS)
def test_every_operation_records_the_name_the_graph_pictures_show(op: str, requires_grad: bool) -> None:
    x = Tensor(X, requires_grad=requires_grad)
    out = OPS[op](x)
    assert out.op == op
    assert (f"op={op!r}" in repr(out)) is True


def test_repr_shows_the_values_to_four_digits_and_name_requires_grad_and_op_only_when_set() -> None:
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert repr(Tensor([1 / 3, 2.0], requires_grad=True, name="w")) == \
        "Tensor([0.3333, 2.    ], name='w', requires_grad=True)"
    x = Tensor([1.0, -2.0], requires_grad=True)
    assert repr(x * 2.0) == "Tensor([ 2., -4.], requires_grad=True, op='mul')"
    assert repr(Tensor([1.0]) * 2.0) == "Tensor([2.], op='mul')"


def test_repr_summarises_an_array_of_more_than_twenty_elements() -> None:
    assert "..." not in repr(Tensor(np.arange(20.0)))
    assert repr(Tensor(np.arange(21.0))) == "Tensor([ 0.,  1.,  2., ..., 18., 19., 20.])"


def test_detach_is_a_leaf_that_keeps_the_name_and_shares_the_values() -> None:
    w = Tensor([1.0, 2.0], requires_grad=True, name="w")
    d = (w * 1.0).detach()
    assert d.name is None and not d.requires_grad and d.is_leaf
    d = w.detach()
    assert d.name == "w" and d.requires_grad is False and d.is_leaf and d.op == ""
    assert np.shares_memory(d.data, w.data)


def test_a_tensor_made_from_a_tensor_takes_its_values_and_dtype() -> None:
    t = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), requires_grad=True)
    u = Tensor(t)
    assert u.dtype == np.float32 and np.array_equal(u.data, t.data) and u.is_leaf and not u.requires_grad
    v = Tensor(t, requires_grad=True)
    v.data += 1.0  # its own copy: an optimizer step on v leaves t alone
    assert np.array_equal(t.data, [[1.0, 2.0], [3.0, 4.0]])


def test_mean_refuses_a_keepdims_that_is_not_a_bool() -> None:
    with pytest.raises(TypeError, match=r"^mean: keepdims must be True or False, got 'yes' \(a str\)"):
        Tensor([1.0, 2.0]).mean(keepdims="yes")


# ------------------------------------------------------------------------------ checks.py
def test_describe_shows_a_value_with_its_type_and_cuts_a_long_repr_at_sixty_characters() -> None:
    assert describe(2.5) == "2.5 (a float)"
    assert describe("231") == "'231' (a str)"
    assert describe(3) == "3 (an int)"
    assert describe(type("Xylophone", (), {"__repr__": lambda self: "X()"})()) == "X() (a Xylophone)"
    fits = "x" * 58  # its repr, quotes included, is 60 characters: shown whole
    assert describe(fits) == f"'{fits}' (a str)"
    long = "x" * 59  # 61 characters: cut to 57 and "..."
    assert describe(long) == "'" + "x" * 56 + "... (a str)"


def test_reshape_takes_sizes_from_a_flat_array_and_refuses_nested_or_fractional_ones() -> None:
    x = Tensor(np.arange(6.0))
    assert x.reshape(np.array([3, 2])).shape == (3, 2)
    assert x.reshape(np.array(6)).shape == (6,)
    nested = r"^reshape: the new sizes must be ints, got \[2, 3\] \(a list\) in \(\[2, 3\],\)$"
    with pytest.raises(TypeError, match=nested):
        x.reshape(np.array([[2, 3]]))
    with pytest.raises(TypeError, match=r"^reshape: the new sizes must be ints, got 2\.5 \(a float\) in \(2\.5, 2\)$"):
        x.reshape(2.5, 2)


def test_transpose_refuses_fractional_axes_and_an_axis_equal_to_ndim() -> None:
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"^transpose: axes must be ints, got 0\.5 \(a float\) in \(0\.5, 1\)$"):
        x.transpose(0.5, 1)
    with pytest.raises(ValueError, match=r"^transpose: axes \(2, 1\) are not a permutation of the 2 axes"):
        x.transpose(2, 1)  # 2 % 2 == 0 would make it look like (0, 1)


@pytest.mark.parametrize("right, axis", [((4,), "first"), ((4, 2), "second-to-last"), ((3, 4, 2), "second-to-last")])
def test_a_matmul_shape_error_names_the_axis_of_the_right_operand_that_must_match(right: tuple[int, ...],
                                                                                   axis: str) -> None:
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((2, 3))) @ Tensor(np.ones(right))
    assert str(info.value) == (f"matmul: cannot multiply (2, 3) by {right}; the last axis of the left operand must "
                               f"equal the {axis} axis of the right one (transpose an operand with .T?)")


def test_a_number_raised_to_a_tensor_needs_a_finite_positive_base() -> None:
    x = Tensor([1.0, 2.0])
    assert np.allclose((0.5 ** x).data, [0.5, 0.25])  # a base between 0 and 1 is fine
    for base, shown in [(0, "0 (an int)"), (0.0, "0.0 (a float)"), (-2.0, "-2.0 (a float)")]:
        with pytest.raises(ValueError) as info:
            base ** x
        assert str(info.value) == f"pow: a number raised to a tensor needs a finite, positive base, got {shown}"
    with pytest.raises(ValueError, match=r"^pow: a number raised to a tensor needs a finite, positive base, got 1000"):
        (10**400) ** x  # too large for a float: infinite, refused with the same error


def test_record_turns_integer_boolean_and_scalar_results_into_float_arrays() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    rule = lambda g: (g,)  # noqa: E731
    for data, dtype in [(np.array([1, 2]), np.float64), (np.array([True, False]), np.float64),
                        (np.float32(2.0), np.float32), (np.float64(2.0), np.float64), (3, np.float64)]:
        out = Tensor.record(data, (x,), "my_op", rule)
        assert type(out.data) is np.ndarray and out.data.dtype == dtype
        assert np.array_equal(out.data, np.asarray(data, dtype=dtype))
    assert Tensor.record(np.array([1, 2]), (x,), "my_op", rule).data.tolist() == [1.0, 2.0]
    with pytest.raises(TypeError, match=r"^Tensor\.record \('my_op'\): data of dtype <U2 cannot be used"):
        Tensor.record("ab", (x,), "my_op", rule)


PARENTS = "parents must be a tuple of the Tensors the result was computed from, e.g. (x,) or (a, b)"


def test_record_takes_parents_as_a_list_and_names_a_parent_that_is_not_a_tensor() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    rule = lambda g: (g,)  # noqa: E731
    out = Tensor.record(x.data * 2, [x], "my_op", rule)
    assert out.parents == (x,) and type(out.parents) is tuple and out.requires_grad
    for parents, bad in [([x, x.data], "parent 1 is array([1., 2.]) (an ndarray)"),
                         ((x.data,), "parent 0 is array([1., 2.]) (an ndarray)"),
                         ("x", "got 'x' (a str)")]:
        with pytest.raises(TypeError) as info:
            Tensor.record(x.data * 2, parents, "my_op", rule)
        assert str(info.value) == (f"Tensor.record ('my_op'): {PARENTS}; {bad}. "
                                   "Wrap data that needs no gradient in Tensor(...).")


def test_a_backward_rule_without_an_op_name_is_called_backward_in_its_error() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError) as info:
        Tensor.record(x.data * 2, (x,), "", lambda g: g).sum().backward()
    assert str(info.value).startswith("backward: backward returned an ndarray for an op with 1 input(s)")


def test_a_complex_gradient_or_an_integer_input_is_an_error_naming_the_op_and_input() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError) as info:
        Tensor.record(x.data * 2, (x,), "my_op", lambda g: (g * 1j,)).sum().backward()
    assert str(info.value) == ("my_op: backward returned a gradient of dtype complex128 for an input of dtype float64; "
                               "a gradient holds real numbers (casting would drop an imaginary part or convert "
                               "objects silently)")
    assert x.grad is None
    for name, shown in [("w", "'w'"), (None, "of shape (2,)")]:
        w = Tensor([1.0, 2.0], requires_grad=True, name=name)
        w.data = np.array([1, 2])
        with pytest.raises(TypeError) as info:
            (w * 2.0).sum().backward()
        assert str(info.value) == (f"mul: its input {shown} holds int64 data, so its gradient would be rounded to "
                                   "int64; a Tensor's .data is float64 or float32 (assign x.data = "
                                   "values.astype(np.float64))")



@pytest.mark.parametrize("index, message", [
    (Tensor([0.5, 1.5, 2.5, 3.5]), "index: a Tensor used as an index must hold whole numbers (positions), got values "
                                   "like [0.5, 1.5, 2.5]; use integer positions, or a numpy boolean mask to select "
                                   "(mask.data.astype(bool) for a Tensor)"),
    ([[0], [1, 2]], "index: the list [[0], [1, 2]] (a list) is not a rectangular array of positions"),
    (slice(0.5, 2), "index: slice bounds must be ints or None, got 0.5 (a float) in slice(0.5, 2, None)"),
])
def test_an_index_that_is_not_positions_is_refused_showing_what_was_given(index: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        Tensor([1.0, 2.0, 3.0, 4.0])[index]
    assert str(info.value) == message


def test_len_of_a_single_number_is_an_error_that_says_to_use_item() -> None:
    with pytest.raises(TypeError) as info:
        len(Tensor(1.0))
    assert str(info.value) == "len: a 0-d tensor (a single number) has no length and no rows; use .item() for its value"


def test_an_exponent_may_be_a_0d_array_but_not_a_tensor_or_an_int_beyond_the_floats() -> None:
    x = Tensor([1.0, 2.0])
    assert (x ** np.array(2.0)).data.tolist() == [1.0, 4.0]
    with pytest.raises(TypeError) as info:
        x ** Tensor(2.0)
    assert str(info.value) == ("pow: the exponent must be a Python or numpy number (x ** 2, x ** 0.5); for a tensor "
                               "exponent write (x.log() * e).exp().")
    with pytest.raises(ValueError, match=r"^pow: the exponent 1000000000000000000000000000000000000000000000000000000"
                                         r"00\.\.\. \(an int\) is too large for a float$"):
        x ** 10**400


def test_a_batch_of_matrices_times_one_matrix_broadcasts() -> None:
    out = Tensor(np.ones((3, 2, 4))) @ Tensor(np.ones((4, 5)))
    assert out.shape == (3, 2, 5) and out.data.max() == 4.0


def test_a_grad_set_by_hand_must_be_an_array_of_the_tensor_s_shape_but_a_list_of_numbers_is_added_to() -> None:
    w = Tensor([1.0, 2.0], requires_grad=True)
    w.grad = [1.0, 1.0]
    (w * 2.0).sum().backward()
    assert w.grad.tolist() == [3.0, 3.0]
    fix = ("so its gradient cannot be added to it; a .grad is a numpy array of its tensor's shape. Set .grad = None "
           "(or np.zeros_like(x.data)) first.")
    for name, grad, shown in [(None, Tensor([0.0, 0.0]), "a tensor of shape (2,) holds a .grad that is "
                                                           "Tensor([0., 0.]) (a Tensor)"),
                              ("w", [[1.0], [1.0, 2.0]], "'w' holds a .grad that is [[1.0], [1.0, 2.0]] (a list)")]:
        w = Tensor([1.0, 2.0], requires_grad=True, name=name)
        w.grad = grad
        with pytest.raises(TypeError) as info:
            (w * 2.0).sum().backward()
        assert str(info.value) == f"backward: {shown}, {fix}"


def test_a_gradient_of_the_wrong_shape_is_an_error_with_a_hint_only_when_its_size_differs() -> None:
    x = Tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    start = "my_op: backward returned a gradient of shape {} for an input of shape (4,); each gradient must have its "
    for rule, message in [(lambda g: (g[:2],), start.format("(2,)") + "input's shape (an input that was broadcast "
                                                "needs its gradient summed back to its shape: unbroadcast(g, shape))."),
                          (lambda g: (g.reshape(2, 2),), start.format("(2, 2)") + "input's shape.")]:
        with pytest.raises(ValueError) as info:
            Tensor.record(x.data * 2, (x,), "my_op", rule).sum().backward()
        assert str(info.value) == message



NOT_NUMBERS = "a Tensor holds real numbers (float64 by default, float32 when given float32)."


@pytest.mark.parametrize("data, message", [
    ("abc", f"Tensor: data of dtype <U3 cannot be used; {NOT_NUMBERS} Convert the data first, e.g. "
            "np.asarray(values, dtype=float)."),
    ([{}], f"Tensor: data of dtype object cannot be used; {NOT_NUMBERS} Convert the data first, e.g. "
           "np.asarray(values, dtype=float)."),
    ([Tensor([1.0]), Tensor([2.0])], f"Tensor: data of dtype object cannot be used; {NOT_NUMBERS} To combine "
                                     "Tensors' values use np.stack([t.data for t in tensors])."),
    (np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 1]),
     "Tensor: a masked array with 2 masked value(s): they would be used as the numbers stored under the mask. Fill "
     "them first (data.filled(value)) or drop those samples."),
])
def test_data_that_is_not_plain_numbers_is_refused_with_the_way_to_convert_it(data: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        Tensor(data)
    assert str(info.value) == message


def test_float16_data_becomes_float64_and_an_unmasked_masked_array_is_taken() -> None:
    assert Tensor(np.array([1.5], dtype=np.float16)).dtype == np.float64
    assert Tensor(np.ma.masked_array([1.0, 2.0], mask=[0, 0])).data.tolist() == [1.0, 2.0]


def test_a_number_too_large_for_the_tensor_s_dtype_is_named() -> None:
    with pytest.raises(TypeError, match=r"^Tensor: the number 1000000000000000000000000000000000000000000000000000000"
                                        r"00\.\.\. \(an int\) is too large for float64$"):
        Tensor([1.0, 2.0]) + 10**400


def test_requires_grad_must_be_a_bool() -> None:
    with pytest.raises(TypeError) as info:
        Tensor([1.0], requires_grad="yes")
    assert str(info.value) == "Tensor: requires_grad must be True or False, got 'yes' (a str)"


@pytest.mark.parametrize("op, word", [("max", "maximum"), ("mean", "mean")])
def test_max_and_mean_over_no_elements_are_refused_in_words(op: str, word: str) -> None:
    with pytest.raises(ValueError) as info:
        getattr(Tensor(np.zeros((0, 3))), op)(axis=0)
    assert str(info.value) == (f"{op}: cannot take the {word} over no elements: the tensor has shape (0, 3) and "
                               "axis 0 has size 0")


def test_an_axis_may_be_a_numpy_integer() -> None:
    x = Tensor(np.ones((2, 3)))
    assert x.sum(axis=np.int64(0)).shape == (3,) and x.mean(axis=(np.int32(1),)).shape == (2,)


def test_backward_of_a_float32_result_seeds_and_stores_float32_and_takes_a_tensor_seed() -> None:
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = x * 3.0
    y.sum().backward()
    y.backward(Tensor(np.ones(2)))  # a float64 Tensor as the seed: cast to y's float32
    assert y.grad.dtype == np.float32 and x.grad.dtype == np.float32 and x.grad.tolist() == [6.0, 6.0]
    loss = (x * x).sum()
    loss.backward()
    assert loss.grad.dtype == np.float32


def test_backward_refuses_a_seed_that_is_not_numbers_and_a_tensor_without_a_graph() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError) as info:
        (x * 2.0).backward("ab")
    assert str(info.value) == (f"backward: data of dtype <U2 cannot be used; {NOT_NUMBERS} Convert the data first, "
                               "e.g. np.asarray(values, dtype=float).")
    with pytest.raises(RuntimeError) as info:
        Tensor([1.0]).sum().backward()
    assert str(info.value) == ("backward: this tensor does not require grad, so no graph was recorded for it. Create "
                               "the parameters with requires_grad=True (and compute outside no_grad()).")


def test_a_rule_that_sends_no_gradient_to_an_input_leaves_its_branch_out_but_not_the_rest() -> None:
    x = Tensor([1.0, 2.0], requires_grad=True)
    a = x * 2.0
    stopped = Tensor.record(a.data.copy(), (a,), "stop", lambda g: (None,))  # like detach, inside the graph
    (stopped + x * 3.0).sum().backward()
    assert a.grad is None and x.grad.tolist() == [3.0, 3.0]


# ------------------------------------------------------------------------------ gradcheck.py
def twice(rule: Callable[[np.ndarray], np.ndarray]) -> Callable[[Tensor], Tensor]:
    """fn(x) = 2x, recorded with the given backward rule for the upstream gradient g."""
    return lambda x: Tensor.record(2 * x.data, (x,), "twice", lambda g: (rule(g),))


def gradcheck_message(fn: Callable[..., Tensor], inputs: list[Tensor], **kwargs: float) -> str:
    with pytest.raises(GradcheckError) as info:
        gradcheck(fn, inputs, **kwargs)
    return str(info.value)


def test_gradcheck_catches_a_rule_right_only_for_positive_upstream_gradients() -> None:
    message = gradcheck_message(twice(lambda g: np.abs(g) * 2), [Tensor([0.3, -0.7, 1.1], requires_grad=True)])
    assert "the backward of some op on the path is wrong" in message


def test_gradcheck_catches_a_rule_right_only_when_upstream_gradients_have_one_magnitude() -> None:
    rule = lambda g: np.sign(g) * np.abs(g).mean() * 2  # noqa: E731  (right when every |g| is the same)
    message = gradcheck_message(twice(rule), [Tensor([0.3, -0.7, 1.1], requires_grad=True)])
    assert "the backward of some op on the path is wrong" in message


def test_gradcheck_with_a_given_seed_reports_the_same_numbers_every_time() -> None:
    fn, x = twice(lambda g: g * 2.1), Tensor([0.3, -0.7, 1.1], requires_grad=True)
    assert gradcheck_message(fn, [x], seed=3) == gradcheck_message(fn, [x], seed=3)
    assert gradcheck_message(fn, [x], seed=3) != gradcheck_message(fn, [x], seed=4)


def test_gradcheck_tolerance_is_relative_to_the_numeric_gradient() -> None:
    x = Tensor([0.3, -0.7, 1.1], requires_grad=True)
    hundredfold = lambda rule: lambda t: Tensor.record(100 * t.data, (t,), "scale", lambda g: (rule(g),))  # noqa: E731
    assert gradcheck(hundredfold(lambda g: g * 100 * 1.0005), [x])  # 0.05 % off: within rtol=1e-3
    message = gradcheck_message(hundredfold(lambda g: g * 100 * 1.005), [x])  # 0.5 % off
    assert "the backward of some op on the path is wrong" in message


def test_gradcheck_messages_name_the_input_the_element_and_the_likely_cause() -> None:
    def expected(label: str, a: str, numeric: str, diff: str, cause: str) -> str:
        return (f"gradcheck: {label}, element (0,): analytic gradient {a} but numeric {numeric} (difference {diff} "
                f"> atol 1e-05 + rtol 0.001 * |numeric|); {cause}")

    wrong = "the backward of some op on the path is wrong"
    x = Tensor([0.3, -0.7, 1.1], requires_grad=True, name="x")
    assert gradcheck_message(twice(lambda g: g * 2.1), [x]) == \
        expected("input 0 ('x')", "2.3876195", "2.2739234", "0.114", wrong + ".")
    assert gradcheck_message(twice(lambda g: g * 2.1), [Tensor([0.3, -0.7, 1.1], requires_grad=True)]) == \
        expected("input 0", "2.3876195", "2.2739234", "0.114", wrong + ".")
    assert gradcheck_message(twice(np.zeros_like), [x]) == expected(
        "input 0 ('x')", "0", "2.2739234", "2.27",
        wrong + " (or fn computed part of its result outside the graph: Tensor(x.data), .detach()).")
    assert gradcheck_message(lambda t: Tensor(t.data * 2), [x]) == expected(
        "input 0 ('x')", "0", "2.2739234", "2.27",
        "fn's result was not recorded as computed from the inputs: the graph was cut (Tensor(x.data), "
        ".detach() or no_grad() inside fn?)")


def test_gradcheck_refuses_a_fn_that_gives_another_value_for_the_same_inputs() -> None:
    rng = np.random.default_rng(0)
    message = gradcheck_message(lambda t: t * 2.0 + rng.normal(size=3) * 1e-3, [Tensor([0.3, -0.7, 1.1],
                                                                                      requires_grad=True)])
    assert message.startswith("gradcheck: fn gave ")
    assert message.endswith("for the same inputs (reduced to a number as sum(fn(*inputs) * v)); finite differences "
                            "need a deterministic fn that leaves its inputs alone. Does fn draw random numbers (seed "
                            "them inside fn) or change an input's .data?")
    calls = [0]

    def nan_once(t: Tensor) -> Tensor:
        calls[0] += 1
        return t * (np.nan if calls[0] == 1 else 2.0)

    assert gradcheck_message(nan_once, [Tensor([0.3, -0.7, 1.1], requires_grad=True)]).startswith(
        "gradcheck: fn gave nan, then ")


def test_gradcheck_accepts_a_fn_whose_value_differs_only_by_rounding_between_calls() -> None:
    calls = [0]

    def wobbly(t: Tensor) -> Tensor:  # e.g. a sum in another order on every other call
        calls[0] += 1
        return t * (2.0 * (1 + 1e-15 * (calls[0] % 2)))

    assert gradcheck(wobbly, [Tensor([1000.0, -700.0, 1100.0], requires_grad=True)])


def test_gradcheck_steps_relative_to_a_large_input_and_refuses_an_eps_lost_in_rounding() -> None:
    assert gradcheck(lambda t: t * 2.0, [Tensor([1e10, -3e10], requires_grad=True)])
    with pytest.raises(ValueError) as info:
        gradcheck(lambda t: t * 2.0, [Tensor([1.0], requires_grad=True)], eps=4e-17)  # 1 ± 4e-17 rounds to 1
    assert str(info.value) == ("gradcheck: eps=4e-17 is too small to change input 0, element (0,) (value 1) in "
                               "float64; use eps=1e-6")


def test_gradcheck_puts_back_an_input_that_fn_changed_in_place_or_replaced() -> None:
    x = Tensor([0.3, -0.7, 1.1], requires_grad=True)
    original = x.data

    def bump(t: Tensor) -> Tensor:
        t.data += 1.0
        return t * 2.0

    gradcheck_message(bump, [x])
    assert x.data is original and x.data.tolist() == [0.3, -0.7, 1.1]

    def replace(t: Tensor) -> Tensor:
        t.data = t.data + 1.0
        return t * 2.0

    gradcheck_message(replace, [x])
    assert x.data is original and x.data.tolist() == [0.3, -0.7, 1.1]


def test_gradcheck_takes_a_zero_atol() -> None:
    assert gradcheck(lambda t: t * 2.0, [Tensor([1.0, -2.0], requires_grad=True)], atol=0.0, rtol=0.1)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(eps=0.0), ValueError, "gradcheck: eps (the finite-difference step) must be positive, got 0"),
    (dict(atol=-1.0), ValueError, "gradcheck: atol must be at least 0, got -1"),
    (dict(rtol=-1.0), ValueError, "gradcheck: rtol must be at least 0, got -1"),
    (dict(rtol="a"), TypeError, "gradcheck: rtol must be a real number, got 'a' (a str)"),
    (dict(seed=-1), ValueError, "gradcheck: seed must be at least 0, got -1"),
    (dict(seed=1.5), TypeError, "gradcheck: seed must be a whole number (an int), got 1.5 (a float)"),
])
def test_gradcheck_refuses_bad_settings_naming_each(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        gradcheck(lambda t: t * 2.0, [Tensor([1.0], requires_grad=True)], **kwargs)
    assert str(info.value) == message


def test_gradcheck_refuses_inputs_that_are_not_a_list_or_do_not_require_grad_or_no_grad() -> None:
    with pytest.raises(TypeError) as info:
        gradcheck(lambda t: t * 2.0, np.array([1.0]))
    assert str(info.value) == ("gradcheck: inputs must be a list of Tensors, e.g. gradcheck(f, [x]); got "
                               "array([1.]) (an ndarray)")
    with pytest.raises(ValueError) as info:
        gradcheck(lambda t: t * 2.0, [Tensor([1.0])])
    assert str(info.value) == "gradcheck: no input requires grad; create them with requires_grad=True"
    with no_grad(), pytest.raises(RuntimeError) as info:
        gradcheck(lambda t: t * 2.0, [Tensor([1.0], requires_grad=True)])
    assert str(info.value) == "gradcheck: called inside no_grad(), where no graph is recorded; call it outside"


# ------------------------------------------------------------------------------ optim.py
def test_optimizer_defaults_are_the_documented_ones() -> None:
    adam = optim.Adam([Tensor([1.0], requires_grad=True)])
    assert (adam.lr, adam.betas, adam.eps) == (1e-3, (0.9, 0.999), 1e-8)
    sgld = optim.SGLD([Tensor([1.0], requires_grad=True)], lr=0.1, dataset_size=10)
    assert sgld.prior_precision == 0.0


def test_sgld_without_a_seed_draws_one_that_a_checkpoint_can_store_and_steps() -> None:
    seeds = []
    for _ in range(40):
        p = Tensor([1.0, 2.0], requires_grad=True)
        sgld = optim.SGLD([p], lr=0.01, dataset_size=10)
        p.grad = np.ones(2)
        sgld.step()
        seeds.append(sgld.seed)
    assert all(type(s) is int and 0 <= s < 2**63 for s in seeds)  # an int64 in a checkpoint
    assert len(set(seeds)) == 40


@pytest.mark.parametrize("prior", [0.0, 0.5])
def test_an_sgld_step_is_the_langevin_update_with_the_documented_noise(prior: float) -> None:
    p0, grad, lr, n = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -0.4]), 0.01, 50
    p = Tensor(p0, requires_grad=True)
    sgld = optim.SGLD([p], lr=lr, dataset_size=n, prior_precision=prior, seed=7)
    p.grad = grad.copy()
    sgld.step()
    noise = np.random.default_rng([7, 0, 1]).standard_normal(3)
    assert np.allclose(p.data, p0 - lr / 2 * (n * grad + prior * p0) + np.sqrt(lr) * noise, rtol=0, atol=1e-15)


def test_an_optimizer_without_an_update_rule_says_it_must_define_one() -> None:
    class NoUpdate(optim.Optimizer):
        hyperparameter_rules = {"lr": "> 0"}
        state_kinds: dict = {}

    p = Tensor([1.0], requires_grad=True)
    p.grad = np.ones(1)
    with pytest.raises(NotImplementedError) as info:
        NoUpdate([p], 0.1).step()
    assert str(info.value) == "NoUpdate: an optimizer must define update(i, p, grad)"


def test_a_parameter_listed_twice_is_named_by_position_when_it_has_no_name() -> None:
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError) as info:
        optim.Adam([w, w])
    assert str(info.value) == ("Adam: parameter 1 is the same tensor as parameter 0; a parameter listed twice would "
                               "be stepped twice. List each once (model.parameters() does).")


def test_state_dict_refuses_a_hyperparameter_set_to_a_bad_value() -> None:
    adam = optim.Adam([Tensor([1.0], requires_grad=True)])
    adam.lr = -1.0
    with pytest.raises(ValueError) as info:
        adam.state_dict()
    assert str(info.value) == "Adam: lr must be a positive number, got -1.0"


def test_a_fresh_adams_state_with_zero_steps_and_zero_moments_loads() -> None:
    state = optim.Adam([Tensor([1.0], requires_grad=True)]).state_dict()
    assert state["state"]["steps"][0].dtype == np.int64 and int(state["state"]["steps"][0]) == 0
    assert state["state"]["v"][0].tolist() == [0.0]
    optim.Adam([Tensor([2.0], requires_grad=True)]).load_state_dict(state)


@pytest.mark.parametrize("steps, ok", [(0, True), (2**63 - 1, True), (-1, False), (2**63, False)])
def test_a_saved_step_count_is_a_whole_number_from_0_to_2_to_the_63_minus_1(steps: int, ok: bool) -> None:
    adam = optim.Adam([Tensor([1.0], requires_grad=True)])
    state = adam.state_dict()
    state["state"]["steps"] = [steps]
    if ok:
        adam.check_state_dict(state)
    else:
        with pytest.raises(ValueError, match=r"must be a non-negative number of steps below 2\*\*63, got "):
            adam.check_state_dict(state)


def test_a_malformed_optimizer_state_gets_an_error_naming_the_part_that_is_wrong() -> None:
    adam = optim.Adam([Tensor([1.0], requires_grad=True)])
    sd = adam.state_dict()
    expected = "the checkpoint was saved from a different optimizer or format"
    cases = [
        ("x", TypeError, "Adam: an optimizer state must be a dict from state_dict(), got str"),
        ({**sd, "extra": 1}, ValueError, "Adam: the state dict has keys ['extra', 'hyperparameters', 'kind', 'state'] "
                                         f"but Adam expects ['hyperparameters', 'kind', 'state']; {expected}"),
        ({**sd, "state": []}, TypeError, "Adam: state['state'] must be a dict, got list"),
        ({**sd, "hyperparameters": 3}, TypeError, "Adam: state['hyperparameters'] must be a dict, got int"),
        ({**sd, "state": {"m": 1}}, ValueError, f"Adam: state['state'] has keys ['m'] but Adam expects "
                                                f"['m', 'steps', 'v']; {expected}"),
        ({**sd, "state": {**sd["state"], "m": 1}}, TypeError,
         "Adam: optimizer state 'm' must be a list with one entry per parameter, got int"),
    ]
    for state, error, message in cases:
        with pytest.raises(error) as info:
            adam.load_state_dict(state)
        assert str(info.value) == message


# ------------------------------------------------------------------------------ nn.py
def test_modules_repr_their_layers() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1, bias=False))
    assert repr(model) == "Sequential(Linear(2, 3, bias=True), ReLU(), Linear(3, 1, bias=False))"


def test_two_parameters_of_one_name_are_refused_by_state_dict_and_load_state_dict() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            self.layers = {0: nn.Linear(1, 1), "0": nn.Linear(1, 1)}

    clash = ("two different parameters are both named 'layers.0.weight' (dict keys such as 0 and '0', or 'a.b' "
             "beside a nested 'a' holding 'b'), so a state dict cannot tell them apart; rename a key")
    with pytest.raises(ValueError) as info:
        Two().state_dict()
    assert str(info.value) == f"state_dict: {clash}"
    with pytest.raises(ValueError) as info:
        Two().load_state_dict({})
    assert str(info.value) == f"load_state_dict: {clash}"


def test_load_state_dict_takes_lists_copies_arrays_and_refuses_a_non_dict() -> None:
    model = nn.Linear(2, 1)
    model.load_state_dict({"weight": [[1.0], [2.0]], "bias": [3.0]})
    assert model.weight.data.tolist() == [[1.0], [2.0]] and model.bias.data.tolist() == [3.0]
    state = {"weight": np.array([[4.0], [5.0]]), "bias": np.array([6.0])}
    model.load_state_dict(state)
    model.weight.data -= 1.0  # an optimizer step changes the parameter in place ...
    assert state["weight"].tolist() == [[4.0], [5.0]]  # ... not the caller's state
    with pytest.raises(TypeError) as info:
        model.load_state_dict([1])
    assert str(info.value) == ("load_state_dict: state must be a dict of parameter name -> array, as state_dict() "
                               "returns, got [1] (a list)")


def test_a_value_too_large_for_float32_is_refused_in_words_without_a_numpy_warning() -> None:
    model = nn.Linear(1, 1, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^load_state_dict: 'weight' holds nan or inf values"):
            model.load_state_dict({"weight": np.array([[1e300]]), "bias": np.array([0.0])})


def test_binary_cross_entropy_names_the_first_target_outside_0_1() -> None:
    with pytest.raises(ValueError) as info:
        nn.binary_cross_entropy(Tensor([0.1, 0.2, 0.3]), np.array([0.5, 2.0, 0.5]))
    assert str(info.value) == ("binary_cross_entropy: targets must be probabilities in [0, 1], got 2.0; for 0..255 "
                               "pixels divide by 255, for -1/+1 labels use (y + 1) / 2")


# ------------------------------------------------------------------------------ minibatch.py
def small_model(bias: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 3, rng=0, bias=bias), nn.Tanh(), nn.Linear(3, 1, rng=1, bias=bias))


XB = np.random.default_rng(0).normal(size=(4, 2))
YB = np.random.default_rng(1).normal(size=(4, 1))


def strategies() -> dict[str, Callable[..., object]]:
    return {
        "per_sample_average": minibatch.per_sample_average,
        "batched_mean": minibatch.batched_mean,
        "accumulated": lambda m, f, X, y: minibatch.accumulated(m, f, X, y, 2),
        "sum_estimate": lambda m, f, X, y: minibatch.sum_estimate(m, f, X, y, 100),
        "naive_accumulated": lambda m, f, X, y: minibatch.naive_accumulated(m, f, X, y, 2),
        "per_sample_gradients": minibatch.per_sample_gradients,
        "per_sample_grad_norms": minibatch.per_sample_grad_norms,
        "clipped_mean": lambda m, f, X, y: minibatch.clipped_mean(m, f, X, y, 1.0),
        "gradient_noise_scale": minibatch.gradient_noise_scale,
        **{f"error_first {v}": functools.partial(minibatch.error_first, variant=v)
           for v in minibatch.ERROR_FIRST_VARIANTS},
    }


@pytest.mark.parametrize("strategy", list(strategies()))
def test_every_strategy_names_itself_in_each_error_about_its_arguments(strategy: str) -> None:
    call = strategies()[strategy]
    name = strategy.split()[0]
    # two numbers per sample, marked as a library loss so that the per-sample strategies take it
    not_a_scalar = nn.per_sample_loss("squared_error", False)(lambda pred, target: pred + Tensor([0.0, 0.0]))
    cases = [(3, nn.mse_loss, "model must be an nn.Module"), (small_model(), 3, "loss_fn must be a function"),
             (small_model(), not_a_scalar, "loss_fn must return a Tensor holding one number")]
    if name == "gradient_noise_scale":  # it checks the batch, then hands model and loss to per_sample_grad_norms
        cases = cases[:1]
    for model, loss_fn, fragment in cases:
        with pytest.raises(TypeError) as info:
            call(model, loss_fn, XB, YB)
        assert str(info.value).startswith(f"{name}: {fragment}")


@pytest.mark.parametrize("strategy", ["accumulated", "naive_accumulated"])
def test_a_bad_micro_batch_is_refused_naming_the_strategy(strategy: str) -> None:
    with pytest.raises(ValueError) as info:
        getattr(minibatch, strategy)(small_model(), nn.mse_loss, XB, YB, 0)
    assert str(info.value) == f"{strategy}: micro_batch must be a whole number of samples >= 1, got 0"


def test_error_first_defaults_to_the_mean_input_variant() -> None:
    default = minibatch.error_first(small_model(), nn.mse_loss, XB, YB)
    mean_input = minibatch.error_first(small_model(), nn.mse_loss, XB, YB, variant="mean_input")
    assert all(np.array_equal(a, b) for a, b in zip(default, mean_input))


@pytest.mark.parametrize("variant, names", [("mean_input", {"mean x"}), ("last_sample", {"x[3] (last sample)"}),
                                            ("loss_as_gradient", {"mean x"}), ("mean_residual", {"X", "mean y"})])
def test_the_error_first_graph_names_the_inputs_it_was_run_on(variant: str, names: set[str]) -> None:
    root = minibatch.error_first_backward(small_model(), nn.mse_loss, XB, YB, variant)
    leaf_names = {t.name for t in topological_order(root, every_input=True) if t.is_leaf and not t.requires_grad}
    assert names <= leaf_names


def per_sample_norms_by_hand(model, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    grads = minibatch.per_sample_gradients(model, nn.mse_loss, X, y)
    return np.sqrt(sum((g.reshape(len(X), -1) ** 2).sum(axis=1) for g in grads))


@pytest.mark.parametrize("case", ["no bias", "frozen bias", "two rows per sample", "one input feature, two rows"])
def test_per_sample_grad_norms_equal_the_norms_of_the_per_sample_gradients(case: str) -> None:
    X, y = XB, YB
    model = small_model(bias=case != "no bias")
    if case == "frozen bias":
        model.layers[0].bias.requires_grad = False
    if case == "two rows per sample":  # extra axes (B, T, features) with T = 2
        X = np.random.default_rng(2).normal(size=(4, 2, 2))
        y = np.random.default_rng(3).normal(size=(4, 2, 1))
    if case == "one input feature, two rows":
        model = nn.Sequential(nn.Linear(1, 3, rng=0), nn.Tanh(), nn.Linear(3, 1, rng=1))
        X = np.random.default_rng(2).normal(size=(4, 2, 1))
        y = np.random.default_rng(3).normal(size=(4, 2, 1))
    norms = minibatch.per_sample_grad_norms(model, nn.mse_loss, X, y)
    assert np.allclose(norms, per_sample_norms_by_hand(model, X, y), rtol=1e-12, atol=0)
    grads = minibatch.per_sample_gradients(model, nn.mse_loss, X, y)
    assert len(grads) == len(model.parameters())


def test_a_parameter_the_loss_never_reaches_gets_zero_gradients_from_the_vectorised_strategies() -> None:
    class WithSpare(nn.Sequential):
        def __init__(self) -> None:
            super().__init__(nn.Linear(2, 1, rng=0))
            self.spare = Tensor(np.ones(3), requires_grad=True)  # a parameter forward never uses

    model = WithSpare()
    grads = minibatch.per_sample_gradients(model, nn.mse_loss, XB, YB)
    assert grads[-1].shape == (4, 3) and grads[-1].dtype == np.float64 and not grads[-1].any()
    assert model.spare.grad.dtype == np.float64 and model.spare.grad.tolist() == [0.0, 0.0, 0.0]
    model.spare.grad = None
    minibatch.per_sample_grad_norms(model, nn.mse_loss, XB, YB)
    assert model.spare.grad.dtype == np.float64 and model.spare.grad.tolist() == [0.0, 0.0, 0.0]
    model.spare = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    assert minibatch.per_sample_gradients(model, nn.mse_loss, XB, YB)[-1].dtype == np.float32
    clipped = minibatch.clipped_mean(model, nn.mse_loss, XB, YB, 1.0)
    assert clipped[-1].tolist() == [0.0, 0.0, 0.0] and model.spare.grad.tolist() == [0.0, 0.0, 0.0]


def test_clipped_mean_of_a_float32_model_is_float32() -> None:
    model = nn.Sequential(nn.Linear(2, 3, rng=0, dtype=np.float32), nn.Tanh(), nn.Linear(3, 1, rng=1, dtype=np.float32))
    grads = minibatch.clipped_mean(model, nn.mse_loss, XB, YB, 0.5)
    assert [g.dtype for g in grads] == [np.float32] * 4
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_vectorised_strategies_refuse_a_layer_whose_call_or_forward_was_replaced_even_when_nested() -> None:
    class Called(nn.Linear):
        def __call__(self, x):  # type: ignore[override]
            return super().__call__(x) * 2.0

    patched = nn.Linear(3, 1, rng=1)
    patched.forward = lambda x: nn.Linear.forward(patched, x) * 2.0  # type: ignore[method-assign]
    for last in (Called(3, 1, rng=1), patched):
        model = nn.Sequential(nn.Sequential(nn.Linear(2, 3, rng=0), nn.Tanh()), last)
        with pytest.raises(TypeError, match=r"^clipped_mean: cannot vectorise over layer"):
            minibatch.clipped_mean(model, nn.mse_loss, XB, YB, 1.0)
    inner = nn.Sequential(nn.Linear(2, 3, rng=0), Called(3, 1, rng=1))
    with pytest.raises(TypeError, match=r"^per_sample_grad_norms: cannot vectorise over layer"):
        minibatch.per_sample_grad_norms(nn.Sequential(inner), nn.mse_loss, XB, YB)


def test_grad_norms_refuse_a_shared_trainable_parameter_and_ignore_a_shared_frozen_one() -> None:
    layer = nn.Linear(2, 2, rng=0)
    layer.weight.requires_grad = False  # frozen weight, trainable bias: the bias is shared
    model = nn.Sequential(layer, nn.Tanh(), layer)
    with pytest.raises(ValueError) as info:
        minibatch.per_sample_grad_norms(model, nn.mse_loss, XB, np.zeros((4, 2)))
    assert str(info.value) == ("per_sample_grad_norms: parameter b is used by two layers, so its per-sample gradient "
                               "norm has cross terms this formula does not compute; use per_sample_gradients and "
                               "take the norms of its rows.")
    layer.bias.name = None
    with pytest.raises(ValueError) as info:
        minibatch.per_sample_grad_norms(model, nn.mse_loss, XB, np.zeros((4, 2)))
    assert str(info.value).startswith("per_sample_grad_norms: a parameter of shape (2,) is used by two layers")
    with pytest.raises(ValueError, match=r"^clipped_mean: a parameter of shape \(2,\) is used by two layers"):
        minibatch.clipped_mean(model, nn.mse_loss, XB, np.zeros((4, 2)), 1.0)
    frozen = nn.Linear(2, 2, rng=0, bias=False)
    frozen.weight.requires_grad = False
    model = nn.Sequential(nn.Linear(2, 2, rng=1), frozen, nn.Tanh(), frozen)
    norms = minibatch.per_sample_grad_norms(model, nn.mse_loss, XB, np.zeros((4, 2)))
    assert np.allclose(norms, per_sample_norms_by_hand(model, XB, np.zeros((4, 2))), rtol=1e-12, atol=0)


def test_gradient_noise_scale_checks_its_batch_and_dataset_size() -> None:
    with pytest.raises(ValueError) as info:
        minibatch.gradient_noise_scale(small_model(), nn.mse_loss, XB[:1], YB[:1])
    assert str(info.value) == "gradient_noise_scale: the noise between samples needs a batch of at least 2 samples"
    for bad in (2.5, 5.0, True, 3):
        with pytest.raises(ValueError, match=r"^gradient_noise_scale: dataset_size must be a whole number N >= "):
            minibatch.gradient_noise_scale(small_model(), nn.mse_loss, XB, YB, dataset_size=bad)


def test_gradient_noise_scale_of_a_batch_fitted_exactly_is_nan_with_a_warning_pointing_at_the_caller() -> None:
    model = nn.Linear(1, 1, rng=0)
    model.weight.data[...] = 2.0
    model.bias.data[...] = 0.5
    X = np.array([[1.0], [2.0], [3.0]])
    with pytest.warns(RuntimeWarning, match="every sample's gradient is 0") as record:
        assert np.isnan(minibatch.gradient_noise_scale(model, nn.mse_loss, X, 2.0 * X + 0.5))  # every gradient is 0
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampoline adds a frame: stacklevel=2 points at it
        assert record[0].filename == __file__


CONSTRUCTOR_ERRORS = [
    (lambda: nn.Linear(2.5, 3), TypeError, "Linear: in_features must be a whole number (an int), got 2.5 (a float)"),
    (lambda: nn.Linear(2, "a"), TypeError, "Linear: out_features must be a whole number (an int), got 'a' (a str)"),
    (lambda: nn.Linear(2, 3, bias="yes"), TypeError, "Linear: bias must be True or False, got 'yes' (a str)"),
    (lambda: nn.Linear(2, 3, dtype=int), TypeError,
     "Linear: dtype must be np.float64 or np.float32, got <class 'int'> (a type)"),
    (lambda: nn.Linear(2, 3, rng=-1), ValueError,
     "Linear: the seed must be a non-negative int, a numpy Generator or None, got -1 (an int)"),
    (lambda: nn.MLP([2]), ValueError, "MLP: sizes needs an input and an output size, got [2]"),
    (lambda: nn.MLP([2, 1], dtype=int), TypeError,
     "MLP: dtype must be np.float64 or np.float32, got <class 'int'> (a type)"),
    (lambda: nn.MLP([2, 1], rng=-1), ValueError,
     "MLP: the seed must be a non-negative int, a numpy Generator or None, got -1 (an int)"),
    (lambda: no_grad(1), TypeError, "no_grad: takes no arguments, got 1; as a decorator write @no_grad()"),
]


@pytest.mark.parametrize("make, error, message", CONSTRUCTOR_ERRORS, ids=[m for _, _, m in CONSTRUCTOR_ERRORS])
def test_a_bad_constructor_argument_is_named_with_its_class(make: Callable[[], object], error: type,
                                                            message: str) -> None:
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message


@pytest.mark.parametrize("layer, name", [(nn.Tanh(), "Tanh"), (nn.ReLU(), "ReLU"), (nn.Sigmoid(), "Sigmoid"),
                                         (functools.partial(nn.linear, weight=Tensor(np.ones((2, 2)))), "linear")])
def test_a_layer_given_data_that_is_not_numbers_names_itself(layer: Callable[[object], Tensor], name: str) -> None:
    with pytest.raises(TypeError) as info:
        layer(np.array(["a", "b"]))
    assert str(info.value).startswith(f"{name}: data of dtype <U1 cannot be used; a Tensor holds real numbers")


def test_a_linear_layer_s_parameters_are_named_w_and_b_and_the_bias_starts_spread_out() -> None:
    layer = nn.Linear(4, 50, rng=0)
    assert (layer.weight.name, layer.bias.name) == ("W", "b")
    bound = 1 / np.sqrt(4)
    assert -bound <= layer.bias.data.min() < 0 < layer.bias.data.max() <= bound


def test_no_grad_makes_is_grad_enabled_false_and_restores_it() -> None:
    assert is_grad_enabled() is True
    with no_grad():
        assert is_grad_enabled() is False
    assert is_grad_enabled() is True


def test_a_layer_used_twice_and_a_list_holding_itself_give_each_parameter_once() -> None:
    layer = nn.Linear(2, 2, rng=0)
    assert nn.Sequential(layer, nn.Tanh(), layer).parameters() == [layer.weight, layer.bias]

    class Loop(nn.Module):
        def __init__(self) -> None:
            self.items: list = [nn.Linear(1, 1, rng=0)]
            self.items.append(self.items)

    model = Loop()
    assert model.parameters() == [model.items[0].weight, model.items[0].bias]
    first, second = nn.Linear(2, 2, rng=0), nn.Linear(2, 2, rng=1)
    second.weight = first.weight  # one tensor in two layers (tied weights)
    tied = nn.Sequential(first, nn.Tanh(), second)
    assert [name for name, _ in tied.named_parameters()] == ["layers.0.weight", "layers.0.bias", "layers.2.bias"]


LABEL_ERRORS = [
    (np.array(["a", "b"]), TypeError, "labels must be integer class ids, got dtype <U1; for one-hot targets pass "
                                      "targets.argmax(axis=1)."),
    (np.array([0.5, 1.5, 2.5, 0.25]), TypeError,
     "labels must be integer class ids, got dtype float64 with values like [0.5, 1.5, 2.5]; for one-hot targets pass "
     "targets.argmax(axis=1)."),
    (np.eye(4, 3, dtype=int), ValueError, "labels have shape (4, 3) but the logits hold 4 samples; pass one class id "
                                          "per sample, shape (4,) (for one-hot targets pass targets.argmax(axis=1))."),
    (np.array([0, 1, 2]), ValueError, "labels have shape (3,) but the logits hold 4 samples; pass one class id per "
                                      "sample, shape (4,)."),
    (np.array([0.0, 5.0, 1.0, 2.0]), ValueError, "label 5 is out of range for 3 classes; class ids run from 0 to 2."),
]


@pytest.mark.parametrize("labels, error, message", LABEL_ERRORS, ids=[m[:40] for _, _, m in LABEL_ERRORS])
def test_bad_class_labels_get_an_error_saying_what_a_label_must_be(labels: np.ndarray, error: type,
                                                                   message: str) -> None:
    with pytest.raises(error) as info:
        nn.cross_entropy(Tensor(np.zeros((4, 3))), labels)
    assert str(info.value) == f"cross_entropy: {message}"


def test_adam_s_betas_must_be_a_pair_and_are_saved_as_a_json_list() -> None:
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError) as info:
        optim.Adam([w], betas=0.9)
    assert str(info.value) == "Adam: betas must be a pair of numbers in [0, 1), got 0.9"
    betas = optim.Adam([w]).state_dict()["hyperparameters"]["betas"]
    assert type(betas) is list and betas == [0.9, 0.999]


def test_step_checks_every_gradient_before_changing_any_parameter_even_after_one_without_grad() -> None:
    a, b, c = (Tensor([1.0], requires_grad=True), Tensor([1.0, 2.0], requires_grad=True),
               Tensor([5.0], requires_grad=True))
    b.grad, c.grad = np.ones(3), np.ones(1)  # a has no .grad; b's is of the wrong shape
    with pytest.raises(ValueError) as info:
        optim.SGD([a, c, b], lr=0.1).step()
    assert str(info.value).startswith("SGD.step: parameter 2 has a .grad of shape (3,) but the parameter has shape")
    assert c.data.tolist() == [5.0] and b.data.tolist() == [1.0, 2.0]


def test_a_bad_batch_model_or_loss_gets_an_error_saying_what_is_wrong() -> None:
    class NoParameters(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x

    model, X, y = nn.Linear(2, 1, rng=0), np.ones((3, 2)), np.ones((3, 1))
    ragged = "cannot be made an array (every sample needs the same shape): setting an array element with a sequence"
    floats_only = ("loss_fn must return a Tensor holding one number (the mean loss), got {}; build the loss from "
                   "Tensor operations (a Python float carries no graph to backpropagate).")
    cases = [
        (model, nn.mse_loss, [[1.0, 2.0], [1.0]], y, TypeError, f"X {ragged}"),
        (model, nn.mse_loss, X, [[1.0], [1.0, 2.0], [3.0]], TypeError, f"y {ragged}"),
        (model, nn.mse_loss, np.float64(1.0), y, ValueError,
         "X and y must hold one sample per row, got shapes () and (3, 1)"),
        (NoParameters(), nn.mse_loss, X, y, ValueError,
         "the model has no parameters (tensors with requires_grad=True)"),
        (len, nn.mse_loss, X, y, TypeError, "model must be an nn.Module (such as nn.MLP([2, 8, 1])), got "
                                            "<built-in function len> (a builtin_function_or_method)"),
        (model, 3, X, y, TypeError, "loss_fn must be a function loss_fn(pred, target), got int"),
        (model, lambda pred, target: 1.0, X, y, TypeError, floats_only.format("float")),
        (model, lambda pred, target: pred.sum(axis=1), X, y, TypeError, floats_only.format("a Tensor of shape (3,)")),
    ]
    for model_, loss_fn, X_, y_, error, message in cases:
        with pytest.raises(error) as info:
            minibatch.batched_mean(model_, loss_fn, X_, y_)
        assert str(info.value).startswith(f"batched_mean: {message}")


@pytest.mark.parametrize("strategy", ["per_sample_average", "batched_mean", "accumulated", "sum_estimate",
                                      "naive_accumulated", "error_first mean_input"])
def test_a_parameter_the_loss_never_reaches_gets_zeros_from_every_strategy(strategy: str) -> None:
    class WithSpare(nn.Sequential):
        def __init__(self) -> None:
            super().__init__(nn.Linear(2, 1, rng=0))
            self.spare = Tensor(np.ones(3), requires_grad=True)

    model = WithSpare()
    grads = strategies()[strategy](model, nn.mse_loss, XB, YB)
    assert grads[-1].tolist() == [0.0, 0.0, 0.0] and model.spare.grad.tolist() == [0.0, 0.0, 0.0]


def test_sum_estimate_scales_the_mean_gradient_by_the_data_set_size_even_when_it_is_2() -> None:
    mean = minibatch.batched_mean(small_model(), nn.mse_loss, XB[:2], YB[:2])
    total = minibatch.sum_estimate(small_model(), nn.mse_loss, XB[:2], YB[:2], 2)
    assert all(np.allclose(t, 2 * m, rtol=1e-15, atol=0) for t, m in zip(total, mean))
    assert total.loss == pytest.approx(2 * mean.loss, rel=1e-15)


@pytest.mark.parametrize("args, message", [
    ((True, 1.0, 1.0, 0.5), "t must be a finite number, got True"),
    ((0, "x", 1.0, 0.5), "a must be a finite number, got 'x'"),
    ((0, 1.0, float("nan"), 0.5), "b must be a finite number, got nan"),
    ((0, 1.0, 1.0, None), "gamma must be a finite number, got None"),
    ((0, 0.0, 1.0, 0.5), "needs a > 0, b + t > 0 and gamma >= 0 (a positive step size), got t=0, a=0.0, b=1.0, "
                         "gamma=0.5"),
])
def test_polynomial_decay_names_the_argument_that_gives_no_positive_step_size(args: tuple, message: str) -> None:
    with pytest.raises(ValueError) as info:
        optim.polynomial_decay(*args)
    assert str(info.value) == f"polynomial_decay: {message}"


def test_polynomial_decay_with_gamma_0_is_a_constant_step_size() -> None:
    assert optim.polynomial_decay(7, 0.5, 1.0, 0.0) == 0.5
    assert optim.polynomial_decay(3, 2.0, 1.0, 1.0) == 0.5


def test_record_refuses_a_non_tensor_parent_after_one_that_requires_grad() -> None:
    """The check looks at every parent: (x, array) with x requiring grad once slipped through to backward."""
    x = Tensor([1.0, 2.0], requires_grad=True)
    for parents in [(x, x.data), [x, x.data], (x, 3.0)]:
        with pytest.raises(TypeError, match=r"^Tensor\.record \('my_op'\): parents must be a tuple") as info:
            Tensor.record(x.data * 2, parents, "my_op", lambda g: (g, g))
        assert "parent 1 is" in str(info.value)
    assert x.grad is None


def test_the_article_goes_by_the_sound() -> None:
    assert [with_article(w) for w in ["float", "int", "ndarray", "SGD", "SGLD", "Adam", "MyOptimizer", "str"]] \
        == ["a float", "an int", "an ndarray", "an SGD", "an SGLD", "an Adam", "a MyOptimizer", "a str"]


def test_the_largest_float_is_still_a_number_for_counts_and_schedules() -> None:
    """The bounds are inclusive: a dataset size or a step equal to the largest float is finite."""
    largest = int(sys.float_info.max)
    assert optim.SGLD([Tensor([0.0], requires_grad=True)], lr=0.1, dataset_size=largest).dataset_size == largest
    assert optim.polynomial_decay(sys.float_info.max, 1.0, 1.0, 0.0) == 1.0  # γ = 0: a constant step
