"""Optimizers under stress: duplicate parameters, late gradients, bad settings, bad gradients, saved state."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tinygrad_mb import Tensor, optim

RTOL = 1e-12  # hand computations repeat the same float64 arithmetic; any real mistake is far larger


def make_params(seed: int = 0) -> list[Tensor]:
    """Three float64 parameters of different shapes; the last one is named."""
    rng = np.random.default_rng(seed)
    return [Tensor(rng.normal(size=(2, 3)), requires_grad=True),
            Tensor(rng.normal(size=(3,)), requires_grad=True),
            Tensor(rng.normal(size=(3, 2)), requires_grad=True, name="W2")]


def set_grads(params: list[Tensor], grads: list[np.ndarray | None]) -> None:
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.copy()


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two state dicts hold the same kind, hyperparameters and bit-identical state."""
    assert a["kind"] == b["kind"] and a["hyperparameters"] == b["hyperparameters"]
    assert a["state"].keys() == b["state"].keys()
    for name in a["state"]:
        assert len(a["state"][name]) == len(b["state"][name])
        for x, y in zip(a["state"][name], b["state"][name]):
            assert (x is None) == (y is None)
            if x is not None:
                assert x.dtype == y.dtype
                np.testing.assert_array_equal(x, y)


def message_of(error: type[Exception] | tuple[type[Exception], ...], call: Callable[[], Any]) -> str:
    with pytest.raises(error) as info:
        call()
    return str(info.value)


# ------------------------------------------------------------------------------ duplicate parameters
@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.Adam(ps)])
def test_a_parameter_listed_twice_is_refused(make):
    a, b, w = make_params()
    message = message_of(ValueError, lambda: make([a, b, w, b]))
    assert "parameter 3" in message and "parameter 1" in message and "twice" in message
    message = message_of(ValueError, lambda: make([w, a, w]))
    assert "parameter 2 ('W2')" in message and "parameter 0" in message


def test_a_single_tensor_instead_of_a_list_is_refused():
    (a, *_rest) = make_params()
    assert "list of parameters" in message_of(TypeError, lambda: optim.SGD(a, lr=0.1))


# ------------------------------------------------------------------------------ Adam's per-parameter step count
def numpy_adam(p0: list[np.ndarray], grad_steps: list[list[np.ndarray | None]], lr: float,
               b1: float, b2: float, eps: float) -> tuple[list[np.ndarray], list[int]]:
    """Adam by hand, each parameter counting only the steps on which it had a gradient."""
    ps = [p.copy() for p in p0]
    ms, vs, ts = [np.zeros_like(p) for p in p0], [np.zeros_like(p) for p in p0], [0] * len(p0)
    for grads in grad_steps:
        for i, g in enumerate(grads):
            if g is None:
                continue
            ts[i] += 1
            ms[i] = b1 * ms[i] + (1 - b1) * g
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
            ps[i] = ps[i] - lr * (ms[i] / (1 - b1 ** ts[i])) / (np.sqrt(vs[i] / (1 - b2 ** ts[i])) + eps)
    return ps, ts


def test_adam_counts_steps_per_parameter_when_one_first_gets_a_gradient_late():
    params = make_params()
    p0 = [p.data.copy() for p in params]
    rng = np.random.default_rng(1)
    g = [[rng.normal(size=p.shape) for p in params] for _ in range(5)]
    # parameter 1 first gets a gradient at step 3; parameter 2 misses step 2
    grad_steps = [[g[0][0], None, g[0][2]], [g[1][0], None, None], [g[2][0], g[2][1], g[2][2]],
                  [g[3][0], g[3][1], g[3][2]], [g[4][0], g[4][1], None]]
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-8
    opt = optim.Adam(params, lr=lr, betas=(b1, b2), eps=eps)
    late_before_its_first_step = None
    for step, grads in enumerate(grad_steps):
        if step == 2:
            late_before_its_first_step = params[1].data.copy()
        set_grads(params, grads)
        opt.step()
        if step == 2:  # its own t = 1: a bias-corrected first step moves each element by about lr
            np.testing.assert_allclose(np.abs(params[1].data - late_before_its_first_step), lr, rtol=1e-5)
    expected, counts = numpy_adam(p0, grad_steps, lr, b1, b2, eps)
    assert opt.steps == counts == [5, 3, 3]
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=RTOL)


