"""Modules, losses, optimizers and gradcheck, each against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, logits_and_labels

from tinygrad_mb import GradcheckError, Tensor, gradcheck, nn, optim

# Hand computations below repeat the engine's arithmetic in another order, so float64 results
# agree to a few ulps; 1e-12 relative leaves ample room and still catches any real mistake.
RTOL = 1e-12


# ------------------------------------------------------------------------------ modules
class TwoTowers(nn.Module):
    """A module with every kind of attribute that can hold parameters."""

    def __init__(self) -> None:
        self.scale = Tensor(np.ones(1), requires_grad=True, name="scale")
        self.constant = Tensor(np.ones(1))  # not a parameter: requires_grad is False
        self.towers = [nn.Linear(2, 3, rng=0), nn.Linear(3, 1, rng=1)]
        self.heads = {"left": nn.Linear(1, 1, rng=2)}
        self.shared = self.towers[0]  # the same layer again: its parameters are listed once
        self.width = 3  # plain attributes are ignored

    def forward(self, x: Tensor) -> Tensor:
        h = self.towers[0](x).tanh()
        return self.heads["left"](self.towers[1](h)) * self.scale


def test_module_finds_parameters_in_attributes_lists_dicts_and_children_in_assignment_order():
    m = TwoTowers()
    names = [name for name, _ in m.named_parameters()]
    assert names == ["scale", "towers.0.weight", "towers.0.bias", "towers.1.weight", "towers.1.bias",
                     "heads.left.weight", "heads.left.bias"]
    params = m.parameters()
    assert params[0] is m.scale and params[1] is m.towers[0].weight and params[2] is m.towers[0].bias
    assert all(p.requires_grad for p in params)


def test_linear_yields_weight_then_bias_with_the_shapes_of_x_at_w_plus_b():
    layer = nn.Linear(4, 3, rng=0)
    weight, bias = layer.parameters()
    assert weight is layer.weight and bias is layer.bias
    assert weight.shape == (4, 3) and bias.shape == (3,)


@pytest.mark.parametrize("x_shape", [(5, 3), (3,), (2, 4, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_node_equals_matmul_plus_bias_in_value_and_gradient(x_shape, with_bias):
    rng = np.random.default_rng(7)
    x_data, w_data, b_data = rng.normal(size=x_shape), rng.normal(size=(3, 2)), rng.normal(size=2)
    upstream = rng.uniform(0.5, 1.5, x_shape[:-1] + (2,))  # non-uniform, so no bug hides
    grads = []
    for fused in (True, False):
        x, w = Tensor(x_data, requires_grad=True), Tensor(w_data, requires_grad=True)
        b = Tensor(b_data, requires_grad=True) if with_bias else None
        if fused:
            out = nn.linear(x, w, b)
        else:
            out = x @ w + b if b is not None else x @ w
        out.backward(upstream)
        grads.append([out.data, x.grad, w.grad] + ([b.grad] if b is not None else []))
    assert len(grads[0]) == (4 if with_bias else 3)
    for fused_value, composed_value in zip(*grads):
        np.testing.assert_allclose(fused_value, composed_value, rtol=RTOL, atol=1e-14)


def test_linear_node_is_one_node_with_the_layer_parameters_as_parents():
    layer = nn.Linear(3, 2, rng=0)
    x = Tensor(np.ones((4, 3)))
    out = layer(x)
    assert out.op == "linear"
    assert out.parents == (x, layer.weight, layer.bias)


def test_linear_without_bias_has_only_a_weight():
    layer = nn.Linear(4, 3, bias=False, rng=0)
    assert layer.parameters() == [layer.weight] and layer.bias is None
    x = np.ones((2, 4))
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data, rtol=RTOL)


def test_linear_init_is_reproducible_from_a_seed_or_generator_and_bounded():
    a, b, c = nn.Linear(5, 4, rng=7), nn.Linear(5, 4, rng=7), nn.Linear(5, 4, rng=8)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    from_generator = nn.Linear(5, 4, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(from_generator.weight.data, a.weight.data)
    bound = 1 / np.sqrt(5)
    assert np.all(np.abs(a.weight.data) <= bound) and np.all(np.abs(a.bias.data) <= bound)


def test_mlp_is_linear_layers_with_activations_between_and_none_after_the_last():
    model = nn.MLP([2, 4, 3, 1], activation="relu", rng=0)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    params = model.parameters()
    assert [p.shape for p in params] == [(2, 4), (4,), (4, 3), (3,), (3, 1), (1,)]
    assert [p.name for p in params] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert len(model) == 5 and model[0] is model.layers[0]


@pytest.mark.parametrize("activation, fn", [
    ("tanh", np.tanh), ("relu", lambda z: np.maximum(z, 0)), ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
])
def test_mlp_forward_equals_hand_written_numpy(activation, fn):
    model = nn.MLP([3, 5, 2], activation=activation, rng=1)
    W1, b1, W2, b2 = (p.data for p in model.parameters())
    x = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(model(Tensor(x)).data, fn(x @ W1 + b1) @ W2 + b2, rtol=RTOL)


def test_mlp_with_the_same_seed_is_the_same_network():
    a, b = nn.MLP([3, 4, 2], rng=5), nn.MLP([3, 4, 2], rng=5)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_float32_mlp_computes_and_trains_in_float32():
    model = nn.MLP([3, 4, 2], rng=0, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in model.parameters())
    x = np.ones((5, 3), dtype=np.float32)
    loss = nn.cross_entropy(model(Tensor(x)), [0, 1, 0, 1, 1])
    assert loss.dtype == np.float32
    loss.backward()
    optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01).step()
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters())
    mse = nn.mse_loss(model(Tensor(x)), np.zeros((5, 2)))  # a float64 target takes pred's dtype
    assert mse.dtype == np.float32


def test_module_zero_grad_clears_every_parameter():
    model = nn.MLP([2, 3, 1], rng=0)
    model(Tensor(np.ones((2, 2)))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_state_dict_round_trip_reproduces_the_model_and_is_a_copy():
    source, target = nn.MLP([3, 4, 2], rng=0), nn.MLP([3, 4, 2], rng=1)
    state = source.state_dict()
    assert list(state) == [name for name, _ in source.named_parameters()]
    target.load_state_dict(state)
    x = Tensor(np.random.default_rng(2).normal(size=(5, 3)))
    np.testing.assert_array_equal(target(x).data, source(x).data)
    state[list(state)[0]][...] = 0.0  # the state is a copy: changing it changes no model
    target.parameters()[0].data[...] = 1.0  # and loading copied it: the models are independent
    assert not np.any(source.parameters()[0].data == 0.0)
    assert not np.any(source.parameters()[0].data == 1.0)


def test_load_state_dict_keeps_each_parameters_dtype():
    model = nn.MLP([2, 2], rng=0, dtype=np.float32)
    model.load_state_dict({k: v.astype(np.float64) for k, v in nn.MLP([2, 2], rng=1).state_dict().items()})
    assert all(p.dtype == np.float32 for p in model.parameters())


# ------------------------------------------------------------------------------ losses
def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@given(batch=logits_and_labels())
def test_cross_entropy_equals_hand_numpy_for_every_reduction(batch):
    logits, labels, _ = batch
    per_sample = -_log_softmax(logits)[np.arange(len(labels)), labels]
    t = Tensor(logits)
    np.testing.assert_allclose(nn.cross_entropy(t, labels, reduction="none").data, per_sample, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(nn.cross_entropy(t, labels, reduction="sum").data, per_sample.sum(), rtol=RTOL)
    np.testing.assert_allclose(nn.cross_entropy(t, labels).data, per_sample.mean(), rtol=RTOL)


@given(batch=logits_and_labels())
def test_cross_entropy_sum_is_batch_size_times_mean_in_value_and_gradient(batch):
    logits, labels, _ = batch
    B = len(labels)
    t_mean, t_sum = Tensor(logits, requires_grad=True), Tensor(logits, requires_grad=True)
    mean, total = nn.cross_entropy(t_mean, labels), nn.cross_entropy(t_sum, labels, reduction="sum")
    mean.backward()
    total.backward()
    np.testing.assert_allclose(total.item(), B * mean.item(), rtol=RTOL)
    np.testing.assert_allclose(t_sum.grad, B * t_mean.grad, rtol=RTOL, atol=1e-15)


@given(batch=logits_and_labels())
def test_cross_entropy_gradient_is_softmax_minus_one_hot_over_batch_size(batch):
    logits, labels, classes = batch
    t = Tensor(logits, requires_grad=True)
    nn.cross_entropy(t, labels).backward()
    softmax = np.exp(_log_softmax(logits))
    expected = (softmax - np.eye(classes)[labels]) / len(labels)
    np.testing.assert_allclose(t.grad, expected, rtol=1e-10, atol=1e-15)


@given(data=st.data(), batch=st.integers(1, 6), outputs=st.integers(1, 3), flat=st.booleans())
def test_mse_loss_equals_hand_numpy_and_sum_is_batch_size_times_mean(data, batch, outputs, flat):
    shape = (batch,) if flat else (batch, outputs)
    pred, target = data.draw(arrays(shape)), data.draw(arrays(shape))
    per_sample = (pred - target) ** 2 if flat else ((pred - target) ** 2).mean(axis=1)
    p = Tensor(pred, requires_grad=True)
    none = nn.mse_loss(p, target, reduction="none")
    assert none.shape == (batch,)
    np.testing.assert_allclose(none.data, per_sample, rtol=RTOL, atol=1e-15)
    mean, total = nn.mse_loss(p, target), nn.mse_loss(p, target, reduction="sum")
    np.testing.assert_allclose(mean.item(), per_sample.mean(), rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(total.item(), batch * mean.item(), rtol=RTOL, atol=1e-14)
    mean.backward()
    D = 1 if flat else outputs
    np.testing.assert_allclose(p.grad, 2 * (pred - target) / (batch * D), rtol=RTOL, atol=1e-15)


def test_losses_pass_gradcheck():
    rng = np.random.default_rng(0)
    logits = Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    pred = Tensor(rng.normal(size=(4, 2)), requires_grad=True)
    target = rng.normal(size=(4, 2))
    assert gradcheck(lambda z: nn.cross_entropy(z, [0, 2, 1, 2]), [logits])
    assert gradcheck(lambda z: nn.cross_entropy(z, [0, 2, 1, 2], reduction="none"), [logits])
    assert gradcheck(lambda q: nn.mse_loss(q, target, reduction="sum"), [pred])


# ------------------------------------------------------------------------------ optimizers
GRADS = [np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([-3.0, 1.0])]  # one per step


def run_steps(opt_factory, grads=GRADS) -> np.ndarray:
    """Take one optimizer step per given gradient, starting from p = [1, -1]; return p."""
    p = Tensor(np.array([1.0, -1.0]), requires_grad=True)
    opt = opt_factory([p])
    for g in grads:
        opt.zero_grad()
        p.grad = g.copy()
        opt.step()
    return p.data


def test_sgd_step_is_p_minus_lr_times_grad():
    np.testing.assert_allclose(run_steps(lambda ps: optim.SGD(ps, lr=0.1)),
                               np.array([1.0, -1.0]) - 0.1 * sum(GRADS), rtol=RTOL)


def test_sgd_with_momentum_and_weight_decay_matches_a_hand_computation():
    lr, mu, wd = 0.1, 0.9, 0.01
    p, v = np.array([1.0, -1.0]), None
    for g in GRADS:
        d = g + wd * p
        v = d if v is None else mu * v + d
        p = p - lr * v
    np.testing.assert_allclose(run_steps(lambda ps: optim.SGD(ps, lr=lr, momentum=mu, weight_decay=wd)), p,
                               rtol=RTOL)


def test_adam_matches_a_hand_computation():
    lr, (b1, b2), eps = 0.01, (0.8, 0.95), 1e-8
    p, m, v = np.array([1.0, -1.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(run_steps(lambda ps: optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps)), p, rtol=RTOL)


def test_adam_first_step_moves_each_parameter_by_about_lr():
    # with bias correction the first step is lr * g / |g| whatever the gradient's scale
    moved = run_steps(lambda ps: optim.Adam(ps, lr=0.01), grads=[np.array([1e-3, -50.0])])
    np.testing.assert_allclose(moved - np.array([1.0, -1.0]), [-0.01, 0.01], rtol=1e-4)


def test_optimizers_skip_parameters_without_gradient_and_zero_grad_clears():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    for opt in (optim.SGD([a, b], lr=0.1, momentum=0.5), optim.Adam([a, b])):
        a.grad, b.grad = np.ones(2), None
        before_b = b.data.copy()
        opt.step()
        np.testing.assert_array_equal(b.data, before_b)
        opt.zero_grad()
        assert a.grad is None and b.grad is None


def test_sgd_neither_changes_the_gradient_nor_aliases_it_in_its_velocity():
    p = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([0.5, -0.5])
    opt.step()
    np.testing.assert_array_equal(p.grad, [0.5, -0.5])
    p.grad *= 0.0  # an in-place change to .grad (clipping, say) must not leak into the velocity
    np.testing.assert_array_equal(opt.velocity[0], [0.5, -0.5])


# ------------------------------------------------------------------------------ gradcheck
def test_gradcheck_passes_on_a_correct_network_and_restores_grads():
    model = nn.MLP([3, 4, 2], rng=0)
    x = np.random.default_rng(1).normal(size=(5, 3))
    params = model.parameters()
    assert gradcheck(lambda *ps: nn.cross_entropy(model(Tensor(x)), [0, 1, 1, 0, 1]), params)
    assert all(p.grad is None for p in params)


def test_gradcheck_passes_on_non_scalar_outputs_and_several_inputs():
    a = Tensor(np.array([[0.5, -1.0], [2.0, 0.3]]), requires_grad=True)
    b = Tensor(np.array([1.5, -0.7]), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0]))  # a constant input is allowed
    assert gradcheck(lambda x, y, z: (x * y + z).tanh() @ y, [a, b, c])


def _mul_with_one_wrong_element(t: Tensor) -> Tensor:
    """t * 3 whose backward is wrong in element (1, 0) only."""
    y = t * 3.0

    def wrong_backward(g: np.ndarray) -> tuple[np.ndarray, None]:
        grad = 3.0 * g
        grad[1, 0] *= 2.0
        return grad, None  # the constant 3 needs no gradient

    y._backward = wrong_backward
    return y


def test_gradcheck_raises_naming_the_input_and_the_element_of_a_wrong_backward():
    good = Tensor(np.ones((2, 2)), requires_grad=True, name="good")
    bad = Tensor(np.array([[0.5, 1.0], [1.5, 2.0]]), requires_grad=True, name="bad")
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: a * 2.0 + _mul_with_one_wrong_element(b), [good, bad])
    message = str(info.value)
    assert "input 1" in message and "'bad'" in message and "element (1, 0)" in message
    assert "analytic" in message and "numeric" in message
    assert isinstance(info.value, AssertionError)  # so pytest reports it as a failed check


def test_named_parameters_with_frozen_lists_every_tensor_once_in_order() -> None:
    """What a data-parallel start copies from rank 0: frozen tensors take part in the forward pass too."""
    shared = nn.Linear(2, 2, rng=0)
    shared.bias.requires_grad = False
    model = nn.Sequential(shared, nn.Tanh(), shared)
    assert [n for n, _ in model.named_parameters()] == ["layers.0.weight"]
    assert [(n, t) for n, t in model.named_parameters(frozen=True)] == [
        ("layers.0.weight", shared.weight), ("layers.0.bias", shared.bias)]
