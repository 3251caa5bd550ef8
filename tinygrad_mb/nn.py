"""Layers and losses built from Tensor operations.

A ``Module`` holds parameters (tensors with ``requires_grad=True``) and maps inputs to
outputs in ``forward``. Parameters are found by looking through the module's attributes
in the order they were assigned, so ``Linear`` yields its weight then its bias and a
network yields its layers in order (the same order as PyTorch).

Shapes follow the mathematics ``h @ W + b``: a batch is a matrix with one row per
sample, and ``Linear``'s weight has shape (in_features, out_features).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import (
    as_float_array,
    check_flag,
    check_float_dtype,
    check_int,
    check_layer_sizes,
    check_linear,
    check_seed,
    describe,
    shape_str,
)
from .tensor import ArrayLike, Tensor, log_softmax_values, unbroadcast

Rng = np.random.Generator | int | None


def _generator(rng: Rng, op: str) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(check_seed(rng, op))


class Module:
    """Base class: subclasses set parameters and child modules as attributes and define forward."""

    def forward(self, *args: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any) -> Tensor:
        return self.forward(*args)

    def named_parameters(self, prefix: str = "", frozen: bool = False) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, parameter) pairs, in the order the attributes were assigned.

        ``frozen=True`` lists the tensors that do not require grad as well: every tensor the
        model holds, as needed to copy a whole model to another process.
        """
        seen: set[int] = set()
        for name, p in self._walk(prefix, set(), frozen):
            if id(p) not in seen:  # a parameter shared by two layers is listed once
                seen.add(id(p))
                yield name, p

    def _walk(self, prefix: str, visited: set[int], frozen: bool) -> Iterator[tuple[str, Tensor]]:
        if id(self) in visited:  # met before: a shared layer, or a cycle (a child that holds its parent)
            return
        visited.add(id(self))
        for attr, value in vars(self).items():
            yield from _parameters_in(value, prefix + attr, visited, frozen)

    def parameters(self) -> list[Tensor]:
        """The trainable tensors, layer by layer, weight before bias."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's values, keyed by its dotted name."""
        return {name: p.data.copy() for name, p in self._parameters_by_name("state_dict").items()}

    def _parameters_by_name(self, op: str) -> dict[str, Tensor]:
        """named_parameters() as a dict, refusing two parameters of one name (one would be lost)."""
        params: dict[str, Tensor] = {}
        for name, p in self.named_parameters():
            if name in params:
                raise ValueError(
                    f"{op}: two different parameters are both named {name!r} (dict keys such as 0 and '0', or "
                    f"'a.b' beside a nested 'a' holding 'b'), so a state dict cannot tell them apart; rename a key"
                )
            params[name] = p
        return params

    def load_state_dict(self, state: dict[str, ArrayLike]) -> None:
        """Copy values into the parameters; checks every name, shape and value before changing any."""
        if not isinstance(state, Mapping):
            raise TypeError(
                f"load_state_dict: state must be a dict of parameter name -> array, as state_dict() "
                f"returns, got {describe(state)}"
            )
        params = self._parameters_by_name("load_state_dict")
        missing = sorted(set(params) - set(state), key=str)
        unexpected = sorted(set(state) - set(params), key=str)
        if missing or unexpected:
            raise KeyError(
                f"load_state_dict: names do not match the model (missing: {missing}, "
                f"unexpected: {unexpected}); was the state saved from a model of another architecture?"
            )
        arrays = {}
        for name, p in params.items():
            raw = state[name]
            value = as_float_array(raw.data if isinstance(raw, Tensor) else raw,
                                    f"load_state_dict ({name!r})")
            if value.shape != p.shape:
                raise ValueError(
                    f"load_state_dict: shape mismatch for {name!r}: the state has "
                    f"{shape_str(value.shape)}, the model has {shape_str(p.shape)}; "
                    f"build the model with the same layer sizes as the saved one."
                )
            with np.errstate(over="ignore"):  # an overflow is reported just below, in words
                arrays[name] = value.astype(p.dtype, copy=True)
            if not np.isfinite(arrays[name]).all():  # checked after the cast: 1e300 is inf in float32
                raise ValueError(
                    f"load_state_dict: {name!r} holds nan or inf values (or values too large for "
                    f"{p.dtype}); a model cannot continue from them (was the state saved after training diverged?)"
                )
        # Every check passed: only now change the parameters, so a bad state changes nothing.
        for name, p in params.items():
            p.data = arrays[name]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _parameters_in(value: Any, name: str, visited: set[int], frozen: bool) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        if value.requires_grad or frozen:
            yield name, value
    elif isinstance(value, Module):
        yield from value._walk(name + ".", visited, frozen)
    elif isinstance(value, (list, tuple, dict)) and id(value) not in visited:  # a list holding itself: once
        visited.add(id(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from _parameters_in(item, f"{name}.{key}", visited, frozen)


def linear(x: ArrayLike, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The affine map ``x @ weight + bias``, recorded as one graph node, ``linear``.

    It computes what the two nodes ``x @ W`` and ``+ b`` would, and its backward is theirs
    written out. With one row per sample -- input h_i, output gradient g_i (row i of G) --

        dx = G Wᵀ,    dW = hᵀG = Σ_i outer(h_i, g_i),    db = Σ_i g_i.

    The two sums over the rows are where a batch gets summed: every sample's row meets the
    others only at the parameters. (A mean loss has already put its 1/B inside each g_i.)
    One node instead of two keeps pictures small and the per-sample loop fast; graph
    pictures print these formulas in the node.
    """
    x = x if isinstance(x, Tensor) else Tensor(as_float_array(x, "linear"))  # plain data (a numpy batch) is welcome
    check_linear(x, weight, bias)
    h, W = x.data, weight.data
    out = h @ W if bias is None else h @ W + bias.data
    need_x, need_w = x.requires_grad, weight.requires_grad
    need_b = bias is not None and bias.requires_grad
    b_shape = bias.shape if bias is not None else ()

    def backward(G: np.ndarray) -> tuple[np.ndarray | None, ...]:
        rows_h, rows_G = h, G  # one row per sample
        if h.ndim != 2:  # a single sample (in,) or extra axes (B, T, in): make them rows
            rows_h, rows_G = h.reshape(-1, h.shape[-1]), G.reshape(-1, G.shape[-1])
        # np.dot, not @: for a one-row batch, h.T @ G takes a slow non-BLAS path.
        dx = np.dot(G, W.T) if need_x else None
        dW = np.dot(rows_h.T, rows_G) if need_w else None  # Σ_i outer(h_i, g_i)
        if bias is None:
            return dx, dW
        return dx, dW, (unbroadcast(G, b_shape) if need_b else None)  # Σ_i g_i, the sum over the rows

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.record(out, parents, "linear", backward)


class Linear(Module):
    """An affine map ``x @ weight + bias``.

    Args:
        in_features, out_features: sizes of each input and output row.
        bias: whether to add a bias.
        rng: a numpy Generator or seed, for reproducible initial weights.
        dtype: float64 (default) or float32.

    Weights start uniform in ±1/sqrt(in_features) (as PyTorch's default), which keeps
    the output's scale close to the input's; the bias starts in the same range.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: Rng = None, dtype: Any = np.float64):
        in_features = check_int(in_features, "Linear", "in_features")
        out_features = check_int(out_features, "Linear", "out_features")
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear: sizes must be positive, got in_features={in_features}, "
                f"out_features={out_features}"
            )
        bias, dtype = check_flag(bias, "Linear", "bias"), check_float_dtype(dtype, "Linear")
        gen = _generator(rng, "Linear")  # every check is done before the generator draws
        bound = 1.0 / np.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Tensor(gen.uniform(-bound, bound, (in_features, out_features)).astype(dtype),
                             requires_grad=True, name="W")
        self.bias = (Tensor(gen.uniform(-bound, bound, (out_features,)).astype(dtype),
                            requires_grad=True, name="b") if bias else None)

    def forward(self, x: ArrayLike) -> Tensor:
        return linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class Tanh(Module):
    def forward(self, x: ArrayLike) -> Tensor:
        return as_prediction(x, "Tanh").tanh()


class ReLU(Module):
    def forward(self, x: ArrayLike) -> Tensor:
        return as_prediction(x, "ReLU").relu()


class Sigmoid(Module):
    def forward(self, x: ArrayLike) -> Tensor:
        return as_prediction(x, "Sigmoid").sigmoid()


ACTIVATIONS: dict[str, type[Module]] = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid}


class Sequential(Module):
    """Applies its modules one after the other."""

    def __init__(self, *modules: Module):
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(
                    f"{type(self).__name__}: argument {i} is {describe(m)}, not a Module; layers are "
                    f"Modules such as nn.Linear(2, 3) or nn.Tanh() (wrap a function in a Module's forward)"
                )
        self.layers = list(modules)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        try:
            return self.layers[i]
        except (IndexError, TypeError):
            raise IndexError(f"{type(self).__name__}: no layer {i!r}; it has {len(self.layers)} layers") from None

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(repr(m) for m in self.layers)
        return f"{type(self).__name__}({inner})"


class MLP(Sequential):
    """A multilayer perceptron: Linear layers with an activation between them (none after the last).

    Args:
        sizes: layer widths from input to output, e.g. [2, 16, 16, 1].
        activation: "tanh", "relu" or "sigmoid".
        rng: a numpy Generator or seed for the initial weights.

    Parameters are named W1, b1, W2, b2, ... in graph pictures.
    """

    def __init__(self, sizes: list[int], activation: str = "tanh", rng: Rng = None,
                 dtype: Any = np.float64):
        sizes = check_layer_sizes(sizes, "MLP")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        dtype, gen = check_float_dtype(dtype, "MLP"), _generator(rng, "MLP")  # all checked before any draw
        layers: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            linear = Linear(n_in, n_out, rng=gen, dtype=dtype)
            linear.weight.name, linear.bias.name = f"W{i}", f"b{i}"  # type: ignore[union-attr]
            layers.append(linear)
            if i < len(sizes) - 1:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.sizes, self.activation = list(sizes), activation

    def __repr__(self) -> str:
        return f"MLP({self.sizes}, activation={self.activation!r})"


# ------------------------------------------------------------------------------ losses
REDUCTIONS = ("mean", "sum", "none")
LossFn = Callable[[Tensor, Any], Tensor]  # loss_fn(pred, target) -> a scalar Tensor


@dataclass(frozen=True)
class LossInfo:
    """What the strategies and the trainer read off a loss function (see ``loss_info``).

    Attributes:
        kind: "squared_error" or "cross_entropy" for this module's losses (each sample's
            loss depends on that sample alone), None for a function the library does not know.
        reduction: how the samples' losses are combined: "mean", "sum" or "none" (assumed
            "mean" for an unknown function: that is the strategies' contract).
        classification: whether predictions are class scores and targets class ids, so that
            accuracy applies; None when unknown (the trainer then looks at the targets).
    """

    kind: str | None
    reduction: str
    classification: bool | None


def per_sample_loss(kind: str, classification: bool) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Mark a loss function whose sample losses are independent and that takes ``reduction=``."""
    def mark(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        fn.loss_kind = (kind, classification)  # type: ignore[attr-defined]
        return fn
    return mark


def loss_info(loss_fn: Any) -> LossInfo:
    """Describe ``loss_fn``: this module's losses, also through ``functools.partial``, or unknown.

    ``partial(nn.cross_entropy, reduction="sum")`` is known to sum; a function of your own is
    unknown, assumed to follow the contract (a mean over the samples it is given).
    """
    keywords: dict[str, Any] = {}
    while isinstance(loss_fn, functools.partial):  # partial(partial(f, a=1), b=2) too
        keywords = {**loss_fn.keywords, **keywords}
        loss_fn = loss_fn.func
    marked = getattr(loss_fn, "loss_kind", None)
    # functools.wraps copies the mark onto a wrapper, which may sum or mix samples: the mark is
    # trusted only on this module's own functions, never on something that wraps one.
    if marked is None or hasattr(loss_fn, "__wrapped__"):
        return LossInfo(kind=None, reduction="mean", classification=None)
    kind, classification = marked
    return LossInfo(kind=kind, reduction=keywords.get("reduction", "mean"), classification=classification)


def as_prediction(pred: Any, op: str) -> Tensor:
    """A layer's input or a loss's first argument as a Tensor: numpy data is wrapped (no gradient flows into it)."""
    return pred if isinstance(pred, Tensor) else Tensor(as_float_array(pred, op))


def check_batch(pred: Tensor, op: str, what: str, outputs: str = "outputs") -> None:
    """A loss needs at least one sample (a mean over none is nan) and, per sample, an output."""
    if pred.data.size:  # the common case: nothing to check
        return
    if pred.ndim and pred.shape[0] == 0:
        raise ValueError(
            f"{op}: the batch is empty ({what} has shape {shape_str(pred.shape)}); a loss needs at least "
            f"one sample (check how the batch was sliced)"
        )
    raise ValueError(f"{op}: {what} has shape {shape_str(pred.shape)}: each sample has no {outputs}")


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    """Combine the per-sample losses; the callers have checked ``reduction``."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample  # "none"


@per_sample_loss("squared_error", classification=False)
def mse_loss(pred: Tensor, target: ArrayLike, reduction: str = "mean") -> Tensor:
    """Squared error. Sample i's loss is the mean over its outputs of (pred - target)².

    Args:
        pred: predictions, shape (B,) or (B, D).
        target: the same shape as ``pred`` (never broadcast: a (B, 1) prediction against a
            (B,) target would silently compare every prediction with every target).
        reduction: "mean" averages the B sample losses, "sum" adds them, "none" returns them
            (shape (B,)). So "sum" is exactly B times "mean".
    """
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"mse_loss: unknown reduction {reduction!r}; choose one of {list(REDUCTIONS)}")
    pred = as_prediction(pred, "mse_loss")
    if not isinstance(target, Tensor):  # data: take pred's dtype, so float32 stays float32
        target = Tensor(as_float_array(target, "mse_loss").astype(pred.dtype, copy=False))
    if pred.shape != target.shape:
        raise ValueError(
            f"mse_loss: pred has shape {shape_str(pred.shape)} but target has shape "
            f"{shape_str(target.shape)}; they must match (e.g. y.reshape(-1, 1) for a (B, 1) prediction)."
        )
    check_batch(pred, "mse_loss", "pred")
    sq = (pred - target) ** 2
    per_sample = sq.mean(axis=tuple(range(1, sq.ndim))) if sq.ndim > 1 else sq
    loss = _reduce(per_sample, reduction)
    # Only a loss that is not finite asks why (one cheap test per call): a missing target (nan) is
    # bad input and an error; a model that diverged is not, and gets its nan loss.
    if not math.isfinite(loss.data.sum() if loss.data.ndim else loss.data):
        check_finite_target(target.data, "mse_loss")
    return loss


