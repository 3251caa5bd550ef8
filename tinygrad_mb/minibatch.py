"""Mini-batch gradient strategies: what exactly gets averaged.

For parameters θ, a batch of B samples and per-sample losses ℓ_i(θ) = ℓ(f_θ(x_i), y_i),
the mini-batch loss is L_B(θ) = (1/B) Σ_i ℓ_i(θ). Every ℓ_i is evaluated at the *same* θ
(the inputs x_i are constants), and the gradient is linear, so

    ∇_θ L_B = (1/B) Σ_i ∇_θ ℓ_i(θ)        exactly, for any network however nonlinear.

``per_sample_average``, ``batched_mean``, ``accumulated`` and ``per_sample_gradients`` (their
mean) compute this same gradient in different ways, equal up to floating-point rounding.
``naive_accumulated`` and ``error_first`` are the two classic mistakes, implemented so that
they can be shown and refuted.

Common contract. ``model`` is an ``nn.Module``; ``loss_fn(pred, target)`` returns the
*mean* loss over the samples it is given (``nn.mse_loss``, ``nn.cross_entropy``);
``X`` holds one sample per row and ``y`` one target per sample. Each strategy returns a
``Gradients`` list of numpy arrays aligned with ``list(model.parameters())``, leaves the
parameter values unchanged, and leaves each parameter's ``.grad`` equal to what it returns.
The returned list also carries ``.loss``: the true mean loss L_B of the batch at θ.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import nn
from .checks import describe, shape_str
from .grad_mode import grads_put_back, no_grad
from .tensor import Tensor

LossFn = nn.LossFn

ERROR_FIRST_VARIANTS = ("mean_input", "last_sample", "loss_as_gradient", "mean_residual")


class Gradients(list):
    """A list of gradient arrays (one per parameter) that also remembers the batch's mean loss."""

    def __init__(self, grads: Sequence[np.ndarray], loss: float):
        super().__init__(grads)
        self.loss = float(loss)


# ------------------------------------------------------------------------------ helpers
def check_batch(model: nn.Module, X: Any, y: Any, op: str) -> tuple[np.ndarray, np.ndarray, list[Tensor]]:
    """Validate a batch before anything is touched; return X, y as arrays and the parameters.

    ``op`` names the caller in the error messages.
    """
    if not callable(model) or not callable(getattr(model, "parameters", None)):
        raise TypeError(f"{op}: model must be an nn.Module (such as nn.MLP([2, 8, 1])), got {describe(model)}")
    X, y = _as_array(X, "X", op), _as_array(y, "y", op)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"{op}: X and y must hold one sample per row, got shapes {shape_str(X.shape)} and "
            f"{shape_str(y.shape)}"
        )
    if len(X) != len(y):
        raise ValueError(
            f"{op}: X holds {len(X)} samples (shape {shape_str(X.shape)}) but y holds {len(y)} "
            f"(shape {shape_str(y.shape)}); pass one target per sample."
        )
    if len(X) == 0:
        raise ValueError(f"{op}: the batch is empty; pass at least one sample.")
    params = list(model.parameters())
    if not params:
        raise ValueError(f"{op}: the model has no parameters (tensors with requires_grad=True)")
    return X, y, params


def _as_array(data: Any, what: str, op: str) -> np.ndarray:
    try:
        return np.asarray(data.data if isinstance(data, Tensor) else data)
    except (ValueError, TypeError) as exc:  # ragged nested lists, for example
        raise TypeError(f"{op}: {what} cannot be made an array (every sample needs the same shape): {exc}") from None


def check_loss_fn(loss_fn: Any, op: str) -> nn.LossInfo:
    """Refuse a loss that does not average over the batch: every strategy needs the mean.

    The strategies compute ∇ of the batch mean L_B = (1/B) Σ_i ℓ_i. With a summed loss they
    would silently disagree (``batched_mean`` B times too large, ``per_sample_average`` right,
    ``accumulated`` in between), which is exactly the confusion this module exists to dispel.
    """
    if not callable(loss_fn):
        raise TypeError(f"{op}: loss_fn must be a function loss_fn(pred, target), got {type(loss_fn).__name__}")
    info = nn.loss_info(loss_fn)
    if info.reduction != "mean":
        raise ValueError(
            f"{op}: loss_fn reduces the samples' losses with {info.reduction!r}, but every strategy "
            f"computes the gradient of the batch MEAN loss (1/B) Σ_i ℓ_i and needs loss_fn to return "
            f"the mean over the samples it is given (reduction='mean', the default). With 'sum' the "
            f"strategies would silently disagree. For the gradient of a sum over a data set, scale the "
            f"mean's gradient by the number of samples."
        )
    return info


