"""The recorded graph and the backward pass: order, fan-out, accumulation, no_grad, memory."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from tinygrad_mb import Tensor, is_grad_enabled, no_grad, topological_order

CHAIN_LENGTH = 100_000


@pytest.fixture
def no_garbage_collector():
    """Run a test with the cycle collector off: what is freed then is freed by reference counting."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ------------------------------------------------------------------------------ deep graphs
def test_a_chain_of_100000_ops_backpropagates_without_recursion_error():
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(CHAIN_LENGTH // 2):
        y = (y + 1.0) * 1.0  # two ops per turn; d y / d x stays exactly 1
    y.backward()
    assert x.grad == 1.0
    assert y.item() == 0.5 + CHAIN_LENGTH // 2
    assert len(topological_order(y)) == CHAIN_LENGTH + 1  # every op once, plus the leaf


def test_a_chain_of_100000_ops_is_freed_without_crashing_when_dropped(no_garbage_collector):
    x = Tensor(1.0, requires_grad=True)
    y = x * 1.0
    first_op = weakref.ref(y)  # the deepest node: from here on only the chain holds it
    for _ in range(CHAIN_LENGTH - 1):
        y = y * 1.0
    middle = weakref.ref(y.parents[0].parents[0])
    # Alive while the root is: each node keeps its parents, so the root keeps the whole chain.
    assert first_op() is not None and middle() is not None
    assert len(topological_order(y)) == CHAIN_LENGTH + 1
    del y  # the only reference to the root; with the cycle collector off, refcounts free the rest
    assert middle() is None and first_op() is None
    assert x.grad is None and x.item() == 1.0  # the leaf, still referenced here, is untouched


def test_backward_visits_each_node_once_even_when_paths_multiply():
    # y = y + y sixty times: 2**60 paths lead from the root to x. Walking paths would never
    # finish; the topological order sends one gradient per node, so the work is linear.
    calls = []

    def counted(backward):
        def wrapper(g):
            calls.append(1)
            return backward(g)
        return wrapper

    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(60):
        y = y + y
        y._backward = counted(y._backward)
    y.backward()
    assert x.grad == 2.0**60
    assert len(calls) == 60


# ------------------------------------------------------------------------------ shapes of graphs
def test_fan_out_b_equals_a_plus_a_then_c_equals_b_plus_b_gives_four():
    a = Tensor(3.0, requires_grad=True)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad == 4.0
    assert b.grad == 2.0


def test_diamond_graph_sums_both_paths():
    x = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    left, right = x * 2.0, x * 3.0
    z = left * right  # = 6 x^2, so dz/dx = 12 x
    z.backward(np.ones(3))
    np.testing.assert_allclose(x.grad, 12.0 * x.data)
    order = topological_order(z)
    assert len(order) == len(set(order)) == 4
    position = {node: i for i, node in enumerate(order)}
    assert all(position[p] < position[node] for node in order for p in node.parents if p.requires_grad)


def test_a_tensor_used_in_two_places_of_a_deep_graph_gets_the_sum_of_its_paths():
    W = Tensor(np.array([[0.5, -1.0], [2.0, 0.25]]), requires_grad=True)
    x = np.array([[1.0, 2.0]])
    h = (x @ W).tanh()
    out = (h @ W).sum()  # W used twice
    out.backward()
    # by hand: out = sum(h W), h = tanh(x W)
    hv = np.tanh(x @ W.data)
    direct = hv.T @ np.ones((1, 2))
    through_h = x.T @ ((np.ones((1, 2)) @ W.data.T) * (1 - hv**2))
    np.testing.assert_allclose(W.grad, direct + through_h, rtol=1e-14)


def test_intermediate_tensors_keep_their_gradient_for_inspection():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    loss = (h * h).sum()
    loss.backward()
    np.testing.assert_allclose(h.grad, 2.0 * h.data)  # d loss / d h
    np.testing.assert_allclose(loss.grad, 1.0)


def test_constants_and_data_get_no_gradient():
    x = Tensor(np.array([1.0, 2.0]))  # data: requires_grad=False
    w = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    (x * w).sum().backward()
    assert x.grad is None
    np.testing.assert_array_equal(w.grad, [1.0, 2.0])


def test_graph_records_op_and_parents():
    a = Tensor(1.0, requires_grad=True, name="a")
    b = Tensor(2.0, requires_grad=True, name="b")
    c = a * b
    assert c.op == "mul" and c.parents == (a, b) and not c.is_leaf
    assert a.op == "" and a.parents == () and a.is_leaf and a.name == "a"


# ------------------------------------------------------------------------------ accumulation
def test_gradients_accumulate_across_two_backward_calls_until_zero_grad():
    w = Tensor(np.array([1.0, -1.0]), requires_grad=True)
    (w * 2.0).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [2.0 + 2.0, 2.0 - 2.0])
    w.zero_grad()
    assert w.grad is None
    (w * 5.0).sum().backward()
    np.testing.assert_array_equal(w.grad, [5.0, 5.0])


def test_backward_twice_through_the_same_graph_adds_the_same_gradient_again():
    x = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    first = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_backward_with_an_explicit_gradient_does_not_alias_the_callers_array():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    seed = np.array([3.0, 4.0])
    x.backward(seed)
    seed[:] = 0.0
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_backward_may_omit_grad_for_any_single_element_shape():
    x = Tensor(np.array([[2.0]]), requires_grad=True)
    (x * 3.0).backward()
    np.testing.assert_array_equal(x.grad, [[3.0]])


# ------------------------------------------------------------------------------ no_grad and detach
def test_no_grad_records_nothing():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = (w * 2.0).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y.parents == () and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert w.grad is None


def test_no_grad_nests_and_restores_the_previous_state_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            with no_grad():
                pass
            assert not is_grad_enabled()  # the inner block restored "off", not "on"
            raise ZeroDivisionError
    assert is_grad_enabled()


def test_detach_shares_values_but_cuts_the_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.parents == ()
    assert np.shares_memory(d.data, x.data)
    (x * d).sum().backward()  # d is a constant here: d(x * d)/dx = d
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


# ------------------------------------------------------------------------------ memory
def test_graph_memory_is_released_when_the_root_is_dropped(no_garbage_collector):
    w = Tensor(np.random.default_rng(0).normal(size=(4, 3)), requires_grad=True)
    x = Tensor(np.ones((2, 4)))
    hidden = (x @ w).tanh()
    loss = (hidden * hidden).mean()
    loss.backward()
    refs = [weakref.ref(t) for t in topological_order(loss) if t is not w]
    refs.append(weakref.ref(hidden))
    assert all(r() is not None for r in refs)
    del hidden, loss
    # reference counting alone (the cycle collector is off) freed every intermediate tensor
    assert [r() for r in refs] == [None] * len(refs)
    assert w.grad is not None  # the parameter and its gradient live on


def test_an_op_under_no_grad_keeps_no_reference_to_its_inputs(no_garbage_collector):
    w = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        hidden = w * 2.0
        out = hidden.sum()
    ref = weakref.ref(hidden)
    del hidden
    assert ref() is None and out.parents == ()
