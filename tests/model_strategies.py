"""Hypothesis strategies and helpers for the mini-batch tests: random networks, batches, gradients.

A *problem* is a random MLP (0 to 3 hidden layers of width 1 to 8, tanh, relu or sigmoid),
a random batch (1 to 16 samples) and a loss (squared error or cross-entropy). Weights and
data come from a numpy Generator seeded by hypothesis, so every example is reproducible and
shrinks to a small network. (Drawing each weight through hypothesis would add nothing the seeds do
not give and make shrinking slow; the engine-level array strategies live in tests/strategies.py.)

The helpers compute gradients *without* the strategies under test, straight from the
definition (forward one sample, backward, read ``.grad``), so a test that compares a strategy
with them does not compare the module with itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tinygrad_mb import Tensor, nn

# Rounding. Every gradient entry here is a sum of at most a few hundred products (batch <= 16,
# width <= 8, depth <= 4 layers), each product carrying a relative error of a few float64
# epsilons (2.2e-16); so two correct computations of the same gradient differ by at most about
# 1e3 * 2.2e-16 = 2e-13 times the size of the terms. ROUNDING_TOL = 1e-11 leaves a factor 50 of
# room, and is still six orders of magnitude below GENERIC_GAP, the smallest difference the
# "differs" tests accept as evidence that two gradients are really different.
ROUNDING_TOL = 1e-11
GENERIC_GAP = 1e-6

LOSSES = {"mse": nn.mse_loss, "cross_entropy": nn.cross_entropy}


@dataclass
class Problem:
    """One network, one batch and one loss: the input every strategy takes."""

    model: nn.MLP
    loss_fn: Any
    X: np.ndarray
    y: np.ndarray
    loss_name: str
    activation: str

    @property
    def batch_size(self) -> int:
        return len(self.X)

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.model.sizes) - 2

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return (f"Problem(sizes={self.model.sizes}, activation={self.activation!r}, loss={self.loss_name!r}, "
                f"B={self.batch_size})")


def make_problem(sizes: Sequence[int], activation: str, loss_name: str, batch_size: int, seed: int,
                 input_scale: float = 1.0) -> Problem:
    """A network of the given sizes with seeded weights, a seeded batch, and a loss.

    Inputs are standard normal times ``input_scale``; squared-error targets standard normal
    with one column per output; cross-entropy labels uniform over the classes.
    """
    rng = np.random.default_rng(seed)
    model = nn.MLP(list(sizes), activation=activation, rng=rng)
    X = rng.normal(0.0, input_scale, (batch_size, sizes[0]))
    y: np.ndarray
    if loss_name == "mse":
        y = rng.normal(0.0, 1.0, (batch_size, sizes[-1]))
    else:
        y = rng.integers(0, sizes[-1], batch_size)
    return Problem(model, LOSSES[loss_name], X, y, loss_name, activation)


@st.composite
def problems(draw: st.DrawFn, min_depth: int = 0, max_depth: int = 3, min_batch: int = 1, max_batch: int = 16,
             losses: Sequence[str] = ("mse", "cross_entropy"),
             activations: Sequence[str] = ("tanh", "relu", "sigmoid"), input_scale: float = 1.0) -> Problem:
    """A random network, batch and loss (see the module docstring); inputs have spread ``input_scale``."""
    depth = draw(st.integers(min_depth, max_depth), label="hidden layers")
    loss_name = draw(st.sampled_from(list(losses)), label="loss")
    in_features = draw(st.integers(1, 8), label="inputs")
    hidden = draw(st.lists(st.integers(1, 8), min_size=depth, max_size=depth), label="hidden widths")
    # Cross-entropy needs at least two classes; squared error may have one output.
    out_features = draw(st.integers(2 if loss_name == "cross_entropy" else 1, 4), label="outputs")
    activation = draw(st.sampled_from(list(activations)), label="activation")
    batch_size = draw(st.integers(min_batch, max_batch), label="batch size")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    return make_problem([in_features, *hidden, out_features], activation, loss_name, batch_size, seed, input_scale)


# ------------------------------------------------------------------------------ reference gradients
def gradient_of(loss: Tensor, params: list[Tensor]) -> list[np.ndarray]:
    """d loss / d params by one backward pass from clean .grad (zeros where loss does not depend)."""
    for p in params:
        p.grad = None
    loss.backward()
    grads = [np.zeros_like(p.data) if p.grad is None else p.grad.copy() for p in params]
    for p in params:
        p.grad = None
    return grads


def single_sample_gradient(problem: Problem, i: int) -> list[np.ndarray]:
    """∇ℓ_i: forward sample i alone, backward its loss (the definition, no strategy involved)."""
    model = problem.model
    loss = problem.loss_fn(model(Tensor(problem.X[i:i + 1])), problem.y[i:i + 1])
    return gradient_of(loss, model.parameters())


def per_sample_reference(problem: Problem) -> list[np.ndarray]:
    """The B single-sample gradients stacked: one (B, *param.shape) array per parameter."""
    rows = [single_sample_gradient(problem, i) for i in range(problem.batch_size)]
    return [np.stack(per_param) for per_param in zip(*rows)]


def output_gradients(model: nn.Module, x: np.ndarray) -> list[list[np.ndarray]]:
    """For one input row x, ∇ŷ_d (the gradient of output d with respect to every parameter), for each d."""
    params = model.parameters()
    out = model(Tensor(x[None, :]))
    result = []
    for d in range(out.shape[1]):
        seed = np.zeros(out.shape)
        seed[0, d] = 1.0
        for p in params:
            p.grad = None
        model(Tensor(x[None, :])).backward(seed)
        result.append([np.zeros_like(p.data) if p.grad is None else p.grad.copy() for p in params])
    for p in params:
        p.grad = None
    return result


# ------------------------------------------------------------------------------ comparisons
def max_abs(grads: Sequence[np.ndarray]) -> float:
    """The largest absolute entry over a list of arrays."""
    return max(float(np.max(np.abs(g))) for g in grads)


def max_abs_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """The largest absolute entry of a - b, over a list of arrays of matching shapes."""
    assert len(a) == len(b), f"{len(a)} arrays against {len(b)}"
    for u, v in zip(a, b):
        assert np.shape(u) == np.shape(v), f"shape {np.shape(u)} against {np.shape(v)}"
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(a, b))


def assert_same_gradient(actual: Sequence[np.ndarray], expected: Sequence[np.ndarray], scale: float,
                         what: str = "") -> None:
    """Equal up to float64 rounding: max |actual - expected| <= ROUNDING_TOL * max(1, scale)."""
    diff = max_abs_diff(actual, expected)
    bound = ROUNDING_TOL * max(1.0, scale)
    assert diff <= bound, f"{what}: gradients differ by {diff:.3e} > rounding bound {bound:.3e}"


def relu_dead_everywhere(problem: Problem) -> bool:
    """True when some hidden ReLU layer outputs zeros for every sample: no signal reaches the inputs."""
    if problem.activation != "relu":
        return False
    h = problem.X
    for layer in problem.model.layers:
        h = layer(Tensor(h)).data
        if isinstance(layer, nn.ReLU) and not np.any(h > 0):
            return True
    return False


def last_hidden_activations(problem: Problem) -> np.ndarray:
    """What the output layer sees: the last hidden layer's activations, one row per sample."""
    h = problem.X
    for layer in problem.model.layers[:-1]:
        h = layer(Tensor(h)).data
    return h


def output_errors(problem: Problem) -> np.ndarray:
    """g_i = ∂ℓ_i/∂ŷ_i, one row per sample, each from sample i's loss alone."""
    rows = []
    for i in range(problem.batch_size):
        pred = Tensor(problem.model(Tensor(problem.X[i:i + 1])).data, requires_grad=True)
        problem.loss_fn(pred, problem.y[i:i + 1]).backward()
        assert pred.grad is not None
        rows.append(pred.grad[0])
    return np.stack(rows)


def max_pairwise_distance(X: np.ndarray) -> float:
    """The largest Euclidean distance between two rows (0 for a single row)."""
    d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1))
    return float(d.max())


def min_pairwise_distance(X: np.ndarray) -> float:
    """The smallest Euclidean distance between two rows (inf for a single row)."""
    if len(X) < 2:
        return float("inf")
    d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1))
    return float(d[np.triu_indices(len(X), k=1)].min())
