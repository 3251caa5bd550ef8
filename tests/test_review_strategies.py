"""Findings of an adversarial review of ``minibatch`` and ``vae``: one test per property.

Each test failed before its fix: a silently wrong result, a state change before an error, or
an error that did not say what was wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_mb import Tensor, minibatch, nn, optim
from tinygrad_mb.vae import VAE, aevb_step

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(6, 3)), RNG.normal(size=(6, 2))


def stale_grads(model: nn.Module) -> list[np.ndarray]:
    """Put recognisable arrays in every .grad; return them."""
    stale = [np.full(p.shape, 7.0) for p in model.parameters()]
    for p, g in zip(model.parameters(), stale):
        p.grad = g
    return stale


def grads_untouched(model: nn.Module, stale: list[np.ndarray]) -> bool:
    return all(p.grad is g and np.all(g == 7.0) for p, g in zip(model.parameters(), stale))


# ------------------------------------------------------------------------------ per-sample tools
class DoubledLinear(nn.Linear):
    """Keeps Linear.forward but doubles the output in __call__: not the layer the formula assumes."""

    def __call__(self, x):
        return super().__call__(x) * 2.0


class DoubledSequential(nn.Sequential):
    def __call__(self, x):
        return super().__call__(x) * 2.0


class CentredTanh(nn.Tanh):
    """Mixes the samples (subtracts the batch mean), as batch normalisation does."""

    def __call__(self, x):
        t = super().__call__(x)
        return t - t.mean(axis=0, keepdims=True)


def instance_forward_replaced() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 4, rng=1), nn.Tanh(), nn.Linear(4, 2, rng=2))
    first = model.layers[0]
    original = first.forward
    first.forward = lambda x: original(x) * 2.0  # type: ignore[method-assign]
    return model


CALL_OVERRIDES = {
    "Linear subclass overriding __call__": lambda: nn.Sequential(DoubledLinear(3, 4, rng=1), nn.Tanh(),
                                                                 nn.Linear(4, 2, rng=2)),
    "Sequential subclass overriding __call__": lambda: DoubledSequential(nn.Linear(3, 4, rng=1), nn.Tanh(),
                                                                         nn.Linear(4, 2, rng=2)),
    "nested Sequential subclass overriding __call__": lambda: nn.Sequential(
        DoubledSequential(nn.Linear(3, 4, rng=1), nn.Tanh()), nn.Linear(4, 2, rng=2)),
    "activation subclass overriding __call__": lambda: nn.Sequential(nn.Linear(3, 4, rng=1), CentredTanh(),
                                                                     nn.Linear(4, 2, rng=2)),
    "forward replaced on the instance": instance_forward_replaced,
}
PER_SAMPLE_TOOLS = {
    "per_sample_gradients": minibatch.per_sample_gradients,
    "per_sample_grad_norms": minibatch.per_sample_grad_norms,
    "clipped_mean": lambda m, loss, X, y: minibatch.clipped_mean(m, loss, X, y, 1.0),
}


@pytest.mark.parametrize("tool", PER_SAMPLE_TOOLS)
@pytest.mark.parametrize("model", CALL_OVERRIDES)
def test_per_sample_tools_refuse_a_module_whose_call_or_forward_is_replaced(model: str, tool: str) -> None:
    """The formulas read each Linear's own output; a module that computes something else when
    called (a doubled output, samples mixed) made per_sample_gradients, the norms and the clipped
    mean silently wrong (the doubled Linear: per-sample gradients off by a factor of 2)."""
    m = CALL_OVERRIDES[model]()
    stale = stale_grads(m)
    with pytest.raises(TypeError, match=f"{tool}: cannot vectorise over"):
        PER_SAMPLE_TOOLS[tool](m, nn.mse_loss, X, Y)
    assert grads_untouched(m, stale)


def test_per_sample_loss_refusal_names_every_known_loss() -> None:
    with pytest.raises(TypeError, match="binary_cross_entropy.*gaussian_kl"):
        minibatch.per_sample_gradients(nn.MLP([3, 4, 2], rng=0), lambda p, t: nn.mse_loss(p, t), X, Y)


def test_grad_norms_accept_a_frozen_layer_used_twice() -> None:
    """A frozen layer contributes no gradient, so sharing it breaks no formula (it was refused)."""
    shared = nn.Linear(3, 3, rng=1)
    shared.weight.requires_grad = shared.bias.requires_grad = False
    model = nn.Sequential(nn.Linear(3, 3, rng=3), nn.Tanh(), shared, nn.Tanh(), shared, nn.Linear(3, 2, rng=2))
    stacked = minibatch.per_sample_gradients(model, nn.mse_loss, X, Y)
    expected = np.sqrt(sum(np.sum(g.reshape(len(X), -1) ** 2, axis=1) for g in stacked))
    np.testing.assert_allclose(minibatch.per_sample_grad_norms(model, nn.mse_loss, X, Y), expected, rtol=1e-9)


# ------------------------------------------------------------------------------ gradient_noise_scale
@pytest.mark.parametrize("batch, dataset_size", [(6, -1), (6, 3), (6, 2.5), (1, None)])
def test_gradient_noise_scale_refuses_bad_input_before_touching_grad(batch: int, dataset_size) -> None:
    model = nn.MLP([3, 4, 2], rng=0)
    stale = stale_grads(model)
    with pytest.raises(ValueError, match="gradient_noise_scale"):
        minibatch.gradient_noise_scale(model, nn.mse_loss, X[:batch], Y[:batch], dataset_size=dataset_size)
    assert grads_untouched(model, stale)


# ------------------------------------------------------------------------------ clipped_mean
def loss_failing_on_call(k: int):
    """A loss the strategies know (squared error, mean) that raises on its k-th call."""
    calls = [0]

    @nn.per_sample_loss("squared_error", classification=False)
    def loss(pred, target, reduction="mean"):
        calls[0] += 1
        if calls[0] == k:
            raise RuntimeError(f"call {k} fails")
        return nn.mse_loss(pred, target)
    return loss


@pytest.mark.parametrize("k", [1, 2])
def test_clipped_mean_failing_midway_restores_the_old_grad(k: int) -> None:
    """clipped_mean ran two backward passes, the second inside its own save of .grad: a failure there
    put back the FIRST pass's batched gradient, not what .grad held before the call."""
    model = nn.MLP([3, 4, 2], rng=0)
    stale = stale_grads(model)
    try:
        got = minibatch.clipped_mean(model, loss_failing_on_call(k), X, Y, 1.0)
    except RuntimeError:
        assert grads_untouched(model, stale)
    else:  # a single pass never makes call 2; it must then be the clipped mean
        assert k == 2
        for a, b in zip(got, minibatch.clipped_mean(model, nn.mse_loss, X, Y, 1.0)):
            np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("bound", [np.complex128(1 + 5j), 1 + 0j])
