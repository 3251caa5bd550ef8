"""Input checks, coercion and error messages for the autograd core, kept out of its way.

``tensor.py`` tells the autograd story: each operation's forward pass beside its backward
rule. Everything that story needs but is not mathematics lives here: turning user data into
arrays, validating axes, shapes and indices, and writing errors that name the operation, the
shapes involved (printed as Python tuples) and the usual fix. In an operation each check is
one line, such as ``check_matmul(a, b)``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .tensor import Tensor


def shape_str(shape: tuple[int, ...]) -> str:
    """A shape as a Python tuple, the way error messages print it: (3,), (2, 3)."""
    return str(tuple(int(n) for n in shape))


# ------------------------------------------------------------------------------ data
def as_float_array(data: Any, where: str, own_copy: bool = False) -> np.ndarray:
    """Convert user data to a float array: float32 stays float32, everything else float64.

    With ``own_copy`` the result never shares memory with the caller's array (a parameter's
    values are changed in place by optimizers, which must not change the caller's data).
    """
    arr = _float_array(data, where)
    if own_copy and isinstance(data, np.ndarray) and np.may_share_memory(arr, data):
        arr = arr.copy()
    return arr


def _float_array(data: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nested lists, for example
        raise TypeError(f"{where}: cannot make an array from {type(data).__name__}: {exc}") from None
    kind = arr.dtype.kind
    if kind == "f":
        return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)
    if kind in "biu":
        return arr.astype(np.float64)
    raise TypeError(
        f"{where}: data of dtype {arr.dtype} cannot be used; a Tensor holds real numbers "
        f"(float64 by default, float32 when given float32). Convert the data first, "
        f"e.g. np.asarray(values, dtype=float)."
    )


def as_operand(value: Any, like: Tensor) -> Tensor:
    """The other operand of a binary op, as a Tensor.

    A number (Python or numpy scalar) takes the dtype of the tensor it meets, so ``x * 2``
    and ``1 - x`` keep a float32 ``x`` float32; arrays and lists follow numpy's promotion
    (a float32 tensor combined with a float64 array gives float64, as in numpy).
    """
    tensor = type(like)
    if isinstance(value, tensor):
        return value
    if isinstance(value, (int, float, np.number, np.bool_)):
        return tensor(np.asarray(value, dtype=like.data.dtype))
    return tensor(value)


def apply_elementwise(op: str, fn: Callable[[np.ndarray, np.ndarray], Any], a: Tensor, b: Tensor) -> np.ndarray:
    """``fn(a.data, b.data)`` with numpy broadcasting, or an error naming ``op`` and both shapes."""
    try:
        return fn(a.data, b.data)
    except ValueError:
        raise ValueError(
            f"{op}: cannot broadcast shapes {shape_str(a.shape)} and {shape_str(b.shape)}; "
            f"each axis must be equal or 1 (align from the right, or reshape one operand)."
        ) from None


# ------------------------------------------------------------------------------ axes and shapes
def normalize_axis(axis: int | tuple[int, ...] | None, ndim: int, op: str) -> tuple[int, ...]:
    """Axis argument as a sorted tuple of non-negative axes (all axes for None)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % ndim)
    return tuple(sorted(set(out)))


def single_axis(axis: Any, ndim: int, op: str) -> int:
    """One axis (softmax's classes), as a non-negative int."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be a single int (the axis of the classes), got {axis!r}")
    return normalize_axis(int(axis), ndim, op)[0]


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a reduction over ``axes`` has with keepdims=True: reduced axes become 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def check_matmul(a: Tensor, b: Tensor) -> None:
    """Refuse operands ``a @ b`` cannot multiply, naming both shapes."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: cannot multiply {shape_str(a.shape)} by {shape_str(b.shape)}; both operands "
            f"need at least one axis (to scale by a number, use * instead of @)"
        )
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"matmul: cannot multiply {shape_str(a.shape)} by {shape_str(b.shape)}; the last axis "
            f"of the left operand must equal the {'first' if b.ndim == 1 else 'second-to-last'} "
            f"axis of the right one (transpose an operand with .T?)"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: cannot multiply {shape_str(a.shape)} by {shape_str(b.shape)}; "
            f"their batch axes do not broadcast"
        ) from None


def check_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """Inputs of ``nn.linear``: features in the last axis of x, a bias of one value per output."""
    if x.data.shape[-1:] != weight.data.shape[:1]:  # .data.shape: this runs for every layer call
        n = weight.shape[0]
        raise ValueError(
            f"linear: a Linear layer with weight {shape_str(weight.shape)} expects inputs with {n} "
            f"features in the last axis, got shape {shape_str(x.shape)}; a batch is (batch_size, {n})."
        )
    if bias is not None and bias.data.shape != weight.data.shape[1:]:
        raise ValueError(
            f"linear: the bias has shape {shape_str(bias.shape)} but the weight {shape_str(weight.shape)} "
            f"makes {weight.shape[1]} outputs; the bias needs shape ({weight.shape[1]},)"
        )