def scalar_loss(value: Any, op: str) -> Tensor:
    """What loss_fn returned, checked: a Tensor holding one number."""
    if not isinstance(value, Tensor) or value.size != 1:
        got = f"a Tensor of shape {shape_str(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise TypeError(
            f"{op}: loss_fn must return a Tensor holding one number (the mean loss), got {got}; "
            f"build the loss from Tensor operations (a Python float carries no graph to backpropagate)."
        )
    return value


def _collect(params: list[Tensor], loss: float, scale: float = 1.0) -> Gradients:
    """Scale each .grad (a parameter the loss never reached gets zeros) and return copies."""
    grads = []
    for p in params:
        g = np.zeros_like(p.data) if p.grad is None else p.grad
        p.grad = g * scale if scale != 1.0 else g
        grads.append(p.grad.copy())
    return Gradients(grads, loss)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def check_micro_batch(micro_batch: Any, op: str) -> int:
    """A micro-batch size as an int >= 1, or a clear error naming ``op``."""
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, (int, np.integer)) or micro_batch < 1:
        raise ValueError(f"{op}: micro_batch must be a whole number of samples >= 1, got {micro_batch!r}")
    return int(micro_batch)


# ------------------------------------------------------------------------------ strategies
def per_sample_average(model: nn.Module, loss_fn: LossFn, X: Any, y: Any) -> Gradients:
    """Backpropagate every sample alone and average:  g = (1/B) Σ_i ∇ℓ_i.

    Each backward call *adds* ∇ℓ_i into the parameters' .grad (gradients accumulate), so the
    running sum lives in .grad and only one sample's graph exists at a time: peak activation
    memory is that of a single sample, whatever B is.
    """
    X, y, params = check_batch(model, X, y, "per_sample_average")
    check_loss_fn(loss_fn, "per_sample_average")
    B = len(X)
    total = 0.0
    with grads_put_back(params, on_success=False):
        for i in range(B):
            loss_i = scalar_loss(loss_fn(model(Tensor(X[i:i + 1])), y[i:i + 1]), "per_sample_average")
            loss_i.backward()
            total += loss_i.item()
        return _collect(params, total / B, scale=1.0 / B)


def batched_mean(model: nn.Module, loss_fn: LossFn, X: Any, y: Any) -> Gradients:
    """One forward of the whole batch, the mean loss L_B = (1/B) Σ_i ℓ_i, one backward.

    The 1/B and the sum are nodes of the graph (the mean), so backpropagation hands each
    sample's branch 1/B of the upstream gradient; vectorised, which is why it is fast.
    """
    X, y, params = check_batch(model, X, y, "batched_mean")
    check_loss_fn(loss_fn, "batched_mean")
    with grads_put_back(params, on_success=False):
        loss = scalar_loss(loss_fn(model(Tensor(X)), y), "batched_mean")
        loss.backward()
        return _collect(params, loss.item())


def accumulated(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, micro_batch: int) -> Gradients:
    """Gradient accumulation over micro-batches of at most m samples:  g = Σ_c (Σ_{i∈c} ℓ_i) / B.

    Each chunk's mean loss is weighted by |c|/B before its backward pass, so the result equals
    ``batched_mean`` for any chunk sizes, including a short last chunk. (Data-parallel training
    is the same arithmetic with shards instead of chunks.)
    """
    X, y, params = check_batch(model, X, y, "accumulated")
    check_loss_fn(loss_fn, "accumulated")
    m = check_micro_batch(micro_batch, "accumulated")
    B = len(X)
    total = 0.0
    with grads_put_back(params, on_success=False):
        for c in _chunks(B, m):
            weight = (c.stop - c.start) / B
            chunk_loss = scalar_loss(loss_fn(model(Tensor(X[c])), y[c]), "accumulated") * weight
            chunk_loss.backward()
            total += chunk_loss.item()
        return _collect(params, total)


