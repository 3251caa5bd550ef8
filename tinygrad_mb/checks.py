"""Input checks, coercion and error messages for the autograd core, kept out of its way.

``tensor.py`` tells the autograd story: each operation's forward pass beside its backward
rule. Everything that story needs but is not mathematics lives here: turning user data into
arrays, validating axes, shapes and indices, and writing errors that name the operation, the
shapes involved (printed as Python tuples) and the usual fix. In an operation each check is
one line, such as ``check_matmul(a, b)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .tensor import Tensor


def shape_str(shape: tuple[int, ...]) -> str:
    """A shape as a Python tuple, the way error messages print it: (3,), (2, 3)."""
    return str(tuple(int(n) for n in shape))


# ------------------------------------------------------------------------------ plain arguments
def describe(value: Any) -> str:
    """A value for an error message, with its type: 2.5 (a float), '231' (a str)."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({with_article(type(value).__name__)})"


def with_article(word: str) -> str:
    """'a float', 'an int', 'an ndarray', 'an SGD': the article goes by the sound, not the letter."""
    vowel_sound = word[:1].lower() in "aeiou" or word == "ndarray" or (word.isupper() and word[:1] in "FHLMNRSX")
    return f"{'an' if vowel_sound else 'a'} {word}"


def is_int(value: Any) -> bool:
    """Python and numpy integers; not bools (``True`` is not a size, an axis or a position)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(value: Any, op: str, what: str, minimum: int | None = None) -> int:
    """``value`` as an int, or an error naming ``op``, ``what`` and the value (2.5, "3", True)."""
    if not is_int(value):
        raise TypeError(f"{op}: {what} must be a whole number (an int), got {describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {what} must be at least {minimum}, got {int(value)}")
    return int(value)


def check_number(value: Any, op: str, what: str, minimum: float | None = None, positive: bool = False) -> float:
    """``value`` as a finite float (not a bool, a string or an array), at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {what} must be a real number, got {describe(value)}")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{op}: {what} must be finite, got {number}")
    if positive and number <= 0:
        raise ValueError(f"{op}: {what} must be positive, got {number:g}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{op}: {what} must be at least {minimum:g}, got {number:g}")
    return number


def check_flag(value: Any, op: str, what: str) -> bool:
    """A yes/no argument: True or False (a string such as "no" would count as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {what} must be True or False, got {describe(value)}")
    return bool(value)


def check_seed(seed: Any, op: str) -> Any:
    """A seed for ``np.random.default_rng``: None, a non-negative int, or a Generator."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if not is_int(seed) or seed < 0:
        raise (TypeError if not is_int(seed) else ValueError)(
            f"{op}: the seed must be a non-negative int, a numpy Generator or None, got {describe(seed)}"
        )
    return int(seed)


def check_float_dtype(dtype: Any, op: str) -> np.dtype:
    """A parameter dtype: float64 or float32 (an int dtype would be silently turned into float64)."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):  # not a dtype at all, e.g. "floaty"
        dt = None
    if dt is None or dt not in (np.dtype(np.float64), np.dtype(np.float32)):  # (a dtype equals None!)
        raise TypeError(f"{op}: dtype must be np.float64 or np.float32, got {describe(dtype)}")
    return dt


def check_layer_sizes(sizes: Any, op: str) -> list[int]:
    """An MLP's widths, input to output: a list of at least two positive ints."""
    if not isinstance(sizes, (list, tuple, np.ndarray)):
        raise TypeError(f"{op}: sizes must be a list of layer widths such as [2, 16, 1], got {describe(sizes)}")
    widths = list(sizes)
    if len(widths) < 2:
        raise ValueError(f"{op}: sizes needs an input and an output size, got {widths}")
    for i, n in enumerate(widths):
        if not is_int(n):
            raise TypeError(f"{op}: sizes[{i}] is {describe(n)}; layer widths are whole numbers, e.g. [2, 16, 1]")
        if n < 1:
            raise ValueError(f"{op}: sizes[{i}] is {int(n)}; every layer needs at least 1 unit, got {widths}")
    return [int(n) for n in widths]


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
    except (ValueError, TypeError, OverflowError) as exc:  # ragged nested lists, for example
        raise TypeError(f"{where}: cannot make an array from {type(data).__name__}: {exc}") from None
    if arr is not data and isinstance(data, np.ma.MaskedArray) and np.ma.is_masked(data):  # asarray drops the mask
        raise TypeError(
            f"{where}: a masked array with {int(np.ma.count_masked(data))} masked value(s): they would be used as "
            f"the numbers stored under the mask. Fill them first (data.filled(value)) or drop those samples."
        )
    kind = arr.dtype.kind
    if kind == "f":
        return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)
    if kind in "biu":
        return arr.astype(np.float64)
    from .tensor import Tensor

    hint = "Convert the data first, e.g. np.asarray(values, dtype=float)."
    if kind == "O" and isinstance(data, (list, tuple)) and any(isinstance(v, Tensor) for v in data):
        hint = "To combine Tensors' values use np.stack([t.data for t in tensors])."
    raise TypeError(
        f"{where}: data of dtype {arr.dtype} cannot be used; a Tensor holds real numbers "
        f"(float64 by default, float32 when given float32). {hint}"
    )


