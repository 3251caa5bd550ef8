"""Bad input, catalogued: what a careless or hostile user passes to tinygrad_mb, and what happens.

The rule every case checks: bad input gets a clear error *of this library* -- raised in its own
code, not numpy's or Python's, its message naming the operation, the bad value or shapes and,
where there is one, the fix -- and loses nothing: the error comes before any parameter, .grad,
generator or file has changed. Cases with ``error=None`` are the other side of a fix: input that
is now understood and must give the right result (a boolean mask selecting like numpy).

To add cases, append ``Case`` records to ``CASES`` (or to a list of your own module that is added
to it). A case is

    Case(name, call, error, fragment, state)

- ``name``: "module/what-is-wrong"; the part before "/" groups the cases by module;
- ``call``: a function of no arguments making the bad call (or, with ``error=None``, a check
  that must pass: it asserts the right result itself);
- ``error``: the exception type expected (a subclass is fine), or None;
- ``fragment``: text, or a tuple of texts, that must all appear in the message;
- ``state``: a function returning a snapshot of what must not change -- ``params(model)``,
  ``tensors(x)``, ``generator(rng)``, ``files(path)`` or a tuple of them. It is taken before
  and after the call and compared exactly (values, dtypes, .grad, bytes).

Objects shared by the cases are built once below; a failing call must leave them as they were
(that is the point), and a positive case builds its own objects when it changes any.
"""

from __future__ import annotations

import atexit
import functools
import pickle
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tinygrad_mb
import viz
from tinygrad_mb import GradcheckError, Tensor, gradcheck, minibatch, nn, no_grad, optim
from tinygrad_mb.checkpoint import Checkpoint, CheckpointError, check_destination, read_checkpoint, write_checkpoint
from tinygrad_mb.data import batches, make_moons, make_regression, make_spirals
from tinygrad_mb.distributed import data_parallel_gradient, shard_arrays
from tinygrad_mb.train import Trainer
from tinygrad_mb.vae import VAE, aevb_step


# ------------------------------------------------------------------------------ the table
def nothing() -> None:
    """The state of a case that touches no shared object."""
    return None


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[], Any]
    error: type[BaseException] | None
    fragment: str | tuple[str, ...] = ()
    state: Callable[[], Any] = nothing

    def __repr__(self) -> str:  # the test id
        return self.name


# ------------------------------------------------------------------------------ snapshots
def tensors(*ts: Tensor) -> Callable[[], Any]:
    """Values, dtype, .grad and requires_grad of each tensor."""
    return lambda: [(t.data.copy(), t.data.dtype, None if t.grad is None else t.grad.copy(), t.requires_grad)
                    for t in ts]


def params(*modules: nn.Module) -> Callable[[], Any]:
    """Every parameter of each module: values, dtype and .grad (and which tensors they are)."""
    def snapshot() -> Any:
        return [[(name, id(p), p.data.copy(), p.data.dtype, None if p.grad is None else p.grad.copy())
                 for name, p in m.named_parameters()] for m in modules]
    return snapshot


def generator(rng: np.random.Generator) -> Callable[[], Any]:
    """The state of a numpy Generator: a refused call must not have drawn from it."""
    return lambda: rng.bit_generator.state


def files(*paths: Path) -> Callable[[], Any]:
    """The bytes of each file (None when it does not exist)."""
    return lambda: [p.read_bytes() if p.exists() else None for p in paths]


def both(*snapshots: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: [s() for s in snapshots]


def assert_same(before: Any, after: Any, where: str = "state") -> None:
    """Exact comparison of nested snapshots: arrays by shape, dtype and values (nan equals nan)."""
    if isinstance(before, np.ndarray) or isinstance(after, np.ndarray):
        assert isinstance(before, np.ndarray) and isinstance(after, np.ndarray), f"{where}: array became other"
        assert before.dtype == after.dtype and before.shape == after.shape, f"{where}: dtype or shape changed"
        assert np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"), f"{where}: values changed"
    elif isinstance(before, (list, tuple)):
        assert isinstance(after, (list, tuple)) and len(before) == len(after), f"{where}: length changed"
        for i, (b, a) in enumerate(zip(before, after)):
            assert_same(b, a, f"{where}[{i}]")
    elif isinstance(before, dict):
        assert isinstance(after, dict) and before.keys() == after.keys(), f"{where}: keys changed"
        for k in before:
            assert_same(before[k], after[k], f"{where}[{k!r}]")
    else:
        assert before == after, f"{where}: {before!r} became {after!r}"


# ------------------------------------------------------------------------------ shared objects
def with_grad(t: Tensor) -> Tensor:
    t.grad = np.full(t.shape, 0.25, dtype=t.dtype)  # a .grad that must survive every refused call
    return t


W = with_grad(Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="W"))
LOGITS = with_grad(Tensor(np.linspace(-1.0, 1.0, 12).reshape(4, 3), requires_grad=True, name="logits"))
LABELS = np.array([0, 2, 1, 0])
PRED = with_grad(Tensor(np.linspace(0.0, 1.0, 8).reshape(4, 2), requires_grad=True, name="pred"))
A = with_grad(Tensor([0.5, -1.0, 2.0], requires_grad=True, name="a"))
LAYER = nn.Linear(2, 3, rng=1)
MODEL = nn.MLP([2, 3, 2], rng=0)
for _p in [*LAYER.parameters(), *MODEL.parameters()]:
    with_grad(_p)
LEAF = with_grad(Tensor([1.0, 2.0], requires_grad=True, name="leaf"))
HAND_SET = Tensor([3.0, 4.0], requires_grad=True, name="hand_set")
HAND_SET.grad = np.zeros(3)  # set by hand, to the wrong shape
GEN = np.random.default_rng(2024)
STATE = MODEL.state_dict()


def state_with(**changes: Any) -> dict[Any, Any]:
    """MODEL's state dict with some entries replaced (keys use "__" for ".")."""
    state: dict[Any, Any] = dict(STATE)
    for key, value in changes.items():
        state[key.replace("__", ".")] = value
    return state


def record_op(rule: Callable[[np.ndarray], Any]) -> Tensor:
    """A learner's own op (through the public extension point) whose backward rule is ``rule``."""
    return Tensor.record(W.data * 2.0, (W,), "my_op", rule)


# ------------------------------------------------------------------------------ positive cases
def mask_selects_like_numpy_and_each_pick_gets_its_gradient_once() -> None:
    data = np.arange(6.0).reshape(2, 3)
    mask = data % 2 == 0
    x = Tensor(data, requires_grad=True)
    out = x[mask]
    np.testing.assert_array_equal(out.data, data[mask])
    g = np.arange(1.0, out.size + 1)
    out.backward(g)
    expected = np.zeros_like(data)
    expected[mask] = g
    np.testing.assert_array_equal(x.grad, expected)


def row_mask_and_list_of_bools_select_rows_like_numpy() -> None:
    data = np.arange(6.0).reshape(3, 2)
    x = Tensor(data, requires_grad=True)
    for mask in (np.array([True, False, True]), [True, False, True]):
        np.testing.assert_array_equal(x[mask].data, data[np.array(mask)])
    x[[True, False, True]].sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])


def mask_inside_a_tuple_index_selects_like_numpy() -> None:
    data = np.arange(6.0).reshape(2, 3)
    x = Tensor(data, requires_grad=True)
    index = (np.array([False, True]), np.array([0, 2]))
    np.testing.assert_array_equal(x[index].data, data[index])
    x[index].backward(np.array([5.0, 7.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 0.0, 0.0], [5.0, 0.0, 7.0]])


def a_tensor_mask_converted_to_bool_selects() -> None:
    data = np.arange(4.0)
    mask = Tensor(data > 1.5)  # holds 0.0 and 1.0: a Tensor is never a mask ...
    x = Tensor(data, requires_grad=True)
    np.testing.assert_array_equal(x[mask.data.astype(bool)].data, [2.0, 3.0])  # ... its bool array is


def a_tensor_index_holds_positions_and_repeats_add_their_gradients() -> None:
    x = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    out = x[Tensor([2.0, 0.0, 2.0])]
    np.testing.assert_array_equal(out.data, [[4.0, 5.0], [0.0, 1.0], [4.0, 5.0]])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])


def an_empty_list_index_picks_nothing() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    out = x[[]]
    assert out.shape == (0, 3)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros((2, 3)))


def len_iteration_and_truth_follow_numpy() -> None:
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert len(x) == 2 and [r.shape for r in x] == [(3,), (3,)]
    assert bool(Tensor(0.0)) is False and bool(Tensor([2.0])) is True


def reductions_over_non_empty_axes_of_an_empty_tensor_work() -> None:
    empty = Tensor(np.zeros((0, 3)))
    assert empty.max(axis=1).shape == (0,) and empty.mean(axis=1).shape == (0,)
    assert empty.sum().item() == 0.0  # an empty sum is 0, as in mathematics


def losses_accept_numpy_and_lists() -> None:
    assert np.isclose(nn.cross_entropy(np.ones((4, 3)), LABELS).item(), np.log(3.0))
    assert nn.mse_loss(np.ones(3), [0.0, 0.0, 0.0]).item() == 1.0
    assert nn.mse_loss(Tensor([1.0, 0.0]), np.array([True, False])).item() == 0.0


def labels_as_whole_number_floats_or_a_tensor_equal_integer_labels() -> None:
    logits = Tensor(np.array([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]]))
    reference = nn.cross_entropy(logits, [2, 1]).item()
    assert nn.cross_entropy(logits, [2.0, 1.0]).item() == reference
    assert nn.cross_entropy(logits, Tensor([2.0, 1.0])).item() == reference


def load_state_dict_round_trip_with_tensors_and_float32() -> None:
    model = nn.MLP([2, 3, 2], rng=5)
    state = {k: (Tensor(v) if i % 2 else v.astype(np.float32)) for i, (k, v) in enumerate(STATE.items())}
    model.load_state_dict(state)
    for (name, p), saved in zip(model.named_parameters(), STATE.values()):
        assert p.dtype == np.float64
        np.testing.assert_allclose(p.data, saved, rtol=1e-6, err_msg=name)


def gradcheck_passes_and_leaves_values_and_grads() -> None:
    x = with_grad(Tensor([0.3, -0.7], requires_grad=True))
    before = tensors(x)()
    assert gradcheck(lambda t: (t * t).tanh(), [x]) is True
    assert_same(before, tensors(x)())


def gradcheck_through_a_layer_leaves_the_layers_grads() -> None:
    x = Tensor([[0.3, -0.2]], requires_grad=True)
    assert gradcheck(lambda t: LAYER(t * 1.5).tanh(), [x]) is True  # LAYER's .grad: checked by the case


def data_generators_accept_a_generator_and_numpy_ints() -> None:
    X, y = make_moons(np.int64(10), seed=np.random.default_rng(0))
    assert X.shape == (10, 2) and y.shape == (10,)
    assert np.concatenate(list(batches(5, 2))).tolist() == [0, 1, 2, 3, 4]


def mlp_accepts_a_tuple_or_array_of_sizes() -> None:
    assert nn.MLP((2, 3, 1)).sizes == [2, 3, 1]
    assert nn.MLP(np.array([2, 3, 1])).sizes == [2, 3, 1]


def parameters_of_a_module_holding_its_parent_are_found_once() -> None:
    class Child(nn.Module):
        def __init__(self, parent: nn.Module) -> None:
            self.layer, self.parent = nn.Linear(2, 2, rng=0), parent  # a cycle: child -> parent -> child

    class Parent(nn.Module):
        def __init__(self) -> None:
            self.child = Child(self)
            self.scale = Tensor(np.ones(2), requires_grad=True)

    assert [name for name, _ in Parent().named_parameters()] == ["child.layer.weight", "child.layer.bias", "scale"]