def sum_estimate(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, dataset_size: int) -> Gradients:
    """The (N/M)·Σ estimate of the gradient of a SUM over a data set of N samples.

    When the objective is the sum Σ_{j=1}^N ℓ_j (a log-likelihood, an evidence lower bound), a
    batch of M samples drawn uniformly from the N estimates its gradient without bias as

        (N/M) Σ_{i∈batch} ∇ℓ_i  =  N · ∇[(1/M) Σ_{i∈batch} ℓ_i]  =  N · (the batch-mean gradient).

    Averaged over every possible batch this is exactly ∇ Σ_j ℓ_j. (E_j[∇ℓ_j] is that divided
    by N: a sum's gradient is not the mean of the per-sample gradients.) SGLD and AEVB step
    along this estimate. ``.loss`` is the matching estimate of the sum of losses, N times the
    batch mean; ``.grad`` is left equal to the returned gradient.
    """
    X, y, params = check_batch(model, X, y, "sum_estimate")
    if isinstance(dataset_size, (bool, np.bool_)) or not isinstance(dataset_size, (int, np.integer)) \
            or dataset_size < len(X):
        raise ValueError(
            f"sum_estimate: dataset_size must be a whole number N >= the batch size {len(X)} (the number of "
            f"samples the batch was drawn from), got {dataset_size!r}"
        )
    check_loss_fn(loss_fn, "sum_estimate")
    with grads_put_back(params, on_success=False):
        loss = scalar_loss(loss_fn(model(Tensor(X)), y), "sum_estimate")
        loss.backward()
        return _collect(params, loss.item() * int(dataset_size), scale=float(dataset_size))


def naive_accumulated(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, micro_batch: int) -> Gradients:
    """WRONG ON PURPOSE: the mean of the chunks' mean losses,  g = (1/K) Σ_c ∇ mean_{i∈c} ℓ_i.

    With K chunks it weights a sample of chunk c by 1/(K·|c|) instead of 1/B. It agrees with
    ``batched_mean`` only when all chunks have the same size; a short last chunk gives its
    samples too much weight. It is a different gradient, not a noisier estimate of the same
    one: training on it can even reach a lower loss, by fitting the over-weighted samples.
    The same mistake in its token form was found in 2024 in the gradient accumulation of major
    training libraries: each micro-batch's loss was normalised by its OWN token count, where the
    batch loss divides by the total token count of the whole batch, so micro-batches with
    fewer tokens got too much weight. Kept for teaching; use ``accumulated``.
    """
    X, y, params = check_batch(model, X, y, "naive_accumulated")
    check_loss_fn(loss_fn, "naive_accumulated")
    m = check_micro_batch(micro_batch, "naive_accumulated")
    chunks = _chunks(len(X), m)
    total = 0.0
    with grads_put_back(params, on_success=False):
        for c in chunks:
            chunk_loss = scalar_loss(loss_fn(model(Tensor(X[c])), y[c]), "naive_accumulated")
            (chunk_loss / len(chunks)).backward()
            total += chunk_loss.item() * (c.stop - c.start)
        return _collect(params, total / len(X))


_PER_SAMPLE_FORWARDS = (nn.Linear.forward, nn.Tanh.forward, nn.ReLU.forward, nn.Sigmoid.forward)


def _per_sample_layers(model: nn.Module, op: str = "per_sample_gradients") -> list[nn.Module]:
    """The model as a flat list of Linear layers and elementwise activations, or a clear error.

    A subclass that overrides ``forward`` (or ``__call__``, or a ``forward`` set on the instance)
    computes something else than its base class (a residual connection, a scaled output, samples
    mixed), so only the library's own ``forward``, called the library's way, is accepted.
    """
    if isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward and _own_call(model):
        layers = [leaf for layer in model.layers for leaf in _per_sample_layers(layer, op)]
    else:
        layers = [model]
    for layer in layers:
        if not isinstance(layer, nn.Module) or type(layer).forward not in _PER_SAMPLE_FORWARDS \
                or not _own_call(layer):
            raise TypeError(
                f"{op}: cannot vectorise over layer {layer!r}; only Linear layers "
                f"and elementwise activations (Tanh, ReLU, Sigmoid), chained by Sequential with their "
                f"own forward and __call__, are supported, because the formula needs samples that do not interact "
                f"(batch normalisation, for one, mixes them). Loop instead: "
                f"batched_mean(model, loss_fn, X[i:i+1], y[i:i+1]) per sample."
            )
    return layers


