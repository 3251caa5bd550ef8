"""Optimizers: turn the gradients left in ``.grad`` into an update of the parameters.

An optimizer is three things: a list of parameters, a few hyperparameters (``lr``, ...) and,
for each parameter, some state that carries over from one step to the next (SGD's velocity,
Adam's running moments). ``step()`` runs the update rule, ``update(i, p, grad)``, on every
parameter that has a gradient. ``state_dict()`` returns the hyperparameters and state as plain
data, so that a checkpoint can save them and ``load_state_dict`` can resume bit for bit.

The checks (parameters, hyperparameters, gradient shapes, saved state) live at the end of the
file. Each runs before anything changes, so an error never leaves half a step behind.
"""

from __future__ import annotations

import math
import numbers
import secrets
import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np

from .tensor import Tensor


class Optimizer:
    """Holds a list of parameters; ``step()`` updates each one that has a ``.grad``.

    To write an optimizer, subclass this and give:

    - ``hyperparameter_rules``: each hyperparameter's name and the range it must lie in:
      ``"> 0"``, ``">= 0"``, ``"in [0, 1)"`` or ``"pair in [0, 1)"``. Each is an attribute of
      the optimizer; change one between steps (a learning-rate schedule sets ``lr``) and
      ``step()`` checks it again.
    - ``state_kinds``: the name of each attribute that holds one entry per parameter, and what
      an entry is: ``"array"`` (shaped like the parameter), ``"array >= 0"``, ``"array or None"``
      (None until the parameter's first step) or ``"count"`` (a whole number of steps).
    - ``update(i, p, grad)``: the update rule for parameter ``i``.

    ``state_dict()`` is ``{"kind": class name, "hyperparameters": {name: float or [floats]},
    "state": {name: [one entry per parameter: a copied numpy array, or None]}}``; counts are
    0-d int64 arrays.
    """

    hyperparameter_rules: ClassVar[dict[str, str]] = {"lr": "> 0"}
    state_kinds: ClassVar[dict[str, str]] = {}
    lr: float

    def __init__(self, params: Iterable[Tensor], lr: float, **hyperparameters: Any):
        where = type(self).__name__
        self.params: list[Tensor] = _check_parameters(where, params)
        values = {"lr": lr, **hyperparameters}
        checked = {name: _check_hyperparameter(where, name, self.hyperparameter_rules[name], value)
                   for name, value in values.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def zero_grad(self) -> None:
        """Forget the gradients: backward adds into .grad, so clear it before each step's pass."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter whose .grad is set; those without one (and their state) are left alone."""
        _check_step(self)
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self.update(i, p, p.grad)

    def update(self, i: int, p: Tensor, grad: np.ndarray) -> None:
        """Change ``p.data`` (parameter ``i`` of the list) in place, given its gradient."""
        raise NotImplementedError(f"{type(self).__name__}: an optimizer must define update(i, p, grad)")

    # ------------------------------------------------------------------ saving and resuming
    def state_dict(self) -> dict[str, Any]:
        """The hyperparameters and per-parameter state as plain data (copies; see the class docstring)."""
        where = type(self).__name__
        return {
            "kind": where,
            "hyperparameters": {name: _plain(_check_hyperparameter(where, name, rule, getattr(self, name)))
                                for name, rule in self.hyperparameter_rules.items()},
            "state": {name: [_copy_entry(entry, kind) for entry in getattr(self, name)]
                      for name, kind in self.state_kinds.items()},
        }

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Raise ValueError (TypeError for a wrong type) if ``state`` cannot be loaded here; change nothing."""
        _check_state_dict(self, state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check ``state``, then take its hyperparameters and a copy of its state, in each parameter's dtype."""
        self.check_state_dict(state)
        where = type(self).__name__
        for name, rule in self.hyperparameter_rules.items():
            setattr(self, name, _check_hyperparameter(where, name, rule, state["hyperparameters"][name]))
        for name, kind in self.state_kinds.items():
            setattr(self, name, [_restore_entry(entry, kind, p) for entry, p in zip(state["state"][name], self.params)])


class SGD(Optimizer):
    """Stochastic gradient descent: p ← p − lr · v, with v = momentum · v + (∇p + weight_decay · p).

    With momentum 0 this is the plain step p ← p − lr · ∇p. Parameters whose .grad is None
    (not reached by the last backward pass) are left alone.

    State: ``velocity``, one entry per parameter, None until the parameter's first step with
    momentum; ``state_dict()["state"] == {"velocity": [array or None, ...]}``.
    """

    hyperparameter_rules: ClassVar[dict[str, str]] = {"lr": "> 0", "momentum": "in [0, 1)", "weight_decay": ">= 0"}
    state_kinds: ClassVar[dict[str, str]] = {"velocity": "array or None"}
    momentum: float
    weight_decay: float

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay)
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def update(self, i: int, p: Tensor, grad: np.ndarray) -> None:
        g = grad + self.weight_decay * p.data if self.weight_decay else grad
        if self.momentum:
            v = self.velocity[i]
            # the first step starts the velocity at the gradient (as PyTorch does); the copy
            # keeps a later in-place change to .grad out of the velocity
            g = self.velocity[i] = g.copy() if v is None else self.momentum * v + g
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam: a step along the running mean of gradients, divided by their running RMS.

    m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,  p ← p − lr · m̂ / (√v̂ + eps),
    where m̂ = m/(1−β1^t) and v̂ = v/(1−β2^t) undo the bias of starting m and v at zero.

    t counts the steps *this parameter* has taken, as in PyTorch: a parameter that gets its
    first gradient at the optimizer's 3rd step takes a bias-corrected first step (t = 1), and
    a parameter whose .grad is None is skipped without advancing its t.

    State: ``m`` and ``v`` (arrays shaped like each parameter, zero before its first step) and
    ``steps`` (each parameter's t); ``state_dict()["state"] == {"m": [...], "v": [...],
    "steps": [np.array(t, dtype=np.int64), ...]}``.
    """

    hyperparameter_rules: ClassVar[dict[str, str]] = {"lr": "> 0", "betas": "pair in [0, 1)", "eps": "> 0"}
    state_kinds: ClassVar[dict[str, str]] = {"m": "array", "v": "array >= 0", "steps": "count"}
    betas: tuple[float, float]
    eps: float

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr, betas=betas, eps=eps)
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.steps = [0] * len(self.params)

    def update(self, i: int, p: Tensor, grad: np.ndarray) -> None:
        b1, b2 = self.betas
        m, v = self.m[i], self.v[i]
        self.steps[i] += 1
        t = self.steps[i]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class SGLD(Optimizer):
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011, eq. 1): noisy steps that sample.

    With ℓ_i the per-sample negative log-likelihood, N = ``dataset_size``, a Gaussian prior of
    precision λ = ``prior_precision`` and ε = ``lr``, each step is

        θ ← θ − (ε/2)·(N·∇[(1/M) Σ_{i∈batch} ℓ_i] + λθ) + η,    η ~ N(0, ε·I).

    ``.grad`` holds the gradient of the batch-MEAN negative log-likelihood (what every strategy
    of ``tinygrad_mb.minibatch`` computes); the factor N turns it into the (N/M)·Σ estimate of
    the gradient of the full-data sum, the log-likelihood the posterior is built from.
    Forgetting N samples a posterior whose likelihood counts N times too little: far too wide.
    As ε → 0 the iterates are samples from the posterior.

    Step sizes: ``lr`` is an attribute you may set before any step, e.g. Welling & Teh's
    schedule ε_t = a·(b + t)^(−γ) with ``opt.lr = polynomial_decay(t, a, b, gamma)``.

    The noise of parameter i at its t-th step comes from ``np.random.default_rng([seed, i, t])``:
    deterministic given ``seed`` (one is drawn when it is None), and a run resumed from a
    checkpoint draws exactly the noise the uninterrupted run would. State: ``steps``, each
    parameter's t.
    """

    hyperparameter_rules: ClassVar[dict[str, str]] = {
        "lr": "> 0", "dataset_size": "count >= 1", "prior_precision": ">= 0", "seed": "count >= 0"}
    state_kinds: ClassVar[dict[str, str]] = {"steps": "count"}
    dataset_size: int
    prior_precision: float
    seed: int

    def __init__(self, params: Iterable[Tensor], lr: float, dataset_size: int, prior_precision: float = 0.0,
                 seed: int | None = None):
        if seed is None:
            seed = secrets.randbits(63)
        super().__init__(params, lr, dataset_size=dataset_size, prior_precision=prior_precision, seed=seed)
        self.steps = [0] * len(self.params)

    def update(self, i: int, p: Tensor, grad: np.ndarray) -> None:
        self.steps[i] += 1
        eps, N, lam = self.lr, self.dataset_size, self.prior_precision
        noise = np.random.default_rng([self.seed, i, self.steps[i]]).standard_normal(p.data.shape)
        drift = N * grad + lam * p.data if lam else N * grad  # ∇ of the negative log posterior
        p.data -= (eps / 2) * drift
        p.data += np.sqrt(eps) * noise.astype(p.data.dtype, copy=False)