def test_adam_steps_two_parameters_together_each_with_its_own_first_step():
    # A counter advanced once per parameter (instead of once per parameter per step) would give
    # the second parameter t = 2 on the very first step and move it by about 0.74·lr, not lr.
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    a, b = Tensor(np.array([1.0, 2.0]), requires_grad=True), Tensor(np.array([-1.0]), requires_grad=True)
    opt = optim.Adam([a, b], lr=lr, betas=(b1, b2), eps=eps)
    ga, gb = np.array([0.5, -4.0]), np.array([3.0])
    a.grad, b.grad = ga.copy(), gb.copy()
    opt.step()
    # t = 1: m̂ = g and v̂ = g², so each parameter moves by lr·g/(|g| + eps)
    np.testing.assert_allclose(a.data, [1.0, 2.0] - lr * ga / (np.abs(ga) + eps), rtol=RTOL)
    np.testing.assert_allclose(b.data, [-1.0] - lr * gb / (np.abs(gb) + eps), rtol=RTOL)
    after_one = a.data.copy(), b.data.copy()
    a.grad, b.grad = -ga, 2 * gb
    opt.step()
    # t = 2 with the second gradient: m = 0.9·0.1·g1 + 0.1·g2, v = 0.999·0.001·g1² + 0.001·g2²
    for p, before, g1, g2 in ((a, after_one[0], ga, -ga), (b, after_one[1], gb, 2 * gb)):
        m = b1 * (1 - b1) * g1 + (1 - b1) * g2
        v = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
        np.testing.assert_allclose(p.data, before - lr * (m / (1 - b1**2)) / (np.sqrt(v / (1 - b2**2)) + eps),
                                   rtol=RTOL)
    assert opt.steps == [2, 2]


def test_a_parameter_without_gradient_keeps_its_adam_state_and_count():
    params = make_params()
    opt = optim.Adam(params)
    set_grads(params, [np.ones((2, 3)), None, np.ones((3, 2))])
    opt.step()
    assert opt.steps == [1, 0, 1]
    np.testing.assert_array_equal(opt.m[1], 0.0)
    np.testing.assert_array_equal(opt.v[1], 0.0)


# ------------------------------------------------------------------------------ hyperparameters
BAD_SETTINGS = [
    *[(optim.SGD, {"lr": lr}, "lr") for lr in (0, -0.1, float("nan"), float("inf"), "0.1", None, True, np.bool_(1))],
    *[(optim.Adam, {"lr": lr}, "lr") for lr in (0.0, -1e-3, float("-inf"), [0.1])],
    *[(optim.SGD, {"lr": 0.1, "momentum": m}, "momentum")
      for m in ("0.9", 1.0, -0.1, float("nan"), True, None, 1.5)],
    *[(optim.SGD, {"lr": 0.1, "weight_decay": w}, "weight_decay") for w in (-1e-3, float("inf"), "0", False)],
    *[(optim.Adam, {"betas": b}, "betas") for b in ((0.9,), (0.9, 0.99, 0.999), 0.9, "ab", None, (1.0, 0.999),
                                                   (0.9, -0.1), (0.9, float("nan")), (True, 0.9), ("0.9", 0.999))],
    *[(optim.Adam, {"eps": e}, "eps") for e in (0, -1e-8, float("nan"), float("inf"), "1e-8", None)],
]


@pytest.mark.parametrize("make, settings, name", BAD_SETTINGS)
def test_every_bad_hyperparameter_is_refused_naming_it(make, settings, name):
    message = message_of(ValueError, lambda: make(make_params(), **settings))
    assert make.__name__ in message and name in message


