"""``Tensor.record``, the public extension point, and what ``backward`` checks of every rule.

A learner adds an operation by computing its result and handing ``Tensor.record`` a backward
rule. The most common mistakes in such a rule -- a gradient of the wrong shape (a broadcast
input whose gradient was not summed back), the wrong number of gradients, something that is not
an array -- must stop ``backward`` with an error that names the op and the shapes, and must
leave every ``.grad`` as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_mb import Tensor, gradcheck, no_grad, topological_order
from tinygrad_mb.checks import apply_elementwise, as_operand
from tinygrad_mb.tensor import unbroadcast


def cube(x: Tensor) -> Tensor:
    """x³ as a learner would write it with the public extension point."""
    return Tensor.record(x.data ** 3, (x,), "cube", lambda g: (g * 3 * x.data ** 2,))


def maximum(a: Tensor, b: Tensor, sum_back: bool = True) -> Tensor:
    """Elementwise max; with sum_back=False it forgets to unbroadcast (the classic bug)."""
    b = as_operand(b, like=a)
    data = apply_elementwise("maximum", np.maximum, a, b)

    def backward(g):
        a_wins = (a.data >= b.data).astype(g.dtype)
        ga, gb = g * a_wins, g * (1 - a_wins)
        if sum_back:
            ga, gb = unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)
        return ga, gb

    return Tensor.record(data, (a, b), "maximum", backward)


def test_an_op_written_with_record_backpropagates_and_passes_gradcheck():
    x = Tensor(np.array([[0.5, -1.0, 2.0]]), requires_grad=True)
    y = cube(x)
    assert y.op == "cube" and y.parents == (x,) and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 3 * x.data ** 2)
    assert gradcheck(lambda t: cube(t), [Tensor(np.array([0.3, -0.7]), requires_grad=True)])


def test_record_keeps_no_graph_under_no_grad_or_for_data():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = cube(x)
    assert not y.requires_grad and y.parents == ()
    z = cube(Tensor(np.ones(3)))  # data: nothing needs a gradient
    assert not z.requires_grad and z.parents == ()


def test_record_turns_a_numpy_scalar_into_an_array():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    total = Tensor.record(np.float64(x.data.sum()), (x,), "total", lambda g: (np.full(x.shape, g),))
    assert type(total.data) is np.ndarray and total.shape == ()
    total.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_a_backward_that_forgets_to_sum_a_broadcast_input_is_an_error_naming_op_and_shapes():
    a = Tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    b = Tensor(np.zeros((3, 1)), requires_grad=True)
    a.grad, b.grad = np.full((3, 4), 7.0), np.full((3, 1), 8.0)
    out = maximum(a, b, sum_back=False).sum()
    with pytest.raises(ValueError) as info:
        out.backward()
    message = str(info.value)
    assert "maximum: backward returned a gradient of shape (3, 4) for an input of shape (3, 1)" in message
    assert "unbroadcast" in message  # the usual fix
    np.testing.assert_array_equal(a.grad, np.full((3, 4), 7.0))  # nothing was stored
    np.testing.assert_array_equal(b.grad, np.full((3, 1), 8.0))
    assert out.grad is None


def test_the_same_op_with_the_sum_back_is_right():
    a = Tensor(np.array([[1.0, 5.0], [3.0, -2.0]]), requires_grad=True)
    b = Tensor(np.array([[2.0], [0.0]]), requires_grad=True)
    assert gradcheck(lambda x, y: maximum(x, y), [a, b])


@pytest.mark.parametrize("rule, fragment", [
    (lambda g: g * 2, "backward returned an ndarray"),
    (lambda g: (g, g), "backward returned 2 gradients for an op with 1 input(s)"),
    (lambda g: (), "backward returned 0 gradients"),
    (lambda g: ("two",), "double: backward returned a str as a gradient"),
    (lambda g: (np.ones(5),), "double: backward returned a gradient of shape (5,) for an input of shape (2,)"),
], ids=["bare array", "too many", "none at all", "not an array", "wrong size"])
def test_malformed_backward_rules_are_errors_that_change_no_grad(rule, fragment):
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    x.grad = np.array([5.0, 6.0])
    out = Tensor.record(x.data * 2, (x,), "double", rule).sum()
    with pytest.raises((TypeError, ValueError)) as info:
        out.backward()
    assert fragment in str(info.value)
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])


def test_a_rule_may_return_a_list_none_or_a_number_for_a_scalar_input():
    x = Tensor(2.0, requires_grad=True)
    c = Tensor(np.array([1.0, 1.0]))
    out = Tensor.record(np.array([x.data * 3, x.data * 3]), (x, c), "spread",
                        lambda g: [float(g.sum() * 3), None])
    out.backward(np.ones(2))
    assert x.grad == 6.0 and c.grad is None


def test_each_node_is_in_the_order_once_and_its_backward_runs_once():
    """``h + h.tanh()``: h is reached twice; its backward must still run once, with the sum."""
    W = Tensor(np.array([[0.5, -1.0], [2.0, 0.25]]), requires_grad=True)
    h = Tensor(np.array([[1.0, 2.0]])) @ W
    calls: dict[str, int] = {}
    for t in (h,):
        rule = t._backward

        def counted(g, rule=rule, op=t.op):
            calls[op] = calls.get(op, 0) + 1
            return rule(g)

        t._backward = counted
    out = (h + h.tanh()).sum()
    order = topological_order(out)
    assert len(order) == len(set(order))
    out.backward()
    assert calls == {"matmul": 1}
    dh = 1 + (1 - np.tanh(h.data) ** 2)
    np.testing.assert_allclose(W.grad, np.array([[1.0], [2.0]]) @ dh)


def test_every_input_lists_data_and_constants_in_input_order():
    x = Tensor(np.ones(2), name="x")
    w = Tensor(np.ones(2), requires_grad=True, name="w")
    out = (x * w) * 2.0
    names = [t.name or t.op or "const" for t in topological_order(out, every_input=True)]
    assert names == ["x", "w", "mul", "const", "mul"]
    assert [t.name or t.op for t in topological_order(out)] == ["w", "mul", "mul"]