F64, F32 = np.dtype(np.float64), np.dtype(np.float32)  # numpy's dtype objects are shared: `is` compares them


def as_result(data: Any, op: Any) -> np.ndarray:
    """An op's result for ``Tensor.record``, when it is not already a float64 or float32 array.

    numpy returns scalars from full reductions (wrapped here); a custom op may return integers or
    booleans (``x.data > 0``), which become float64 as in ``Tensor()``: kept as they are, ``t * 0.5``
    would cast 0.5 to the integer 0, and the op's gradient to an integer. Other data is an error.
    """
    if type(data) is np.float64 or type(data) is np.float32:  # a full reduction's result: the usual case
        return np.asarray(data)
    return as_float_array(data, f"Tensor.record ({op!r})")


def as_parents(parents: Any, op: Any) -> tuple[Tensor, ...]:
    """``Tensor.record``'s parents given as a list (or another sequence) rather than a tuple."""
    from .tensor import Tensor

    if isinstance(parents, (list, tuple)) and all(isinstance(p, Tensor) for p in parents):
        return tuple(parents)
    raise TypeError(_parents_message(parents, op))


def any_requires_grad(parents: tuple[Tensor, ...], op: Any) -> bool:
    """Whether ``Tensor.record`` records the op: some parent requires grad (a non-Tensor parent is an error)."""
    wanted = False
    try:
        for t in parents:  # a plain loop: this runs for every op, and any(<generator>) is slower
            if t.requires_grad:  # no early return: a later parent that is not a Tensor is an error too
                wanted = True
    except AttributeError:  # a parent that is not a Tensor (a numpy array?)
        raise TypeError(_parents_message(parents, op)) from None
    return wanted


def _parents_message(parents: Any, op: Any) -> str:
    from .tensor import Tensor

    items = list(parents) if isinstance(parents, (list, tuple)) else []
    bad = next((f"parent {i} is {describe(p)}" for i, p in enumerate(items) if not isinstance(p, Tensor)),
               f"got {describe(parents)}")
    return (f"Tensor.record ({op!r}): parents must be a tuple of the Tensors the result was computed from, "
            f"e.g. (x,) or (a, b); {bad}. Wrap data that needs no gradient in Tensor(...).")


def requires_grad_flag(value: Any) -> bool:
    """Tensor's ``requires_grad``: True or False (``requires_grad="no"`` would mean True)."""
    return value if value is True or value is False else check_flag(value, "Tensor", "requires_grad")