def test_a_string_momentum_is_refused_naming_its_value_and_type():
    message = message_of(ValueError, lambda: optim.SGD(make_params(), lr=0.1, momentum="0.9"))
    assert "SGD" in message and "momentum" in message and "'0.9'" in message and "str" in message


def test_good_hyperparameters_of_any_real_type_are_stored_as_floats():
    sgd = optim.SGD(make_params(), lr=np.float64(0.5), momentum=0, weight_decay=np.float32(0.25))
    assert (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.5, 0.0, 0.25)
    assert all(type(x) is float for x in (sgd.lr, sgd.momentum, sgd.weight_decay))
    adam = optim.Adam(make_params(), betas=[0, 0.5], eps=1)
    assert adam.betas == (0.0, 0.5) and type(adam.eps) is float


def test_lr_set_between_steps_is_used_by_the_next_step():
    (p,) = [Tensor(np.array([1.0, -1.0]), requires_grad=True)]
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.array([1.0, 2.0])
    opt.step()
    opt.lr = 0.5  # a schedule
    opt.step()
    np.testing.assert_allclose(p.data, np.array([1.0, -1.0]) - 0.6 * np.array([1.0, 2.0]), rtol=RTOL)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps)])
@pytest.mark.parametrize("bad_lr", [-0.1, 0.0, float("nan"), "0.01", None])
def test_a_bad_lr_set_after_construction_is_refused_at_step_before_anything_changes(make, bad_lr):
    params = make_params()
    opt = make(params)
    set_grads(params, [np.ones(p.shape) for p in params])
    opt.step()
    before_params, before_state, good_lr = [p.data.copy() for p in params], opt.state_dict(), opt.lr
    opt.lr = bad_lr
    message = message_of(ValueError, opt.step)
    assert f"{type(opt).__name__}.step" in message and "lr" in message
    for p, before in zip(params, before_params):
        np.testing.assert_array_equal(p.data, before)
    opt.lr = good_lr
    assert_same_state(opt.state_dict(), before_state)


# ------------------------------------------------------------------------------ gradient shapes
@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: optim.Adam(ps)])
def test_a_bad_grad_shape_on_a_later_parameter_leaves_the_earlier_ones_unchanged(make):
    params = make_params()
    opt = make(params)
    set_grads(params, [np.ones(p.shape) for p in params])
    opt.step()  # so that there is state to keep unchanged
    before_params, before_state = [p.data.copy() for p in params], opt.state_dict()
    set_grads(params, [np.ones((2, 3)), np.ones(3), np.ones((2, 3))])  # parameter 2 is (3, 2)
    message = message_of(ValueError, opt.step)
    assert "parameter 2 ('W2')" in message and "(2, 3)" in message and "(3, 2)" in message
    for p, before in zip(params, before_params):
        np.testing.assert_array_equal(p.data, before)
    assert_same_state(opt.state_dict(), before_state)


def test_a_grad_that_is_not_an_array_is_refused_naming_the_parameter():
    params = make_params()
    opt = optim.SGD(params, lr=0.1)
    set_grads(params, [np.ones((2, 3)), None, None])
    params[1].grad = [1.0, 2.0, 3.0]
    before = params[0].data.copy()
    message = message_of(ValueError, opt.step)
    assert "parameter 1" in message and "list" in message
    np.testing.assert_array_equal(params[0].data, before)


def test_a_non_finite_grad_is_not_the_optimizers_concern():
    # the trainer checks the gradients for nan and inf; the optimizer only applies the rule
    (p,) = [Tensor(np.array([1.0, 2.0]), requires_grad=True)]
    p.grad = np.array([np.inf, 1.0])
    optim.SGD([p], lr=0.1).step()
    assert p.data[0] == -np.inf and p.data[1] == pytest.approx(1.9)


