"""Optimizers: turn the gradients left in ``.grad`` into an update of the parameters."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

from .tensor import Tensor


class Optimizer:
    """Holds a list of parameters; ``step()`` updates them from their ``.grad``."""

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        name = type(self).__name__
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list; pass model.parameters()")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise ValueError(
                    f"{name}: parameter {i} is not a Tensor with requires_grad=True; "
                    f"pass model.parameters()"
                )
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"{name}: lr must be a positive number, got {lr!r}")
        self.lr: float = float(lr)

    def zero_grad(self) -> None:
        """Forget the gradients: backward adds into .grad, so clear it before each step's pass."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent: p ← p − lr · v, with v = momentum · v + (∇p + weight_decay · p).

    With momentum 0 this is the plain step p ← p − lr · ∇p. Parameters whose .grad is None
    (not reached by the last backward pass) are left alone.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: weight_decay must be non-negative, got {weight_decay!r}")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                v = self.velocity[i]
                # the first step starts the velocity at the gradient (as PyTorch does)
                g = self.velocity[i] = g.copy() if v is None else self.momentum * v + g
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam: a step along the running mean of gradients, divided by their running RMS.

    m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,  p ← p − lr · m̂ / (√v̂ + eps),
    where m̂ = m/(1−β1^t) and v̂ = v/(1−β2^t) undo the bias of starting m and v at zero.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam: betas must each be in [0, 1), got {betas!r}")
        if not eps > 0:
            raise ValueError(f"Adam: eps must be positive, got {eps!r}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m *= b1
            m += (1 - b1) * p.grad
            v *= b2
            v += (1 - b2) * p.grad**2
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