def activations_accept_numpy_like_linear() -> None:
    np.testing.assert_allclose(nn.Tanh()(np.zeros(2)).data, [0.0, 0.0])
    np.testing.assert_allclose(nn.ReLU()([-1.0, 2.0]).data, [0.0, 2.0])
    assert nn.Sequential(nn.Sigmoid(), nn.Linear(3, 1, rng=0))(np.ones((2, 3))).shape == (2, 1)


def sizes_may_be_a_numpy_array() -> None:
    x = Tensor(np.arange(6.0))
    assert x.reshape(np.array([3, 2])).shape == (3, 2) and x.reshape(np.array(6)).shape == (6,)
    assert Tensor(np.ones((2, 3))).transpose(np.array([1, 0])).shape == (3, 2)


def no_grad_result() -> Tensor:
    with no_grad():
        return (W * 2.0).sum()


# ------------------------------------------------------------------------------ the catalogue

TENSOR_CASES = [
    # construction
    Case("tensor/strings", lambda: Tensor(["a", "b"]), TypeError, ("Tensor", "<U1", "dtype=float")),
    Case("tensor/object-array", lambda: Tensor(np.array([1, "a"], dtype=object)), TypeError, ("Tensor", "object")),
    Case("tensor/complex", lambda: Tensor(1 + 2j), TypeError, ("Tensor", "complex128")),
    Case("tensor/none", lambda: Tensor(None), TypeError, ("Tensor", "object")),
    Case("tensor/ragged-list", lambda: Tensor([[1.0, 2.0], [3.0]]), TypeError, ("Tensor", "cannot make an array")),
    Case("tensor/list-of-tensors", lambda: Tensor([Tensor(1.0), Tensor(2.0)]), TypeError, ("Tensor", "np.stack")),
    Case("tensor/datetimes", lambda: Tensor(np.array(["2020-01-01"], dtype="datetime64[D]")), TypeError,
         "datetime64"),
    Case("tensor/requires-grad-string", lambda: Tensor(1.0, requires_grad="no"), TypeError,
         ("Tensor", "requires_grad", "'no'")),
    Case("tensor/requires-grad-none", lambda: Tensor(1.0, requires_grad=None), TypeError, "requires_grad"),
    # binary ops
    Case("tensor/add-string", lambda: W + "a", TypeError, "<U1", tensors(W)),
    Case("tensor/mul-none", lambda: W * None, TypeError, "object", tensors(W)),
    Case("tensor/add-numpy-complex", lambda: W + np.complex128(1j), TypeError, "complex128", tensors(W)),
    Case("tensor/add-shapes", lambda: W + np.ones((4, 5)), ValueError, ("add:", "(2, 3)", "(4, 5)"), tensors(W)),
    Case("tensor/rsub-shapes", lambda: np.ones(4) - W, ValueError, ("sub:", "(4,)", "(2, 3)"), tensors(W)),
    Case("tensor/mul-shapes", lambda: W * np.ones((3, 2)), ValueError, ("mul:", "(3, 2)"), tensors(W)),
    Case("tensor/div-shapes", lambda: W / Tensor(np.ones(2)), ValueError, ("div:", "(2,)"), tensors(W)),
    Case("tensor/matmul-shapes", lambda: W @ Tensor(np.ones((2, 2))), ValueError,
         ("matmul: cannot multiply (2, 3) by (2, 2)", ".T"), tensors(W)),
    Case("tensor/matmul-number", lambda: W @ 2.0, ValueError, ("matmul", "()", "use *"), tensors(W)),
    Case("tensor/matmul-string", lambda: W @ "a", TypeError, "<U1", tensors(W)),
    Case("tensor/pow-string", lambda: W ** "2", TypeError, ("pow", "'2'"), tensors(W)),
    Case("tensor/pow-bool", lambda: W ** True, TypeError, ("pow", "True"), tensors(W)),
    Case("tensor/pow-none", lambda: W ** None, TypeError, ("pow", "None"), tensors(W)),
    Case("tensor/pow-complex", lambda: W ** 1j, TypeError, ("pow", "1j"), tensors(W)),
    Case("tensor/pow-tensor", lambda: W ** W, TypeError, ("pow", "exponent", ".exp()"), tensors(W)),
    Case("tensor/pow-array", lambda: W ** np.ones(2), TypeError, ("pow", "exponent"), tensors(W)),
    Case("tensor/rpow-string", lambda: "2" ** W, TypeError, ("pow", "'2'"), tensors(W)),
    Case("tensor/rpow-negative", lambda: (-2.0) ** W, ValueError, ("pow", "positive base", "-2"), tensors(W)),
    Case("tensor/rpow-nan", lambda: float("nan") ** W, ValueError, ("pow", "nan"), tensors(W)),
    Case("tensor/rpow-bool", lambda: True ** W, TypeError, ("pow", "True"), tensors(W)),
    Case("tensor/pow-huge-int", lambda: W ** 10**400, ValueError, ("pow", "too large"), tensors(W)),
    Case("tensor/add-huge-int", lambda: W + 10**400, TypeError, "too large", tensors(W)),
    # reductions
    Case("tensor/sum-float-axis", lambda: W.sum(axis=1.0), TypeError, ("sum:", "axis", "1.0"), tensors(W)),
    Case("tensor/sum-bool-axis", lambda: W.sum(axis=True), TypeError, ("sum:", "True"), tensors(W)),
    Case("tensor/sum-string-axis", lambda: W.sum(axis="0"), TypeError, ("sum:", "'0'"), tensors(W)),
    Case("tensor/sum-float-in-axes", lambda: W.sum(axis=(0, 1.5)), TypeError, ("sum:", "1.5"), tensors(W)),
    Case("tensor/sum-repeated-axis", lambda: W.sum(axis=(0, -2)), ValueError, ("sum:", "(0, -2)", "twice"),
         tensors(W)),
    Case("tensor/sum-axis-out-of-range", lambda: W.sum(axis=2), ValueError, ("sum:", "axis 2", "2 dimensions"),
         tensors(W)),
    Case("tensor/sum-keepdims-string", lambda: W.sum(keepdims="yes"), TypeError, ("sum:", "keepdims", "'yes'"),
         tensors(W)),
    Case("tensor/mean-float-axis", lambda: W.mean(axis=1.0), TypeError, ("mean:", "1.0"), tensors(W)),
    Case("tensor/mean-bool-axis", lambda: W.mean(axis=False), TypeError, ("mean:", "False"), tensors(W)),
    Case("tensor/mean-axis-out-of-range", lambda: W.mean(axis=-3), ValueError, ("mean:", "axis -3"), tensors(W)),
    Case("tensor/max-float-axis", lambda: W.max(axis=1.0), TypeError, ("max:", "1.0"), tensors(W)),
    Case("tensor/max-bool-axis", lambda: W.max(axis=True), TypeError, ("max:", "True"), tensors(W)),
    Case("tensor/max-keepdims-int", lambda: W.max(keepdims=1), TypeError, ("max:", "keepdims"), tensors(W)),
    Case("tensor/max-of-empty", lambda: Tensor(np.zeros(0)).max(), ValueError, ("max:", "(0,)", "no elements")),
    Case("tensor/max-over-empty-axis", lambda: Tensor(np.zeros((0, 3))).max(axis=0), ValueError,
         ("max:", "(0, 3)", "axis 0")),
    Case("tensor/mean-of-empty", lambda: Tensor(np.zeros(0)).mean(), ValueError, ("mean:", "(0,)")),
    Case("tensor/softmax-float-axis", lambda: W.softmax(axis=1.0), TypeError, ("softmax:", "1.0"), tensors(W)),
    Case("tensor/softmax-bool-axis", lambda: W.softmax(axis=True), TypeError, ("softmax:", "True"), tensors(W)),
    Case("tensor/log-softmax-none-axis", lambda: W.log_softmax(axis=None), TypeError, ("log_softmax:", "None"),
         tensors(W)),
    Case("tensor/softmax-axis-out-of-range", lambda: W.softmax(axis=2), ValueError, ("softmax:", "axis 2")),
    Case("tensor/softmax-no-classes", lambda: Tensor(np.zeros((2, 0))).softmax(), ValueError,
         ("softmax:", "(2, 0)")),
    Case("tensor/log-softmax-no-classes", lambda: Tensor(np.zeros((2, 0))).log_softmax(), ValueError,
         ("log_softmax:", "(2, 0)")),
    Case("tensor/empty-reductions-that-are-defined", reductions_over_non_empty_axes_of_an_empty_tensor_work, None),
    # shape ops
    Case("tensor/reshape-float-size", lambda: W.reshape(3, 2.0), TypeError, ("reshape:", "2.0"), tensors(W)),
    Case("tensor/reshape-string", lambda: W.reshape("32"), TypeError, ("reshape:", "'32'"), tensors(W)),
    Case("tensor/reshape-none", lambda: W.reshape(None), TypeError, ("reshape:", "None"), tensors(W)),
    Case("tensor/reshape-bool-size", lambda: W.reshape(6, True), TypeError, ("reshape:", "True"), tensors(W)),
    Case("tensor/reshape-wrong-count", lambda: W.reshape(4, 2), ValueError, ("reshape:", "(2, 3)", "(4, 2)", "-1"),
         tensors(W)),
    Case("tensor/reshape-two-unknowns", lambda: W.reshape(-1, -1), ValueError, ("reshape:", "(-1, -1)")),
    Case("tensor/transpose-float-axis", lambda: W.transpose(1.0, 0), TypeError, ("transpose:", "1.0"), tensors(W)),
    Case("tensor/transpose-string", lambda: W.transpose("ab"), TypeError, ("transpose:", "'ab'"), tensors(W)),
    Case("tensor/transpose-repeated-axis", lambda: W.transpose(0, 0), ValueError, ("transpose:", "(0, 0)", "(2, 3)")),
    Case("tensor/sizes-as-numpy-arrays", sizes_may_be_a_numpy_array, None),
    Case("tensor/transpose-axis-out-of-range", lambda: W.transpose(0, 2), ValueError, ("transpose:", "(0, 2)")),
    # indexing
    Case("tensor/index-float", lambda: W[1.0], TypeError, ("index:", "1.0", "int(i)"), tensors(W)),
    Case("tensor/index-string", lambda: W["a"], TypeError, ("index:", "'a'"), tensors(W)),
    Case("tensor/index-float-array", lambda: W[np.array([0.0, 1.0])], TypeError,
         ("index:", "float64", "integer positions", "mask.data.astype(bool)"), tensors(W)),
    Case("tensor/index-list-of-floats", lambda: W[[0.5, 1.0]], TypeError, ("index:", "float64"), tensors(W)),
    Case("tensor/index-tensor-fractions", lambda: W[Tensor([0.5, 1.0])], TypeError,
         ("index:", "whole numbers", "0.5", "mask.data.astype(bool)"), tensors(W)),
    Case("tensor/index-tensor-nan", lambda: W[Tensor([np.nan])], TypeError, ("index:", "nan"), tensors(W)),
    Case("tensor/index-float-slice", lambda: W[0.0:1], TypeError, ("index:", "slice", "0.0"), tensors(W)),
    Case("tensor/index-out-of-range", lambda: W[[0, 7]], IndexError, ("index", "7", "(2, 3)"), tensors(W)),
    Case("tensor/index-mask-wrong-length", lambda: W[np.array([True, False, True])], IndexError,
         ("index:", "boolean index", "(2, 3)"), tensors(W)),
    Case("tensor/index-slice-step-zero", lambda: W[::0], ValueError, ("index:", "step", "(2, 3)"), tensors(W)),
    Case("tensor/index-too-many", lambda: W[0, 0, 0], IndexError, ("index:", "too many indices", "(2, 3)")),
    Case("tensor/index-ragged-list", lambda: W[[[0], [1, 2]]], TypeError, ("index:", "list")),
    Case("tensor/index-dict", lambda: W[{1: 2}], TypeError, ("index:", "dict")),
    Case("tensor/index-list-of-tensors", lambda: W[[Tensor(0.0)]], TypeError, ("index:", "object")),
    Case("tensor/index-two-ellipses", lambda: W[..., ...], IndexError, ("index:", "ellipsis")),
    Case("tensor/index-a-0-d-tensor", lambda: Tensor(1.0)[0], IndexError, ("index:", "()")),
    Case("tensor/mask-selects-like-numpy", mask_selects_like_numpy_and_each_pick_gets_its_gradient_once, None),
    Case("tensor/row-mask-and-list-of-bools", row_mask_and_list_of_bools_select_rows_like_numpy, None),
    Case("tensor/mask-in-a-tuple-index", mask_inside_a_tuple_index_selects_like_numpy, None),
    Case("tensor/tensor-mask-as-bool", a_tensor_mask_converted_to_bool_selects, None),
    Case("tensor/tensor-index-positions", a_tensor_index_holds_positions_and_repeats_add_their_gradients, None),
    Case("tensor/empty-list-index", an_empty_list_index_picks_nothing, None),
    # conveniences
    Case("tensor/len-of-0-d", lambda: len(Tensor(1.0)), TypeError, ("len", "0-d", ".item()")),
    Case("tensor/iterate-0-d", lambda: list(Tensor(1.0)), TypeError, "0-d"),
    Case("tensor/truth-of-several", lambda: bool(W), ValueError, ("bool", "(2, 3)", ".any()"), tensors(W)),
    Case("tensor/truth-of-empty", lambda: bool(Tensor(np.zeros(0))), ValueError, ("bool", "(0,)")),
    Case("tensor/len-iter-truth-as-numpy", len_iteration_and_truth_follow_numpy, None),
    Case("tensor/item-of-several", lambda: W.item(), ValueError, ("item", "(2, 3)", ".sum()"), tensors(W)),
    Case("tensor/item-of-empty", lambda: Tensor(np.zeros(0)).item(), ValueError, ("item", "(0,)")),
    # backward
    Case("tensor/backward-no-grad-non-scalar", lambda: (W * 2.0).backward(), RuntimeError,
         ("backward", "(2, 3)", ".mean()", "grad="), tensors(W)),
    Case("tensor/backward-grad-wrong-shape", lambda: (W * 2.0).backward(np.ones(3)), ValueError,
         ("backward", "(3,)", "(2, 3)"), tensors(W)),
    Case("tensor/backward-grad-string", lambda: (W * 2.0).backward("a"), TypeError, ("backward", "<U1"), tensors(W)),
    Case("tensor/backward-scalar-grad-shape-1", lambda: (W * 2.0).sum().backward(np.ones(1)), ValueError,
         ("backward", "(1,)", "()"), tensors(W)),
    Case("tensor/backward-grad-complex", lambda: (W * 2.0).sum().backward(1j), TypeError,
         ("backward", "complex128"), tensors(W)),
    Case("tensor/backward-onto-a-grad-of-the-wrong-shape", lambda: (LEAF * HAND_SET).sum().backward(), ValueError,
         ("backward", "'hand_set'", "(3,)", "(2,)", "zero_grad()"), tensors(LEAF, HAND_SET)),
    Case("tensor/backward-without-graph", lambda: Tensor(np.ones(3)).sum().backward(), RuntimeError,
         ("backward", "does not require grad")),
    Case("tensor/backward-of-no-grad-result", lambda: no_grad_result().backward(), RuntimeError,
         ("backward", "no_grad()"), tensors(W)),
    Case("tensor/record-rule-returns-an-array", lambda: record_op(lambda g: g * 2.0).sum().backward(), TypeError,
         ("my_op", "ndarray", "one gradient"), tensors(W)),
    Case("tensor/record-rule-wrong-shape", lambda: record_op(lambda g: (g[0],)).sum().backward(), ValueError,
         ("my_op", "(3,)", "(2, 3)"), tensors(W)),
    Case("tensor/record-rule-returns-a-string", lambda: record_op(lambda g: ("g",)).sum().backward(), TypeError,
         ("my_op", "str"), tensors(W)),
]