def _own_call(module: nn.Module) -> bool:
    """Calling the module runs its class's forward: no __call__ override, no forward set on the instance."""
    return type(module).__call__ is nn.Module.__call__ and "forward" not in vars(module)


def _add_per_sample(per_sample: dict[int, np.ndarray], param: Tensor, grads: np.ndarray) -> None:
    """Store a parameter's per-sample gradients, adding them up if the layer is used twice."""
    key = id(param)
    grads = grads.astype(param.dtype, copy=False)  # float64 data through a float32 model
    per_sample[key] = per_sample[key] + grads if key in per_sample else grads


def per_sample_gradients(model: nn.Module, loss_fn: LossFn, X: Any, y: Any) -> Gradients:
    """The B individual gradients ∇ℓ_i stacked: one array of shape (B, *param.shape) per parameter.

    Computed with one batched forward and backward, no loop over samples. For a layer
    z = h @ W + b, sample i's loss depends on W only through row z_i = h_i @ W + b, so

        ∇_W ℓ_i = outer(h_i, ∂ℓ_i/∂z_i)     and     ∇_b ℓ_i = ∂ℓ_i/∂z_i,

    and backpropagating the mean loss delivers ∂L/∂z_i = (1/B) ∂ℓ_i/∂z_i at every layer
    output: multiply by B and take the outer products. This holds only when samples do not
    interact, so it accepts Linear layers with elementwise activations and this library's
    per-sample losses (mean reduction), and refuses the rest.
    Afterwards each parameter's .grad is the mean over the batch: the batched gradient.
    """
    X, y, params = check_batch(model, X, y, "per_sample_gradients")
    B = len(X)
    with grads_put_back(params, on_success=False):
        rows, loss = _layer_rows(model, loss_fn, X, y, "per_sample_gradients")
        # Only now allocate: each (B, *shape) array is written once, straight from the products.
        per_sample: dict[int, np.ndarray] = {}
        for layer, h, g in rows:  # h: (B, T, in) inputs, g: (B, T, out) output gradients ∂ℓ_i/∂z_i
            # Inputs with extra axes (B, T, features) contribute a sum over T of outer products.
            if layer.weight.requires_grad:
                outer = (np.einsum("bi,bo->bio", h[:, 0], g[:, 0]) if h.shape[1] == 1  # the usual case; faster
                         else np.einsum("bti,bto->bio", h, g))
                _add_per_sample(per_sample, layer.weight, outer)
            if layer.bias is not None and layer.bias.requires_grad:
                _add_per_sample(per_sample, layer.bias, g.sum(axis=1))
        stacked = [per_sample[id(p)] if id(p) in per_sample else np.zeros((B, *p.shape), p.dtype) for p in params]
        _fill_missing_grads(params)
        return Gradients(stacked, loss)


def per_sample_grad_norms(model: nn.Module, loss_fn: LossFn, X: Any, y: Any) -> np.ndarray:
    """‖∇ℓ_i‖ over all parameters for each sample, shape (B,), without per-sample gradients.

    For a layer z = h @ W + b the per-sample gradients are outer(h_i, g_i) and g_i (see
    ``per_sample_gradients``), and a Frobenius norm of an outer product factorises
    (Goodfellow 2015):

        ‖∇_W ℓ_i‖² = ‖h_i‖² · ‖g_i‖²,        ‖∇_b ℓ_i‖² = ‖g_i‖²,

    so one batched backward pass and a few row norms give every sample's gradient norm, in
    memory O(B × layer widths) instead of O(B × parameters). (With extra axes (B, T, ...) the
    gradient is Σ_t outer(h_it, g_it) and its norm² is Σ_{t,s} (h_it·h_is)(g_it·g_is).)
    Afterwards .grad holds the batched gradient, as after ``per_sample_gradients``.
    """
    X, y, params = check_batch(model, X, y, "per_sample_grad_norms")
    with grads_put_back(params, on_success=False):
        rows, _ = _layer_rows(model, loss_fn, X, y, "per_sample_grad_norms")
        norms = _norms_of_rows(rows, len(X), "per_sample_grad_norms")
        _fill_missing_grads(params)
        return norms


