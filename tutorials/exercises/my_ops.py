"""Exercises 1-3: new operations, each with its backward, in the engine's style.

In ``tinygrad_mb/tensor.py`` every operation is one self-contained piece: it computes its
result with numpy and, right beside it, defines ``backward(g)``. Given ``g``, the gradient of
the final scalar with respect to this operation's result, ``backward`` returns a tuple with
one gradient (or None) per input, each of that input's shape. ``Tensor.record`` then wraps
the result and records the graph:

    def relu(self) -> Tensor:
        mask = self.data > 0
        return Tensor.record(np.maximum(self.data, 0), (self,), "relu", lambda g: (g * mask,))

``Tensor.record(data, parents, op, backward)`` is the engine's public extension point: every
built-in operation is written with it. For a two-input operation, ``tinygrad_mb.checks``
has the two helpers the built-in ones use: ``as_operand(b, like=a)`` turns a number or array
into a Tensor, and ``apply_elementwise(op, fn, a, b)`` applies a numpy function with
broadcasting, raising the engine's error naming ``op`` and both shapes when they do not fit.
If a backward returns a gradient of the wrong shape, ``backward()`` stops with an error naming
your op and both shapes.

Write each function below the same way: ONE call to ``Tensor.record`` with the operation's
name, not a combination of existing operations. (Composing ``relu`` and friends would give
the right numbers, but you would not have written a backward, which is the point.)

Stuck? Hints come in three tiers (the idea, the formula, the code), one at a time, from the
repository root:

    python tutorials/exercises/hints.py ex_leaky_relu 1

Check a task with its marker:

    pytest tutorials/exercises -m ex_leaky_relu
    pytest tutorials/exercises -m ex_logsumexp
    pytest tutorials/exercises -m ex_maximum
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (you will need it)

from tinygrad_mb import Tensor
from tinygrad_mb.checks import apply_elementwise, as_operand  # noqa: F401  (for maximum)
from tinygrad_mb.tensor import ArrayLike, unbroadcast  # noqa: F401  (unbroadcast: for maximum)


def leaky_relu(x: Tensor, slope: float = 0.01) -> Tensor:
    """Leaky ReLU, elementwise: x where x > 0, and slope · x elsewhere.

    Unlike ReLU it lets a small gradient through for negative inputs, so a unit whose inputs
    are all negative can still learn.

    Args:
        x: any shape.
        slope: the gradient for negative inputs (0 gives ReLU).

    Returns:
        A tensor of x's shape, produced by one operation named "leaky_relu".
    """
    raise NotImplementedError(
        "leaky_relu: exercise 1, not written yet. Hints, one at a time: "
        "python tutorials/exercises/hints.py ex_leaky_relu 1 (then 2, then 3)"
    )


def logsumexp(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """log Σ_j exp(x_j) along ``axis``, computed without overflow.

    exp(1000) overflows float64, but log Σ exp(x_j) = m + log Σ exp(x_j − m) for any m;
    choosing m = max_j x_j makes the largest term exp(0) = 1, so nothing overflows.

    Args:
        x: any shape with at least one axis.
        axis: the axis to reduce.
        keepdims: keep the reduced axis with size 1.

    Returns:
        x's shape without ``axis`` (or with size 1 there if keepdims), produced by one
        operation named "logsumexp".
    """
    raise NotImplementedError(
        "logsumexp: exercise 2, not written yet. Hints, one at a time: "
        "python tutorials/exercises/hints.py ex_logsumexp 1 (then 2, then 3)"
    )


def maximum(a: Tensor, b: ArrayLike) -> Tensor:
    """The elementwise larger of ``a`` and ``b``, with numpy broadcasting.

    The gradient flows to whichever input is larger. Where they are equal, split it half and
    half (as ``Tensor.max`` shares the gradient between tied elements).

    Args:
        a: a tensor.
        b: a tensor, array or number, broadcastable against ``a``.

    Returns:
        A tensor of the broadcast shape, produced by one operation named "maximum" whose
        parents are ``a`` and ``b`` (a number or array becomes a constant Tensor).
    """
    raise NotImplementedError(
        "maximum: exercise 3, not written yet. Hints, one at a time: "
        "python tutorials/exercises/hints.py ex_maximum 1 (then 2, then 3)"
    )