def test_clipped_mean_refuses_a_complex_bound(bound) -> None:
    """np.complex128 passed the number check and its imaginary part was dropped silently."""
    with pytest.raises(ValueError, match="clipped_mean: max_norm must be a positive number"):
        minibatch.clipped_mean(nn.MLP([3, 4, 2], rng=0), nn.mse_loss, X, Y, bound)


# ------------------------------------------------------------------------------ error_first, check_batch
def test_error_first_loss_as_gradient_names_a_loss_that_is_not_a_tensor() -> None:
    """It raised AttributeError: 'float' object has no attribute 'item'."""
    model = nn.MLP([3, 4, 2], rng=0)
    stale = stale_grads(model)
    with pytest.raises(TypeError, match="error_first: loss_fn must return a Tensor"):
        minibatch.error_first(model, lambda p, t: 1.0, X, Y, variant="loss_as_gradient")
    assert grads_untouched(model, stale)


def test_a_ragged_batch_is_refused_with_a_message_naming_the_strategy() -> None:
    """numpy's 'setting an array element with a sequence' named neither the strategy nor X."""
    with pytest.raises(TypeError, match="batched_mean: X cannot be made an array"):
        minibatch.batched_mean(nn.MLP([3, 4, 2], rng=0), nn.mse_loss, [[1.0, 2.0, 3.0], [1.0, 2.0]], Y[:2])


