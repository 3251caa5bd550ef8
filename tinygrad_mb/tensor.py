"""The Tensor: a numpy array that records how it was computed, and reverse-mode autodiff.

Every operation below computes its result and, right beside it, a small ``backward``
function: given the gradient of the final output with respect to this result (``g``),
it returns the gradient with respect to each input. That is the chain rule, applied
at the exact place the operation happens.

``Tensor.backward`` then visits the recorded graph from the output back to the leaves,
in an order where every node is processed only after everything that depends on it
(a reverse topological order), so each node's gradient is complete before it is
passed on. The order is computed with an explicit stack, so a chain of 100,000
operations backpropagates without hitting Python's recursion limit.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Union

import numpy as np

ArrayLike = Union["Tensor", np.ndarray, float, int, Sequence[Any]]
Backward = Callable[[np.ndarray], tuple[Any, ...]]

_grad_enabled = True


@contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block operations record no graph (use it for evaluation and updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return _grad_enabled


def shape_str(shape: tuple[int, ...]) -> str:
    """A shape as a Python tuple, the way error messages print it: (3,), (2, 3)."""
    return str(tuple(int(n) for n in shape))


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reduce a gradient of a broadcast result back to the operand's ``shape``.

    Broadcasting copies an operand along new leading axes and along axes of size 1.
    Each copy receives its own share of the upstream gradient, so the operand's
    gradient is the *sum* over the copies: sum away the added leading axes, then sum
    (keeping the axis) wherever the operand had size 1.
    """
    if grad.shape == shape:
        return grad
    if grad.size == math.prod(shape):  # only axes of size 1 were added: each sum has one term
        return grad.reshape(shape)
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _as_float_array(data: Any, where: str) -> np.ndarray:
    """Convert user data to a float array: float32 stays float32, everything else float64."""
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


def _operand(value: ArrayLike, like: Tensor) -> Tensor:
    """The other operand of a binary op, as a Tensor.

    A number (Python or numpy scalar) takes the dtype of the tensor it meets, so ``x * 2``
    and ``1 - x`` keep a float32 ``x`` float32; arrays and lists follow numpy's promotion
    (a float32 tensor combined with a float64 array gives float64, as in numpy).
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, np.number, np.bool_)):
        return Tensor(np.asarray(value, dtype=like.data.dtype))
    return Tensor(value)


def _normalize_axis(axis: int | tuple[int, ...] | None, ndim: int, op: str) -> tuple[int, ...]:
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


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a reduction over ``axes`` has with keepdims=True: reduced axes become 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _spread(g: np.ndarray, kept: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Copy the gradient of a reduction back over every element that was reduced.

    ``g`` is reshaped to the keepdims shape (putting back the reduced axes as size 1),
    then broadcast to the input's shape into a fresh, writable array (a broadcast view
    would be read-only and would surprise anyone updating a .grad in place).
    """
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g.reshape(kept)
    return out