def polynomial_decay(t: int, a: float, b: float, gamma: float) -> float:
    """Welling & Teh's step size ε_t = a·(b + t)^(−γ); γ in (0.5, 1] makes Σε_t = ∞ and Σε_t² < ∞."""
    for name, value in (("t", t), ("a", a), ("b", b), ("gamma", gamma)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
                or not abs(value) <= sys.float_info.max:  # nan, ±inf and integers too large for a float
            raise ValueError(f"polynomial_decay: {name} must be a finite number, got {value!r}")
    if not (a > 0 and b + t > 0 and gamma >= 0):
        raise ValueError(f"polynomial_decay: needs a > 0, b + t > 0 and gamma >= 0 (a positive step size), "
                         f"got t={t!r}, a={a!r}, b={b!r}, gamma={gamma!r}")
    try:
        step_size = float(a) * (float(b) + float(t)) ** (-float(gamma))
    except OverflowError:  # (b + t) ** -gamma with b + t below 1 and a large gamma
        step_size = math.inf
    if not 0 < step_size < math.inf:
        raise ValueError(f"polynomial_decay: a·(b + t)^(−gamma) = {step_size!r} for t={t!r}, a={a!r}, b={b!r}, "
                         f"gamma={gamma!r}, which is not a usable step size (a positive finite number); "
                         f"choose a, b and gamma for the range of steps you will run")
    return step_size


# ------------------------------------------------------------------------------ checks
def _label(i: int, p: Tensor) -> str:
    """How errors name a parameter: its index in the list, and its name if it has one."""
    return f"parameter {i} ({p.name!r})" if p.name else f"parameter {i}"


def _check_parameters(where: str, params: Iterable[Tensor]) -> list[Tensor]:
    if isinstance(params, Tensor):
        raise TypeError(f"{where}: got a single Tensor; pass a list of parameters, e.g. model.parameters()")
    if not isinstance(params, Iterable) or isinstance(params, (str, bytes)):
        raise TypeError(f"{where}: params must be a list of parameters (model.parameters()), got {params!r}")
    params = list(params)
    if not params:
        raise ValueError(f"{where}: got an empty parameter list; pass model.parameters()")
    first_index: dict[int, int] = {}
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise ValueError(f"{where}: parameter {i} is not a Tensor with requires_grad=True; "
                             f"pass model.parameters()")
        if id(p) in first_index:
            raise ValueError(f"{where}: {_label(i, p)} is the same tensor as parameter {first_index[id(p)]}; "
                             f"a parameter listed twice would be stepped twice. List each once "
                             f"(model.parameters() does).")
        first_index[id(p)] = i
    return params


# a rule's name -> (how an error describes it, the test a number must pass)
_RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "> 0": ("a positive number", lambda x: x > 0),
    ">= 0": ("a non-negative number", lambda x: x >= 0),
    "in [0, 1)": ("a number in [0, 1)", lambda x: 0 <= x < 1),
}