NN_CASES = [
    Case("nn/linear-float-size", lambda: nn.Linear(2.5, 3), TypeError, ("Linear", "in_features", "2.5")),
    Case("nn/linear-bool-size", lambda: nn.Linear(True, 3), TypeError, ("Linear", "in_features", "True")),
    Case("nn/linear-string-size", lambda: nn.Linear(2, "3"), TypeError, ("Linear", "out_features", "'3'")),
    Case("nn/linear-zero-size", lambda: nn.Linear(0, 3), ValueError, ("Linear", "in_features=0")),
    Case("nn/linear-negative-size", lambda: nn.Linear(2, -1), ValueError, ("Linear", "out_features=-1")),
    Case("nn/linear-bias-string", lambda: nn.Linear(2, 3, bias="yes"), TypeError, ("Linear", "bias", "'yes'")),
    Case("nn/linear-int-dtype", lambda: nn.Linear(2, 3, dtype=np.int32), TypeError, ("Linear", "dtype", "int32")),
    Case("nn/linear-bad-dtype-name", lambda: nn.Linear(2, 3, dtype="floaty"), TypeError, ("Linear", "dtype")),
    Case("nn/linear-seed-string", lambda: nn.Linear(2, 3, rng="seed"), TypeError, ("Linear", "seed", "'seed'")),
    Case("nn/linear-negative-seed", lambda: nn.Linear(2, 3, rng=-1), ValueError, ("Linear", "seed", "-1")),
    Case("nn/linear-bad-size-draws-nothing", lambda: nn.Linear(2, 0, rng=GEN), ValueError, "Linear",
         generator(GEN)),
    Case("nn/mlp-float-size", lambda: nn.MLP([2, 3.5, 1]), TypeError, ("MLP", "sizes[1]", "3.5")),
    Case("nn/mlp-string-sizes", lambda: nn.MLP("231"), TypeError, ("MLP", "'231'", "[2, 16, 1]")),
    Case("nn/mlp-zero-size", lambda: nn.MLP([2, 0, 1]), ValueError, ("MLP", "sizes[1]", "0")),
    Case("nn/mlp-negative-size", lambda: nn.MLP([2, -4, 1]), ValueError, ("MLP", "sizes[1]", "-4")),
    Case("nn/mlp-bool-size", lambda: nn.MLP([2, True, 1]), TypeError, ("MLP", "sizes[1]", "True")),
    Case("nn/mlp-one-size", lambda: nn.MLP([2]), ValueError, ("MLP", "[2]")),
    Case("nn/mlp-int-sizes", lambda: nn.MLP(5), TypeError, ("MLP", "5")),
    Case("nn/mlp-none-sizes", lambda: nn.MLP(None), TypeError, ("MLP", "None")),
    Case("nn/mlp-unknown-activation", lambda: nn.MLP([2, 3, 1], activation="gelu"), ValueError,
         ("MLP", "'gelu'", "'tanh'")),
    Case("nn/mlp-activation-list", lambda: nn.MLP([2, 3, 1], activation=["tanh"]), ValueError, ("MLP", "['tanh']")),
    Case("nn/mlp-last-size-bad-draws-nothing", lambda: nn.MLP([2, 3, 0], rng=GEN), ValueError, ("MLP", "sizes[2]"),
         generator(GEN)),
    Case("nn/mlp-dtype-bad-draws-nothing", lambda: nn.MLP([2, 3, 1], rng=GEN, dtype="int64"), TypeError,
         ("MLP", "dtype"), generator(GEN)),
    Case("nn/mlp-sizes-as-tuple-or-array", mlp_accepts_a_tuple_or_array_of_sizes, None),
    Case("nn/layer-wrong-features", lambda: LAYER(np.ones((4, 3))), ValueError, ("linear", "(2, 3)", "(4, 3)"),
         params(LAYER)),
    Case("nn/layer-string-input", lambda: LAYER("ab"), TypeError, ("linear", "<U2"), params(LAYER)),
    Case("nn/layer-0-d-input", lambda: LAYER(Tensor(1.0)), ValueError, ("linear", "()"), params(LAYER)),
    Case("nn/sequential-number", lambda: nn.Sequential(LAYER, 3), TypeError, ("Sequential", "argument 1", "Module")),
    Case("nn/sequential-function", lambda: nn.Sequential(LAYER, np.tanh), TypeError, ("Sequential", "ufunc")),
    Case("nn/sequential-index-out-of-range", lambda: nn.Sequential(LAYER)[5], IndexError,
         ("Sequential", "5", "1 layers")),
    Case("nn/activation-string-input", lambda: nn.Tanh()("a"), TypeError, ("Tanh", "<U1")),
    Case("nn/activations-accept-numpy", activations_accept_numpy_like_linear, None),
    Case("nn/module-holding-its-parent", parameters_of_a_module_holding_its_parent_are_found_once, None),
    Case("nn/module-without-forward", lambda: nn.Module()(1), NotImplementedError, ("Module", "forward")),
    # state dicts
    Case("nn/load-none", lambda: MODEL.load_state_dict(None), TypeError, ("load_state_dict", "None"),
         params(MODEL)),
    Case("nn/load-list", lambda: MODEL.load_state_dict([1, 2]), TypeError, ("load_state_dict", "dict"),
         params(MODEL)),
    Case("nn/load-missing-name", lambda: MODEL.load_state_dict({k: v for k, v in STATE.items() if "bias" not in k}),
         KeyError, ("load_state_dict", "missing", "layers.0.bias"), params(MODEL)),
    Case("nn/load-mixed-key-types", lambda: MODEL.load_state_dict({**STATE, 1: np.ones(1), "extra": np.ones(1)}),
         KeyError, ("load_state_dict", "unexpected", "'extra'"), params(MODEL)),
    Case("nn/load-wrong-shape", lambda: MODEL.load_state_dict(state_with(layers__2__weight=np.ones((2, 3)))),
         ValueError, ("load_state_dict", "'layers.2.weight'", "(2, 3)", "(3, 2)"), params(MODEL)),
    Case("nn/load-strings", lambda: MODEL.load_state_dict(state_with(layers__2__bias=np.array(["a", "b"]))),
         TypeError, ("load_state_dict", "'layers.2.bias'", "<U1"), params(MODEL)),
    Case("nn/load-nan", lambda: MODEL.load_state_dict(state_with(layers__2__bias=np.array([np.nan, 0.0]))),
         ValueError, ("load_state_dict", "'layers.2.bias'", "nan"), params(MODEL)),
    Case("nn/load-too-large-for-float32", lambda: nn.Linear(2, 1, dtype=np.float32, rng=0).load_state_dict(
        {"weight": np.full((2, 1), 1e300), "bias": np.zeros(1)}), ValueError, ("load_state_dict", "float32")),
    Case("nn/load-round-trip", load_state_dict_round_trip_with_tensors_and_float32, None, (), params(MODEL)),
]

