"""Check backpropagated gradients against finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .grad_mode import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numeric one."""


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Compare the gradients that backward computes for ``fn(*inputs)`` with finite differences.

    The output may have any shape: it is reduced to the scalar ``sum(fn(*inputs) * v)`` with a
    fixed random ``v``, so every output element matters and a gradient that is wrong in only
    one of them cannot hide behind a uniform seed. For each element of each input that requires
    grad, the numeric derivative is the central difference (f(x+eps) − f(x−eps)) / (2 eps),
    accurate to O(eps²); it needs float64, so float32 inputs are refused.

    Returns True, or raises GradcheckError naming the input, the element, and both values.
    Inputs' values and .grad are left as they were.
    """
    inputs = list(inputs)
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; create them with requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64, "
                f"so pass Tensor(x.data.astype(np.float64), requires_grad=True)"
            )
    saved_grads = [x.grad for x in inputs]
    out = fn(*inputs)
    v = np.random.default_rng(seed).uniform(0.5, 1.5, out.shape) * np.where(
        np.random.default_rng(seed + 1).random(out.shape) < 0.5, -1.0, 1.0)

    def scalar() -> float:
        with no_grad():
            return float(np.sum(fn(*inputs).data * v))

    try:
        for x in inputs:
            x.grad = None
        out.backward(v)
        analytic: dict[int, np.ndarray] = {}
        for i in checked:
            grad = inputs[i].grad  # None when fn does not depend on this input
            analytic[i] = np.zeros_like(inputs[i].data) if grad is None else grad
        for i in checked:
            x = inputs[i]
            for idx in np.ndindex(*x.shape):
                original = x.data[idx]
                try:
                    x.data[idx] = original + eps
                    plus = scalar()
                    x.data[idx] = original - eps
                    minus = scalar()
                finally:  # even if fn raises, the input gets its value back
                    x.data[idx] = original
                numeric = (plus - minus) / (2 * eps)
                a = float(analytic[i][idx])
                if not abs(a - numeric) <= atol + rtol * abs(numeric):
                    label = f"input {i}" + (f" ({x.name!r})" if x.name else "")
                    raise GradcheckError(
                        f"gradcheck: {label}, element {idx}: analytic gradient {a:.8g} but numeric "
                        f"{numeric:.8g} (difference {abs(a - numeric):.3g} > atol {atol:g} + rtol "
                        f"{rtol:g} * |numeric|); the backward of some op on the path is wrong."
                    )
    finally:
        for x, g in zip(inputs, saved_grads):
            x.grad = g
    return True
