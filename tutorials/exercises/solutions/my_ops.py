"""Reference solutions to exercises 1-3 (see ../my_ops.py for the tasks)."""

from __future__ import annotations

import numpy as np

from tinygrad_mb import Tensor
from tinygrad_mb.checks import apply_elementwise, as_operand
from tinygrad_mb.tensor import ArrayLike, unbroadcast


def leaky_relu(x: Tensor, slope: float = 0.01) -> Tensor:
    """Leaky ReLU, elementwise: x where x > 0, and slope · x elsewhere."""
    positive = x.data > 0
    local = np.where(positive, 1.0, slope)  # the derivative; at x = 0 the subgradient slope is used
    data = np.where(positive, x.data, slope * x.data).astype(x.dtype, copy=False)
    return Tensor.record(data, (x,), "leaky_relu", lambda g: (g * local,))


def logsumexp(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """log Σ_j exp(x_j) along ``axis``, computed without overflow."""
    m = x.data.max(axis=axis, keepdims=True)  # shift so the largest term is exp(0) = 1
    e = np.exp(x.data - m)
    total = e.sum(axis=axis, keepdims=True)
    out = m + np.log(total)
    softmax = e / total  # ∂ logsumexp / ∂x_j = exp(x_j) / Σ exp(x) = softmax(x)_j

    def backward(g):
        g = g if keepdims else np.expand_dims(g, axis)  # put the reduced axis back, size 1
        return (g * softmax,)

    data = out if keepdims else np.squeeze(out, axis=axis)
    return Tensor.record(data, (x,), "logsumexp", backward)


def maximum(a: Tensor, b: ArrayLike) -> Tensor:
    """The elementwise larger of ``a`` and ``b``, with numpy broadcasting."""
    b = as_operand(b, like=a)
    data = apply_elementwise("maximum", np.maximum, a, b)
    a_data, b_data = a.data, b.data

    def backward(g):
        # Each input gets the gradient where it is the larger one, half of it on a tie.
        share_a = (a_data > b_data) + 0.5 * (a_data == b_data)
        return unbroadcast(g * share_a, a_data.shape), unbroadcast(g * (1 - share_a), b_data.shape)

    return Tensor.record(data, (a, b), "maximum", backward)
