"""Switching graph recording off, and keeping tensors' ``.grad`` out of a side computation.

Every operation asks ``Tensor.record`` to remember its inputs, which costs memory and time.
Evaluating a model or updating parameters needs no graph: inside ``with no_grad():`` results
are recorded as plain leaves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ContextDecorator, contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tensor import Tensor

enabled = True  # read by Tensor.record for every operation; change it only through no_grad()


class no_grad(ContextDecorator):  # lower case, as a function's name: `with no_grad():`
    """Inside this block operations record no graph (use it for evaluation and updates).

    One ``no_grad()`` object may be used again and nested (``ctx = no_grad()``, then ``with ctx:`` in a
    loop), and ``@no_grad()`` makes a function run without recording.
    """

    def __init__(self, *args: Any) -> None:
        if args:  # @no_grad without the parentheses passes the function here
            raise TypeError(f"no_grad: takes no arguments, got {len(args)}; as a decorator write @no_grad()")
        self._previous: list[bool] = []  # a stack: the same object may be entered again before it exits

    def __enter__(self) -> None:
        global enabled
        self._previous.append(enabled)
        enabled = False

    def __exit__(self, *exc_info: object) -> None:
        global enabled
        enabled = self._previous.pop()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return enabled


@contextmanager
def grads_put_back(tensors: Sequence[Tensor], on_success: bool = True) -> Iterator[None]:
    """Clear the tensors' .grad for a computation of its own, then put the old .grad back.

    Pictures and ``gradcheck`` run backward passes that must leave no trace: the old .grad
    always comes back. A strategy leaves its result in .grad (``on_success=False``), but one
    that fails midway changes nothing: the old .grad comes back only if the block raises.
    """
    saved = [t.grad for t in tensors]
    for t in tensors:
        t.grad = None
    try:
        yield
    except BaseException:
        for t, g in zip(tensors, saved):
            t.grad = g
        raise
    if on_success:
        for t, g in zip(tensors, saved):
            t.grad = g