def as_operand(value: Any, like: Tensor) -> Tensor:
    """The other operand of a binary op, as a Tensor.

    A number (Python or numpy scalar) takes the dtype of the tensor it meets, so ``x * 2``
    and ``1 - x`` keep a float32 ``x`` float32; arrays and lists follow numpy's promotion
    (a float32 tensor combined with a float64 array gives float64, as in numpy).
    """
    tensor = type(like)
    if isinstance(value, tensor):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):  # not complex: it has no float
        try:
            return tensor(np.asarray(value, dtype=like.data.dtype))
        except OverflowError:  # an int too large for a float
            raise TypeError(f"Tensor: the number {describe(value)} is too large for {like.dtype}") from None
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
def normalize_axis(axis: Any, shape: tuple[int, ...], op: str, keepdims: Any = False) -> tuple[int, ...]:
    """A reduction's axis argument as a sorted tuple of non-negative axes (all axes for None).

    ``axis`` is None, an int or a tuple (or list) of distinct ints, as in numpy; floats and
    bools are refused, not truncated. ``max`` and ``mean`` over no elements are undefined
    (numpy's "zero-size array" error, or a nan), so they are refused too.
    """
    ndim = len(shape)
    if keepdims is not False and keepdims is not True:
        check_flag(keepdims, op, "keepdims")
    if axis is None:
        axes: tuple[int, ...] = tuple(range(ndim))
    else:
        items = (axis,) if is_int(axis) else axis
        if not isinstance(items, (tuple, list)):
            raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got {describe(axis)}")
        found = set()
        for a in items:
            if type(a) is not int and not is_int(a):  # the type test first: a Python int is the usual axis
                raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, got {describe(axis)}")
            if not -ndim <= a < ndim:
                raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
            found.add(int(a) % ndim)
        if len(found) != len(items):
            raise ValueError(f"{op}: axis {tuple(int(a) for a in items)} names an axis twice; list each axis once")
        axes = tuple(sorted(found))
    if op != "sum" and 0 in shape and any(shape[a] == 0 for a in axes):
        raise ValueError(
            f"{op}: cannot take the {'maximum' if op == 'max' else op} over no elements: the tensor has "
            f"shape {shape_str(shape)} and axis {next(a for a in axes if shape[a] == 0)} has size 0"
        )
    return axes


def single_axis(axis: Any, shape: tuple[int, ...], op: str) -> int:
    """One axis (softmax's classes), as a non-negative int."""
    if not is_int(axis):
        raise TypeError(f"{op}: axis must be a single int (the axis of the classes), got {describe(axis)}")
    return normalize_axis(int(axis), shape, op)[0]  # an empty axis is refused there: no classes


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


def _int_list(args: tuple[Any, ...], op: str, what: str) -> tuple[int, ...]:
    """``f(2, 3)`` or ``f((2, 3))`` (or a list) as a tuple of ints; 2.0, "3" and True are refused."""
    items: Any = args
    if len(args) == 1 and not is_int(args[0]):
        items = args[0]  # reshape((2, 3)) as well as reshape(2, 3)
        if isinstance(items, np.ndarray):
            items = list(items.reshape(-1)) if items.ndim < 2 else items.tolist()  # 0-d: one size
        if not isinstance(items, (tuple, list)):
            raise TypeError(f"{op}: {what} must be ints, e.g. {op}(2, 3) or {op}((2, 3)), got {describe(items)}")
    bad = [n for n in items if not is_int(n)]
    if bad:
        raise TypeError(f"{op}: {what} must be ints, got {describe(bad[0])} in {tuple(items)}")
    return tuple(int(n) for n in items)


def reshaped(tensor: Tensor, shape: tuple[Any, ...]) -> np.ndarray:
    """The values of ``reshape(2, 3)`` or ``reshape((2, 3))``, or an error naming both shapes."""
    target = _int_list(shape, "reshape", "the new sizes")  # integers only: no 2.5 axes
    try:
        return tensor.data.reshape(target)
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape {shape_str(tensor.shape)} ({tensor.size} elements) into {target}; "
            f"the number of elements must stay the same (one axis may be -1 to infer it)"
        ) from None


def permutation(tensor: Tensor, axes: tuple[Any, ...]) -> tuple[int, ...]:
    """The axes of ``transpose(1, 0)`` or ``transpose((1, 0))`` (reversed when none are given)."""
    n = tensor.ndim
    perm = _int_list(axes, "transpose", "axes") if axes else tuple(reversed(range(n)))
    if not all(-n <= a < n for a in perm) or sorted(a % n for a in perm) != list(range(n)):
        raise ValueError(
            f"transpose: axes {perm} are not a permutation of the {n} axes of "
            f"a tensor of shape {shape_str(tensor.shape)}"
        )
    return tuple(a % n for a in perm)


def check_exponent(exponent: Any) -> float:
    """The exponent of ``x ** p``: a number, not a tensor, an array, a string or a bool."""
    from .tensor import Tensor

    if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
        raise TypeError(
            "pow: the exponent must be a Python or numpy number (x ** 2, x ** 0.5); "
            "for a tensor exponent write (x.log() * e).exp()."
        )
    value = exponent.item() if isinstance(exponent, np.ndarray) else exponent
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"pow: the exponent must be a real number (x ** 2, x ** 0.5), got {describe(exponent)}")
    try:
        return float(value)
    except OverflowError:  # an int beyond the floats
        raise ValueError(f"pow: the exponent {describe(exponent)} is too large for a float") from None


