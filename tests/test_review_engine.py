"""An adversarial review of the engine: each test is one finding, named after the property it checks.

Each failed before its fix (a silently wrong value, a crash inside numpy or Python, or changed state)
and names the input that showed it. The catalogue of tests/test_bad_input.py is not repeated here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinygrad_mb
from tinygrad_mb import GradcheckError, Tensor, gradcheck, is_grad_enabled, nn, no_grad

LIBRARY = Path(tinygrad_mb.__file__).resolve().parent


def raised_in_library(info: pytest.ExceptionInfo[BaseException]) -> bool:
    """Whether the error was raised by the library's own code (not numpy's, not Python's)."""
    tb = info.value.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(LIBRARY)


# ------------------------------------------------------------------------------ Tensor.record
def test_record_makes_integer_and_boolean_results_float():
    # A custom op returning integers kept them: t * 0.5 cast 0.5 to the integer 0 and gave [0, 0],
    # and a straight-through step (x.data > 0, gradient g) was a bool tensor whose gradient was cast to bool.
    x = Tensor([-1.0, 2.0], requires_grad=True)
    counts = Tensor.record(np.array([3, 4]), (x,), "counts", lambda g: (np.zeros(2),))
    assert counts.dtype == np.float64
    np.testing.assert_array_equal((counts * 0.5).data, [1.5, 2.0])
    step = Tensor.record(x.data > 0, (x,), "step", lambda g: (g,))
    assert step.dtype == np.float64
    np.testing.assert_array_equal((step + 0.5).data, [0.5, 1.5])
    (step * 0.25).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.25, 0.25])


@pytest.mark.parametrize("data", [np.array([1j, 2.0]), np.array(["a", "b"]), np.array([1.0, None])],
                         ids=["complex", "strings", "objects"])
def test_record_refuses_results_that_are_not_real_numbers(data):
    # They became Tensors of dtype complex128, <U1 or object, with no error.
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"Tensor.record \('my_op'\): data of dtype") as info:
        Tensor.record(data, (x,), "my_op", lambda g: (g,))
    assert raised_in_library(info)


@pytest.mark.parametrize("parents", ["array", "tensor", "none"])
def test_record_parents_that_are_not_a_tuple_of_tensors_are_a_clear_error(parents):
    # A numpy parent raised numpy's AttributeError ('requires_grad') from tensor.py; a Tensor given
    # as the parents (x instead of (x,)) was iterated into its rows, x[0], x[1], which became the parents.
    x = Tensor([1.0, 2.0], requires_grad=True)
    given = {"array": (x.data,), "tensor": x, "none": None}[parents]
    with pytest.raises(TypeError, match=r"Tensor.record \('my_op'\): parents must be a tuple of .*Tensors") as info:
        Tensor.record(x.data * 2, given, "my_op", lambda g: (g,))
    assert raised_in_library(info)
    assert Tensor.record(x.data * 2, [x], "my_op", lambda g: (g * 2,)).parents == (x,)  # a list is fine


def test_a_complex_or_object_gradient_from_a_rule_is_an_error_not_a_silent_cast():
    # A rule returning complex gradients had the imaginary part dropped (numpy's ComplexWarning), and
    # an object array was cast; both left a .grad as if nothing were wrong.
    for rule in (lambda g: (g + 1j,), lambda g: (g.astype(object),)):
        x = Tensor([1.0, 2.0], requires_grad=True)
        with pytest.raises(TypeError, match=r"my_op: backward returned a gradient of dtype (complex128|object)"):
            Tensor.record(x.data * 2, (x,), "my_op", rule).sum().backward()
        assert x.grad is None


# ------------------------------------------------------------------------------ operations
def test_the_divisor_gradient_does_not_overflow_where_it_is_representable():
    # d(a/b)/db was computed as -a/(b*b): in float32, b = 1e20 overflowed b*b to inf and gave -0
    # (the truth is -1e-20), and b = 1e-23 underflowed it to 0 and gave -inf (the truth is -1e23).
    for value, expected in ((1e20, -1e-20), (1e-23, -1e23)):
        a = Tensor(np.float32([value]), requires_grad=True)
        b = Tensor(np.float32([value]), requires_grad=True)
        (a / b).sum().backward()
        np.testing.assert_allclose(b.grad, [expected], rtol=1e-6)
        np.testing.assert_allclose(a.grad, [1 / np.float32(value)], rtol=1e-6)
        assert b.grad.dtype == np.float32