def _norms_of_rows(rows: list[tuple[nn.Linear, np.ndarray, np.ndarray]], B: int, op: str) -> np.ndarray:
    """Each sample's gradient norm from the layers' inputs h and output gradients g (see above)."""
    _refuse_shared([layer for layer, _, _ in rows], op)
    squared = np.zeros(B)
    for layer, h, g in rows:
        if h.shape[1] == 1:  # the usual case: one row per sample
            h1, g1 = h[:, 0], g[:, 0]
            g_sq = np.einsum("bo,bo->b", g1, g1)
            w_sq, b_sq = np.einsum("bi,bi->b", h1, h1) * g_sq, g_sq
        else:
            gram_g = np.einsum("bto,bso->bts", g, g)
            w_sq, b_sq = np.einsum("bti,bsi,bts->b", h, h, gram_g), gram_g.sum(axis=(1, 2))
        squared += w_sq if layer.weight.requires_grad else 0.0
        squared += b_sq if layer.bias is not None and layer.bias.requires_grad else 0.0
    return np.sqrt(squared)


def clipped_mean(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, max_norm: float) -> Gradients:
    """DP-SGD's clipped average (1/B) Σ_i min(1, C/‖∇ℓ_i‖) ∇ℓ_i, without per-sample gradients.

    The norms come from the rows of one batched backward pass, as in ``per_sample_grad_norms``;
    scaling sample i's gradient by c_i scales its rows g_i, so each weight gets
    (1/B) Σ_i c_i outer(h_i, g_i) = hᵀ(c ⊙ G)/B in one product.
    Clipping bounds any one sample's influence; DP-SGD then adds Gaussian noise of scale
    σC/B, without which clipping alone gives no privacy guarantee. Leaves .grad equal to it.
    """
    X, y, params = check_batch(model, X, y, "clipped_mean")
    if isinstance(max_norm, (bool, np.bool_)) or not isinstance(max_norm, (int, float, np.integer, np.floating)) \
            or not max_norm > 0 or not np.isfinite(max_norm):
        raise ValueError(f"clipped_mean: max_norm must be a positive number, got {max_norm!r}")
    B = len(X)
    with grads_put_back(params, on_success=False):
        rows, loss = _layer_rows(model, loss_fn, X, y, "clipped_mean")
        norms = _norms_of_rows(rows, B, "clipped_mean")
        # a zero gradient needs no clipping (and must not divide by zero)
        with np.errstate(over="ignore"):  # max_norm / tiny is inf for a zero gradient: its factor is 1
            factors = np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(np.float64).tiny))
        grads: dict[int, np.ndarray] = {}
        for layer, h, g in rows:
            weighted = g * (factors / B)[:, None, None]  # c_i g_i / B
            grads[id(layer.weight)] = np.einsum("bti,bto->io", h, weighted).astype(layer.weight.dtype)
            if layer.bias is not None:
                grads[id(layer.bias)] = weighted.sum(axis=(0, 1)).astype(layer.bias.dtype)
        result = [grads[id(p)] if id(p) in grads else np.zeros_like(p.data) for p in params]
        for p, g in zip(params, result):
            p.grad = g.copy()
        return Gradients(result, loss)