class Tensor:
    """An n-dimensional array of float64 (or float32) that can record its computation graph.

    Args:
        data: numbers, nested lists or a numpy array. Integers and booleans become
            float64; float32 arrays stay float32.
        requires_grad: whether gradients with respect to this tensor are wanted
            (parameters: True; data: False).
        name: optional label, shown in error messages and graph pictures.

    A tensor that requires grad gets its own copy of the values (optimizers update
    parameters in place, which must not change the caller's array); otherwise the
    tensor may share memory with a numpy array it was given.

    Attributes:
        data: the values, a numpy array.
        grad: the accumulated gradient, an array of ``data``'s shape, or None before
            any backward pass reaches this tensor.
    """

    __slots__ = ("data", "grad", "requires_grad", "name", "_prev", "_op", "_backward", "__weakref__")
    # Make numpy hand `array + tensor` to Tensor.__radd__ instead of looping over the array.
    __array_ufunc__ = None

    def __init__(self, data: ArrayLike, requires_grad: bool = False, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        self.data: np.ndarray = _as_float_array(data, "Tensor")
        if requires_grad and isinstance(data, np.ndarray) and np.may_share_memory(self.data, data):
            self.data = self.data.copy()
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._prev: tuple[Tensor, ...] = ()
        self._op = ""
        self._backward: Backward | None = None

    # ---------------------------------------------------------------- graph recording
    @staticmethod
    def _result(data: np.ndarray, parents: tuple[Tensor, ...], op: str, backward: Backward) -> Tensor:
        """Wrap an op's output; record the graph only if some input needs a gradient."""
        out = Tensor.__new__(Tensor)
        out.data = _as_array(data)
        out.grad = None
        out.name = None
        out._op = op
        if _grad_enabled and _any_requires_grad(parents):
            out.requires_grad = True
            out._prev = parents
            out._backward = backward
        else:
            out.requires_grad = False
            out._prev = ()
            out._backward = None
        return out

    # ---------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def op(self) -> str:
        """The operation that produced this tensor ("" for a leaf)."""
        return self._op

    @property
    def parents(self) -> tuple[Tensor, ...]:
        """The tensors this one was computed from (empty for leaves and under no_grad)."""
        return self._prev

    @property
    def is_leaf(self) -> bool:
        return not self._prev

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        extras = ""
        if self.name:
            extras += f", name={self.name!r}"
        if self.requires_grad:
            extras += ", requires_grad=True"
        if self._op:
            extras += f", op={self._op!r}"
        body = np.array2string(self.data, precision=4, threshold=20, separator=", ")
        return f"Tensor({body}{extras})"

    def numpy(self) -> np.ndarray:
        """The values as a numpy array (the same array; copy it before changing it)."""
        return self.data

    def item(self) -> float:
        """The value of a single-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(
                f"item: only a single-element tensor has one value; this one has shape "
                f"{shape_str(self.shape)}. Reduce it first, e.g. .sum() or .mean()."
            )
        return float(self.data.reshape(()))

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's values, cut off from the graph."""
        return Tensor(self.data, requires_grad=False, name=self.name)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (backward calls add to .grad until this)."""
        self.grad = None

    # ---------------------------------------------------------------- backward pass
    def backward(self, grad: ArrayLike | None = None) -> None:
        """Backpropagate from this tensor, *adding* d(self)/d(node) into every node's .grad.

        Args:
            grad: the gradient of some final scalar with respect to this tensor, of this
                tensor's shape. May be omitted only when this tensor has one element
                (then it is 1: the derivative of the tensor with respect to itself).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad, so no graph was recorded for it. "
                "Create the parameters with requires_grad=True (and compute outside no_grad())."
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be omitted only for a single-element tensor; this one has "
                    f"shape {shape_str(self.shape)}. Reduce it to a scalar first (e.g. .mean()) "
                    f"or pass grad= an array of shape {shape_str(self.shape)}."
                )
            seed = np.ones_like(self.data)
        else:
            seed = _as_float_array(grad.data if isinstance(grad, Tensor) else grad, "backward")
            if seed.shape != self.shape:
                raise ValueError(
                    f"backward: grad has shape {shape_str(seed.shape)} but the tensor has shape "
                    f"{shape_str(self.shape)}; they must match."
                )
            seed = seed.astype(self.dtype)  # a copy: .grad must not alias the caller's array

        # Gradients of this pass are gathered in `pending` and only then added into .grad,
        # so a second backward call adds its own contribution instead of re-sending the
        # first. Reverse topological order guarantees that when a node is reached, every
        # node that uses it has already sent its share: its gradient is complete.
        pending: dict[Tensor, np.ndarray] = {self: seed}
        kept: set[int] = set()  # ids of the arrays this pass stored as some tensor's .grad
        for node in reversed(topological_order(self)):
            g = pending.pop(node, None)
            if g is None:
                continue
            if type(g) is not np.ndarray:  # numpy turns 0-d results into scalars
                g = np.asarray(g)
            backward = node._backward
            if node.grad is not None:
                node.grad = _as_array(node.grad + g)
            else:
                # Ops pass gradients on without copying (add hands the same array to both
                # operands). A leaf -- a parameter -- gets an array of its own, so that changing
                # its .grad in place (clipping, say) cannot change another tensor's.
                if backward is None and (id(g) in kept or not g.flags.owndata):
                    g = g.copy()
                node.grad = g
                kept.add(id(g))
            if backward is None:  # a leaf: nothing further to send
                continue
            for parent, pg in zip(node._prev, backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.dtype != parent.data.dtype:  # e.g. a float32 tensor times a float64 array
                    pg = pg.astype(parent.data.dtype)
                if parent in pending:
                    pending[parent] = pending[parent] + pg  # fan-out: a tensor used twice
                else:
                    pending[parent] = pg

    # ---------------------------------------------------------------- elementwise binary ops
    # Each backward returns None for an operand that needs no gradient (data, constants),
    # so no work is spent on it.
    def _binary(self, other: ArrayLike, op: str,
                fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[Tensor, np.ndarray]:
        other = _operand(other, self)
        try:
            data = fn(self.data, other.data)
        except ValueError:
            raise ValueError(
                f"{op}: cannot broadcast shapes {shape_str(self.shape)} and {shape_str(other.shape)}; "
                f"each axis must be equal or 1 (align from the right, or reshape one operand)."
            ) from None
        return other, data

    def __add__(self, other: ArrayLike) -> Tensor:
        other, data = self._binary(other, "add", np.add)
        a_shape, b_shape = self.shape, other.shape
        need_a, need_b = self.requires_grad, other.requires_grad

        def backward(g):
            # d(a+b)/da = d(a+b)/db = 1: both receive g (summed over broadcast copies)
            return (unbroadcast(g, a_shape) if need_a else None,
                    unbroadcast(g, b_shape) if need_b else None)

        return Tensor._result(data, (self, other), "add", backward)

    def __sub__(self, other: ArrayLike) -> Tensor:
        other, data = self._binary(other, "sub", np.subtract)
        a_shape, b_shape = self.shape, other.shape
        need_a, need_b = self.requires_grad, other.requires_grad

        def backward(g):
            # d(a-b)/da = 1 and d(a-b)/db = -1
            return (unbroadcast(g, a_shape) if need_a else None,
                    unbroadcast(-g, b_shape) if need_b else None)

        return Tensor._result(data, (self, other), "sub", backward)

    def __mul__(self, other: ArrayLike) -> Tensor:
        other, data = self._binary(other, "mul", np.multiply)
        a, b = self.data, other.data
        need_a, need_b = self.requires_grad, other.requires_grad

        def backward(g):
            # d(a*b)/da = b and d(a*b)/db = a
            return (unbroadcast(g * b, a.shape) if need_a else None,
                    unbroadcast(g * a, b.shape) if need_b else None)

        return Tensor._result(data, (self, other), "mul", backward)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        other, data = self._binary(other, "div", np.divide)
        a, b = self.data, other.data
        need_a, need_b = self.requires_grad, other.requires_grad

        def backward(g):
            # d(a/b)/da = 1/b and d(a/b)/db = -a/b^2
            return (unbroadcast(g / b, a.shape) if need_a else None,
                    unbroadcast(-g * a / (b * b), b.shape) if need_b else None)

        return Tensor._result(data, (self, other), "div", backward)

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            raise TypeError(
                "pow: the exponent must be a Python or numpy number (x ** 2, x ** 0.5); "
                "for a tensor exponent write (x.log() * e).exp()."
            )
        p = float(exponent)
        x = self.data
        data = x**p

        def backward(g):
            # d(x^p)/dx = p * x^(p-1); for p = 0 that is 0, but 0 * x^-1 would be nan at x = 0
            return (g * p * x ** (p - 1) if p != 0 else np.zeros_like(g),)

        return Tensor._result(data, (self,), f"pow {p:g}", backward)

    def __neg__(self) -> Tensor:
        return Tensor._result(-self.data, (self,), "neg", lambda g: (-g,))

    # Python numbers and numpy arrays on the left-hand side.
    def __radd__(self, other: ArrayLike) -> Tensor:
        return _operand(other, self) + self

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _operand(other, self) - self

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _operand(other, self) * self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _operand(other, self) / self

    def __rpow__(self, base: float) -> Tensor:
        # base ** x = exp(x * log(base)), defined for a positive number base
        if np.ndim(base) != 0 or not base > 0:
            raise ValueError(f"pow: a number raised to a tensor needs a positive base, got {base!r}")
        return (self * float(np.log(base))).exp()

    # ---------------------------------------------------------------- matrix product
    def __matmul__(self, other: ArrayLike) -> Tensor:
        other = _operand(other, self)
        a, b = self.data, other.data
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
            data = a @ b
        except ValueError:
            raise ValueError(
                f"matmul: cannot multiply {shape_str(a.shape)} by {shape_str(b.shape)}; "
                f"their batch axes do not broadcast"
            ) from None
        need_a, need_b = self.requires_grad, other.requires_grad

        def backward(g):
            # For matrices, C = A @ B gives dA = G @ B^T and dB = A^T @ G.
            if a.ndim == 2 and b.ndim == 2:  # the common case (a batch times a weight)
                # np.dot, not @: for a one-row batch, a.T @ g takes a slow non-BLAS path.
                return (np.dot(g, b.T) if need_a else None, np.dot(a.T, g) if need_b else None)
            # Otherwise the same formulas after making both operands matrices: a vector on
            # the left is a matrix with one row, on the right one with one column (that axis
            # is dropped again at the end). Batch axes that were broadcast are summed away.
            A = a[None, :] if a.ndim == 1 else a
            B = b[:, None] if b.ndim == 1 else b
            batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
            G = g.reshape(batch + (A.shape[-2], B.shape[-1]))  # put the dropped axes back
            ga = gb = None
            if need_a:
                ga = unbroadcast(G @ np.swapaxes(B, -1, -2), A.shape).reshape(a.shape)
            if need_b:
                gb = unbroadcast(np.swapaxes(A, -1, -2) @ G, B.shape).reshape(b.shape)
            return ga, gb

        return Tensor._result(data, (self, other), "matmul", backward)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _operand(other, self) @ self

    # ---------------------------------------------------------------- elementwise unary ops
    def exp(self) -> Tensor:
        y = np.exp(self.data)
        return Tensor._result(y, (self,), "exp", lambda g: (g * y,))  # (e^x)' = e^x

    def log(self) -> Tensor:
        x = self.data
        return Tensor._result(np.log(x), (self,), "log", lambda g: (g / x,))  # (ln x)' = 1/x

    def sqrt(self) -> Tensor:
        y = np.sqrt(self.data)
        return Tensor._result(y, (self,), "sqrt", lambda g: (g / (2 * y),))  # (√x)' = 1/(2√x)

    def abs(self) -> Tensor:
        s = np.sign(self.data)  # the subgradient 0 is used at x = 0
        return Tensor._result(np.abs(self.data), (self,), "abs", lambda g: (g * s,))

    def tanh(self) -> Tensor:
        y = np.tanh(self.data)
        return Tensor._result(y, (self,), "tanh", lambda g: (g * (1 - y * y),))  # 1 - tanh²

    def sigmoid(self) -> Tensor:
        # 1/(1+e^-x) overflows e^-x for x << 0, so there use the equal form e^x/(1+e^x).
        x = self.data
        z = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        y = np.where(x >= 0, 1 / (1 + z), z / (1 + z))
        return Tensor._result(y, (self,), "sigmoid", lambda g: (g * y * (1 - y),))  # σ(1-σ)

    def relu(self) -> Tensor:
        mask = self.data > 0  # the subgradient 0 is used at x = 0
        return Tensor._result(np.maximum(self.data, 0), (self,), "relu", lambda g: (g * mask,))

    # ---------------------------------------------------------------- reductions
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        axes = _normalize_axis(axis, self.ndim, "sum")
        shape, kept = self.shape, _kept_shape(self.shape, axes)

        def backward(g):
            # every summed element receives the whole upstream gradient
            return (_spread(g, kept, shape),)

        return Tensor._result(self.data.sum(axis=axes, keepdims=keepdims), (self,), "sum", backward)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        axes = _normalize_axis(axis, self.ndim, "mean")
        shape, kept = self.shape, _kept_shape(self.shape, axes)
        count = math.prod(shape[a] for a in axes)

        def backward(g):
            # mean = sum / count, so each element receives 1/count of the upstream gradient
            return (_spread(g / count, kept, shape),)

        data = self.data.sum(axis=axes, keepdims=keepdims) / count
        return Tensor._result(data, (self,), "mean", backward)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        axes = _normalize_axis(axis, self.ndim, "max")
        x, kept = self.data, _kept_shape(self.shape, axes)
        m = x.max(axis=axes, keepdims=True)

        def backward(g):
            # The gradient flows to the maximal element; ties share it equally.
            hit = (x == m).astype(x.dtype)
            return (hit / hit.sum(axis=axes, keepdims=True) * g.reshape(kept),)

        data = m if keepdims else m.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        return Tensor._result(data, (self,), "max", backward)

    # ---------------------------------------------------------------- shape ops
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        dims: Sequence[Any] = shape
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            dims = tuple(shape[0])  # reshape((2, 3)) as well as reshape(2, 3)
        new_shape = tuple(operator.index(n) for n in dims)  # integers only: no 2.5 axes
        old = self.shape
        try:
            data = self.data.reshape(new_shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape {shape_str(old)} ({self.size} elements) into {new_shape}; "
                f"the number of elements must stay the same (one axis may be -1 to infer it)"
            ) from None
        return Tensor._result(data, (self,), "reshape", lambda g: (g.reshape(old),))

    def transpose(self, *axes: int) -> Tensor:
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = tuple(axes[0])  # transpose((1, 0)) as well as transpose(1, 0)
        n = self.ndim
        perm = tuple(int(a) for a in axes) if axes else tuple(reversed(range(n)))
        if not all(-n <= a < n for a in perm) or sorted(a % n for a in perm) != list(range(n)):
            raise ValueError(
                f"transpose: axes {perm} are not a permutation of the {n} axes of "
                f"a tensor of shape {shape_str(self.shape)}"
            )
        perm = tuple(a % n for a in perm)
        # Axis perm[i] of the input became axis i of the output; the inverse permutation
        # sends the gradient's axes back where they came from.
        inverse = tuple(int(i) for i in np.argsort(perm))
        data = self.data.transpose(perm)
        return Tensor._result(data, (self,), "transpose", lambda g: (g.transpose(inverse),))

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        index = _plain_index(index)
        try:
            data = self.data[index]
        except IndexError as exc:
            raise IndexError(f"index: {exc} (tensor of shape {shape_str(self.shape)})") from None
        shape, dtype = self.shape, self.dtype
        fancy = _has_array(index)

        def backward(g):
            full = np.zeros(shape, dtype=dtype)
            if fancy:
                np.add.at(full, index, g)  # an element picked twice gets both gradients
            else:
                full[index] = g  # a basic index picks each element at most once
            return (full,)

        return Tensor._result(np.asarray(data), (self,), "index", backward)

    # ---------------------------------------------------------------- softmax family
    def softmax(self, axis: int = -1) -> Tensor:
        axis = _single_axis(axis, self.ndim, "softmax")
        s = np.exp(log_softmax_values(self.data, axis))

        def backward(g):
            # Jacobian-vector product of softmax: s * (g - <g, s>)
            return (s * (g - (g * s).sum(axis=axis, keepdims=True)),)

        return Tensor._result(s, (self,), "softmax", backward)

    def log_softmax(self, axis: int = -1) -> Tensor:
        axis = _single_axis(axis, self.ndim, "log_softmax")
        out = log_softmax_values(self.data, axis)

        def backward(g):
            # d log_softmax = g - softmax * sum(g)
            return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)

        return Tensor._result(out, (self,), "log_softmax", backward)


def log_softmax_values(x: np.ndarray, axis: int) -> np.ndarray:
    """log softmax of a numpy array along ``axis``, stable for any size of the values.

    log softmax(x)_k = x_k − log Σ_j e^{x_j}. Subtracting the maximum first changes nothing
    (it cancels) but makes the largest exponential e^0 = 1: nothing overflows, and the sum
    is at least 1, so its log is finite (the log-sum-exp trick).
    """
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _single_axis(axis: Any, ndim: int, op: str) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be a single int (the axis of the classes), got {axis!r}")
    return _normalize_axis(int(axis), ndim, op)[0]


def _as_array(x: Any) -> np.ndarray:
    """numpy turns 0-d results into numpy scalars (np.float64); keep them arrays."""
    return x if type(x) is np.ndarray else np.asarray(x)


def _any_requires_grad(tensors: tuple[Tensor, ...]) -> bool:
    for t in tensors:  # a plain loop: this runs for every op, and any(<generator>) is slower
        if t.requires_grad:
            return True
    return False


def _plain_index(index: Any) -> Any:
    """Replace Tensors and lists inside an index by integer numpy arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data.astype(np.intp)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _has_array(index: Any) -> bool:
    """Whether the index holds an integer array (which may pick one element twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) and i.dtype.kind in "iu" for i in parts)


def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor ``root`` depends on (through tensors that require grad), inputs first.

    A depth-first search with an explicit stack instead of recursion: a node is emitted
    only after all of its parents, and the stack grows on the heap, not the call stack.
    """
    order: list[Tensor] = []
    visited: set[Tensor] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for parent in node._prev:
            if parent.requires_grad and parent not in visited:
                stack.append((parent, False))
    return order

