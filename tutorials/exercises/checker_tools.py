"""Helpers for the checkers: comparisons whose failure says what to try next.

A checker that only says "arrays differ" leaves a learner where they started. Every helper
here takes ``advice``: what to try, written for the mistake the check is most likely to catch
(a callable is evaluated only on failure, so it may diagnose the mistake by computing it).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from tinygrad_mb import Tensor, gradcheck, nn

Advice = str | Callable[[], str]


def _text(advice: Advice) -> str:
    return advice() if callable(advice) else advice


def gradients_close(got: Sequence[Any], expected: Sequence[np.ndarray], rtol: float = 1e-9,
                    atol: float = 1e-12) -> bool:
    """Whether ``got`` holds one array per parameter, each of its shape and close to ``expected``."""
    got = list(got)
    return len(got) == len(expected) and all(
        np.shape(g) == np.shape(e) and np.allclose(g, e, rtol=rtol, atol=atol) for g, e in zip(got, expected))


def assert_gradients_close(got: Sequence[Any], expected: Sequence[np.ndarray], advice: Advice,
                           rtol: float = 1e-9, atol: float = 1e-12) -> None:
    """One gradient per parameter, each of the parameter's shape and close to ``expected``."""
    got = list(got)
    assert len(got) == len(expected), (
        f"{len(got)} gradients returned for {len(expected)} parameters: return one array per parameter, "
        f"in model.parameters() order (weight, then bias, layer by layer)"
    )
    for k, (g, e) in enumerate(zip(got, expected)):
        assert np.shape(g) == np.shape(e), (
            f"parameter {k}: your gradient has shape {np.shape(g)}, the parameter {np.shape(e)}: return "
            f"each parameter's gradient in the parameter's own shape (its .grad)"
        )
    if not gradients_close(got, expected, rtol, atol):
        worst = max(range(len(got)), key=lambda k: float(np.max(np.abs(np.asarray(got[k]) - expected[k]))))
        diff = float(np.max(np.abs(np.asarray(got[worst]) - expected[worst])))
        raise AssertionError(f"parameter {worst} is off by up to {diff:.3g}. {_text(advice)}")


def ratio(got: Sequence[Any], reference: Sequence[np.ndarray]) -> float | None:
    """r when ``got`` is r times ``reference`` for every parameter (the usual sign of a wrong factor), else None."""
    g = np.concatenate([np.ravel(a) for a in got]) if len(got) else np.zeros(0)
    e = np.concatenate([np.ravel(a) for a in reference])
    if g.shape != e.shape or not np.any(e):
        return None
    r = float(g @ e / (e @ e))
    return r if np.allclose(g, r * e, rtol=1e-7, atol=1e-12) else None


def near(r: float | None, value: float) -> bool:
    return r is not None and abs(r - value) <= 1e-6 * max(1.0, abs(value))


def diagnose(got: Sequence[Any], mistakes: Sequence[tuple[Callable[[], Sequence[np.ndarray]], str]],
             otherwise: str) -> str:
    """The advice of the first known mistake whose result ``got`` reproduces, or ``otherwise``.

    Each mistake is (a function computing what that mistake returns, the advice for it).
    """
    for compute, advice in mistakes:
        if gradients_close(got, compute()):
            return advice
    return otherwise


@contextmanager
def expect_error(kind: type[Exception], pattern: str, advice: str) -> Iterator[None]:
    """Like ``pytest.raises(kind, match=pattern)``, but a miss says what to try."""
    import re

    try:
        yield
    except NotImplementedError:
        raise
    except kind as error:
        if not re.search(pattern, str(error)):
            raise AssertionError(f"the {kind.__name__} says {str(error)!r}. {advice}") from None
        return
    raise AssertionError(f"no {kind.__name__} was raised. {advice}")


def refusing_calls(fn: Callable[..., Any], forbidden: dict[Callable[..., Any], str]) -> Callable[..., Any]:
    """``fn``, except that while it runs, a call to one of the ``forbidden`` functions is an error.

    Each forbidden function comes with the message to give. The call is recognised by the
    function's code, so it is refused whatever name it was reached by (``minibatch.accumulated``,
    or ``from tinygrad_mb.minibatch import accumulated as mine`` at the top of your file).
    """
    refused = {f.__code__: message for f, message in forbidden.items()}

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        def watch(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code in refused:
                raise AssertionError(refused[frame.f_code])

        previous = sys.getprofile()
        sys.setprofile(watch)  # told of every Python function call while fn runs
        try:
            return fn(*args, **kwargs)
        finally:
            sys.setprofile(previous)
    return guarded


def check_gradient(fn: Callable[..., Tensor], inputs: list[Tensor], advice: str) -> None:
    """``gradcheck`` (finite differences), with advice added to its report of the first wrong element."""
    try:
        gradcheck(fn, inputs)
    except (AssertionError, ValueError, TypeError) as error:
        # GradcheckError names the input, the element and both values; the engine's ValueError or
        # TypeError names the op whose backward returned the wrong shape or type.
        raise AssertionError(f"{type(error).__name__}: {error}\n{advice}") from None


def check_strategy_contract(run: Callable[[], Sequence[Any]], model: nn.Module, name: str,
                            inputs: dict[str, np.ndarray] | None = None) -> None:
    """The strategies' contract: parameters and ``inputs`` (the batch) unchanged, .grad equal to
    the result, the same result twice."""
    params = model.parameters()
    before = [p.data.copy() for p in params]
    given = {arg: np.array(a, copy=True) for arg, a in (inputs or {}).items()}
    for p in params:  # a stale gradient from an earlier computation, which must not leak in
        p.grad = np.full_like(p.data, 0.5)
    first = [np.array(g, copy=True) for g in run()]
    assert len(first) == len(params), (
        f"{name} returned {len(first)} gradients for {len(params)} parameters: return one array per "
        f"parameter, in model.parameters() order"
    )
    for k, (p, g, old) in enumerate(zip(params, first, before)):
        assert np.array_equal(p.data, old), f"{name} changed parameter {k}'s values: compute gradients only, never step"
        assert p.grad is not None and np.array_equal(p.grad, g), (
            f"after {name}, parameter {k}'s .grad differs from the gradient returned: leave each .grad equal "
            f"to what you return (return copies of the .grad arrays)"
        )
    for arg, old in given.items():
        assert np.array_equal((inputs or {})[arg], old), (
            f"{name} changed the caller's {arg} in place: the batch it was given must stay as it was; work on "
            f"new arrays (w = mask / mask.sum(), not w /= ...; X[perm] makes a copy, X[...] = X[perm] does not)"
        )
    second = run()
    assert gradients_close(second, first, rtol=1e-12, atol=0.0), (
        f"{name} returned a different gradient when called again with the same arguments, or it kept the "
        f".grad that was there before the call (0.5 everywhere here): gradients accumulate in .grad, so "
        f"clear it first (model.zero_grad()) before the first backward pass"
    )


class RecordingModel(nn.Module):
    """Wraps a model and records how many samples (or sequences) each forward pass was given."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.forward_sizes: list[int] = []

    def forward(self, x: Any) -> Tensor:
        self.forward_sizes.append(int(np.shape(x.data if isinstance(x, Tensor) else x)[0]))
        return self.model(x)


def micro_batch_sizes(n: int, m: int) -> list[int]:
    """The sizes of n samples split in order into micro-batches of at most m."""
    return [min(m, n - start) for start in range(0, n, m)]