def check_base(base: Any) -> float:
    """The base of ``number ** x``: a positive number (it becomes exp(x · log base))."""
    if isinstance(base, (bool, np.bool_)) or not isinstance(base, (int, float, np.integer, np.floating)):
        raise TypeError(f"pow: a number raised to a tensor needs a real, positive base, got {describe(base)}")
    try:
        value = float(base)
    except OverflowError:  # an int beyond the floats
        value = float("inf")
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"pow: a number raised to a tensor needs a finite, positive base, got {describe(base)}")
    return value


def check_single_element(tensor: Tensor) -> None:
    if tensor.data.size != 1:
        raise ValueError(
            f"item: only a single-element tensor has one value; this one has shape "
            f"{shape_str(tensor.shape)}. Reduce it first, e.g. .sum() or .mean()."
        )


def length(tensor: Tensor) -> int:
    """``len(x)``: the size of the first axis, as for a numpy array."""
    if tensor.data.ndim == 0:
        raise TypeError("len: a 0-d tensor (a single number) has no length and no rows; use .item() for its value")
    return len(tensor.data)


def rows(tensor: Tensor) -> Iterator[Tensor]:
    """``for row in x``: x[0], x[1], ... along the first axis (a 0-d tensor has none: an error)."""
    return (tensor[i] for i in range(length(tensor)))


def truth(tensor: Tensor) -> bool:
    """``if x:`` -- defined for a single element only, as in numpy (for several it is ambiguous)."""
    if tensor.data.size != 1:
        raise ValueError(
            f"bool: a tensor of shape {shape_str(tensor.shape)} has no single truth value; for one "
            f"element use x.item(), for several write (x.data > 0).any() or .all()"
        )
    return bool(tensor.data.reshape(()))


# ------------------------------------------------------------------------------ indexing
def plain_index(index: Any) -> Any:
    """The index ``x[index]`` as numpy understands it: numpy's rules, and Tensors hold positions.

    Ints, slices, None, ``...``, integer arrays and boolean arrays mean what they mean in
    numpy: a boolean array is a mask and picks the elements where it is True (each once). A
    list becomes an array first, so ``[0, 2]`` picks positions and ``[True, False]`` is a mask.
    Positions must be whole numbers: floats (``1.0``, a float array) are refused, never truncated.

    A Tensor holds floats (``Tensor(mask)`` stores True as 1.0), so it cannot be a mask: a
    Tensor used as an index must hold whole numbers, the positions to pick, and
    ``x[Tensor([1.0, 0.0])]`` picks rows 1 and 0. To select with a mask that is a Tensor,
    pass ``mask.data.astype(bool)``.
    """
    if type(index) is int:  # the usual case, x[i]: nothing to convert
        return index
    if isinstance(index, tuple):
        return tuple(_plain_part(part) for part in index)
    return _plain_part(index)


POSITIONS_FIX = "use integer positions, or a numpy boolean mask to select (mask.data.astype(bool) for a Tensor)"


def _plain_part(part: Any) -> Any:
    from .tensor import Tensor

    if isinstance(part, Tensor):
        values = part.data
        whole = np.isfinite(values) & (values == np.round(values))
        if not whole.all():
            raise TypeError(
                f"index: a Tensor used as an index must hold whole numbers (positions), got values like "
                f"{values[~whole].ravel()[:3].tolist()}; {POSITIONS_FIX}"
            )
        return values.astype(np.intp)
    if isinstance(part, list):
        try:
            part = np.asarray(part) if part else np.zeros(0, np.intp)  # [] picks nothing, as in numpy
        except ValueError:  # a ragged list
            raise TypeError(f"index: the list {describe(part)} is not a rectangular array of positions") from None
    if isinstance(part, np.ndarray):
        if part.dtype.kind not in "biu":
            raise TypeError(f"index: an array of dtype {part.dtype} cannot index; {POSITIONS_FIX}")
        return part
    if isinstance(part, (float, np.floating)):
        raise TypeError(f"index: {describe(part)} is not a position; positions are whole numbers, e.g. x[int(i)]")
    if isinstance(part, slice):
        for bound in (part.start, part.stop, part.step):
            if bound is not None and not is_int(bound):
                raise TypeError(f"index: slice bounds must be ints or None, got {describe(bound)} in {part}")
        return part
    if part is None or part is Ellipsis or isinstance(part, (int, np.integer, np.bool_)):
        return part
    raise TypeError(
        f"index: cannot index with {describe(part)}; use ints, slices, None, ..., integer positions "
        f"(a list or an integer array) or a numpy boolean mask, as in numpy"
    )