def gradient_noise_scale(model: nn.Module, loss_fn: LossFn, X: Any, y: Any,
                         dataset_size: int | None = None) -> float:
    """The simple gradient noise scale B_simple = tr Σ / |G|² (McCandlish et al. 2018).

    With per-sample gradients g_i and their mean ḡ (the batched gradient), the unbiased
    estimates are

        tr Σ̂ = Σ_i ‖g_i − ḡ‖² / (B − 1) = (Σ_i ‖g_i‖² − B‖ḡ‖²) / (B − 1),
        |Ĝ|² = ‖ḡ‖² − tr Σ̂ / B,

    computed from ``per_sample_grad_norms`` (no per-sample gradients). The second assumes the
    batch was drawn from an endless supply of samples. When it was drawn without replacement
    from a data set of N = ``dataset_size`` samples, the batch mean's variance shrinks by
    (N − B)/N, so |Ĝ|² = ‖ḡ‖² − (tr Σ̂ / B)(N − B)/N: exact, ‖ḡ‖², when the batch IS the data set
    (tr Σ̂ keeps its 1/(B − 1), the unbiased estimate for the population the data came from).

    B_simple is roughly the batch size beyond which a larger batch stops paying off. When |Ĝ|²
    is 0 or below, up to the rounding of the sums it comes from, the noise dominates this batch
    (the mean gradient is not measurably different from zero): a warning says so and the result
    is ``inf``. When every sample's gradient is 0 there is neither signal nor noise: a warning,
    and ``nan``. It is a measurement: every .grad is left as it was.
    """
    X, y, _ = check_batch(model, X, y, "gradient_noise_scale")  # every check before .grad changes
    B = len(X)
    if B < 2:
        raise ValueError("gradient_noise_scale: the noise between samples needs a batch of at least 2 samples")
    if dataset_size is not None and (isinstance(dataset_size, (bool, np.bool_)) or
                                     not isinstance(dataset_size, (int, np.integer)) or dataset_size < B):
        raise ValueError(f"gradient_noise_scale: dataset_size must be a whole number N >= the batch size {B} "
                         f"(or None for an endless supply of samples), got {dataset_size!r}")
    params = list(model.parameters())
    with grads_put_back(params):  # a refusal inside (a model the formula cannot split) changes nothing either
        rows, _ = _layer_rows(model, loss_fn, X, y, "gradient_noise_scale")
        norms = _norms_of_rows(rows, B, "gradient_noise_scale")
        mean_sq = float(sum(np.sum(p.grad * p.grad) for p in params if p.grad is not None))  # ‖ḡ‖², ḡ in .grad
    squares = float(np.sum(norms**2))  # Σ_i ‖g_i‖²
    trace = (squares - B * mean_sq) / (B - 1)
    finite_population = 1.0 if dataset_size is None else (dataset_size - B) / dataset_size
    signal = mean_sq - trace / B * finite_population
    if squares == 0:
        warnings.warn("gradient_noise_scale: every sample's gradient is 0 (a perfect fit, or units that pass "
                      "no gradient): there is neither signal nor noise to measure; returning nan",
                      RuntimeWarning, stacklevel=2)
        return math.nan
    # ‖ḡ‖² and tr Σ̂/B come from sums of B terms no larger than Σ_i ‖g_i‖²: a signal below B·eps of
    # that is rounding (one sample with a gradient and B − 1 without make |Ĝ|² exactly 0 on paper)
    eps = max(float(np.finfo(p.dtype).eps) for p in params)
    if signal <= 4 * B * eps * squares:
        advice = ("the batch is the whole data set, so no larger batch can tell" if finite_population == 0
                  else "use a larger batch to measure it")
        warnings.warn(f"gradient_noise_scale: |G|² estimate {signal:.3g} is not above rounding: the noise "
                      f"dominates this batch of {B}; returning inf ({advice})", RuntimeWarning, stacklevel=2)
        return math.inf
    return max(trace, 0.0) / signal


def check_per_sample(model: nn.Module, loss_fn: LossFn, op: str) -> list[nn.Module]:
    """Refuse what the per-sample formulas cannot split by sample; return the model's layers."""
    if check_loss_fn(loss_fn, op).kind is None:
        raise TypeError(
            f"{op}: loss_fn must be one of this library's losses (nn.mse_loss, nn.cross_entropy, "
            f"nn.binary_cross_entropy, nn.gaussian_kl, or a functools.partial of one), whose loss is an average of "
            f"independent per-sample terms; got {loss_fn!r}, which might mix samples. "
            f"For another loss, loop over samples with batched_mean on X[i:i+1]."
        )
    return _per_sample_layers(model, op)


