"""Wrong answers to exercises 1-3 (see __init__.py): each function is one mistake, named after it."""

from __future__ import annotations

import numpy as np

from tinygrad_mb import Tensor
from tinygrad_mb.checks import apply_elementwise, as_operand
from tinygrad_mb.tensor import ArrayLike, unbroadcast


# ---------------------------------------------------------------- exercise 1: leaky_relu
def leaky_relu_backward_of_relu(x: Tensor, slope: float = 0.01) -> Tensor:
    """The right forward, but ReLU's backward: no gradient at all for negative inputs."""
    positive = x.data > 0
    data = np.where(positive, x.data, slope * x.data).astype(x.dtype, copy=False)
    return Tensor.record(data, (x,), "leaky_relu", lambda g: (g * positive,))


def leaky_relu_composed_of_existing_ops(x: Tensor, slope: float = 0.01) -> Tensor:
    """The right numbers from relu twice: no backward of its own, which was the exercise."""
    return x.relu() - (-x).relu() * slope


# ---------------------------------------------------------------- exercise 2: logsumexp
def logsumexp_without_the_max_shift(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) as written on paper: exp(1000) overflows."""
    e = np.exp(x.data)
    total = e.sum(axis=axis, keepdims=True)
    softmax = e / total

    def backward(g):
        return ((g if keepdims else np.expand_dims(g, axis)) * softmax,)

    out = np.log(total)
    return Tensor.record(out if keepdims else np.squeeze(out, axis=axis), (x,), "logsumexp", backward)


def _shifted_logsumexp(x: Tensor, axis: int, keepdims: bool, backward_of) -> Tensor:
    m = x.data.max(axis=axis, keepdims=True)
    e = np.exp(x.data - m)
    total = e.sum(axis=axis, keepdims=True)
    out = m + np.log(total)
    return Tensor.record(out if keepdims else np.squeeze(out, axis=axis), (x,), "logsumexp",
                         backward_of(e / total))


def logsumexp_backward_ignores_upstream(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """The backward returns the softmax alone: right only when the upstream gradient is all ones."""
    return _shifted_logsumexp(x, axis, keepdims, lambda softmax: lambda g: (softmax,))


def logsumexp_backward_without_the_reduced_axis(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """g multiplied by the softmax as it comes, without its reduced axis put back."""
    return _shifted_logsumexp(x, axis, keepdims, lambda softmax: lambda g: (g * softmax,))


# ---------------------------------------------------------------- exercise 3: maximum
def maximum_ties_go_to_a(a: Tensor, b: ArrayLike) -> Tensor:
    """Where a and b tie, a takes the whole gradient."""
    b = as_operand(b, like=a)
    data = apply_elementwise("maximum", np.maximum, a, b)
    share_a = a.data >= b.data
    return Tensor.record(data, (a, b), "maximum", lambda g: (
        unbroadcast(g * share_a, a.shape), unbroadcast(g * ~share_a, b.shape)))


def maximum_without_unbroadcast(a: Tensor, b: ArrayLike) -> Tensor:
    """Each input gets the broadcast gradient as it is, not summed back to its own shape."""
    b = as_operand(b, like=a)
    data = apply_elementwise("maximum", np.maximum, a, b)
    share_a = (a.data > b.data) + 0.5 * (a.data == b.data)
    return Tensor.record(data, (a, b), "maximum", lambda g: (g * share_a, g * (1 - share_a)))