def test_binary_cross_entropy_backpropagates_into_targets_that_require_grad():
    # Soft targets that require grad (another model's probabilities) got no gradient at all: the loss
    # did not even require grad when the logits were data, and a model's targets stayed untrained.
    logits = Tensor(np.array([[1.0, -2.0], [0.5, 3.0]]), requires_grad=True)
    targets = Tensor(np.array([[0.2, 0.9], [0.5, 0.1]]), requires_grad=True)
    assert nn.binary_cross_entropy(logits.data, targets).requires_grad
    assert gradcheck(lambda x, t: nn.binary_cross_entropy(x, t, reduction="none"), [logits, targets])
    nn.binary_cross_entropy(logits, targets, reduction="sum").backward()
    np.testing.assert_allclose(targets.grad, -logits.data / 2)  # dℓ/dt = −x / D, D = 2 outputs


# ------------------------------------------------------------------------------ gradcheck
@pytest.mark.parametrize("value", [1e8, 1e10, 1e12])
def test_gradcheck_passes_a_correct_gradient_at_large_values(value):
    # The step 1e-6 is lost in rounding next to 1e8 and beyond: gradcheck reported numeric gradients
    # like 0 or 9.5 for x * 3 (whose derivative is 3) and blamed "the backward of some op".
    x = Tensor([value, -value / 3], requires_grad=True)
    assert gradcheck(lambda t: t * 3.0, [x])
    assert gradcheck(lambda t: t.log(), [Tensor([value], requires_grad=True)])


def test_gradcheck_names_a_nondeterministic_fn_instead_of_blaming_backward():
    # fn drawing fresh noise each call made gradcheck report "the backward of some op on the path is wrong".
    rng = np.random.default_rng(0)
    x = Tensor([0.5, -0.3], requires_grad=True)
    with pytest.raises(GradcheckError, match=r"gradcheck: fn gave .* for the same inputs.*random numbers"):
        gradcheck(lambda t: t * rng.normal(), [x])


def test_gradcheck_leaves_inputs_as_they_were_when_fn_changes_them():
    # fn adding 1 to an input in place left that input changed after gradcheck (its docstring promises
    # the inputs' values back), with an error blaming the backward.
    x = Tensor([2.0, 3.0], requires_grad=True)
    y = Tensor([1.0, 1.0])

    def changes_inputs(t: Tensor, u: Tensor) -> Tensor:
        t.data[0] += 1.0
        u.data = u.data + 1.0  # rebinding .data, too
        return t * u

    with pytest.raises(GradcheckError, match="leaves its inputs alone"):
        gradcheck(changes_inputs, [x, y])
    np.testing.assert_array_equal(x.data, [2.0, 3.0])
    np.testing.assert_array_equal(y.data, [1.0, 1.0])


def test_gradcheck_refuses_an_eps_too_small_to_move_the_input():
    # eps=1e-300 does not change 0.5 in float64: the numeric gradient was 0 and the backward was blamed.
    with pytest.raises(ValueError, match=r"gradcheck: eps=1e-300 is too small .* input 0, element \(0,\)"):
        gradcheck(lambda t: t * t, [Tensor([0.5], requires_grad=True)], eps=1e-300)


# ------------------------------------------------------------------------------ no_grad
def test_one_no_grad_object_can_be_entered_again_and_nested():
    # `ctx = no_grad()` then `with ctx:` a second time raised AttributeError from inside contextlib.
    x = Tensor([1.0], requires_grad=True)
    ctx = no_grad()
    for _ in range(2):
        with ctx:
            assert not (x * 2).requires_grad
            with ctx:
                assert not is_grad_enabled()
            assert not is_grad_enabled()
        assert is_grad_enabled()
    with pytest.raises(ValueError), ctx:
        raise ValueError("inside")
    assert is_grad_enabled()

    @no_grad()
    def evaluate() -> Tensor:
        return x * 2

    assert not evaluate().requires_grad and is_grad_enabled()
    with pytest.raises(TypeError, match=r"no_grad: takes no arguments.*@no_grad\(\)") as info:
        no_grad(evaluate)
    assert raised_in_library(info)