def _layer_rows(model: nn.Module, loss_fn: LossFn, X: np.ndarray, y: np.ndarray,
                op: str) -> tuple[list[tuple[nn.Linear, np.ndarray, np.ndarray]], float]:
    """One batched forward and backward; per Linear layer its inputs h and output gradients ∂ℓ_i/∂z_i.

    Both come as (B, T, features) arrays (T = 1 for a plain batch), in the order the layers run.
    """
    layers = check_per_sample(model, loss_fn, op)
    if X.ndim < 2:  # a Linear layer would take the whole of X for ONE sample's features
        raise ValueError(f"{op}: X must hold one sample per row, shape (batch, features), got {shape_str(X.shape)}; "
                         f"for one feature per sample use X.reshape(-1, 1)")
    B = len(X)
    h = Tensor(X)
    records = []  # (layer, its input h, its output z)
    for layer in layers:
        out = layer(h)
        if isinstance(layer, nn.Linear):
            records.append((layer, h, out))
        h = out
    loss = scalar_loss(loss_fn(h, y), op)
    loss.backward()
    rows = []
    for layer, inp, z in records:
        if z.grad is None:  # a frozen layer with nothing trainable before it
            continue
        # widths from the arrays themselves: a weight replaced by hand may no longer match in_features
        rows.append((layer, inp.data.reshape(B, -1, inp.shape[-1]),
                     (z.grad * B).reshape(B, -1, z.shape[-1])))  # ×B: ∂L/∂z_i = (1/B) ∂ℓ_i/∂z_i
    return rows, loss.item()


def check_grad_norms(model: nn.Module, loss_fn: LossFn, op: str) -> None:
    """Refuse what ``per_sample_grad_norms`` cannot compute (and so neither can the noise scale)."""
    _refuse_shared([layer for layer in check_per_sample(model, loss_fn, op) if isinstance(layer, nn.Linear)], op)


def _refuse_shared(layers: list[nn.Linear], op: str) -> None:
    """A parameter used by two layers gets the sum of two outer products: its norm does not factorise."""
    seen: set[int] = set()
    for layer in layers:
        for p in (layer.weight, layer.bias):
            if p is None or not p.requires_grad:  # a frozen parameter adds nothing to any norm
                continue
            if id(p) in seen:
                which = f"parameter {p.name}" if p.name else f"a parameter of shape {shape_str(p.shape)}"
                raise ValueError(f"{op}: {which} is used by two layers, so its per-sample "
                                 f"gradient norm has cross terms this formula does not compute; use "
                                 f"per_sample_gradients and take the norms of its rows.")
            seen.add(id(p))


def _fill_missing_grads(params: list[Tensor]) -> None:
    for p in params:  # backward already left the batched gradient, the rows' mean, in .grad
        if p.grad is None:
            p.grad = np.zeros_like(p.data)


def error_first(model: nn.Module, loss_fn: LossFn, X: Any, y: Any, variant: str = "mean_input") -> Gradients:
    """WRONG ON PURPOSE: "average the error first, then backpropagate once" — the misconception.

    Let g_i = ∂ℓ_i/∂ŷ_i be sample i's output error and ḡ = (1/B) Σ_i g_i. Variants:

    - ``mean_input``: forward the mean input x̄ once and backpropagate ḡ through that single
      graph. Every nonlinearity then uses f′(mean) instead of mean(f′).
    - ``last_sample``: backpropagate ḡ through the graph of the batch's last sample (the
      activations an online implementation still holds). "Which sample's activations?" has no
      right answer here: the true gradient uses each sample's own (the batched graph's rows),
      and one backward pass of one averaged error has room for only one set.
    - ``loss_as_gradient``: backpropagate the mean loss *value* as if it were the output
      gradient (through the ``mean_input`` graph).
    - ``mean_residual`` (``nn.mse_loss`` only): backpropagate mse_loss(mean_i ŷ_i, mean_i y_i),
      the square of the averaged residual ē. With D outputs, exactly:
      true gradient − this = (2/D) Σ_d Cov_i(e_id, ∇e_id).

    ``mean_input``, ``last_sample`` and ``mean_residual`` happen to be exact when B = 1 or when
    all inputs in the batch are identical. Otherwise only the output layer's bias gradient can
    be right, and only when the output layer is affine (ŷ = hW + b, no output nonlinearity):
    then that gradient is ḡ itself. With a sigmoid output it is wrong too: the true bias gradient
    is mean_i(g_i·σ′_i), while ``mean_input`` and ``last_sample`` take σ′ at one set of
    activations and ``mean_residual`` multiplies mean(g) by mean(σ′).
    ``loss_as_gradient`` is in general wrong even then (with one squared-error output it sends
    back e² instead of 2e, which agree only at e = 0 or e = 2). Returned ``.loss`` is the true
    batch loss.
    """
    X, y, params = check_batch(model, X, y, "error_first")
    check_variant(variant, loss_fn, "error_first")
    with grads_put_back(params, on_success=False):
        error_first_backward(model, loss_fn, X, y, variant)
        with no_grad():
            true_loss = scalar_loss(loss_fn(model(Tensor(X)), y), "error_first").item()
        return _collect(params, true_loss)