def check_finite_target(target: np.ndarray, op: str) -> None:
    """Refuse targets holding nan or inf, naming how many and where the first is."""
    finite = np.isfinite(target)
    if not finite.all():  # a missing value (nan) would make the loss, and every gradient, nan
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{op}: the target holds {int((~finite).sum())} nan or inf value(s), the first at "
            f"position {where}; remove or fill in missing targets before training"
        )


def class_labels(labels: ArrayLike, num_classes: int, batch: int, op: str) -> np.ndarray:
    """Validate class ids: integers in [0, num_classes), one per sample.

    Returns:
        The labels as an integer index array of shape (batch,).
    """
    try:
        raw = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    except (ValueError, TypeError):  # a ragged list
        raise TypeError(f"{op}: labels must be integer class ids, one per sample, got {describe(labels)}") from None
    kind = raw.dtype.kind
    if kind not in "iuf":
        raise TypeError(f"{op}: labels must be integer class ids, got dtype {raw.dtype}"
                        "; for one-hot targets pass targets.argmax(axis=1).")
    if kind == "f":  # floats are accepted when they hold whole numbers
        not_whole = ~np.isfinite(raw) | (raw != np.round(raw))
        if not_whole.any():
            raise TypeError(
                f"{op}: labels must be integer class ids, got dtype {raw.dtype} with values like "
                f"{raw[not_whole].ravel()[:3].tolist()}; for one-hot targets pass "
                f"targets.argmax(axis=1)."
            )
    if raw.shape != (batch,):
        one_hot = " (for one-hot targets pass targets.argmax(axis=1))" if raw.ndim == 2 else ""
        raise ValueError(
            f"{op}: labels have shape {shape_str(raw.shape)} but the logits hold {batch} samples; "
            f"pass one class id per sample, shape ({batch},){one_hot}."
        )
    if raw.size and (raw.min() < 0 or raw.max() >= num_classes):  # before the cast, which could wrap around
        bad = raw[(raw < 0) | (raw >= num_classes)][0]
        raise ValueError(
            f"{op}: label {int(bad) if kind in 'iu' else format(bad, 'g')} is out of range for "
            f"{num_classes} classes; class ids run from 0 to {num_classes - 1}."
        )
    return raw.astype(np.intp, copy=False)