def _check_hyperparameter(where: str, name: str, rule: str, value: Any) -> Any:
    """``value`` as a float (a tuple of floats for a pair, an int for a count), or ValueError naming ``name``."""
    if rule.startswith("count >= "):  # a whole number: a data set size, a seed
        least = int(rule[len("count >= "):])
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{where}: {name} must be a whole number >= {least}, got {value!r}")
        if value > sys.float_info.max:  # the update multiplies by it as a float
            raise ValueError(f"{where}: {name} must be a whole number below 1.8e308, got one with "
                             f"{len(str(value))} digits")
        return int(value)
    if rule.startswith("pair "):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(f"{where}: {name} must be a pair of numbers {rule[5:]}, got {value!r}")
        return tuple(_check_hyperparameter(where, f"{name}[{k}]", rule[5:], x) for k, x in enumerate(value))
    description, holds = _RANGES[rule]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}: {name} must be {description}, got {value!r} of type "
                         f"{type(value).__name__}; pass a Python float")
    number = float(value)
    if not (math.isfinite(number) and holds(number)):
        raise ValueError(f"{where}: {name} must be {description}, got {value!r}")
    return number


def _plain(value: float | tuple[float, ...]) -> float | list[float]:
    """A checked hyperparameter as JSON-ready data: a pair becomes a list."""
    return list(value) if isinstance(value, tuple) else value