def test_a_model_that_is_not_a_module_is_refused_clearly() -> None:
    """A plain function raised AttributeError: 'function' object has no attribute 'parameters'."""
    with pytest.raises(TypeError, match="batched_mean: model must be an nn.Module"):
        minibatch.batched_mean(lambda x: x, nn.mse_loss, X, Y)


# ------------------------------------------------------------------------------ the VAE
def small_vae() -> tuple[VAE, np.ndarray]:
    x = (np.random.default_rng(1).uniform(size=(4, 6)) > 0.5).astype(float)
    return VAE(data_dim=6, hidden=5, latent=2, rng=0), x


@pytest.mark.parametrize("dataset_size", [0, -100, True, 2.5, None])
def test_aevb_step_refuses_a_bad_dataset_size(dataset_size) -> None:
    """0 made no step, a negative N climbed −ELBO, True was N = 1, 2.5 was taken as given.
    (N = 1 stays allowed: tutorial 6 steps along the batch mean with it on purpose.)"""
    vae, x = small_vae()
    before = [p.data.copy() for p in vae.parameters()]
    with pytest.raises(ValueError, match="aevb_step: dataset_size must be a whole number"):
        aevb_step(vae, optim.SGD(vae.parameters(), lr=0.1), x, dataset_size, np.random.default_rng(0))
    assert all(np.array_equal(b, p.data) for b, p in zip(before, vae.parameters()))


def test_aevb_step_failing_on_bad_input_leaves_grad_alone() -> None:
    """It set every .grad to None before the forward pass refused the batch."""
    vae, x = small_vae()
    stale = stale_grads(vae)
    with pytest.raises(ValueError, match=r"aevb_step: x must hold pixel probabilities in \[0, 1\]"):
        aevb_step(vae, optim.SGD(vae.parameters(), lr=0.1), x * 3, 100, np.random.default_rng(0))
    assert grads_untouched(vae, stale)


def test_aevb_step_refuses_a_seed_in_place_of_a_generator() -> None:
    vae, x = small_vae()
    with pytest.raises(TypeError, match="aevb_step: rng must be a numpy Generator"):
        aevb_step(vae, optim.SGD(vae.parameters(), lr=0.1), x, 100, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(4, 1), (2,), (1, 2), ()])
def test_negative_elbo_refuses_noise_of_the_wrong_shape(shape) -> None:
    """ε of shape (B, 1) was broadcast: every latent dimension got the same noise, z was not N(μ, σ²I)."""
    vae, x = small_vae()
    with pytest.raises(ValueError, match=r"negative_elbo: eps must have shape \(4, 2\)"):
        vae.negative_elbo(x, np.ones(shape))
    assert vae.negative_elbo(Tensor(x), np.ones((4, 2))).size == 1


def test_a_wrapper_made_with_functools_wraps_is_not_taken_for_the_loss_it_wraps():
    """wraps copies the loss's mark; a wrapper that sums must not pass as a known mean loss."""
    import functools as _functools

    @_functools.wraps(nn.mse_loss)
    def summed(pred, target):
        return nn.mse_loss(pred, target, reduction="sum")

    info = nn.loss_info(summed)
    assert info.kind is None
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 1))
    with pytest.raises(TypeError, match="per_sample_gradients: loss_fn must be one of this library's losses"):
        minibatch.per_sample_gradients(nn.MLP([2, 3, 1], rng=0), summed, X, y)