LOSS_CASES = [
    Case("nn/mse-broadcasting-shapes", lambda: nn.mse_loss(PRED[:, :1], np.ones(4)), ValueError,
         ("mse_loss", "(4, 1)", "(4,)", "reshape(-1, 1)"), tensors(PRED)),
    Case("nn/mse-string-target", lambda: nn.mse_loss(PRED, "abc"), TypeError, ("mse_loss", "<U3"), tensors(PRED)),
    Case("nn/mse-string-pred", lambda: nn.mse_loss("abc", np.ones(3)), TypeError, ("mse_loss", "<U3")),
    Case("nn/mse-none-target", lambda: nn.mse_loss(PRED, None), TypeError, ("mse_loss", "object"), tensors(PRED)),
    Case("nn/mse-nan-target", lambda: nn.mse_loss(PRED, np.where(np.eye(4, 2) > 0, np.nan, 1.0)), ValueError,
         ("mse_loss", "nan", "position (0, 0)"), tensors(PRED)),
    Case("nn/mse-inf-target-tensor", lambda: nn.mse_loss(PRED, Tensor(np.full((4, 2), np.inf))), ValueError,
         ("mse_loss", "8 nan or inf"), tensors(PRED)),
    Case("nn/mse-empty-batch", lambda: nn.mse_loss(Tensor(np.zeros((0, 3))), np.zeros((0, 3))), ValueError,
         ("mse_loss", "empty", "(0, 3)")),
    Case("nn/mse-empty-batch-sum", lambda: nn.mse_loss(Tensor(np.zeros(0)), np.zeros(0), reduction="sum"),
         ValueError, ("mse_loss", "empty", "(0,)")),
    Case("nn/mse-no-outputs", lambda: nn.mse_loss(Tensor(np.zeros((4, 0))), np.zeros((4, 0))), ValueError,
         ("mse_loss", "(4, 0)", "no outputs")),
    Case("nn/mse-unknown-reduction", lambda: nn.mse_loss(PRED, np.ones((4, 2)), reduction="avg"), ValueError,
         ("mse_loss", "'avg'", "'mean'", "'sum'", "'none'"), tensors(PRED)),
    Case("nn/mse-reduction-none-object", lambda: nn.mse_loss(PRED, np.ones((4, 2)), reduction=None), ValueError,
         ("mse_loss", "None"), tensors(PRED)),
    Case("nn/ce-label-out-of-range", lambda: nn.cross_entropy(LOGITS, [0, 1, 3, 0]), ValueError,
         ("cross_entropy", "label 3", "3 classes", "0 to 2"), tensors(LOGITS)),
    Case("nn/ce-negative-label", lambda: nn.cross_entropy(LOGITS, [0, -1, 2, 0]), ValueError,
         ("cross_entropy", "label -1"), tensors(LOGITS)),
    Case("nn/ce-huge-float-label", lambda: nn.cross_entropy(LOGITS, [0, 1, 1e30, 0]), ValueError,
         ("cross_entropy", "label 1e+30", "3 classes"), tensors(LOGITS)),
    Case("nn/ce-huge-unsigned-label", lambda: nn.cross_entropy(LOGITS, np.array([0, 1, 2**64 - 1, 0], np.uint64)),
         ValueError, ("cross_entropy", "label 18446744073709551615"), tensors(LOGITS)),
    Case("nn/ce-fractional-label", lambda: nn.cross_entropy(LOGITS, [0.5, 1.0, 2.0, 0.0]), TypeError,
         ("cross_entropy", "integer class ids", "0.5", "argmax"), tensors(LOGITS)),
    Case("nn/ce-nan-label", lambda: nn.cross_entropy(LOGITS, [0, 1, np.nan, 0]), TypeError,
         ("cross_entropy", "nan"), tensors(LOGITS)),
    Case("nn/ce-bool-labels", lambda: nn.cross_entropy(LOGITS, np.array([True, False, True, True])), TypeError,
         ("cross_entropy", "bool"), tensors(LOGITS)),
    Case("nn/ce-string-labels", lambda: nn.cross_entropy(LOGITS, ["a", "b", "c", "a"]), TypeError,
         ("cross_entropy", "<U1"), tensors(LOGITS)),
    Case("nn/ce-none-labels", lambda: nn.cross_entropy(LOGITS, None), TypeError, ("cross_entropy", "object"),
         tensors(LOGITS)),
    Case("nn/ce-ragged-labels", lambda: nn.cross_entropy(LOGITS, [[0], [1, 2]]), TypeError,
         ("cross_entropy", "labels", "[[0], [1, 2]]"), tensors(LOGITS)),
    Case("nn/ce-one-hot-labels", lambda: nn.cross_entropy(LOGITS, np.eye(3)[LABELS]), ValueError,
         ("cross_entropy", "(4, 3)", "argmax"), tensors(LOGITS)),
    Case("nn/ce-label-count", lambda: nn.cross_entropy(LOGITS, [0, 1, 2]), ValueError,
         ("cross_entropy", "(3,)", "4 samples"), tensors(LOGITS)),
    Case("nn/ce-scalar-label", lambda: nn.cross_entropy(LOGITS, 1), ValueError, ("cross_entropy", "()", "(4,)"),
         tensors(LOGITS)),
    Case("nn/ce-1-d-logits", lambda: nn.cross_entropy(Tensor([1.0, 2.0, 3.0]), [0]), ValueError,
         ("cross_entropy", "(3,)", "reshape(1, -1)")),
    Case("nn/ce-3-d-logits", lambda: nn.cross_entropy(Tensor(np.ones((2, 2, 3))), [0, 1]), ValueError,
         ("cross_entropy", "(2, 2, 3)")),
    Case("nn/ce-empty-batch", lambda: nn.cross_entropy(Tensor(np.zeros((0, 3))), np.zeros(0, int)), ValueError,
         ("cross_entropy", "empty", "(0, 3)")),
    Case("nn/ce-no-classes", lambda: nn.cross_entropy(Tensor(np.zeros((2, 0))), [0, 0]), ValueError,
         ("cross_entropy", "(2, 0)", "no classes")),
    Case("nn/ce-string-logits", lambda: nn.cross_entropy([["a", "b"]], [0]), TypeError, ("cross_entropy", "<U1")),
    Case("nn/ce-unknown-reduction", lambda: nn.cross_entropy(LOGITS, LABELS, reduction="avg"), ValueError,
         ("cross_entropy", "'avg'", "'mean'"), tensors(LOGITS)),
    Case("nn/losses-accept-numpy-and-lists", losses_accept_numpy_and_lists, None),
    Case("nn/ce-float-and-tensor-labels", labels_as_whole_number_floats_or_a_tensor_equal_integer_labels, None),
]


def wrong_gradient(t: Tensor) -> Tensor:
    """An op whose backward rule is off by a factor 2: what gradcheck exists to catch."""
    return Tensor.record(t.data**2, (t,), "bad_square", lambda g: (g * t.data,))


def part_outside_the_graph(t: Tensor) -> Tensor:
    return Tensor(t.data * 2.0) + t * 0.0  # the first term is computed outside the graph


def gradcheck_of_log_of_a_negative_number() -> Any:
    with np.errstate(invalid="ignore"):  # numpy's warning for log(-1) is not what is tested
        return gradcheck(lambda t: t.log(), [A])


def inside_no_grad() -> Any:
    with no_grad():
        return gradcheck(lambda t: t * 2.0, [A])


GRADCHECK_CASES = [
    Case("gradcheck/numpy-input", lambda: gradcheck(lambda t: t * 2.0, [np.ones(3)]), TypeError,
         ("gradcheck", "input 0", "not a Tensor")),
    Case("gradcheck/float-input", lambda: gradcheck(lambda t: t * 2.0, [1.0]), TypeError, ("gradcheck", "1.0")),
    Case("gradcheck/single-tensor-not-list", lambda: gradcheck(lambda t: t * 2.0, A), TypeError,
         ("gradcheck", "list of Tensors", "[x]"), tensors(A)),
    Case("gradcheck/eps-zero", lambda: gradcheck(lambda t: t * 2.0, [A], eps=0), ValueError,
         ("gradcheck", "eps", "positive"), tensors(A)),
    Case("gradcheck/eps-negative", lambda: gradcheck(lambda t: t * 2.0, [A], eps=-1e-6), ValueError,
         ("gradcheck", "eps", "-1e-06"), tensors(A)),
    Case("gradcheck/eps-nan", lambda: gradcheck(lambda t: t * 2.0, [A], eps=float("nan")), ValueError,
         ("gradcheck", "eps", "finite"), tensors(A)),
    Case("gradcheck/eps-string", lambda: gradcheck(lambda t: t * 2.0, [A], eps="1e-6"), TypeError,
         ("gradcheck", "eps", "'1e-6'"), tensors(A)),
    Case("gradcheck/atol-negative", lambda: gradcheck(lambda t: t * 2.0, [A], atol=-1), ValueError,
         ("gradcheck", "atol", "-1"), tensors(A)),
    Case("gradcheck/rtol-nan", lambda: gradcheck(lambda t: t * 2.0, [A], rtol=float("nan")), ValueError,
         ("gradcheck", "rtol"), tensors(A)),
    Case("gradcheck/seed-negative", lambda: gradcheck(lambda t: t * 2.0, [A], seed=-1), ValueError,
         ("gradcheck", "seed", "-1"), tensors(A)),
    Case("gradcheck/fn-not-callable", lambda: gradcheck(3, [A]), TypeError, ("gradcheck", "fn", "3"), tensors(A)),
    Case("gradcheck/fn-returns-array", lambda: gradcheck(lambda t: t.data * 2.0, [A]), TypeError,
         ("gradcheck", "must return a Tensor", "ndarray"), tensors(A)),
    Case("gradcheck/fn-returns-none", lambda: gradcheck(lambda t: None, [A]), TypeError,
         ("gradcheck", "must return a Tensor", "None"), tensors(A)),
    Case("gradcheck/no-input-requires-grad", lambda: gradcheck(lambda t: t * 2.0, [Tensor([1.0])]), ValueError,
         ("gradcheck", "requires_grad=True")),
    Case("gradcheck/float32-input", lambda: gradcheck(lambda t: t * 2.0, [Tensor(np.ones(2, np.float32),
                                                                                   requires_grad=True)]),
         TypeError, ("gradcheck", "float32", "float64")),
    Case("gradcheck/inside-no-grad", inside_no_grad, RuntimeError, ("gradcheck", "no_grad()"), tensors(A)),
    Case("gradcheck/graph-cut", lambda: gradcheck(lambda t: Tensor(t.data * 2.0), [A]), GradcheckError,
         ("gradcheck", "input 0", "element (0,)", "graph was cut"), tensors(A)),
    Case("gradcheck/part-outside-the-graph", lambda: gradcheck(part_outside_the_graph, [A]), GradcheckError,
         ("gradcheck", "analytic gradient 0", "outside the graph"), tensors(A)),
    Case("gradcheck/not-finite", gradcheck_of_log_of_a_negative_number, GradcheckError,
         ("gradcheck", "element (0,)", "not finite"), tensors(A)),
    Case("gradcheck/wrong-backward", lambda: gradcheck(wrong_gradient, [A]), GradcheckError,
         ("gradcheck", "input 0 ('a')", "element (0,)", "backward"), tensors(A)),
    Case("gradcheck/passes-and-restores", gradcheck_passes_and_leaves_values_and_grads, None),
    Case("gradcheck/restores-parameters-fn-uses", gradcheck_through_a_layer_leaves_the_layers_grads, None, (),
         params(LAYER)),
]


def take(iterator: Any) -> list[Any]:
    return list(iterator)