def reshaped(tensor: Tensor, shape: tuple[Any, ...]) -> np.ndarray:
    """The values of ``reshape(2, 3)`` or ``reshape((2, 3))``, or an error naming both shapes."""
    dims: Sequence[Any] = shape
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        dims = tuple(shape[0])  # reshape((2, 3)) as well as reshape(2, 3)
    target = tuple(operator.index(n) for n in dims)  # integers only: no 2.5 axes
    try:
        return tensor.data.reshape(target)
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape {shape_str(tensor.shape)} ({tensor.size} elements) into {target}; "
            f"the number of elements must stay the same (one axis may be -1 to infer it)"
        ) from None


def permutation(tensor: Tensor, axes: tuple[Any, ...]) -> tuple[int, ...]:
    """The axes of ``transpose(1, 0)`` or ``transpose((1, 0))`` (reversed when none are given)."""
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        axes = tuple(axes[0])  # transpose((1, 0)) as well as transpose(1, 0)
    n = tensor.ndim
    perm = tuple(int(a) for a in axes) if axes else tuple(reversed(range(n)))
    if not all(-n <= a < n for a in perm) or sorted(a % n for a in perm) != list(range(n)):
        raise ValueError(
            f"transpose: axes {perm} are not a permutation of the {n} axes of "
            f"a tensor of shape {shape_str(tensor.shape)}"
        )
    return tuple(a % n for a in perm)


def check_exponent(exponent: Any) -> float:
    """The exponent of ``x ** p``: a number, not a tensor or an array."""
    from .tensor import Tensor

    if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
        raise TypeError(
            "pow: the exponent must be a Python or numpy number (x ** 2, x ** 0.5); "
            "for a tensor exponent write (x.log() * e).exp()."
        )
    return float(exponent)


def check_base(base: Any) -> float:
    """The base of ``number ** x``: a positive number (it becomes exp(x · log base))."""
    if np.ndim(base) != 0 or not base > 0:
        raise ValueError(f"pow: a number raised to a tensor needs a positive base, got {base!r}")
    return float(base)


def check_single_element(tensor: Tensor) -> None:
    if tensor.data.size != 1:
        raise ValueError(
            f"item: only a single-element tensor has one value; this one has shape "
            f"{shape_str(tensor.shape)}. Reduce it first, e.g. .sum() or .mean()."
        )


# ------------------------------------------------------------------------------ indexing
def plain_index(index: Any) -> Any:
    """Replace Tensors and lists inside an index by integer numpy arrays."""
    from .tensor import Tensor

    if isinstance(index, tuple):
        return tuple(plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data.astype(np.intp)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def has_integer_array(index: Any) -> bool:
    """Whether the index holds an integer array (which may pick one element twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) and i.dtype.kind in "iu" for i in parts)


def take(tensor: Tensor, index: Any) -> np.ndarray:
    """``tensor.data[index]`` as an array, or an error naming the index and the shape."""
    try:
        return np.asarray(tensor.data[index])
    except IndexError as exc:
        raise IndexError(f"index: {exc} (tensor of shape {shape_str(tensor.shape)})") from None


# ------------------------------------------------------------------------------ backward
def seed_gradient(tensor: Tensor, grad: Any) -> np.ndarray:
    """The gradient ``backward(grad)`` starts from: ``grad`` checked, or 1 for a single element."""
    from .tensor import Tensor

    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad, so no graph was recorded for it. "
            "Create the parameters with requires_grad=True (and compute outside no_grad())."
        )
    if grad is None:
        if tensor.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be omitted only for a single-element tensor; this one has "
                f"shape {shape_str(tensor.shape)}. Reduce it to a scalar first (e.g. .mean()) "
                f"or pass grad= an array of shape {shape_str(tensor.shape)}."
            )
        return np.ones(tensor.data.shape, tensor.data.dtype)
    seed = as_float_array(grad.data if isinstance(grad, Tensor) else grad, "backward")
    if seed.shape != tensor.shape:
        raise ValueError(
            f"backward: grad has shape {shape_str(seed.shape)} but the tensor has shape "
            f"{shape_str(tensor.shape)}; they must match."
        )
    return seed.astype(tensor.dtype)  # a copy: .grad must not alias the caller's array


def check_gradients(node: Tensor, grads: Any) -> None:
    """A backward rule must return a tuple (or list) with one entry per parent."""
    if not isinstance(grads, (tuple, list)) or len(grads) != len(node.parents):
        got = f"a {type(grads).__name__}" if not isinstance(grads, (tuple, list)) else f"{len(grads)} gradients"
        raise TypeError(
            f"{node.op or 'backward'}: backward returned {got} for an op with {len(node.parents)} "
            f"input(s); return a tuple with one gradient (or None) per input, e.g. (g * local,)."
        )


def as_gradient(node: Tensor, parent: Tensor, grad: Any) -> np.ndarray:
    """A gradient a backward rule returned, as an array of its parent's shape, or a clear error."""
    if not isinstance(grad, np.ndarray):
        if not isinstance(grad, (int, float, np.number)):
            raise TypeError(
                f"{node.op}: backward returned a {type(grad).__name__} as a gradient; return numpy arrays"
            )
        grad = np.asarray(grad)
    if grad.shape != parent.shape:
        hint = ""
        if grad.size != parent.size:
            hint = (" (an input that was broadcast needs its gradient summed back to its shape: "
                    "unbroadcast(g, shape))")
        raise ValueError(
            f"{node.op}: backward returned a gradient of shape {shape_str(grad.shape)} for an input of "
            f"shape {shape_str(parent.shape)}; each gradient must have its input's shape{hint}."
        )
    return grad
