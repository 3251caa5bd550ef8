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


def leaky_relu_backward_changes_g_in_place(x: Tensor, slope: float = 0.01) -> Tensor:
    """Right alone, but the backward multiplies g in place: another input's gradient that is the
    same array (add sends one g to both of its inputs) changes with it."""
    local = np.where(x.data > 0, 1.0, slope).astype(x.dtype, copy=False)
    data = np.where(x.data > 0, x.data, slope * x.data).astype(x.dtype, copy=False)

    def backward(g):
        g *= local
        return (g,)
    return Tensor.record(data, (x,), "leaky_relu", backward)


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


def logsumexp_backward_without_the_shift(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """A shifted forward, but the backward's softmax from np.exp(x) unshifted: nan past exp(709)."""
    def backward_of(_softmax):
        def backward(g):
            e = np.exp(x.data)
            return ((g if keepdims else np.expand_dims(g, axis)) * e / e.sum(axis=axis, keepdims=True),)
        return backward
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the mistake, not an error here
        return _shifted_logsumexp(x, axis, keepdims, backward_of)


def logsumexp_backward_scales_its_softmax_in_place(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    """The backward multiplies the softmax it keeps by g in place: a second backward pass starts
    from g times the softmax instead of the softmax."""
    def backward_of(softmax):
        def backward(g):
            np.multiply(softmax, g if keepdims else np.expand_dims(g, axis), out=softmax)  # in place
            return (softmax,)
        return backward
    return _shifted_logsumexp(x, axis, keepdims, backward_of)


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


def maximum_backward_changes_g_in_place(a: Tensor, b: ArrayLike) -> Tensor:
    """Right alone, but the backward turns g into a's share in place before computing b's."""
    b = as_operand(b, like=a)
    data = apply_elementwise("maximum", np.maximum, a, b)
    share_a = (a.data > b.data) + 0.5 * (a.data == b.data)

    def backward(g):
        g_b = g * (1 - share_a)
        g *= share_a
        return unbroadcast(g, a.shape), unbroadcast(g_b, b.shape)
    return Tensor.record(data, (a, b), "maximum", backward)