@per_sample_loss("cross_entropy", classification=True)
def cross_entropy(logits: Tensor, labels: ArrayLike, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy. Sample i's loss is -log softmax(logits_i)[labels_i].

    Args:
        logits: unnormalised scores, shape (B, C).
        labels: integer class ids in [0, C), shape (B,).
        reduction: "mean", "sum" or "none" over the B samples.
    """
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: unknown reduction {reduction!r}; choose one of {list(REDUCTIONS)}")
    logits = as_prediction(logits, "cross_entropy")
    if logits.ndim != 2:
        raise ValueError(
            f"cross_entropy: logits must have shape (batch, classes), got {shape_str(logits.shape)}; "
            f"for a single sample use logits.reshape(1, -1)"
        )
    check_batch(logits, "cross_entropy", "logits", outputs="classes")
    batch, num_classes = logits.shape
    ids = class_labels(labels, num_classes, batch, "cross_entropy")
    # One node for the B per-sample losses (the same values as
    # -logits.log_softmax(axis=1)[np.arange(batch), ids], in one step instead of three);
    # the reduction over samples stays a node of its own, so a graph shows where the mean is.
    log_probs = log_softmax_values(logits.data, axis=1)
    rows = np.arange(batch)

    def backward(g: np.ndarray) -> tuple[np.ndarray]:
        # dℓ_i/dz_i = softmax(z_i) − onehot(y_i): the predicted probabilities minus the truth
        d = np.exp(log_probs)
        d[rows, ids] -= 1
        return (d * g[:, None],)

    per_sample = Tensor.record(-log_probs[rows, ids], (logits,), "cross_entropy", backward)
    return _reduce(per_sample, reduction)


@per_sample_loss("binary_cross_entropy", classification=False)
def binary_cross_entropy(logits: Tensor, targets: ArrayLike, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy from logits. Sample i's loss is the mean over its D outputs of

        −[t log σ(x) + (1 − t) log(1 − σ(x))]  =  softplus(x) − t·x,

    computed as max(x, 0) − t·x + log(1 + e^(−|x|)), finite for finite logits of any size
    (e^(−|x|) never overflows). Its derivative is σ(x) − t, exact at every x, 0 included.

    Args:
        logits: scores x, shape (B,) or (B, D, ...); σ(x) is the predicted probability.
        targets: probabilities t in [0, 1] (0/1 labels or soft targets), the same shape; a Tensor
            that requires grad receives its gradient, −x/D per element.
        reduction: "mean", "sum" or "none" over the B samples. Like ``mse_loss``, a sample's
            loss is the MEAN over its outputs, so a Bernoulli log-likelihood summed over D
            pixels (a VAE's reconstruction term) is D times it.
    """
    op = "binary_cross_entropy"
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{op}: unknown reduction {reduction!r}; choose one of {list(REDUCTIONS)}")
    logits = as_prediction(logits, op)
    t = as_float_array(targets.data if isinstance(targets, Tensor) else targets, op)
    check_probabilities(logits, t, op)  # before the cast: in float32, 1 + 1e-9 would round to 1
    t = t.astype(logits.dtype, copy=False)
    check_batch(logits, op, "logits")
    x = logits.data
    softplus_neg_abs = np.log1p(np.exp(-np.abs(x)))  # log(1 + e^(−|x|)), in (0, log 2]
    elementwise = np.maximum(x, 0) - t * x + softplus_neg_abs
    probability = np.exp(np.minimum(x, 0) - softplus_neg_abs)  # σ(x) without overflow on either side
    axes = tuple(range(1, x.ndim))
    outputs = math.prod(x.shape[1:])
    # targets that require grad (another model's probabilities) get their gradient too, as in mse_loss
    parents = (logits, targets) if isinstance(targets, Tensor) and targets.requires_grad else (logits,)

    def backward(g: np.ndarray) -> tuple[np.ndarray, ...]:
        # dℓ_i/dx_id = (σ(x_id) − t_id) / D: the predicted probability minus the truth; dℓ_i/dt_id = −x_id / D
        share = g.reshape(g.shape + (1,) * len(axes)) / outputs
        return ((probability - t) * share,) if len(parents) == 1 else ((probability - t) * share, -x * share)

    per_sample = Tensor.record(elementwise.mean(axis=axes) if axes else elementwise, parents, op, backward)
    return _reduce(per_sample, reduction)


def check_probabilities(logits: Tensor, targets: np.ndarray, op: str) -> None:
    """Targets of a binary cross-entropy: the logits' shape, every value a probability in [0, 1]."""
    if targets.shape != logits.shape:
        raise ValueError(f"{op}: logits have shape {shape_str(logits.shape)} but targets have shape "
                         f"{shape_str(targets.shape)}; they must match (one probability per logit)")
    outside = ~((targets >= 0) & (targets <= 1))  # nan is outside too
    if outside.any():
        raise ValueError(f"{op}: targets must be probabilities in [0, 1], got {float(targets[outside].ravel()[0])!r}; "
                         f"for 0..255 pixels divide by 255, for -1/+1 labels use (y + 1) / 2")


@per_sample_loss("gaussian_kl", classification=False)
def gaussian_kl(mu: Tensor, logvar: Tensor, reduction: str = "mean") -> Tensor:
    """KL(N(μ, e^logvar) ‖ N(0, I)) of each sample, summed over the latent dimensions:

        KL_i = ½ Σ_d (μ_id² + e^(logvar_id) − 1 − logvar_id),

    the closed form of a VAE's regulariser (Kingma & Welling 2014, appendix B), one node whose
    backward is ∂KL_i/∂μ_id = μ_id and ∂KL_i/∂logvar_id = ½(e^(logvar_id) − 1). Near
    logvar = 0, e^logvar − 1 − logvar subtracts nearly equal numbers; ``expm1`` computes
    e^logvar − 1 without that loss of digits.

    Args:
        mu, logvar: the means and log-variances of q(z | x), shape (B, latent) each.
        reduction: "mean", "sum" or "none" over the B samples.
    """
    op = "gaussian_kl"
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{op}: unknown reduction {reduction!r}; choose one of {list(REDUCTIONS)}")
    mu, logvar = as_prediction(mu, op), as_prediction(logvar, op)
    if mu.ndim != 2 or mu.shape != logvar.shape:
        raise ValueError(f"{op}: mu and logvar must both have shape (batch, latent), got "
                         f"{shape_str(mu.shape)} and {shape_str(logvar.shape)}")
    check_batch(mu, op, "mu", outputs="latent dimensions")
    m, variance_minus_1 = mu.data, np.expm1(logvar.data)

    def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return g[:, None] * m, g[:, None] * 0.5 * variance_minus_1

    per_sample = Tensor.record(0.5 * (m * m + variance_minus_1 - logvar.data).sum(axis=1), (mu, logvar), op,
                               backward)
    return _reduce(per_sample, reduction)