# ------------------------------------------------------------------------------ Module
def test_parameters_are_found_in_a_container_that_holds_itself():
    # A list (or a dict) holding itself -- a tree of dicts with parent links, say -- made parameters()
    # recurse until RecursionError.
    class Model(nn.Module):
        def __init__(self) -> None:
            self.scale = Tensor([1.0], requires_grad=True)
            self.tree: dict = {"children": [], "w": Tensor([2.0], requires_grad=True)}
            self.tree["children"].append({"parent": self.tree, "w": Tensor([3.0], requires_grad=True)})
            self.loop: list = [Tensor([4.0], requires_grad=True)]
            self.loop.append(self.loop)

    names = [name for name, _ in Model().named_parameters()]
    assert names == ["scale", "tree.children.0.w", "tree.w", "loop.0"]


def test_state_dict_refuses_two_parameters_of_one_name():
    # Dict keys 0 and "0" both give the name "heads.0": state_dict kept one of the two parameters and
    # load_state_dict restored only that one, leaving the other silently as it was.
    class Model(nn.Module):
        def __init__(self) -> None:
            self.heads = {0: Tensor([1.0], requires_grad=True), "0": Tensor([2.0], requires_grad=True)}

    model = Model()
    with pytest.raises(ValueError, match=r"state_dict: two different parameters are both named 'heads.0'"):
        model.state_dict()
    with pytest.raises(ValueError, match=r"load_state_dict: two different parameters .* 'heads.0'"):
        model.load_state_dict({"heads.0": np.zeros(1)})
    assert [p.data.tolist() for p in model.parameters()] == [[1.0], [2.0]]


# ------------------------------------------------------------------------------ backward
def test_a_grad_set_to_a_tensor_is_a_clear_error_before_any_grad_changes():
    # p.grad = Tensor(...) (as in PyTorch) made backward store an object array of Tensors in .grad,
    # which an optimizer then failed on with a numpy casting error.
    a = Tensor([1.0, 2.0], requires_grad=True, name="a")
    b = Tensor([3.0, 4.0], requires_grad=True, name="b")
    a.grad = np.zeros(2)
    b.grad = Tensor([0.0, 0.0])
    with pytest.raises(TypeError, match=r"backward: 'b' holds a .grad that is Tensor\(.*a numpy array") as info:
        (a * b).sum().backward()
    assert raised_in_library(info)
    np.testing.assert_array_equal(a.grad, [0.0, 0.0])  # nothing was added before the error


# ------------------------------------------------------------------------------ data
def test_a_masked_array_with_masked_values_is_refused_not_unmasked():
    # np.asarray drops a masked array's mask: the numbers stored under it (999 here) became data and
    # targets without a word, e.g. an mse_loss of 0.5 * 997**2 instead of an error.
    targets = np.ma.array([1.0, 999.0], mask=[False, True])
    for call in (lambda: Tensor(targets), lambda: nn.mse_loss(Tensor([1.0, 2.0]), targets),
                 lambda: nn.Linear(2, 1, rng=0)(np.ma.array([[1.0, 999.0]], mask=[[False, True]]))):
        with pytest.raises(TypeError, match=r"masked array with 1 masked value.*filled") as info:
            call()
        assert raised_in_library(info)
    np.testing.assert_array_equal(Tensor(np.ma.array([1.0, 2.0])).data, [1.0, 2.0])  # nothing masked: fine


def test_a_gradient_is_not_rounded_to_integers_when_data_was_assigned_integers():
    # w.data = np.eye(2, dtype=int) (weights set by hand) made backward cast w's gradient to int64:
    # 2 * 0.3 * 1 = 0.6 was stored as 0 in .grad, silently.
    layer = nn.Linear(2, 2, rng=0)
    layer.weight.data = np.eye(2, dtype=int)
    before = [p.grad for p in layer.parameters()]
    with pytest.raises(TypeError, match=r"linear: its input 'W' holds int64 data.*astype\(np.float64\)") as info:
        (layer(Tensor([[0.3, 0.7]])) ** 2).sum().backward()
    assert raised_in_library(info)
    assert [p.grad for p in layer.parameters()] == before == [None, None]