DATA_CASES = [
    Case("data/moons-float-n", lambda: make_moons(n=2.5), TypeError, ("make_moons", "n", "2.5")),
    Case("data/moons-string-n", lambda: make_moons(n="10"), TypeError, ("make_moons", "'10'")),
    Case("data/moons-bool-n", lambda: make_moons(n=True), TypeError, ("make_moons", "True")),
    Case("data/moons-one-sample", lambda: make_moons(n=1, seed=GEN), ValueError, ("make_moons", "at least 2", "1"),
         generator(GEN)),
    Case("data/moons-negative-noise", lambda: make_moons(noise=-1, seed=GEN), ValueError,
         ("make_moons", "noise", "-1"), generator(GEN)),
    Case("data/moons-nan-noise", lambda: make_moons(noise=float("nan")), ValueError, ("make_moons", "noise", "nan")),
    Case("data/moons-string-noise", lambda: make_moons(noise="a"), TypeError, ("make_moons", "noise", "'a'")),
    Case("data/moons-string-seed", lambda: make_moons(seed="a"), TypeError, ("make_moons", "seed", "'a'")),
    Case("data/moons-negative-seed", lambda: make_moons(seed=-1), ValueError, ("make_moons", "seed", "-1")),
    Case("data/moons-float-seed", lambda: make_moons(seed=1.5), TypeError, ("make_moons", "seed", "1.5")),
    Case("data/spirals-one-class", lambda: make_spirals(classes=1), ValueError, ("make_spirals", "classes", "1")),
    Case("data/spirals-float-classes", lambda: make_spirals(classes=2.5), TypeError,
         ("make_spirals", "classes", "2.5")),
    Case("data/spirals-fewer-samples-than-classes", lambda: make_spirals(n=2, classes=3), ValueError,
         ("make_spirals", "at least 3", "2")),
    Case("data/spirals-negative-noise", lambda: make_spirals(noise=-0.5, seed=GEN), ValueError,
         ("make_spirals", "noise"), generator(GEN)),
    Case("data/regression-no-samples", lambda: make_regression(n=0), ValueError, ("make_regression", "n", "0")),
    Case("data/regression-negative-samples", lambda: make_regression(n=-1), ValueError, ("make_regression", "-1")),
    Case("data/regression-no-features", lambda: make_regression(in_features=0), ValueError,
         ("make_regression", "in_features", "0")),
    Case("data/regression-float-outputs", lambda: make_regression(out_features=1.5), TypeError,
         ("make_regression", "out_features", "1.5")),
    Case("data/regression-infinite-noise", lambda: make_regression(noise=float("inf")), ValueError,
         ("make_regression", "noise", "inf")),
    Case("data/batches-zero-size", lambda: batches(10, 0), ValueError, ("batches", "batch_size", "0")),
    Case("data/batches-float-size", lambda: batches(10, 2.5), TypeError, ("batches", "batch_size", "2.5")),
    Case("data/batches-bool-size", lambda: batches(10, True), TypeError, ("batches", "batch_size", "True")),
    Case("data/batches-negative-n", lambda: batches(-3, 2), ValueError, ("batches", "n", "-3")),
    Case("data/batches-shuffle-string", lambda: batches(4, 2, shuffle="no"), TypeError, ("batches", "shuffle")),
    Case("data/batches-int-rng", lambda: take(batches(4, 2, shuffle=True, rng=3)), TypeError,
         ("batches", "rng", "default_rng")),
    Case("data/generators-accept-generator-and-numpy-ints", data_generators_accept_a_generator_and_numpy_ints, None),
]


# ------------------------------------------------------------------------------ minibatch
X4 = np.linspace(-1.0, 1.0, 8).reshape(4, 2)
Y4 = np.array([0, 1, 1, 0])
SUM_CE = functools.partial(nn.cross_entropy, reduction="sum")
M = params(MODEL)


def float_loss(pred: Tensor, target: Any) -> float:
    return float(np.mean(pred.data))  # a number, not a Tensor: no graph to backpropagate


def own_loss(pred: Tensor, target: Any) -> Tensor:
    return nn.cross_entropy(pred, target)  # unknown to the library: might mix samples


class Doubled(nn.Module):
    """A layer the per-sample formulas cannot split: its own forward."""

    def __init__(self) -> None:
        self.inner = nn.Linear(2, 2, rng=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x) * 2.0


DOUBLED = Doubled()
for _p in DOUBLED.parameters():
    with_grad(_p)

MINIBATCH_CASES: list[Case] = [
    Case("minibatch/per-sample-not-a-model", lambda: minibatch.per_sample_average(3, nn.cross_entropy, X4, Y4),
         TypeError, ("per_sample_average", "model must be an nn.Module")),
    Case("minibatch/per-sample-length-mismatch", lambda: minibatch.per_sample_average(MODEL, nn.cross_entropy,
                                                                                       X4, Y4[:3]),
         ValueError, ("per_sample_average", "4 samples", "3"), M),
    Case("minibatch/per-sample-sum-partial", lambda: minibatch.per_sample_average(MODEL, SUM_CE, X4, Y4),
         ValueError, ("per_sample_average", "'sum'"), M),
    Case("minibatch/per-sample-float-loss", lambda: minibatch.per_sample_average(MODEL, float_loss, X4, Y4),
         TypeError, ("per_sample_average", "got float"), M),
    Case("minibatch/batched-mean-empty-batch", lambda: minibatch.batched_mean(MODEL, nn.cross_entropy,
                                                                              X4[:0], Y4[:0]),
         ValueError, ("batched_mean", "empty"), M),
    Case("minibatch/batched-mean-scalar-X", lambda: minibatch.batched_mean(MODEL, nn.cross_entropy, 1.0, Y4),
         ValueError, ("batched_mean", "one sample per row", "()"), M),
    Case("minibatch/batched-mean-ragged-X", lambda: minibatch.batched_mean(MODEL, nn.cross_entropy,
                                                                           [[1.0, 2.0], [3.0]], Y4[:2]),
         TypeError, ("batched_mean", "X cannot be made an array"), M),
    Case("minibatch/batched-mean-loss-not-callable", lambda: minibatch.batched_mean(MODEL, "mse", X4, Y4),
         TypeError, ("batched_mean", "loss_fn must be a function", "str"), M),
    Case("minibatch/batched-mean-float-loss", lambda: minibatch.batched_mean(MODEL, float_loss, X4, Y4),
         TypeError, ("batched_mean", "Tensor holding one number"), M),
    Case("minibatch/accumulated-zero-micro-batch", lambda: minibatch.accumulated(MODEL, nn.cross_entropy,
                                                                                 X4, Y4, 0),
         ValueError, ("accumulated", "micro_batch", "0"), M),
    Case("minibatch/accumulated-float-micro-batch", lambda: minibatch.accumulated(MODEL, nn.cross_entropy,
                                                                                  X4, Y4, 2.5),
         ValueError, ("accumulated", "micro_batch", "2.5"), M),
    Case("minibatch/accumulated-bool-micro-batch", lambda: minibatch.accumulated(MODEL, nn.cross_entropy,
                                                                                 X4, Y4, True),
         ValueError, ("accumulated", "micro_batch", "True"), M),
    Case("minibatch/accumulated-sum-partial", lambda: minibatch.accumulated(MODEL, SUM_CE, X4, Y4, 2),
         ValueError, ("accumulated", "'sum'"), M),
    Case("minibatch/accumulated-float-loss", lambda: minibatch.accumulated(MODEL, float_loss, X4, Y4, 2),
         TypeError, ("accumulated", "got float"), M),
    Case("minibatch/naive-accumulated-negative-micro-batch",
         lambda: minibatch.naive_accumulated(MODEL, nn.cross_entropy, X4, Y4, -1),
         ValueError, ("naive_accumulated", "micro_batch", "-1"), M),
    Case("minibatch/naive-accumulated-sum-partial", lambda: minibatch.naive_accumulated(MODEL, SUM_CE, X4, Y4, 2),
         ValueError, ("naive_accumulated", "'sum'"), M),
    Case("minibatch/sum-estimate-dataset-smaller-than-batch",
         lambda: minibatch.sum_estimate(MODEL, nn.cross_entropy, X4, Y4, 3),
         ValueError, ("sum_estimate", "dataset_size", "batch size 4", "3"), M),
    Case("minibatch/sum-estimate-float-dataset-size",
         lambda: minibatch.sum_estimate(MODEL, nn.cross_entropy, X4, Y4, 10.0),
         ValueError, ("sum_estimate", "10.0"), M),
    Case("minibatch/sum-estimate-sum-partial", lambda: minibatch.sum_estimate(MODEL, SUM_CE, X4, Y4, 10),
         ValueError, ("sum_estimate", "'sum'"), M),
    Case("minibatch/per-sample-gradients-own-loss",
         lambda: minibatch.per_sample_gradients(MODEL, own_loss, X4, Y4),
         TypeError, ("per_sample_gradients", "this library's losses"), M),
    Case("minibatch/per-sample-gradients-own-layer",
         lambda: minibatch.per_sample_gradients(DOUBLED, nn.cross_entropy, X4, Y4),
         TypeError, ("per_sample_gradients", "cannot vectorise", "Loop instead"), params(DOUBLED)),
    Case("minibatch/per-sample-gradients-sum-partial",
         lambda: minibatch.per_sample_gradients(MODEL, SUM_CE, X4, Y4),
         ValueError, ("per_sample_gradients", "'sum'"), M),
    Case("minibatch/grad-norms-own-layer",
         lambda: minibatch.per_sample_grad_norms(DOUBLED, nn.cross_entropy, X4, Y4),
         TypeError, ("per_sample_grad_norms", "cannot vectorise"), params(DOUBLED)),
    Case("minibatch/grad-norms-length-mismatch",
         lambda: minibatch.per_sample_grad_norms(MODEL, nn.cross_entropy, X4, Y4[:2]),
         ValueError, ("per_sample_grad_norms", "4 samples", "2"), M),
    Case("minibatch/clipped-mean-zero-max-norm", lambda: minibatch.clipped_mean(MODEL, nn.cross_entropy, X4, Y4, 0),
         ValueError, ("clipped_mean", "max_norm", "0"), M),
    Case("minibatch/clipped-mean-nan-max-norm",
         lambda: minibatch.clipped_mean(MODEL, nn.cross_entropy, X4, Y4, float("nan")),
         ValueError, ("clipped_mean", "max_norm", "nan"), M),
    Case("minibatch/clipped-mean-string-max-norm",
         lambda: minibatch.clipped_mean(MODEL, nn.cross_entropy, X4, Y4, "1"),
         ValueError, ("clipped_mean", "max_norm", "'1'"), M),
    Case("minibatch/clipped-mean-own-loss", lambda: minibatch.clipped_mean(MODEL, own_loss, X4, Y4, 1.0),
         TypeError, ("clipped_mean", "this library's losses"), M),
    Case("minibatch/noise-scale-one-sample",
         lambda: minibatch.gradient_noise_scale(MODEL, nn.cross_entropy, X4[:1], Y4[:1]),
         ValueError, ("gradient_noise_scale", "at least 2"), M),
    Case("minibatch/noise-scale-dataset-smaller-than-batch",
         lambda: minibatch.gradient_noise_scale(MODEL, nn.cross_entropy, X4, Y4, dataset_size=2),
         ValueError, ("gradient_noise_scale", "dataset_size", "2"), M),
    Case("minibatch/noise-scale-sum-partial", lambda: minibatch.gradient_noise_scale(MODEL, SUM_CE, X4, Y4),
         ValueError, ("gradient_noise_scale", "'sum'"), M),
    Case("minibatch/error-first-unknown-variant",
         lambda: minibatch.error_first(MODEL, nn.cross_entropy, X4, Y4, variant="median"),
         ValueError, ("error_first", "'median'", "mean_input"), M),
    Case("minibatch/error-first-mean-residual-needs-mse",
         lambda: minibatch.error_first(MODEL, nn.cross_entropy, X4, Y4, variant="mean_residual"),
         ValueError, ("error_first", "mean_residual", "nn.mse_loss"), M),
    Case("minibatch/error-first-sum-partial", lambda: minibatch.error_first(MODEL, SUM_CE, X4, Y4),
         ValueError, ("error_first", "'sum'"), M),
    Case("minibatch/error-first-float-loss", lambda: minibatch.error_first(MODEL, float_loss, X4, Y4),
         TypeError, ("error_first", "got float"), M),
    Case("minibatch/batched-mean-wrong-feature-count",
         lambda: minibatch.batched_mean(MODEL, nn.cross_entropy, np.ones((4, 3)), Y4), ValueError,
         ("linear", "2 features", "(4, 3)"), M),
    Case("minibatch/batched-mean-string-X",
         lambda: minibatch.batched_mean(MODEL, nn.cross_entropy, np.full((4, 2), "a"), Y4), TypeError,
         ("Tensor", "<U1"), M),
    Case("minibatch/per-sample-gradients-mse-target-shape",
         lambda: minibatch.per_sample_gradients(MODEL, nn.mse_loss, X4, np.zeros((4, 3))), ValueError,
         ("mse_loss", "(4, 2)", "(4, 3)"), M),
    Case("minibatch/check-loss-fn-sum-partial", lambda: minibatch.check_loss_fn(
        functools.partial(nn.mse_loss, reduction="sum"), "my_op"), ValueError, ("my_op", "'sum'")),
    Case("minibatch/check-batch-not-a-model", lambda: minibatch.check_batch(nn.cross_entropy, X4, Y4, "my_op"),
         TypeError, ("my_op", "model must be an nn.Module", "function")),
]


