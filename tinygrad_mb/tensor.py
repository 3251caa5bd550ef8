"""The Tensor: a numpy array that records how it was computed, and reverse-mode autodiff.

Read it top to bottom. ``Tensor.record`` wraps each operation's result with its inputs (its
parents) and a small ``backward`` function: given ``g``, the gradient of the final output with
respect to the result, ``backward(g)`` returns the gradient with respect to each input -- the
chain rule, at the exact place the operation happens. ``Tensor.backward`` then visits the graph
from the output back to the leaves in ``topological_order`` reversed, so each node's gradient is
complete before it is passed on. The operations follow, each forward pass beside its backward.
Input checks and error messages live in ``checks.py``: one line in an operation here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

# One import line per 100 characters rather than one per name (this file keeps a line budget).
# isort: off
from . import grad_mode
from .checks import (F32, F64, accumulable, any_requires_grad, apply_elementwise, as_float_array, as_gradient,
                     as_operand, as_parents, as_result, cast_gradient, check_base, check_exponent, check_gradients,
                     check_matmul, check_single_element, has_integer_array, kept_shape, length, normalize_axis,
                     permutation, plain_index, requires_grad_flag, reshaped, rows, seed_gradient, single_axis,
                     take, truth)
from .grad_mode import is_grad_enabled, no_grad  # noqa: F401  (also importable from here)
# isort: on

ArrayLike = Union["Tensor", np.ndarray, float, int, Sequence[Any]]
ndarray, new_object = np.ndarray, object.__new__  # looked up once, not in every Tensor.record
Backward = Callable[[np.ndarray], Sequence[Any]]


class Tensor:
    """An n-dimensional array of float64 (or float32) that can record its computation graph.

    Args:
        data: numbers, nested lists or a numpy array; integers and booleans become float64,
            float32 stays float32. A tensor that requires grad gets its own copy (optimizers
            update parameters in place, which must not change the caller's array).
        requires_grad: whether gradients with respect to this tensor are wanted (parameters).
        name: optional label, shown in error messages and graph pictures.

    ``.data`` holds the values; ``.grad`` the accumulated gradient of ``data``'s shape, or None.
    """

    __slots__ = ("data", "grad", "requires_grad", "name", "_prev", "_op", "_backward", "__weakref__")
    __array_ufunc__ = None  # numpy then hands `array + tensor` to Tensor.__radd__ (no elementwise loop)

    def __init__(self, data: ArrayLike, requires_grad: bool = False, name: str | None = None):
        data = data.data if isinstance(data, Tensor) else data
        self.data: np.ndarray = as_float_array(data, "Tensor", own_copy=requires_grad)
        self.grad: np.ndarray | None = None
        self.requires_grad, self.name = requires_grad_flag(requires_grad), name
        self._prev: tuple[Tensor, ...] = ()  # the parents: the tensors this one was computed from
        self._op = ""  # the operation that made it ("" for a leaf)
        self._backward: Backward | None = None  # how to send a gradient on to the parents

    # ---------------------------------------------------------------- recording a result
    @staticmethod
    def record(data: Any, parents: Sequence[Tensor], op: str, backward: Backward) -> Tensor:
        """Wrap an operation's result and remember how to backpropagate through it.

        This is how every operation below is written, and how you add your own:

            def backward(g):                       # g: d(final)/d(result), result's shape
                return (g * local_derivative,)     # one gradient, or None, per parent
            return Tensor.record(result_array, (x,), "my_op", backward)

        Each gradient must have its parent's shape (``backward`` checks it). Return new arrays:
        never change ``g`` in place (``g *= ...``), since the same array may be another input's
        gradient too. The graph is recorded only when some parent requires grad, and not inside
        ``no_grad()``. Integer and boolean results become float64; ``parents`` is a tuple of Tensors.
        """
        # Built with object.__new__, skipping __init__'s checks and copy: this runs for every operation.
        # numpy may return a scalar, a custom op an int or bool array: as_result makes each a float array.
        out = new_object(Tensor)
        out.data = data if type(data) is ndarray and (data.dtype is F64 or data.dtype is F32) else as_result(data, op)
        out.grad, out.name, out._op = None, None, op
        parents = parents if type(parents) is tuple else as_parents(parents, op)
        if grad_mode.enabled and any_requires_grad(parents, op):
            out.requires_grad, out._prev, out._backward = True, parents, backward
        else:
            out.requires_grad, out._prev, out._backward = False, (), None
        return out

    # ---------------------------------------------------------------- the backward pass
    def backward(self, grad: ArrayLike | None = None) -> None:
        """Backpropagate from this tensor, *adding* d(self)/d(node) into every node's .grad.

        ``grad`` is the gradient of some final scalar with respect to this tensor, of its shape;
        omit it only for a single element (then it is 1, the derivative of a thing by itself).
        A node is reached only after every node that uses it has sent its share, so its gradient
        is complete when it is stored and passed on. Gradients are gathered in ``pending``, so a
        second backward call adds only its own share into .grad.
        """
        pending: dict[Tensor, np.ndarray] = {self: seed_gradient(self, grad)}
        done: list[tuple[Tensor, np.ndarray]] = []  # complete gradients, stored once every rule has run
        for node in reversed(topological_order(self)):
            g = pending.pop(node, None)
            if g is None:  # nothing reached it (every use of it sent None)
                continue
            done.append((node, g if type(g) is np.ndarray and node.grad is None else accumulable(node, g)))
            if node._backward is None:  # a leaf: nothing further to send
                continue
            grads = node._backward(done[-1][1])
            if type(grads) is not tuple or len(grads) != len(node._prev):
                check_gradients(node, grads)  # one gradient (or None) per parent, or a clear error
            for parent, pg in zip(node._prev, grads):
                if pg is None or not parent.requires_grad:
                    continue
                if type(pg) is not np.ndarray or pg.shape != parent.data.shape:
                    pg = as_gradient(node, parent, pg)  # a wrong shape is an error naming the op
                if pg.dtype != parent.data.dtype:  # e.g. a float32 tensor times a float64 array
                    pg = cast_gradient(node, parent, pg)  # a complex or object gradient is an error
                pending[parent] = pending[parent] + pg if parent in pending else pg  # used twice: add
        stored: set[int] = set()  # only now add into .grad: a rule that raised has changed no .grad
        for node, g in done:
            if node.grad is not None:
                node.grad = np.asarray(node.grad + g)
            else:  # ops hand arrays on uncopied; a leaf gets its own (clipping it in place is safe)
                node.grad = g.copy() if node._backward is None and (id(g) in stored or not g.flags.owndata) else g
                stored.add(id(node.grad))

    def topological_order(self, every_input: bool = False) -> list[Tensor]:
        """Every tensor this one was computed from, each after all of its inputs; itself last.

        Only tensors that require grad (what ``backward`` visits), or with ``every_input=True``
        data and constants too (what a picture shows); an op's first input comes first. A
        depth-first search with an explicit stack instead of recursion: a tensor is expanded
        the first time it is popped and emitted the second time, after all of its inputs.
        """
        order: list[Tensor] = []
        visited: set[Tensor] = set()  # Tensor has no __eq__, so sets compare identity
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, inputs_done = stack.pop()
            if inputs_done:
                order.append(node)
                continue
            if node in visited:  # pushed twice before its first visit: already handled
                continue
            visited.add(node)
            stack.append((node, True))
            for parent in reversed(node._prev):  # reversed: the first input is popped first
                if parent not in visited and (every_input or parent.requires_grad):
                    stack.append((parent, False))
        return order

    # ---------------------------------------------------------------- elementwise binary ops
    # unbroadcast sums a broadcast operand's gradient back to its shape; the engine drops unneeded ones.
    def __add__(self, other: ArrayLike) -> Tensor:
        other = as_operand(other, like=self)
        a_shape, b_shape = self.shape, other.shape
        def backward(g):  # d(a+b)/da = d(a+b)/db = 1: both receive g
            return unbroadcast(g, a_shape), unbroadcast(g, b_shape)
        return Tensor.record(apply_elementwise("add", np.add, self, other), (self, other), "add", backward)

    def __sub__(self, other: ArrayLike) -> Tensor:
        other = as_operand(other, like=self)
        a_shape, b_shape = self.shape, other.shape
        def backward(g):  # d(a-b)/da = 1 and d(a-b)/db = -1
            return unbroadcast(g, a_shape), unbroadcast(-g, b_shape)
        return Tensor.record(apply_elementwise("sub", np.subtract, self, other), (self, other), "sub", backward)

    def __mul__(self, other: ArrayLike) -> Tensor:
        other = as_operand(other, like=self)
        a, b = self.data, other.data
        def backward(g):  # d(a*b)/da = b and d(a*b)/db = a
            return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)
        return Tensor.record(apply_elementwise("mul", np.multiply, self, other), (self, other), "mul", backward)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        other = as_operand(other, like=self)
        a, b, y = self.data, other.data, apply_elementwise("div", np.divide, self, other)
        def backward(g):  # d(a/b)/da = 1/b and d(a/b)/db = -a/b² = -(1/b)(a/b), without b² (it overflows)
            return unbroadcast(g_b := g / b, a.shape), unbroadcast(-g_b * y, b.shape)
        return Tensor.record(y, (self, other), "div", backward)

    def __pow__(self, exponent: float) -> Tensor:
        p, x = check_exponent(exponent), self.data
        def backward(g):  # d(x^p)/dx = p x^(p-1); for p = 0 that is 0 (0 * x^-1 would be nan at 0)
            return (g * p * x ** (p - 1) if p != 0 else np.zeros_like(g),)
        return Tensor.record(x**p, (self,), f"pow {p:g}", backward)

    def __neg__(self) -> Tensor:
        return Tensor.record(-self.data, (self,), "neg", lambda g: (-g,))

    # Python numbers and numpy arrays on the left-hand side: 2 - x is Tensor(2) - x.
    def __radd__(self, other: ArrayLike) -> Tensor:
        return as_operand(other, like=self) + self

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return as_operand(other, like=self) - self

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return as_operand(other, like=self) * self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return as_operand(other, like=self) / self

    def __rpow__(self, base: float) -> Tensor:
        return (self * math.log(check_base(base))).exp()  # base ** x = exp(x * log(base))

    # ---------------------------------------------------------------- matrix product
    def __matmul__(self, other: ArrayLike) -> Tensor:
        other = as_operand(other, like=self)
        check_matmul(self, other)
        a, b, need_a, need_b = self.data, other.data, self.requires_grad, other.requires_grad
        def backward(g):
            # For matrices, C = A @ B gives dA = G @ Bᵀ and dB = Aᵀ @ G.
            if a.ndim == 2 and b.ndim == 2:  # the common case (a batch times a weight)
                # np.dot, not @: for a one-row batch, a.T @ g takes a slow non-BLAS path.
                return (np.dot(g, b.T) if need_a else None, np.dot(a.T, g) if need_b else None)
            # Otherwise the same formulas after making both operands matrices: a vector on
            # the left is a matrix with one row, on the right one with one column (that axis
            # is dropped again at the end). Batch axes that were broadcast are summed away.
            A, B = (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
            G = g.reshape(np.broadcast_shapes(A.shape[:-2], B.shape[:-2]) + (A.shape[-2], B.shape[-1]))
            return (unbroadcast(G @ np.swapaxes(B, -1, -2), A.shape).reshape(a.shape) if need_a else None,
                    unbroadcast(np.swapaxes(A, -1, -2) @ G, B.shape).reshape(b.shape) if need_b else None)
        return Tensor.record(a @ b, (self, other), "matmul", backward)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return as_operand(other, like=self) @ self

    # ---------------------------------------------------------------- elementwise unary ops
    def exp(self) -> Tensor:
        y = np.exp(self.data)
        return Tensor.record(y, (self,), "exp", lambda g: (g * y,))  # (e^x)' = e^x

    def log(self) -> Tensor:
        x = self.data
        return Tensor.record(np.log(x), (self,), "log", lambda g: (g / x,))  # (ln x)' = 1/x

    def sqrt(self) -> Tensor:
        y = np.sqrt(self.data)
        return Tensor.record(y, (self,), "sqrt", lambda g: (g / (2 * y),))  # (√x)' = 1/(2√x)

    def abs(self) -> Tensor:
        s = np.sign(self.data)  # the subgradient 0 is used at x = 0
        return Tensor.record(np.abs(self.data), (self,), "abs", lambda g: (g * s,))

    def tanh(self) -> Tensor:
        y = np.tanh(self.data)
        return Tensor.record(y, (self,), "tanh", lambda g: (g * (1 - y * y),))  # 1 - tanh²

    def sigmoid(self) -> Tensor:
        # 1/(1+e^-x) overflows e^-x for x << 0, so there use the equal form e^x/(1+e^x).
        x = self.data
        z = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        y = np.where(x >= 0, 1 / (1 + z), z / (1 + z))
        return Tensor.record(y, (self,), "sigmoid", lambda g: (g * y * (1 - y),))  # σ(1-σ)

    def relu(self) -> Tensor:
        mask = self.data > 0  # the subgradient 0 is used at x = 0
        return Tensor.record(np.maximum(self.data, 0), (self,), "relu", lambda g: (g * mask,))

    # ---------------------------------------------------------------- reductions
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        axes = normalize_axis(axis, self.shape, "sum", keepdims)
        shape, kept = self.shape, kept_shape(self.shape, axes)
        # every summed element receives the whole upstream gradient
        return Tensor.record(self.data.sum(axis=axes, keepdims=keepdims), (self,), "sum",
                             lambda g: (spread(g, kept, shape),))

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        axes = normalize_axis(axis, self.shape, "mean", keepdims)
        shape, kept = self.shape, kept_shape(self.shape, axes)
        count = math.prod(shape[a] for a in axes)
        # mean = sum / count, so each element receives 1/count of the upstream gradient
        return Tensor.record(self.data.sum(axis=axes, keepdims=keepdims) / count, (self,), "mean",
                             lambda g: (spread(g / count, kept, shape),))

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        axes = normalize_axis(axis, self.shape, "max", keepdims)
        x, kept = self.data, kept_shape(self.shape, axes)
        m = x.max(axis=axes, keepdims=True)
        def backward(g):  # the gradient flows to the maximal element; ties share it equally
            hit = (x == m).astype(x.dtype)
            return (hit / hit.sum(axis=axes, keepdims=True) * g.reshape(kept),)
        data = m if keepdims else m.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        return Tensor.record(data, (self,), "max", backward)

    # ---------------------------------------------------------------- shape ops
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        old = self.shape
        return Tensor.record(reshaped(self, shape), (self,), "reshape", lambda g: (g.reshape(old),))

    def transpose(self, *axes: int) -> Tensor:
        perm = permutation(self, axes)
        # axis perm[i] became axis i; the inverse permutation sends the gradient's axes back
        inverse = tuple(int(i) for i in np.argsort(perm))
        return Tensor.record(self.data.transpose(perm), (self,), "transpose", lambda g: (g.transpose(inverse),))

    T = property(lambda self: self.transpose(), doc="The transpose (all axes reversed).")

    def __getitem__(self, index: Any) -> Tensor:
        index = plain_index(index)  # numpy's rules; a Tensor holds integer positions, never a mask
        shape, dtype, repeats_possible = self.shape, self.dtype, has_integer_array(index)
        def backward(g):
            full = np.zeros(shape, dtype=dtype)  # elements that were not picked get 0
            if repeats_possible:
                np.add.at(full, index, g)  # an element picked twice gets both gradients
            else:
                full[index] = g  # a basic index picks each element at most once
            return (full,)
        return Tensor.record(take(self, index), (self,), "index", backward)

    # ---------------------------------------------------------------- softmax family
    def softmax(self, axis: int = -1) -> Tensor:
        axis = single_axis(axis, self.shape, "softmax")
        s = np.exp(log_softmax_values(self.data, axis))
        # Jacobian-vector product of softmax: s * (g - <g, s>)
        return Tensor.record(s, (self,), "softmax", lambda g: (s * (g - (g * s).sum(axis=axis, keepdims=True)),))

    def log_softmax(self, axis: int = -1) -> Tensor:
        axis = single_axis(axis, self.shape, "log_softmax")
        out = log_softmax_values(self.data, axis)
        # d log_softmax = g - softmax * sum(g)
        return Tensor.record(out, (self,), "log_softmax",
                             lambda g: (g - np.exp(out) * g.sum(axis=axis, keepdims=True),))

    # ---------------------------------------------------------------- conveniences
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    op = property(lambda self: self._op, doc="The operation that produced this tensor ('' for a leaf).")
    parents = property(lambda self: self._prev, doc="The tensors this one was computed from (none for a leaf).")
    is_leaf = property(lambda self: not self._prev)

    __len__, __iter__, __bool__ = length, rows, truth  # as numpy: rows of the first axis; `if x:` for one element

    def __repr__(self) -> str:
        extras = f", name={self.name!r}" if self.name else ""
        extras += ", requires_grad=True" if self.requires_grad else ""
        extras += f", op={self._op!r}" if self._op else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20, separator=', ')}{extras})"

    def numpy(self) -> np.ndarray:
        """The values as a numpy array (the same array; copy it before changing it)."""
        return self.data

    def item(self) -> float:
        """The value of a single-element tensor as a Python float."""
        check_single_element(self)
        return float(self.data.reshape(()))

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's values, cut off from the graph."""
        return Tensor(self.data, requires_grad=False, name=self.name)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (backward calls add to .grad until this)."""
        self.grad = None


topological_order = Tensor.topological_order  # topological_order(root) as a plain function


# -------------------------------------------------------------------- helpers of the rules above
def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reduce a gradient of a broadcast result back to the operand's ``shape``.

    Broadcasting copies an operand along new leading axes and along axes of size 1; each copy
    receives its own share of the upstream gradient, so the operand's gradient is the *sum*
    over the copies. A bias added to a batch of B rows gets the sum of the B rows' gradients.
    """
    if grad.shape == shape:
        return grad
    if grad.size == math.prod(shape):  # only axes of size 1 were added: each sum has one term
        return grad.reshape(shape)
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def spread(g: np.ndarray, kept: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A reduction's backward: ``g`` (reshaped to ``kept``, reduced axes as 1) copied over ``shape``."""
    out = np.empty(shape, dtype=g.dtype)  # a fresh, writable array (a broadcast view is read-only)
    out[...] = g.reshape(kept)
    return out


def log_softmax_values(x: np.ndarray, axis: int) -> np.ndarray:
    """log softmax of a numpy array along ``axis``, stable for any size of the values.

    log softmax(x)_k = x_k − log Σ_j e^{x_j}. Subtracting the maximum first changes nothing
    (it cancels) but makes the largest exponential e^0 = 1: nothing overflows, and the sum
    is at least 1, so its log is finite (the log-sum-exp trick).
    """
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