def has_integer_array(index: Any) -> bool:
    """Whether the index holds an integer array (which may pick one element twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) and i.dtype.kind in "iu" for i in parts)


def take(tensor: Tensor, index: Any) -> np.ndarray:
    """``tensor.data[index]`` as an array, or an error naming the index and the shape."""
    try:
        return np.asarray(tensor.data[index])
    except (IndexError, ValueError) as exc:  # out of range, a mask of the wrong shape, a slice step 0
        raise type(exc)(f"index: {exc} (tensor of shape {shape_str(tensor.shape)})") from None


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


def accumulable(node: Tensor, g: Any) -> np.ndarray:
    """A complete gradient for backward to store, as an array (numpy makes 0-d results scalars).

    It must fit the node's .grad, if it has one. This is checked before backward stores anything,
    so a .grad set by hand to a wrong shape is an error, not a silent broadcast or a half-done pass.
    """
    g = g if type(g) is np.ndarray else np.asarray(g)
    grad = node.grad
    if grad is None or (type(grad) is np.ndarray and grad.shape == g.shape):  # the usual cases
        return g
    from .tensor import Tensor

    name = f"{node.name!r}" if node.name else f"a tensor of shape {shape_str(node.shape)}"
    try:
        kind = "O" if isinstance(grad, Tensor) else np.asarray(grad).dtype.kind  # np.asarray(Tensor) has objects
    except (ValueError, TypeError):  # a ragged list
        kind = "O"
    if kind not in "fiub":
        raise TypeError(
            f"backward: {name} holds a .grad that is {describe(grad)}, so its gradient cannot be added to it; "
            f"a .grad is a numpy array of its tensor's shape. Set .grad = None (or np.zeros_like(x.data)) first."
        )
    if np.shape(grad) != g.shape:
        raise ValueError(
            f"backward: {name} already holds a .grad of shape {shape_str(np.shape(grad))}, so its "
            f"gradient of shape {shape_str(g.shape)} cannot be added to it; a .grad has its tensor's shape. "
            f"Set .grad = None (or call zero_grad()) first."
        )
    return g


def check_gradients(node: Tensor, grads: Any) -> None:
    """A backward rule must return a tuple (or list) with one entry per parent."""
    if not isinstance(grads, (tuple, list)) or len(grads) != len(node.parents):
        got = with_article(type(grads).__name__) if not isinstance(grads, (tuple, list)) else f"{len(grads)} gradients"
        raise TypeError(
            f"{node.op or 'backward'}: backward returned {got} for an op with {len(node.parents)} "
            f"input(s); return a tuple with one gradient (or None) per input, e.g. (g * local,)."
        )


def cast_gradient(node: Tensor, parent: Tensor, grad: np.ndarray) -> np.ndarray:
    """A gradient of another dtype than its parent's, cast to it: real numbers only (not complex or object)."""
    if grad.dtype.kind not in "fiub":
        raise TypeError(
            f"{node.op}: backward returned a gradient of dtype {grad.dtype} for an input of dtype {parent.dtype}; "
            f"a gradient holds real numbers (casting would drop an imaginary part or convert objects silently)"
        )
    if parent.data.dtype.kind != "f":  # .data assigned by hand, e.g. w.data = np.eye(2, dtype=int)
        name = f"{parent.name!r}" if parent.name else f"of shape {shape_str(parent.shape)}"
        raise TypeError(
            f"{node.op}: its input {name} holds {parent.data.dtype} data, so its gradient would be rounded to "
            f"{parent.data.dtype}; a Tensor's .data is float64 or float32 (assign x.data = values.astype(np.float64))"
        )
    return grad.astype(parent.data.dtype)


def as_gradient(node: Tensor, parent: Tensor, grad: Any) -> np.ndarray:
    """A gradient a backward rule returned, as an array of its parent's shape, or a clear error."""
    if not isinstance(grad, np.ndarray):
        if not isinstance(grad, (int, float, np.number)):
            raise TypeError(
                f"{node.op}: backward returned {with_article(type(grad).__name__)} as a gradient; return numpy arrays"
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