# ------------------------------------------------------------------------------ optim
OPT_A = with_grad(Tensor([1.0, 2.0], requires_grad=True, name="opt_a"))
OPT_B = Tensor([[3.0, 4.0]], requires_grad=True, name="opt_b")
OPT_B.grad = np.ones(3)  # wrong shape: step must refuse before it changes opt_a
OPT_P = with_grad(Tensor([0.5, -0.5], requires_grad=True, name="opt_p"))
OPT_Q = with_grad(Tensor([[1.0], [2.0]], requires_grad=True, name="opt_q"))
SGD_OPT = optim.SGD([OPT_P, OPT_Q], lr=0.1, momentum=0.9)
ADAM_OPT = optim.Adam([OPT_P, OPT_Q], lr=0.1)
SGD_STATE = SGD_OPT.state_dict()
ADAM_STATE = ADAM_OPT.state_dict()
OPTIMIZERS = both(tensors(OPT_P, OPT_Q), SGD_OPT.state_dict, ADAM_OPT.state_dict,
                  lambda: (SGD_OPT.lr, SGD_OPT.momentum, ADAM_OPT.lr, ADAM_OPT.betas))


def replaced(state: dict[str, Any], part: str | None, key: str, value: Any) -> dict[str, Any]:
    """A copy of an optimizer state with one entry (of ``state[part]``, or of the top level) replaced."""
    new = {k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()}
    (new if part is None else new[part])[key] = value
    return new


def sgld_step_with_grads(second: np.ndarray) -> None:
    """A good .grad on the first parameter, a bad one on the second: neither may be stepped."""
    second_param = Tensor(np.zeros(2), requires_grad=True)
    opt = optim.SGLD([OPT_A, second_param], lr=0.1, dataset_size=10, seed=0)
    second_param.grad = second  # OPT_A already has a good .grad
    try:
        opt.step()
    finally:
        assert opt.steps == [0, 0], "a refused step must not count (the noise is keyed on the count)"


def step_with_lr(lr: Any) -> None:
    opt = optim.SGD([OPT_P], lr=0.1)
    opt.lr = lr  # a schedule that computed a bad rate
    opt.step()


OPTIM_CASES: list[Case] = [
    Case("optim/sgd-negative-lr", lambda: optim.SGD([OPT_P], lr=-0.1), ValueError, ("SGD", "lr", "-0.1")),
    Case("optim/sgd-zero-lr", lambda: optim.SGD([OPT_P], lr=0), ValueError, ("SGD", "lr", "positive")),
    Case("optim/sgd-string-lr", lambda: optim.SGD([OPT_P], lr="0.1"), ValueError, ("SGD", "lr", "'0.1'", "str")),
    Case("optim/sgd-momentum-one", lambda: optim.SGD([OPT_P], lr=0.1, momentum=1.0), ValueError,
         ("SGD", "momentum", "[0, 1)", "1.0")),
    Case("optim/sgd-negative-weight-decay", lambda: optim.SGD([OPT_P], lr=0.1, weight_decay=-1e-4), ValueError,
         ("SGD", "weight_decay", "-0.0001")),
    Case("optim/sgd-single-tensor", lambda: optim.SGD(OPT_P, lr=0.1), TypeError, ("SGD", "single Tensor")),
    Case("optim/sgd-empty-list", lambda: optim.SGD([], lr=0.1), ValueError, ("SGD", "empty parameter list")),
    Case("optim/sgd-duplicate-parameter", lambda: optim.SGD([OPT_P, OPT_Q, OPT_P], lr=0.1), ValueError,
         ("SGD", "parameter 2", "'opt_p'", "same tensor as parameter 0")),
    Case("optim/sgd-no-grad-tensor", lambda: optim.SGD([OPT_P, Tensor([1.0])], lr=0.1), ValueError,
         ("SGD", "parameter 1", "requires_grad=True")),
    Case("optim/adam-one-beta", lambda: optim.Adam([OPT_P], betas=(0.9,)), ValueError, ("Adam", "betas", "(0.9,)")),
    Case("optim/adam-beta-one", lambda: optim.Adam([OPT_P], betas=(0.9, 1.0)), ValueError,
         ("Adam", "betas[1]", "1.0")),
    Case("optim/adam-zero-eps", lambda: optim.Adam([OPT_P], eps=0.0), ValueError, ("Adam", "eps", "0.0")),
    Case("optim/adam-infinite-lr", lambda: optim.Adam([OPT_P], lr=float("inf")), ValueError, ("Adam", "lr", "inf")),
    Case("optim/sgld-zero-dataset-size", lambda: optim.SGLD([OPT_P], lr=0.1, dataset_size=0), ValueError,
         ("SGLD", "dataset_size", ">= 1", "0")),
    Case("optim/sgld-float-dataset-size", lambda: optim.SGLD([OPT_P], lr=0.1, dataset_size=100.0), ValueError,
         ("SGLD", "dataset_size", "100.0")),
    Case("optim/sgld-negative-seed", lambda: optim.SGLD([OPT_P], lr=0.1, dataset_size=10, seed=-1), ValueError,
         ("SGLD", "seed", "-1")),
    Case("optim/sgld-negative-prior", lambda: optim.SGLD([OPT_P], lr=0.1, dataset_size=10, prior_precision=-1.0),
         ValueError, ("SGLD", "prior_precision", "-1.0")),
    Case("optim/step-bad-grad-shape-leaves-earlier-parameters",
         lambda: optim.SGD([OPT_A, OPT_B], lr=0.1).step(), ValueError,
         ("SGD.step", "parameter 1", "'opt_b'", "(3,)", "(1, 2)", "No parameter was changed"),
         tensors(OPT_A, OPT_B)),
    Case("optim/step-nan-lr-from-a-schedule", lambda: step_with_lr(float("nan")), ValueError,
         ("SGD.step", "lr", "nan"), tensors(OPT_P)),
    Case("optim/sgld-step-complex-grad-after-a-good-one", lambda: sgld_step_with_grads(np.ones(2, dtype=complex)),
         TypeError, ("SGLD.step", "parameter 1", "complex128", "No parameter was changed"), tensors(OPT_A)),
    Case("optim/sgld-step-object-grad", lambda: sgld_step_with_grads(np.array([1, "a"], dtype=object)),
         TypeError, ("SGLD.step", "parameter 1", "object"), tensors(OPT_A)),
    Case("optim/sgld-dataset-size-too-large-for-a-float", lambda: optim.SGLD([OPT_P], lr=0.1, dataset_size=10**400),
         ValueError, ("SGLD", "dataset_size", "1.8e308", "401 digits")),
    Case("optim/polynomial-decay-overflows", lambda: optim.polynomial_decay(0, 1.0, 0.5, 1e308), ValueError,
         ("polynomial_decay", "inf", "not a usable step size")),
    Case("optim/polynomial-decay-underflows-to-zero", lambda: optim.polynomial_decay(0, 1e-300, 1e300, 1.0),
         ValueError, ("polynomial_decay", "0.0", "not a usable step size")),
    Case("optim/polynomial-decay-step-too-large", lambda: optim.polynomial_decay(10**400, 1.0, 1.0, 0.55),
         ValueError, ("polynomial_decay", "t must be a finite number")),
    Case("optim/load-not-a-dict", lambda: SGD_OPT.load_state_dict([1, 2]), TypeError, ("SGD", "dict", "list"),
         OPTIMIZERS),
    Case("optim/load-other-kind", lambda: SGD_OPT.load_state_dict(ADAM_STATE), ValueError,
         ("SGD", "'Adam'"), OPTIMIZERS),
    Case("optim/load-missing-key", lambda: SGD_OPT.load_state_dict({"kind": "SGD", "state": {}}), ValueError,
         ("SGD", "keys", "hyperparameters"), OPTIMIZERS),
    Case("optim/load-bad-lr", lambda: SGD_OPT.load_state_dict(replaced(SGD_STATE, "hyperparameters", "lr", -1.0)),
         ValueError, ("SGD", "lr", "-1.0"), OPTIMIZERS),
    Case("optim/load-velocity-too-short",
         lambda: SGD_OPT.load_state_dict(replaced(SGD_STATE, "state", "velocity", [None])),
         ValueError, ("SGD", "'velocity'", "1 entries", "2 parameters"), OPTIMIZERS),
    Case("optim/load-velocity-wrong-shape",
         lambda: SGD_OPT.load_state_dict(replaced(SGD_STATE, "state", "velocity", [np.zeros(3), None])),
         ValueError, ("SGD", "'velocity'", "parameter 0", "(3,)", "(2,)"), OPTIMIZERS),
    Case("optim/load-adam-negative-v",
         lambda: ADAM_OPT.load_state_dict(replaced(ADAM_STATE, "state", "v", [np.full(2, -1.0), np.zeros((2, 1))])),
         ValueError, ("Adam", "'v'", "negative"), OPTIMIZERS),
    Case("optim/load-adam-nan-m",
         lambda: ADAM_OPT.load_state_dict(replaced(ADAM_STATE, "state", "m", [np.full(2, np.nan), np.zeros((2, 1))])),
         ValueError, ("Adam", "'m'", "non-finite"), OPTIMIZERS),
    Case("optim/load-adam-float-steps",
         lambda: ADAM_OPT.load_state_dict(replaced(ADAM_STATE, "state", "steps", [1.5, 0])),
         TypeError, ("Adam", "'steps'", "whole number", "1.5"), OPTIMIZERS),
    Case("optim/load-adam-int-m",
         lambda: ADAM_OPT.load_state_dict(replaced(ADAM_STATE, "state", "m", [np.zeros(2, int), np.zeros((2, 1))])),
         TypeError, ("Adam", "'m'", "float numpy array", "int64"), OPTIMIZERS),
]


# ------------------------------------------------------------------------------ files for the cases
SCRATCH = Path(tempfile.mkdtemp(prefix="tinygrad_mb_bad_input_"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
EMPTY_FILE = SCRATCH / "empty.ckpt"
EMPTY_FILE.write_bytes(b"")
FOREIGN_FILE = SCRATCH / "notes.ckpt"
FOREIGN_FILE.write_text("these are my notes, not a checkpoint\n")
MISSING_FILE = SCRATCH / "missing.ckpt"
A_FILE = SCRATCH / "a_file"  # a file where a folder is wanted
A_FILE.write_text("in the way\n")
A_FOLDER_SVG = SCRATCH / "folder.svg"  # a folder whose name looks like a picture's
A_FOLDER_SVG.mkdir()
MARKER = SCRATCH / "unpickled.marker"  # exists only if the pickle below was ever loaded


class CreatesMarker:
    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(MARKER), "w"))  # unpickling would create MARKER