# ------------------------------------------------------------------------------ state_dict
def trained(make: Callable[[list[Tensor]], optim.Optimizer], steps: int = 3, seed: int = 0):
    """An optimizer over make_params(seed) after a few steps on random gradients, one parameter skipped at first."""
    params = make_params(seed)
    opt = make(params)
    rng = np.random.default_rng(seed + 10)
    for k in range(steps):
        set_grads(params, [rng.normal(size=p.shape) if (i != 1 or k > 0) else None for i, p in enumerate(params)])
        opt.step()
    return opt, params


MAKERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-7),
}


def test_state_dict_is_plain_data_in_the_documented_layout():
    sgd = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    state = sgd.state_dict()
    assert state == {"kind": "SGD", "hyperparameters": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0},
                     "state": {"velocity": [None, None, None]}}
    adam, params = trained(MAKERS["adam"], steps=2)
    state = adam.state_dict()
    assert state["kind"] == "Adam" and set(state["state"]) == {"m", "v", "steps"}
    assert json.loads(json.dumps(state["hyperparameters"])) == {"lr": 0.01, "betas": [0.8, 0.95], "eps": 1e-7}
    assert [s.dtype for s in state["state"]["steps"]] == [np.int64] * 3
    assert [int(s) for s in state["state"]["steps"]] == [2, 1, 2] and state["state"]["steps"][0].shape == ()
    assert [m.shape for m in state["state"]["m"]] == [p.shape for p in params]


@pytest.mark.parametrize("kind", list(MAKERS))
def test_state_dict_holds_copies(kind):
    opt, _ = trained(MAKERS[kind])
    state = opt.state_dict()
    for entries in state["state"].values():
        for entry in entries:
            if entry is not None:
                entry[...] = 7
    assert_same_state(opt.state_dict(), trained(MAKERS[kind])[0].state_dict())


@pytest.mark.parametrize("kind", list(MAKERS))
def test_state_dict_round_trip_gives_bit_identical_later_steps(kind):
    original, params = trained(MAKERS[kind])
    state = original.state_dict()
    # a fresh optimizer, other settings, over parameters with the same values
    fresh_params = [Tensor(p.data.copy(), requires_grad=True, name=p.name) for p in params]
    resumed = type(original)(fresh_params, lr=0.5)
    resumed.load_state_dict(state)
    assert_same_state(resumed.state_dict(), state)
    rng = np.random.default_rng(99)
    for k in range(4):
        grads = [rng.normal(size=p.shape) if k != 1 or i != 2 else None for i, p in enumerate(params)]
        for ps, opt in ((params, original), (fresh_params, resumed)):
            set_grads(ps, grads)
            opt.step()
    for p, q in zip(params, fresh_params):
        np.testing.assert_array_equal(p.data, q.data)
    assert_same_state(resumed.state_dict(), original.state_dict())


def test_loading_copies_the_state_and_casts_it_to_each_parameters_dtype():
    source, _ = trained(MAKERS["adam"])
    state = source.state_dict()
    params32 = [Tensor(p.data.astype(np.float32), requires_grad=True) for p in make_params()]
    target = optim.Adam(params32)
    target.load_state_dict(state)
    assert all(m.dtype == np.float32 and v.dtype == np.float32 for m, v in zip(target.m, target.v))
    assert target.steps == [3, 2, 3] and all(type(t) is int for t in target.steps)
    state["state"]["m"][0][...] = 5.0
    assert not np.any(target.m[0] == 5.0)


