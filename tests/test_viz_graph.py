"""The graph walk behind every picture: order, stable ids, kinds, summaries, long chains, the node cap."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_mb import Tensor, nn
from viz import draw_graph, walk
from viz.graph import NO_GRAD_YET, NOT_NEEDED, summarize


def small_loss() -> tuple[Tensor, Tensor, Tensor]:
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(3.0, name="b")
    return a, b, a * b + 1


def mlp_loss(seed: int = 0) -> Tensor:
    model = nn.MLP([2, 3, 1], rng=seed)
    X = np.arange(8.0).reshape(4, 2) / 8
    return nn.mse_loss(model(Tensor(X, name="X")), Tensor(np.ones((4, 1)), name="y"))


def test_walk_lists_inputs_before_the_operations_that_use_them():
    loss = mlp_loss()
    g = walk(loss)
    position = {n.id: i for i, n in enumerate(g.nodes)}
    assert all(position[tail] < position[head] for tail, head in g.edges)
    assert g.nodes[-1].id == g.root and g.nodes[-1].tensor is loss


def assert_inputs_come_first(g) -> None:
    """Every edge goes from an earlier node to a later one, and the root is last."""
    position = {n.id: i for i, n in enumerate(g.nodes)}
    assert all(position[tail] < position[head] for tail, head in g.edges), g.edges
    assert g.nodes[-1].id == g.root


def test_an_input_also_reached_through_a_sibling_still_comes_first():
    # b is an input of r directly, and also through a = exp(b): it must still come before a.
    x = Tensor(2.0, requires_grad=True, name="x")
    b = x * 3
    b.name = "b"
    a = b.exp()
    a.name = "a"
    g = walk(a * b)
    assert_inputs_come_first(g)
    assert [n.name for n in g.nodes] == ["x", None, "b", "a", None]  # x, the constant 3, b, a, r


# A random computation: each step applies an operation to one or two earlier tensors, picked
# by index, so tensors are shared between operations (and an operation may use one twice).
OPS = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: a - b,
       "neg": lambda a, b: -a, "tanh": lambda a, b: a.tanh()}

STEPS = st.lists(
    st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 10**6), st.integers(0, 10**6)),
    min_size=1, max_size=25,
)


def random_dag(steps) -> Tensor:
    tensors = [Tensor(0.5, requires_grad=True, name="p"), Tensor(-1.5, name="q")]
    for op, i, j in steps:
        tensors.append(OPS[op](tensors[i % len(tensors)], tensors[j % len(tensors)]))
    return tensors[-1]


def ancestors(t: Tensor) -> set[Tensor]:
    found: set[Tensor] = set()
    stack = list(t.parents)
    while stack:
        p = stack.pop()
        if p not in found:
            found.add(p)
            stack.extend(p.parents)
    return found


def recursive_order(root: Tensor) -> list[Tensor]:
    """The intended order, written the short recursive way (fine for small graphs):
    visit the inputs first to last, emit a tensor after all of its inputs."""
    order: list[Tensor] = []
    visited: set[Tensor] = set()

    def visit(t: Tensor) -> None:
        if t in visited:
            return
        visited.add(t)
        for parent in t.parents:
            visit(parent)
        order.append(t)

    visit(root)
    return order


@given(STEPS)
def test_walk_order_is_topological_on_random_graphs_with_shared_tensors(steps):
    root = random_dag(steps)
    g = walk(root)
    assert_inputs_come_first(g)
    shown = [n.tensor for n in g.nodes]
    assert len(set(shown)) == len(shown)  # each tensor once
    assert set(shown) == ancestors(root) | {root}  # and every one that root was computed from
    # Exactly the depth-first order that visits an operation's first input before its second,
    # which is the engine's own walk: pictures and backward share one topological order.
    assert shown == recursive_order(root)
    assert shown == root.topological_order(every_input=True)


def test_walk_is_the_engines_topological_order_with_every_input(monkeypatch):
    calls = []
    engine_order = Tensor.topological_order

    def spy(self, every_input=False):
        calls.append((self, every_input))
        return engine_order(self, every_input)

    monkeypatch.setattr(Tensor, "topological_order", spy)
    _, _, loss = small_loss()
    g = walk(loss)
    assert calls == [(loss, True)]  # one walk, the engine's, including data and constants
    assert [n.tensor for n in g.nodes] == engine_order(loss, every_input=True)


def test_node_ids_count_up_in_walk_order():
    a, b, loss = small_loss()
    g = walk(loss)
    assert [n.id for n in g.nodes] == ["n0", "n1", "n2", "n3", "n4"]
    assert [n.tensor for n in g.nodes[:2]] == [a, b]  # the first operand is visited first
    assert g.edges == [("n0", "n2"), ("n1", "n2"), ("n2", "n4"), ("n3", "n4")]


def test_the_same_computation_always_gives_the_same_dot_text():
    # Ids come from a counter, not from memory addresses, so rebuilding changes nothing.
    first = draw_graph(mlp_loss(seed=3)).source
    for _ in range(3):
        assert draw_graph(mlp_loss(seed=3)).source == first


def test_kinds_tell_parameters_inputs_constants_operations_and_the_loss_apart():
    a, b, loss = small_loss()
    kinds = {n.id: n.kind for n in walk(loss).nodes}
    assert kinds == {"n0": "parameter", "n1": "input", "n2": "op", "n3": "constant", "n4": "loss"}
    pred = Tensor([[1.0, 2.0]], requires_grad=True) * 2
    assert walk(pred).nodes[-1].kind == "output"  # a root that is not a scalar is not a loss


def test_only_a_0d_root_is_called_the_loss_not_a_1_by_1_output():
    # A (1, 1) prediction holds one number, and backward() accepts it without a grad, but it is
    # a model's output, not a loss: only a 0-d root (what loss functions return) is the loss.
    w = Tensor([[0.5]], requires_grad=True, name="w")
    pred = Tensor([[2.0]], name="x") @ w
    assert pred.shape == (1, 1)
    g = walk(pred)
    assert g.nodes[-1].kind == "output"
    assert "<B>matmul · output</B>" in draw_graph(pred).source and "loss" not in draw_graph(pred).source
    assert walk(pred.sum()).nodes[-1].kind == "loss"  # reduced to shape (): now it is


def test_data_summary_is_the_value_for_a_scalar_and_min_mean_max_for_an_array():
    assert summarize(np.array(2.5)) == "2.5"
    assert summarize(np.array([[1.0, -2.0], [4.0, 5.0]])) == "min -2 · mean 2 · max 5"
    assert summarize(np.array([1 / 3])) == "0.3333"
    assert summarize(None) == NO_GRAD_YET


def test_gradient_shows_a_dash_before_backward_and_its_summary_after():
    a, b, loss = small_loss()
    before = {n.id: n.grad for n in walk(loss).nodes}
    assert before == {"n0": NO_GRAD_YET, "n1": NOT_NEEDED, "n2": NO_GRAD_YET, "n3": NOT_NEEDED, "n4": NO_GRAD_YET}
    loss.backward()
    after = {n.id: n.grad for n in walk(loss).nodes}
    assert after == {"n0": "3", "n1": NOT_NEEDED, "n2": "1", "n3": NOT_NEEDED, "n4": "1"}


def test_an_operation_using_a_tensor_twice_has_two_edges():
    x = Tensor(3.0, requires_grad=True, name="x")
    g = walk(x * x)
    assert g.edges == [("n0", "n1"), ("n0", "n1")]


def test_walking_changes_nothing_in_the_graph():
    a, b, loss = small_loss()
    walk(loss)
    assert "digraph" in draw_graph(loss).source
    assert a.grad is None and loss.grad is None and loss.parents[0].parents == (a, b)


def _call_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def test_walk_of_a_100000_node_chain_does_not_recurse():
    x = Tensor(0.5, requires_grad=True, name="x")
    y = x
    for _ in range(100_000):
        y = -y
    # Allow only 50 more nested calls than the test itself uses: any recursion over the
    # chain would need 100,000 and raise RecursionError.
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_call_depth() + 50)
    try:
        g = walk(y)
    finally:
        sys.setrecursionlimit(old_limit)
    assert len(g.nodes) == 100_001 and len(g.edges) == 100_000
    assert g.nodes[0].tensor is x and g.nodes[-1].id == "n100000"


def test_node_cap_keeps_the_tensors_nearest_the_root_and_counts_the_rest():
    x = Tensor(1.0, requires_grad=True)
    chain = [x]
    for _ in range(9):
        chain.append(-chain[-1])
    g = walk(chain[-1], max_nodes=4)
    assert [n.tensor for n in g.nodes] == chain[-4:]
    assert g.hidden == 6
    assert g.cut == ("n0",)  # the first shown tensor has a hidden input


def test_node_cap_folds_the_rest_into_a_visible_note():
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = -y
    source = draw_graph(y, max_nodes=50).source
    assert source.count("[label=") == 51  # 50 tensors and the note
    assert "… 99,951 more tensors not shown (node cap)" in source
    assert "folded -> n0 [style=dashed]" in source


def test_node_cap_keeps_the_nearest_tensors_of_every_branch_breadth_first():
    # Three deep branches meet at the root. Breadth-first keeps each branch's last
    # operations; a depth-first cap would spend every kept node on the first branch.
    branches = []
    for k in range(3):
        t = Tensor(float(k), requires_grad=True, name=f"leaf{k}")
        chain = [t]
        for _ in range(6):
            chain.append(-chain[-1])
        branches.append(chain)
    root = branches[0][-1] + branches[1][-1]
    root = root + branches[2][-1]
    g = walk(root, max_nodes=8)
    shown = {n.tensor for n in g.nodes}
    # Distance 1: the first add and branch 2's last neg; distance 2: branches 0 and 1's last
    # neg and branch 2's second to last; distance 3: the next neg of each branch.
    nearest = {root, root.parents[0], branches[2][-1], branches[0][-1], branches[1][-1], branches[2][-2],
               branches[0][-2], branches[1][-2]}
    assert shown == nearest
    assert len(g.nodes) == 8 and g.hidden == 2 + 3 * 7 - 8  # 2 adds and 3 chains of 7, less the shown
    assert set(g.cut) == {g.id_of(branches[0][-2]), g.id_of(branches[1][-2]), g.id_of(branches[2][-2])}


def test_node_cap_must_be_positive():
    with pytest.raises(ValueError, match="max_nodes must be at least 1"):
        walk(Tensor(1.0), max_nodes=0)


def test_draw_graph_refuses_something_that_is_not_a_tensor():
    with pytest.raises(TypeError, match="draw_graph: expected a Tensor"):
        draw_graph(np.ones(3))  # type: ignore[arg-type]