def check_variant(variant: str, loss_fn: LossFn, op: str) -> None:
    """Refuse an unknown error-first variant, or ``mean_residual`` without squared error."""
    if variant not in ERROR_FIRST_VARIANTS:
        raise ValueError(f"{op}: unknown variant {variant!r}; choose one of {list(ERROR_FIRST_VARIANTS)}")
    info = check_loss_fn(loss_fn, op)
    if variant == "mean_residual" and info.kind != "squared_error":
        raise ValueError(
            f"{op}: variant 'mean_residual' averages residuals ŷ − y, which only squared "
            f"error has; it needs loss_fn=nn.mse_loss, got {loss_fn!r}."
        )


def mean_output_error(model: nn.Module, loss_fn: LossFn, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ḡ = (1/B) Σ_i ∂ℓ_i/∂ŷ_i, the batch's output errors averaged, shape (1, *output shape).

    The predictions are held as a leaf, so the parameters' .grad is not touched: backpropagating
    the mean loss leaves ∂L/∂ŷ_i = g_i / B in the leaf, and its column sums are ḡ.
    """
    with no_grad():
        batch_pred = model(Tensor(X))
    pred = Tensor(batch_pred.data, requires_grad=True)
    scalar_loss(loss_fn(pred, y), "error_first").backward()
    assert pred.grad is not None
    return pred.grad.sum(axis=0, keepdims=True)


def error_first_backward(model: nn.Module, loss_fn: LossFn, X: np.ndarray, y: np.ndarray,
                         variant: str) -> Tensor:
    """Run the variant's single backward pass (adding into .grad); return the root it started from.

    X and y are arrays already checked by ``check_batch``, the variant by ``check_variant``.
    The root is the one graph the variant backpropagates through, e.g. for drawing it.
    """
    if variant == "mean_residual":  # every sample's own graph, but one averaged residual
        out = model(Tensor(X, name="X"))
        y_mean = Tensor(np.asarray(y, dtype=out.dtype).mean(axis=0, keepdims=True), name="mean y")
        root = nn.mse_loss(out.mean(axis=0, keepdims=True), y_mean)
        root.backward()
        return root
    if variant == "last_sample":  # the activations an online implementation still holds
        root = model(Tensor(X[-1:], name=f"x[{len(X) - 1}] (last sample)"))
        root.backward(mean_output_error(model, loss_fn, X, y))
        return root
    root = model(Tensor(X.mean(axis=0, keepdims=True), name="mean x"))
    if variant == "mean_input":
        root.backward(mean_output_error(model, loss_fn, X, y))
    else:  # loss_as_gradient: the loss value itself sent back as if it were the output error
        with no_grad():
            mean_loss = scalar_loss(loss_fn(model(Tensor(X)), y), "error_first").item()
        root.backward(np.full(root.shape, mean_loss, dtype=root.dtype))
    return root


# The trainer's strategy names. "per_sample" is an alias of "per_sample_average", the shorter
# name the trainer and the tutorials use.
STRATEGIES: dict[str, Callable[..., Gradients]] = {
    "per_sample": per_sample_average,
    "per_sample_average": per_sample_average,
    "batched_mean": batched_mean,
    "accumulated": accumulated,
    "naive_accumulated": naive_accumulated,
    "per_sample_gradients": per_sample_gradients,
    "error_first": error_first,
}