# ------------------------------------------------------------------------------ check_state_dict
def mutate(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to one place in a state dict; ``value`` may be a function of the old value."""
    def change(state: dict[str, Any]) -> None:
        *parents, last = path
        where: Any = state
        for key in parents:
            where = where[key]
        where[last] = value(where[last]) if callable(value) else value
    return change


def delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        *parents, last = path
        where: Any = state
        for key in parents:
            where = where[key]
        del where[last]
    return change


BAD_ADAM_STATES = [
    ("wrong kind", mutate(("kind",), "SGD"), "'SGD'"),
    ("missing part", delete(("hyperparameters",)), "keys"),
    ("missing hyperparameter", delete(("hyperparameters", "eps")), "'eps'"),
    ("extra hyperparameter", mutate(("hyperparameters", "momentum"), 0.9), "'momentum'"),
    ("bad lr", mutate(("hyperparameters", "lr"), -1.0), "lr"),
    ("bad betas", mutate(("hyperparameters", "betas"), [0.9]), "betas"),
    ("missing state", delete(("state", "v")), "'v'"),
    ("too few entries", mutate(("state", "m"), lambda m: m[:2]), "'m' has 2 entries but this optimizer has 3"),
    ("too many entries", mutate(("state", "steps"), lambda s: s + s[:1]), "has 4 entries"),
    ("not a list", mutate(("state", "v"), lambda v: np.stack([x.ravel()[:3] for x in v])), "list"),
    ("wrong shape", mutate(("state", "m", 2), lambda m: m.T.copy()), "shape (2, 3) but the parameter has shape (3, 2)"),
    ("int dtype", mutate(("state", "v", 1), lambda v: v.astype(np.int64)), "int64"),
    ("None for m", mutate(("state", "m", 0), None), "NoneType"),
    ("a list for m", mutate(("state", "m", 0), lambda m: m.tolist()), "list"),
    ("nan in m", mutate(("state", "m", 1), lambda m: np.where(np.arange(3) == 1, np.nan, m)), "non-finite"),
    ("inf in v", mutate(("state", "v", 0), lambda v: v + np.inf), "non-finite"),
    ("negative v", mutate(("state", "v", 2), lambda v: -v - 1.0), "negative"),
    ("negative step", mutate(("state", "steps", 1), np.array(-1)), "non-negative"),
    ("float step", mutate(("state", "steps", 1), np.array(2.5)), "whole number"),
    ("bool step", mutate(("state", "steps", 1), True), "whole number"),
    ("array step", mutate(("state", "steps", 1), np.array([1, 2])), "whole number"),
]


@pytest.mark.parametrize("case, change, fragment", BAD_ADAM_STATES, ids=[c[0] for c in BAD_ADAM_STATES])
def test_check_state_dict_refuses_a_bad_adam_state_and_changes_nothing(case, change, fragment):
    source, _ = trained(MAKERS["adam"], seed=1)
    state = copy.deepcopy(source.state_dict())
    change(state)
    target, params = trained(MAKERS["adam"])
    before_params, before_state = [p.data.copy() for p in params], target.state_dict()
    for call in (target.check_state_dict, target.load_state_dict):
        message = message_of((ValueError, TypeError), lambda call=call: call(state))
        assert "Adam" in message and fragment in message
        assert_same_state(target.state_dict(), before_state)
        for p, before in zip(params, before_params):
            np.testing.assert_array_equal(p.data, before)


def test_check_state_dict_accepts_a_good_state_and_changes_nothing():
    source, _ = trained(MAKERS["adam"], seed=1)
    target, _ = trained(MAKERS["adam"])
    before = target.state_dict()
    target.check_state_dict(source.state_dict())
    assert_same_state(target.state_dict(), before)


def test_sgd_state_may_hold_none_but_not_a_velocity_of_another_shape():
    fresh = optim.SGD(make_params(), lr=0.1, momentum=0.9)
    fresh.check_state_dict(fresh.state_dict())  # None before the first step is a valid state
    source, _ = trained(MAKERS["sgd_momentum"])
    state = source.state_dict()
    state["state"]["velocity"][1] = np.zeros(4)
    message = message_of(ValueError, lambda: fresh.load_state_dict(state))
    assert "'velocity'" in message and "parameter 1" in message and "(4,)" in message and "(3,)" in message
    assert fresh.velocity == [None, None, None] and fresh.lr == 0.1


def test_a_state_that_is_not_a_dict_is_refused():
    opt = optim.SGD(make_params(), lr=0.1)
    assert "dict" in message_of(TypeError, lambda: opt.check_state_dict([("kind", "SGD")]))