PICKLE_FILE = SCRATCH / "evil.ckpt"
PICKLE_FILE.write_bytes(pickle.dumps(CreatesMarker()))
FILES = files(EMPTY_FILE, FOREIGN_FILE, MISSING_FILE, A_FILE, MARKER, PICKLE_FILE)


# ------------------------------------------------------------------------------ train
TRAIN_MODEL = nn.MLP([2, 3, 2], rng=7)
for _p in TRAIN_MODEL.parameters():
    with_grad(_p)
TRAIN_OPT = optim.SGD(TRAIN_MODEL.parameters(), lr=0.1, momentum=0.5)
TRAINER = Trainer(TRAIN_MODEL, nn.cross_entropy, TRAIN_OPT, progress=False)
X8 = np.linspace(-1.0, 1.0, 16).reshape(8, 2)
Y8 = np.array([0, 1, 1, 0, 1, 0, 0, 1])
Y8_LATE_BAD = np.array([0, 1, 1, 0, 1, 0, 0, 5])  # class 5 of 2, met only in the 4th batch
TRAINED = both(params(TRAIN_MODEL), TRAIN_OPT.state_dict, lambda: (TRAINER.epochs_done, TRAINER.history), FILES)


def trainer(**kwargs: Any) -> Trainer:
    return Trainer(TRAIN_MODEL, nn.cross_entropy, TRAIN_OPT, **{"progress": False, **kwargs})


def fit_fewer_epochs_than_done() -> None:
    model = nn.MLP([2, 2], rng=0)
    t = Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1), progress=False)
    t.fit(X8, Y8, batch_size=8, epochs=1)
    before = [p.data.copy() for p in model.parameters()]
    try:
        t.fit(X8, Y8, batch_size=8, epochs=1)  # epochs counts the total: 1 is done already
    finally:
        assert all(np.array_equal(b, p.data) for b, p in zip(before, model.parameters()))


TRAIN_CASES: list[Case] = [
    Case("train/unknown-strategy", lambda: trainer(strategy="sgd"), ValueError,
         ("Trainer", "unknown strategy", "'sgd'", "batched_mean"), TRAINED),
    Case("train/micro-batch-zero", lambda: trainer(strategy="accumulated", micro_batch=0), ValueError,
         ("accumulated", "micro_batch", "0"), TRAINED),
    Case("train/micro-batch-float", lambda: trainer(strategy="accumulated", micro_batch=2.5), ValueError,
         ("micro_batch", "2.5"), TRAINED),
    Case("train/micro-batch-missing", lambda: trainer(strategy="naive_accumulated"), ValueError,
         ("naive_accumulated", "micro_batch", "None"), TRAINED),
    Case("train/micro-batch-with-batched-mean", lambda: trainer(micro_batch=4), ValueError,
         ("Trainer", "micro_batch", "'batched_mean'"), TRAINED),
    Case("train/error-first-without-variant", lambda: trainer(strategy="error_first"), ValueError,
         ("Trainer", "error_first", "variant", "None"), TRAINED),
    Case("train/error-first-unknown-variant", lambda: trainer(strategy="error_first", variant="median"), ValueError,
         ("Trainer", "'median'"), TRAINED),
    Case("train/variant-with-batched-mean", lambda: trainer(variant="mean_input"), ValueError,
         ("Trainer", "variant", "'batched_mean'"), TRAINED),
    Case("train/checkpoint-number", lambda: trainer(checkpoint=42), TypeError, ("Trainer", "checkpoint", "42"),
         TRAINED),
    Case("train/sum-reduced-loss", lambda: Trainer(TRAIN_MODEL, SUM_CE, TRAIN_OPT), ValueError,
         ("Trainer", "'sum'"), TRAINED),
    Case("train/optimizer-of-another-model", lambda: Trainer(MODEL, nn.cross_entropy, TRAIN_OPT), ValueError,
         ("Trainer", "not parameters of the model"), both(TRAINED, M)),
    Case("train/fit-float-epochs", lambda: TRAINER.fit(X8, Y8, epochs=2.5), ValueError,
         ("Trainer.fit", "epochs", "2.5"), TRAINED),
    Case("train/fit-string-epochs", lambda: TRAINER.fit(X8, Y8, epochs="3"), ValueError,
         ("Trainer.fit", "epochs", "'3'"), TRAINED),
    Case("train/fit-negative-seed", lambda: TRAINER.fit(X8, Y8, seed=-1), ValueError,
         ("Trainer.fit", "seed", "-1"), TRAINED),
    Case("train/fit-zero-batch-size", lambda: TRAINER.fit(X8, Y8, batch_size=0), ValueError,
         ("Trainer.fit", "batch_size", ">= 1", "0"), TRAINED),
    Case("train/fit-shuffle-string", lambda: TRAINER.fit(X8, Y8, shuffle="yes"), TypeError,
         ("Trainer.fit", "shuffle", "'yes'"), TRAINED),
    Case("train/fit-length-mismatch", lambda: TRAINER.fit(X8, Y8[:5]), ValueError,
         ("Trainer.fit", "8 samples", "5"), TRAINED),
    Case("train/fit-label-out-of-range-in-a-late-batch",
         lambda: TRAINER.fit(X8, Y8_LATE_BAD, batch_size=2, epochs=1, shuffle=False), ValueError,
         ("Trainer.fit", "epoch 1, batch 4", "5"), TRAINED),
    Case("train/fit-validation-label-out-of-range",
         lambda: TRAINER.fit(X8, Y8, epochs=1, validation=(X8[:2], np.array([0, 9]))), ValueError,
         ("Trainer.fit", "validation data, checked before training", "9"), TRAINED),
    Case("train/fit-validation-not-a-pair", lambda: TRAINER.fit(X8, Y8, validation=X8), TypeError,
         ("Trainer.fit", "validation", "pair"), TRAINED),
    Case("train/fit-validation-other-features",
         lambda: TRAINER.fit(X8, Y8, validation=(np.zeros((2, 3)), np.array([0, 1]))), ValueError,
         ("Trainer.fit", "validation samples", "(3,)", "(2,)"), TRAINED),
    Case("train/fit-sgld-dataset-size-mismatch",
         lambda: Trainer(TRAIN_MODEL, nn.cross_entropy, optim.SGLD(TRAIN_MODEL.parameters(), lr=0.01,
                                                                   dataset_size=100, seed=0),
                         progress=False).fit(X8, Y8, epochs=1),
         ValueError, ("Trainer.fit", "dataset_size=100", "8 samples"), TRAINED),
    Case("train/fit-checkpoint-below-a-file",
         lambda: trainer(checkpoint=A_FILE / "run.ckpt").fit(X8, Y8, epochs=1), CheckpointError,
         ("Trainer.fit", "a_file"), TRAINED),
    Case("train/fit-float-labels-name-the-batch",
         lambda: TRAINER.fit(X8, Y8 + 0.5, batch_size=4, epochs=1, shuffle=False), TypeError,
         ("Trainer.fit", "epoch 1, batch 1", "cross_entropy", "integer class ids"), TRAINED),
    Case("train/fit-wrong-feature-count", lambda: TRAINER.fit(np.ones((8, 3)), Y8, epochs=1), ValueError,
         ("Trainer.fit", "epoch 1, batch 1", "linear", "(2, 3)"), TRAINED),
    Case("train/fit-fewer-epochs-than-done", fit_fewer_epochs_than_done, ValueError,
         ("Trainer.fit", "already trained 1 epochs", "epochs=2")),
    Case("train/evaluate-label-out-of-range", lambda: TRAINER.evaluate(X8, Y8 * 3), ValueError,
         ("cross_entropy", "label 3", "2 classes"), TRAINED),
    Case("train/save-into-a-folder", lambda: TRAINER.save(SCRATCH), CheckpointError,
         ("Trainer.save", "is a directory"), TRAINED),
    Case("train/load-missing-file", lambda: TRAINER.load(MISSING_FILE), CheckpointError,
         ("Trainer.load", "missing.ckpt", "cannot be read"), TRAINED),
    Case("train/load-empty-file", lambda: TRAINER.load(EMPTY_FILE), CheckpointError,
         ("Trainer.load", "empty.ckpt", "empty"), TRAINED),
    Case("train/load-foreign-file", lambda: TRAINER.load(FOREIGN_FILE), CheckpointError,
         ("Trainer.load", "notes.ckpt", "not a checkpoint"), TRAINED),
    Case("train/load-a-folder", lambda: TRAINER.load(SCRATCH), CheckpointError,
         ("Trainer.load", "not a regular file"), TRAINED),
    Case("train/save-over-a-foreign-file", lambda: TRAINER.save(FOREIGN_FILE), CheckpointError,
         ("Trainer.save", "notes.ckpt", "not overwritten"), TRAINED),
]


# ------------------------------------------------------------------------------ checkpoint
CHECKPOINT_CASES: list[Case] = [
    Case("checkpoint/write-history-not-one-per-epoch",
         lambda: write_checkpoint(SCRATCH / "new.ckpt", Checkpoint(TRAIN_MODEL.state_dict(), TRAIN_OPT.state_dict(),
                                                                   2, {"loss": [1.0]})),
         CheckpointError, ("write_checkpoint", "new.ckpt", "one value per epoch", "(2)"),
         both(TRAINED, files(SCRATCH / "new.ckpt"))),
    Case("checkpoint/write-nan-parameter",
         lambda: write_checkpoint(SCRATCH / "new.ckpt", Checkpoint({"w": np.array([np.nan])}, SGD_STATE, 0, {})),
         CheckpointError, ("write_checkpoint", "NaN or inf", "'w'"), files(SCRATCH / "new.ckpt")),
    Case("checkpoint/destination-below-a-file", lambda: check_destination(A_FILE / "run.ckpt"), CheckpointError,
         ("check_destination", "a_file"), FILES),
    Case("checkpoint/read-a-pickle-never-unpickles", lambda: read_checkpoint(PICKLE_FILE), CheckpointError,
         ("read_checkpoint", "evil.ckpt", "pickle"), FILES),
    Case("checkpoint/read-missing-file", lambda: read_checkpoint(MISSING_FILE), CheckpointError,
         ("read_checkpoint", "missing.ckpt"), FILES),
    Case("checkpoint/read-below-a-file", lambda: read_checkpoint(A_FILE / "run.ckpt"), CheckpointError,
         ("read_checkpoint", "run.ckpt"), FILES),
]


# ------------------------------------------------------------------------------ vae
SMALL_VAE = VAE(data_dim=4, hidden=3, latent=2, rng=0)
VAE_OPT = optim.Adam(SMALL_VAE.parameters(), lr=0.01)
VAE_X = (np.arange(12).reshape(3, 4) % 2).astype(float)
VAE_GEN = np.random.default_rng(5)
VAE_STATE = both(params(SMALL_VAE), VAE_OPT.state_dict, generator(VAE_GEN))


def adam_with_lr(lr: float) -> optim.Adam:
    opt = optim.Adam(SMALL_VAE.parameters(), lr=0.01)
    opt.lr = lr  # a schedule that computed a bad rate: the step refuses only after the backward pass
    return opt

