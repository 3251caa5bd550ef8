"""Check backpropagated gradients against finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .checks import check_int, check_number, describe
from .grad_mode import grads_put_back, is_grad_enabled, no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numeric one."""


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Compare the gradients that backward computes for ``fn(*inputs)`` with finite differences.

    The output may have any shape: it is reduced to the scalar ``sum(fn(*inputs) * v)`` with a
    fixed random ``v``, so every output element matters and a gradient that is wrong in only
    one of them cannot hide behind a uniform seed. For each element of each input that requires
    grad, the numeric derivative is the central difference (f(x+h) − f(x−h)) / (2h), accurate to
    O(h²), with h = eps, or eps·|x| where |x| > 1 (next to 1e10 a step of 1e-6 is lost in rounding);
    it needs float64, so float32 inputs are refused. fn must be deterministic (checked).

    Returns True, or raises GradcheckError naming the input, the element, and both values.
    Inputs' values and the .grad of every tensor in fn's graph are left as they were.
    """
    inputs = _checked_inputs(fn, inputs)
    eps = check_number(eps, "gradcheck", "eps (the finite-difference step)", positive=True)
    atol = check_number(atol, "gradcheck", "atol", minimum=0.0)
    rtol = check_number(rtol, "gradcheck", "rtol", minimum=0.0)
    seed = check_int(seed, "gradcheck", "seed", minimum=0)
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; create them with requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64, "
                f"so pass Tensor(x.data.astype(np.float64), requires_grad=True)"
            )
    if not is_grad_enabled():
        raise RuntimeError("gradcheck: called inside no_grad(), where no graph is recorded; call it outside")
    saved = [(x, x.data, x.data.copy()) for x in inputs]  # fn must leave its inputs alone; if not, they come back
    try:
        _compare(fn, inputs, checked, eps, atol, rtol, seed)
    finally:
        for x, array, values in saved:
            if not np.array_equal(array, values, equal_nan=True):
                array[...] = values
            x.data = array
    return True


def _compare(fn: Callable[..., Tensor], inputs: list[Tensor], checked: list[int], eps: float, atol: float,
             rtol: float, seed: int) -> None:
    """gradcheck's work, its arguments checked: raises GradcheckError at the first element that disagrees."""
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {describe(out)}")
    v = np.random.default_rng(seed).uniform(0.5, 1.5, out.shape) * np.where(
        np.random.default_rng(seed + 1).random(out.shape) < 0.5, -1.0, 1.0)

    def scalar() -> float:
        with no_grad():
            return float(np.sum(fn(*inputs).data * v))

    # Finite differences compare fn at nearby points, so fn must give the same value at the same point.
    first, again = float(np.sum(out.data * v)), scalar()
    if not (first == again or abs(first - again) <= 1e-12 * abs(first) or (np.isnan(first) and np.isnan(again))):
        raise GradcheckError(
            f"gradcheck: fn gave {first!r}, then {again!r} for the same inputs (reduced to a number as "
            f"sum(fn(*inputs) * v)); finite differences need a deterministic fn that leaves its inputs alone. "
            f"Does fn draw random numbers (seed them inside fn) or change an input's .data?"
        )
    # Every tensor of the graph gets its .grad back, the inputs' and any parameters' fn uses.
    with grads_put_back([*inputs, *(out.topological_order() if out.requires_grad else [])]):
        if out.requires_grad:  # otherwise fn cut the graph (e.g. Tensor(x.data)): every gradient is 0
            out.backward(v)
        analytic: dict[int, np.ndarray] = {}
        for i in checked:
            grad = inputs[i].grad  # None when fn does not depend on this input
            analytic[i] = np.zeros_like(inputs[i].data) if grad is None else grad
        for i in checked:
            x = inputs[i]
            for idx in np.ndindex(*x.shape):
                original = x.data[idx]
                step = eps * max(1.0, abs(original))  # relative beyond 1: eps alone vanishes next to 1e10
                try:
                    x.data[idx] = original + step
                    up, plus = x.data[idx], scalar()  # up: the value stored, original + step rounded
                    x.data[idx] = original - step
                    down, minus = x.data[idx], scalar()
                finally:  # even if fn raises, the input gets its value back
                    x.data[idx] = original
                if up == down:
                    raise ValueError(f"gradcheck: eps={eps:g} is too small to change input {i}, element {idx} "
                                     f"(value {float(original):g}) in float64; use eps=1e-6")
                numeric = (plus - minus) / (up - down)
                a = float(analytic[i][idx])
                if not abs(a - numeric) <= atol + rtol * abs(numeric):
                    raise GradcheckError(_mismatch(i, x, idx, a, numeric, atol, rtol, out.requires_grad))


def _checked_inputs(fn: Any, inputs: Any) -> list[Tensor]:
    """``fn`` must be callable and ``inputs`` a list (or tuple) of Tensors: ``gradcheck(f, [x])``."""
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be a function of the inputs, got {describe(fn)}")
    if isinstance(inputs, Tensor) or not isinstance(inputs, (list, tuple)):
        raise TypeError(f"gradcheck: inputs must be a list of Tensors, e.g. gradcheck(f, [x]); got {describe(inputs)}")
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(
                f"gradcheck: input {i} is {describe(x)}, not a Tensor; pass Tensor(values, requires_grad=True)"
            )
    return list(inputs)


def _mismatch(i: int, x: Tensor, idx: tuple[int, ...], a: float, numeric: float, atol: float, rtol: float,
              recorded: bool) -> str:
    label = f"input {i}" + (f" ({x.name!r})" if x.name else "")
    if not (np.isfinite(a) and np.isfinite(numeric)):
        return (f"gradcheck: {label}, element {idx}: analytic gradient {a:.8g}, numeric {numeric:.8g}; fn is "
                f"not finite at or near this point (log of a negative number? a division by zero?). Check the "
                f"gradient where fn is defined, or with a smaller eps.")
    return (f"gradcheck: {label}, element {idx}: analytic gradient {a:.8g} but numeric {numeric:.8g} "
            f"(difference {abs(a - numeric):.3g} > atol {atol:g} + rtol {rtol:g} * |numeric|); "
            + ("the backward of some op on the path is wrong" + (
                " (or fn computed part of its result outside the graph: Tensor(x.data), .detach())."
                if a == 0 else ".") if recorded else
               "fn's result was not recorded as computed from the inputs: the graph was cut (Tensor(x.data), "
               ".detach() or no_grad() inside fn?)"))