def _check_step(optimizer: Optimizer) -> None:
    """Everything ``step()`` needs, checked before its first parameter changes."""
    where = f"{type(optimizer).__name__}.step"
    for name, rule in optimizer.hyperparameter_rules.items():  # a schedule may have set a bad lr
        _check_hyperparameter(where, name, rule, getattr(optimizer, name))
    for i, p in enumerate(optimizer.params):
        g = p.grad
        if g is None:
            continue
        # non-finite values are the trainer's concern; here only what would break the update
        if not isinstance(g, np.ndarray) or g.shape != p.data.shape:
            got = f"a .grad of shape {g.shape}" if isinstance(g, np.ndarray) else f"a .grad of type {type(g).__name__}"
            raise ValueError(f"{where}: {_label(i, p)} has {got} but the parameter has shape {p.data.shape}; "
                             f".grad must be an array of its parameter's shape (backward makes one; check code "
                             f"that sets .grad by hand). No parameter was changed.")
        if g.dtype.kind not in "fiu":  # complex or object values would fail half-way through the update
            raise TypeError(f"{where}: {_label(i, p)} has a .grad of dtype {g.dtype}; a gradient holds real "
                            f"numbers (check code that sets .grad by hand). No parameter was changed.")


def _copy_entry(entry: Any, kind: str) -> np.ndarray | None:
    if entry is None:
        return None
    return np.array(entry, dtype=np.int64) if kind == "count" else np.array(entry)


def _restore_entry(entry: Any, kind: str, p: Tensor) -> Any:
    if entry is None:
        return None
    return int(entry) if kind == "count" else np.array(entry, dtype=p.data.dtype)


def _check_state_dict(optimizer: Optimizer, state: Any) -> None:
    where = type(optimizer).__name__
    if not isinstance(state, dict):
        raise TypeError(f"{where}: an optimizer state must be a dict from state_dict(), got {type(state).__name__}")
    _check_names(where, "the state dict", set(state), {"kind", "hyperparameters", "state"})
    if state["kind"] != where:
        raise ValueError(f"{where}: the state was saved from a {state['kind']!r} optimizer, not {where!r}; build "
                         f"the optimizer the checkpoint was saved with")
    for part, expected in (("hyperparameters", optimizer.hyperparameter_rules), ("state", optimizer.state_kinds)):
        if not isinstance(state[part], dict):
            raise TypeError(f"{where}: state[{part!r}] must be a dict, got {type(state[part]).__name__}")
        _check_names(where, f"state[{part!r}]", set(state[part]), set(expected))
    for name, rule in optimizer.hyperparameter_rules.items():
        _check_hyperparameter(where, name, rule, state["hyperparameters"][name])
    n = len(optimizer.params)
    for name, kind in optimizer.state_kinds.items():
        entries = state["state"][name]
        if not isinstance(entries, (list, tuple)):
            raise TypeError(f"{where}: optimizer state {name!r} must be a list with one entry per parameter, "
                            f"got {type(entries).__name__}")
        if len(entries) != n:
            raise ValueError(f"{where}: optimizer state {name!r} has {len(entries)} entries but this optimizer "
                             f"has {n} parameters; the checkpoint was saved from a different model")
        for i, (entry, p) in enumerate(zip(entries, optimizer.params)):
            _check_entry(f"{where}: optimizer state {name!r} of {_label(i, p)}", kind, entry, p)


def _check_names(where: str, what: str, got: set[str], expected: set[str]) -> None:
    if got != expected:
        raise ValueError(f"{where}: {what} has keys {sorted(got)} but {where} expects {sorted(expected)}; "
                         f"the checkpoint was saved from a different optimizer or format")


def _check_entry(at: str, kind: str, entry: Any, p: Tensor) -> None:
    """One parameter's saved state: a whole number of steps, or a finite float array of its shape."""
    if kind == "count":
        # a Python or numpy integer, or a 0-d integer array (bools have dtype kind "b")
        integral = isinstance(entry, (int, np.integer, np.ndarray)) and np.asarray(entry).dtype.kind in "iu"
        if not integral or np.ndim(entry) != 0:
            raise TypeError(f"{at} must be a whole number of steps, got {entry!r}")
        if not 0 <= int(entry) <= np.iinfo(np.int64).max:  # state_dict() saves a count as an int64
            raise ValueError(f"{at} must be a non-negative number of steps below 2**63, got {int(entry)}")
        return
    if entry is None and kind == "array or None":
        return
    if not isinstance(entry, np.ndarray) or entry.dtype.kind != "f":
        got = f"dtype {entry.dtype}" if isinstance(entry, np.ndarray) else f"type {type(entry).__name__}"
        raise TypeError(f"{at} must be a float numpy array of shape {p.data.shape}, got {got}")
    if entry.shape != p.data.shape:
        raise ValueError(f"{at} has shape {entry.shape} but the parameter has shape {p.data.shape}; "
                         f"the checkpoint was saved from a different model")
    if not np.all(np.isfinite(entry)):
        raise ValueError(f"{at} holds non-finite values (nan or inf); the saved run diverged or the file is damaged")
    if kind == "array >= 0" and np.any(entry < 0):
        raise ValueError(f"{at} holds negative values, but it is a running mean of squares; the file is damaged")