VAE_CASES: list[Case] = [
    Case("vae/negative-elbo-eps-wrong-latent", lambda: SMALL_VAE.negative_elbo(VAE_X, np.zeros((3, 3))), ValueError,
         ("negative_elbo", "eps", "(3, 2)", "(3, 3)"), VAE_STATE),
    Case("vae/negative-elbo-one-eps-for-all", lambda: SMALL_VAE.negative_elbo(VAE_X, np.zeros(2)), ValueError,
         ("negative_elbo", "(3, 2)", "(2,)"), VAE_STATE),
    Case("vae/negative-elbo-wrong-pixel-count", lambda: SMALL_VAE.negative_elbo(np.ones((3, 5)), np.zeros((3, 2))),
         ValueError, ("negative_elbo", "x must be a batch of shape (batch, 4)", "(3, 5)"), VAE_STATE),
    Case("vae/negative-elbo-one-sample-without-batch-axis", lambda: SMALL_VAE.negative_elbo(VAE_X[0], np.zeros((1, 2))),
         ValueError, ("negative_elbo", "(batch, 4)", "got (4,)", "x.reshape(1, -1)"), VAE_STATE),
    Case("vae/reconstruct-wrong-pixel-count", lambda: SMALL_VAE.reconstruct(np.ones((2, 3))), ValueError,
         ("reconstruct", "(batch, 4)", "(2, 3)"), VAE_STATE),
    Case("vae/zero-latent", lambda: VAE(data_dim=4, hidden=3, latent=0), ValueError, ("VAE", "latent", "0")),
    Case("vae/seed-a-string", lambda: VAE(data_dim=4, hidden=3, latent=2, rng="abc"), TypeError,
         ("VAE", "seed", "'abc'")),
    Case("vae/sample-negative-count", lambda: SMALL_VAE.sample(-1, rng=0), ValueError,
         ("VAE.sample", "count", "-1"), VAE_STATE),
    Case("vae/aevb-pixels-outside-0-1-draw-no-noise", lambda: aevb_step(SMALL_VAE, VAE_OPT, VAE_X * 2, 10, VAE_GEN),
         ValueError, ("aevb_step", "[0, 1]", "2.0"), VAE_STATE),
    Case("vae/aevb-one-sample-without-batch-axis", lambda: aevb_step(SMALL_VAE, VAE_OPT, VAE_X[0], 10, VAE_GEN),
         ValueError, ("aevb_step", "(batch, 4)", "x.reshape(1, -1)"), VAE_STATE),
    Case("vae/aevb-with-sgld-counts-n-twice",
         lambda: aevb_step(SMALL_VAE, optim.SGLD(SMALL_VAE.parameters(), lr=0.01, dataset_size=10, seed=0), VAE_X,
                           10, VAE_GEN),
         TypeError, ("aevb_step", "SGLD", "N would count twice"), VAE_STATE),
    Case("vae/aevb-optimizer-of-another-model",
         lambda: aevb_step(SMALL_VAE, optim.SGD([OPT_P], lr=0.1), VAE_X, 10, VAE_GEN), ValueError,
         ("aevb_step", "none of the VAE's parameters"), VAE_STATE),
    Case("vae/aevb-bad-lr-from-a-schedule-puts-grad-and-noise-back",
         lambda: aevb_step(SMALL_VAE, adam_with_lr(-1.0), VAE_X, 10, VAE_GEN), ValueError,
         ("Adam.step", "lr", "-1.0"), VAE_STATE),
    Case("vae/aevb-zero-dataset-size", lambda: aevb_step(SMALL_VAE, VAE_OPT, VAE_X, 0, VAE_GEN), ValueError,
         ("aevb_step", "dataset_size", "0"), VAE_STATE),
    Case("vae/aevb-float-dataset-size", lambda: aevb_step(SMALL_VAE, VAE_OPT, VAE_X, 10.0, VAE_GEN), ValueError,
         ("aevb_step", "dataset_size", "10.0"), VAE_STATE),
    Case("vae/aevb-seed-not-generator", lambda: aevb_step(SMALL_VAE, VAE_OPT, VAE_X, 10, 5), TypeError,
         ("aevb_step", "rng", "Generator"), VAE_STATE),
]


# ------------------------------------------------------------------------------ distributed
DISTRIBUTED_CASES: list[Case] = [
    Case("distributed/unknown-weighting",
         lambda: data_parallel_gradient(MODEL, nn.cross_entropy, X4, Y4, weighting="median"), ValueError,
         ("data_parallel_gradient", "weighting", "'median'"), M),
    Case("distributed/shard-arrays-length-mismatch", lambda: shard_arrays(X4, Y4[:3]), ValueError,
         ("data_parallel_gradient", "(4, 2)", "(3,)")),
    Case("distributed/shard-arrays-scalar", lambda: shard_arrays(1.0, Y4), ValueError,
         ("data_parallel_gradient", "X_shard", "()")),
]


# ------------------------------------------------------------------------------ viz
W_LOSS = (W * W).sum()
W_PICTURE = viz.draw_graph(W_LOSS, renderer="none")
SAVED_BELOW_A_FILE = A_FILE / "graph.svg"
VIZ_STATE = both(M, tensors(W), FILES)


def steps_saved_with_prefix(prefix: str) -> Any:
    return viz.draw_backward_steps(W_LOSS, renderer="none").save(SCRATCH / "steps", prefix=prefix)


VIZ_CASES: list[Case] = [
    Case("viz/draw-graph-of-an-array", lambda: viz.draw_graph(np.ones(3)), TypeError,
         ("draw_graph", "Tensor", "ndarray")),
    Case("viz/draw-graph-zero-max-nodes", lambda: viz.draw_graph(W_LOSS, max_nodes=0), ValueError,
         ("draw_graph", "max_nodes", "0")),
    Case("viz/draw-graph-float-max-nodes", lambda: viz.draw_graph(W_LOSS, max_nodes=2.5), ValueError,
         ("draw_graph", "max_nodes", "2.5")),
    Case("viz/draw-graph-bad-rankdir", lambda: viz.draw_graph(W_LOSS, rankdir="XY"), ValueError,
         ("draw_graph", "rankdir", "'XY'", "LR")),
    Case("viz/draw-graph-bad-view", lambda: viz.draw_graph(W_LOSS, view="tiny"), ValueError,
         ("draw_graph", "view", "'tiny'")),
    Case("viz/draw-graph-number-title", lambda: viz.draw_graph(W_LOSS, title=3), TypeError,
         ("draw_graph", "title", "int")),
    Case("viz/unknown-renderer-at-svg", lambda: viz.draw_graph(W_LOSS, renderer="nope").svg(),
         viz.RendererChoiceError, ("renderer", "'nope'", "auto")),
    Case("viz/available-renderer-unknown", lambda: viz.available_renderer("nope"), viz.RendererChoiceError,
         ("renderer", "'nope'")),
    Case("viz/schematic-unknown-renderer", lambda: viz.schematic_strategies(renderer="nope").svg(),
         viz.RendererChoiceError, "'nope'"),
    Case("viz/walk-zero-max-nodes", lambda: viz.walk(W_LOSS, max_nodes=0), ValueError, ("walk", "max_nodes")),
    Case("viz/save-below-a-file", lambda: W_PICTURE.save(SAVED_BELOW_A_FILE), NotADirectoryError,
         ("save", "a_file", "is a file"), both(VIZ_STATE, files(SAVED_BELOW_A_FILE))),
    Case("viz/save-into-a-folder", lambda: W_PICTURE.save(A_FOLDER_SVG), IsADirectoryError,
         ("save", "is a folder"), VIZ_STATE),
    Case("viz/save-unknown-suffix", lambda: W_PICTURE.save(SCRATCH / "graph.txt"), ValueError,
         ("save", "graph.txt", ".svg"), both(VIZ_STATE, files(SCRATCH / "graph.txt"))),
    Case("viz/draw-strategies-sum-partial", lambda: viz.draw_strategies(MODEL, SUM_CE, X4, Y4), ValueError,
         ("draw_strategies", "'sum'"), VIZ_STATE),
    Case("viz/draw-strategies-one-sample-shown",
         lambda: viz.draw_strategies(MODEL, nn.cross_entropy, X4, Y4, max_samples=1), ValueError,
         ("draw_strategies", "max_samples", "1"), VIZ_STATE),
    Case("viz/draw-strategies-bad-view", lambda: viz.draw_strategies(MODEL, nn.cross_entropy, X4, Y4, view="tiny"),
         ValueError, ("draw_strategies", "'tiny'"), VIZ_STATE),
    Case("viz/draw-strategies-length-mismatch", lambda: viz.draw_strategies(MODEL, nn.cross_entropy, X4, Y4[:2]),
         ValueError, ("draw_strategies", "4 samples", "2"), VIZ_STATE),
    Case("viz/draw-error-first-unknown-variant",
         lambda: viz.draw_error_first(MODEL, nn.cross_entropy, X4, Y4, variant="median"), ValueError,
         ("draw_error_first", "'median'"), VIZ_STATE),
    Case("viz/draw-error-first-mean-residual-needs-mse",
         lambda: viz.draw_error_first(MODEL, nn.cross_entropy, X4, Y4, variant="mean_residual"), ValueError,
         ("draw_error_first", "nn.mse_loss"), VIZ_STATE),
    Case("viz/draw-whose-sum-partial", lambda: viz.draw_whose_activations(MODEL, SUM_CE, X4, Y4), ValueError,
         ("draw_whose_activations", "'sum'"), VIZ_STATE),
    Case("viz/draw-whose-one-row", lambda: viz.draw_whose_activations(MODEL, nn.cross_entropy, X4, Y4, max_rows=1),
         ValueError, ("draw_whose_activations", "max_rows", "1"), VIZ_STATE),
    Case("viz/backward-steps-grad-wrong-shape", lambda: viz.draw_backward_steps(W * 2.0, grad=np.ones(3)),
         ValueError, ("draw_backward_steps", "(3,)", "(2, 3)"), VIZ_STATE),
    Case("viz/backward-steps-no-grad-root", lambda: viz.draw_backward_steps(Tensor([1.0, 2.0]).sum()), ValueError,
         ("draw_backward_steps", "does not require grad")),
    Case("viz/backward-steps-too-many-nodes", lambda: viz.draw_backward_steps(W_LOSS, max_nodes=1), ValueError,
         ("draw_backward_steps", "max_nodes=1"), VIZ_STATE),
    Case("viz/backward-steps-not-a-tensor", lambda: viz.draw_backward_steps([1.0]), TypeError,
         ("draw_backward_steps", "list")),
    Case("viz/backward-steps-save-prefix-with-folder", lambda: steps_saved_with_prefix("../step"), ValueError,
         ("BackwardSteps.save", "prefix", "'../step'"), both(VIZ_STATE, files(SCRATCH / "steps"))),
]


CASES: list[Case] = [*TENSOR_CASES, *NN_CASES, *LOSS_CASES, *GRADCHECK_CASES, *DATA_CASES,
                     *MINIBATCH_CASES, *OPTIM_CASES, *TRAIN_CASES, *CHECKPOINT_CASES, *VAE_CASES,
                     *DISTRIBUTED_CASES, *VIZ_CASES]

PROJECT = Path(tinygrad_mb.__file__).resolve().parent.parent
LIBRARY_DIRS = (PROJECT / "tinygrad_mb", PROJECT / "viz")


def raised_in(exc: BaseException) -> Path:
    """The file of the frame that raised ``exc`` (numpy's errors escaping would point into numpy)."""
    tb = exc.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve()


def message_of(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)  # KeyError's str() would add quotes


# ------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_a_clear_error_of_the_library_and_changes_nothing(case: Case) -> None:
    before = case.state()
    if case.error is None:
        case.call()  # a positive case: it asserts the right result itself
    else:
        with pytest.raises(case.error) as info:
            case.call()
        where = raised_in(info.value)
        assert any(where.is_relative_to(d) for d in LIBRARY_DIRS), (
            f"{type(info.value).__name__} escaped from {where}, not from the library: {info.value}"
        )
        message = message_of(info.value)
        fragments = (case.fragment,) if isinstance(case.fragment, str) else case.fragment
        missing = [f for f in fragments if f not in message]
        assert not missing, f"message {message!r} lacks {missing}"
    assert_same(before, case.state())


def test_the_catalogue_names_are_unique_and_grouped_by_module() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), [n for n, k in Counter(names).items() if k > 1]
    assert all("/" in n for n in names)
