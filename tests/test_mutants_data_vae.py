"""What data.py's generators and vae.py promise, beyond what the rest of the suite checks.

Found by mutation testing (``make mutate``): each test kills mutants of ``tinygrad_mb/data.py`` or
``tinygrad_mb/vae.py`` that every other fast test let survive. The tests check what a learner relies
on: the geometry of each data set without noise, the size and independence of the noise, dtypes,
reproducibility for a seed, the full text of every refusal (the function's name and the argument's
description are part of it), and which gradient an AEVB step leaves in .grad. They do not pin
the numbers a particular seed draws.

Statistical tolerances. Every random test runs with a fixed seed, so it is deterministic; the
tolerances only make sure that any seed would pass. For m independent N(0, σ²) draws the sample
mean has standard deviation σ/√m and the sample standard deviation has standard deviation
≈ σ/√(2m); the tests allow 5 of these (a false alarm has probability below 1e-6 per check), far
tighter than any mutant's error (a mean off by 1, a scale off by a factor of 2, or no spread at all).

Survivors judged EQUIVALENT (no test can or should tell them apart):

- data.x_make_moons__mutmut_73: bottom arc 1 + cos t instead of 1 − cos t. For t in linspace(0, π)
  (symmetric about π/2) this is the same arc traversed in reverse, followed by a uniformly random
  permutation: the same set of points and the same distribution of (X, y); only which sample a given
  seed yields changes, an incidental number.
- data.x_make_moons__mutmut_81, x_make_spirals__mutmut_67, x_make_regression__mutmut_90:
  ``− rng.normal(0, σ)`` instead of ``+``; a centred normal is symmetric, so the distribution is the same.
- data.x_make_moons__mutmut_101: ``np.ones(n + n_top)``; y[order] only indexes positions < n,
  which are the same n_top zeros and n − n_top ones.
- vae.xǁVAEǁ__init____mutmut_37, __mutmut_48: ``activation="tanh"`` removed; it is MLP's default.
- vae.xǁVAEǁnegative_elbo__mutmut_30: binary_cross_entropy's default reduction "mean" makes the
  reconstruction term the batch mean of the per-sample terms (a scalar broadcast onto the KL terms):
  mean_i(R̄ + KL_i) = mean_i(R_i + KL_i), the same function of the parameters and the data.
- vae.xǁVAEǁnegative_elbo__mutmut_39: likewise for gaussian_kl's default reduction "mean".
- vae.x_aevb_step__mutmut_43: ``on_success=None``; grads_put_back only tests ``if on_success``, and
  None is false like False.
- vae.x_binarised_digits__mutmut_2: ``.astype(None)`` is float64, the same as ``.astype(np.float64)``.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pytest

from tinygrad_mb import Tensor, gradcheck, optim
from tinygrad_mb.checks import describe
from tinygrad_mb.data import batches, make_moons, make_regression, make_spirals
from tinygrad_mb.vae import VAE, aevb_step, binarised_digits

SEED_RULE = "the seed must be a non-negative int, a numpy Generator or None, got -1 (an int)"


def refuses(error: type[Exception], message: str) -> AbstractContextManager[Any]:
    """pytest.raises matching the WHOLE message, taken literally."""
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def close_to(values: np.ndarray, mean: float, std: float) -> None:
    """``values`` look like m independent N(mean, std²) draws (5 standard errors of slack, see the top)."""
    m = values.size
    assert abs(values.mean() - mean) < 5 * std / np.sqrt(m)
    assert abs(values.std() / std - 1) < 5 / np.sqrt(2 * m)


def wrapped(angle: np.ndarray) -> np.ndarray:
    """An angle in [-π, π)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


# ------------------------------------------------------------------------------ make_moons
def test_make_moons_without_noise_lies_on_two_half_circles_with_their_end_points():
    n = 41
    X, y = make_moons(n, noise=0.0, seed=3)
    assert X.shape == (n, 2) and y.shape == (n,) and X.dtype == np.float64 and y.dtype == np.int64
    top, bottom = X[y == 0], X[y == 1]
    assert set(np.unique(y)) == {0, 1} and len(top) == n // 2 and len(bottom) == n - n // 2
    np.testing.assert_allclose(np.hypot(top[:, 0], top[:, 1]), 1.0, atol=1e-12)
    assert (top[:, 1] >= -1e-12).all()
    np.testing.assert_allclose(np.hypot(bottom[:, 0] - 1, bottom[:, 1] - 0.5), 1.0, atol=1e-12)
    assert (bottom[:, 1] <= 0.5 + 1e-12).all()
    # t runs over [0, π] inclusive: the arcs' end points are samples
    for arc, ends in ((top, [[1.0, 0.0], [-1.0, 0.0]]), (bottom, [[0.0, 0.5], [2.0, 0.5]])):
        for end in ends:
            assert np.min(np.hypot(*(arc - end).T)) < 1e-12
    # and the points are spread evenly along each arc (equal steps in t)
    for arc, centre in ((top, (0.0, 0.0)), (bottom, (1.0, 0.5))):
        t = np.sort(np.arctan2(np.abs(arc[:, 1] - centre[1]), arc[:, 0] - centre[0]))
        np.testing.assert_allclose(np.diff(t), np.pi / (len(arc) - 1), atol=1e-12)


def test_make_moons_noise_is_independent_normal_noise_of_the_given_std_on_each_coordinate():
    n, sigma = 4000, 0.3
    X_clean, y_clean = make_moons(n, noise=0.0, seed=7)
    X_noisy, y_noisy = make_moons(n, noise=sigma, seed=7)
    np.testing.assert_array_equal(y_noisy, y_clean)  # the same seed orders the samples alike
    delta = X_noisy - X_clean
    assert delta.shape == (n, 2)
    for column in delta.T:
        close_to(column, 0.0, sigma)
    assert abs(np.corrcoef(delta.T)[0, 1]) < 5 / np.sqrt(n)  # no noise shared between the coordinates


def test_make_moons_seed_reproduces_and_defaults_are_the_documented_ones():
    X1, y1 = make_moons(30, noise=0.2, seed=5)
    X2, y2 = make_moons(30, noise=0.2, seed=5)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, make_moons(30, noise=0.2, seed=6)[0])
    # the signature the API reference shows: make_moons(n=200, noise=0.1, seed=0)
    for got, want in zip(make_moons(), make_moons(200, noise=0.1, seed=0)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("call, error, message", [
    (lambda: make_moons(1), ValueError, "make_moons: n (the number of samples) must be at least 2, got 1"),
    (lambda: make_moons(2.5), TypeError,  # type: ignore[arg-type]
     "make_moons: n (the number of samples) must be a whole number (an int), got 2.5 (a float)"),
    (lambda: make_moons(10, noise=-1), ValueError,
     "make_moons: noise (a standard deviation) must be at least 0, got -1"),
    (lambda: make_moons(10, seed=-1), ValueError, f"make_moons: {SEED_RULE}"),
])
def test_make_moons_refusals_name_the_function_and_the_argument(call, error, message):
    with refuses(error, message):
        call()


# ------------------------------------------------------------------------------ make_spirals
@pytest.mark.parametrize("n, classes", [(31, 3), (20, 2), (5, 5)])
def test_make_spirals_without_noise_are_arms_of_known_radius_and_angle(n, classes):
    X, y = make_spirals(n, classes=classes, noise=0.0, seed=1)
    assert X.shape == (n, 2) and y.shape == (n,) and X.dtype == np.float64 and y.dtype == np.int64
    counts = np.bincount(y, minlength=classes)
    assert len(counts) == classes and counts.sum() == n and counts.max() - counts.min() <= 1
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(np.sort(r), np.linspace(0.05, 1.0, n), atol=1e-12)
    residual = wrapped(np.arctan2(X[:, 0], X[:, 1]) - (y * 2 * np.pi / classes + 4.0 * r))
    np.testing.assert_allclose(residual, 0.0, atol=1e-9)


def test_make_spirals_noise_is_independent_normal_noise_on_each_angle():
    n, classes, sigma = 3000, 3, 0.1
    X, y = make_spirals(n, classes=classes, noise=sigma, seed=2)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(np.sort(r), np.linspace(0.05, 1.0, n), atol=1e-12)  # noise turns, never stretches
    # |noise| < π for all 3000 draws (31σ), so wrapping the residual recovers the draw itself
    residual = wrapped(np.arctan2(X[:, 0], X[:, 1]) - (y * 2 * np.pi / classes + 4.0 * r))
    close_to(residual, 0.0, sigma)


def test_make_spirals_seed_reproduces_and_defaults_are_the_documented_ones():
    X1, y1 = make_spirals(30, noise=0.2, seed=5)
    X2, y2 = make_spirals(30, noise=0.2, seed=5)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, make_spirals(30, noise=0.2, seed=6)[0])
    X3, _ = make_spirals(30, noise=0.2, seed=np.random.default_rng(5))  # a Generator is a seed too
    X4, _ = make_spirals(30, noise=0.2, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(X3, X4)
    for got, want in zip(make_spirals(), make_spirals(300, classes=3, noise=0.2, seed=0)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("call, error, message", [
    (lambda: make_spirals(10, classes=1), ValueError, "make_spirals: classes must be at least 2, got 1"),
    (lambda: make_spirals(10, classes=2.0), TypeError,  # type: ignore[arg-type]
     "make_spirals: classes must be a whole number (an int), got 2.0 (a float)"),
    (lambda: make_spirals(2, classes=3), ValueError,
     "make_spirals: n (the number of samples, at least one per class) must be at least 3, got 2"),
    (lambda: make_spirals(10, noise=-0.5), ValueError,
     "make_spirals: noise (a standard deviation) must be at least 0, got -0.5"),
    (lambda: make_spirals(10, seed=-1), ValueError, f"make_spirals: {SEED_RULE}"),
])
def test_make_spirals_refusals_name_the_function_and_the_argument(call, error, message):
    with refuses(error, message):
        call()


# ------------------------------------------------------------------------------ make_regression
def test_make_regression_without_noise_is_a_bounded_target_of_inputs_filling_minus_2_to_2():
    n = 2000
    X, y = make_regression(n, in_features=3, out_features=2, noise=0.0, seed=4)
    assert X.shape == (n, 3) and y.shape == (n, 2) and X.dtype == y.dtype == np.float64
    assert (np.abs(y) <= 1).all() and (np.abs(X) <= 2).all()
    # uniform on [-2, 2]: P(no draw of a column within 0.05 of an end) = (1 - 0.05/4)**2000 ≈ 1e-11
    assert (X.min(axis=0) < -1.95).all() and (X.max(axis=0) > 1.95).all()
    X1, y1 = make_regression(1, noise=0.0)  # a single sample is a data set too
    assert X1.shape == (1, 1) and y1.shape == (1, 1)


def test_make_regression_target_is_sin_of_a_standard_normal_projection():
    """y = sin(a·x) for one input: a smooth target whose frequencies a are N(0, 1) draws.

    For the sample with the smallest |x| (|a·x| < π/2), a = arcsin(y)/x exactly, for every output.
    """
    outputs = 1000
    X, y = make_regression(200, in_features=1, out_features=outputs, noise=0.0, seed=8)
    i = np.argmin(np.abs(X[:, 0]))
    a = np.arcsin(y[i]) / X[i, 0]
    np.testing.assert_allclose(np.sin(np.outer(X[:, 0], a)), y, atol=1e-9)  # the target is sin(x·a)
    close_to(a, 0.0, 1.0)


def test_make_regression_noise_is_independent_normal_noise_of_the_given_std():
    n, sigma = 2000, 0.2
    X_clean, y_clean = make_regression(n, in_features=2, out_features=2, noise=0.0, seed=9)
    X_noisy, y_noisy = make_regression(n, in_features=2, out_features=2, noise=sigma, seed=9)
    np.testing.assert_array_equal(X_noisy, X_clean)  # the same inputs, only the targets get noise
    delta = y_noisy - y_clean
    assert delta.shape == (n, 2)
    for column in delta.T:
        close_to(column, 0.0, sigma)
    assert abs(np.corrcoef(delta.T)[0, 1]) < 5 / np.sqrt(n)


def test_make_regression_seed_reproduces_and_defaults_are_the_documented_ones():
    X1, y1 = make_regression(20, seed=5)
    X2, y2 = make_regression(20, seed=5)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, make_regression(20, seed=6)[0])
    for got, want in zip(make_regression(), make_regression(100, in_features=1, out_features=1, noise=0.1, seed=0)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("call, error, message", [
    (lambda: make_regression(0), ValueError, "make_regression: n (the number of samples) must be at least 1, got 0"),
    (lambda: make_regression(10, in_features=0), ValueError, "make_regression: in_features must be at least 1, got 0"),
    (lambda: make_regression(10, out_features=0), ValueError,
     "make_regression: out_features must be at least 1, got 0"),
    (lambda: make_regression(10, out_features=-2), ValueError,
     "make_regression: out_features must be at least 1, got -2"),
    (lambda: make_regression(10, noise=-0.5), ValueError,
     "make_regression: noise (a standard deviation) must be at least 0, got -0.5"),
    (lambda: make_regression(10, seed=-1), ValueError, f"make_regression: {SEED_RULE}"),
])
def test_make_regression_refusals_name_the_function_and_the_argument(call, error, message):
    with refuses(error, message):
        call()


# ------------------------------------------------------------------------------ VAE
def small_vae(rng: int = 0) -> VAE:
    return VAE(data_dim=6, hidden=5, latent=2, rng=rng)


def pixels(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 0.95, (rows, 6))


def test_vae_defaults_are_the_documented_ones_and_every_size_may_be_1():
    default, explicit = VAE(rng=0), VAE(data_dim=64, hidden=128, latent=8, rng=0)
    assert default.latent == explicit.latent == 8 and default.data_dim == 64
    assert [p.shape for p in default.parameters()] == [p.shape for p in explicit.parameters()]
    for a, b in zip(default.parameters(), explicit.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    tiny = VAE(data_dim=1, hidden=1, latent=1, rng=0)
    assert np.isfinite(tiny.negative_elbo(np.array([[1.0], [0.0]]), np.zeros((2, 1))).item())


@pytest.mark.parametrize("kwargs, error, message", [
    ({"data_dim": 0}, ValueError, "VAE: data_dim must be at least 1, got 0"),
    ({"hidden": 0}, ValueError, "VAE: hidden must be at least 1, got 0"),
    ({"latent": 0}, ValueError, "VAE: latent must be at least 1, got 0"),
    ({"hidden": 2.5}, TypeError, "VAE: hidden must be a whole number (an int), got 2.5 (a float)"),
    ({"rng": -1}, ValueError, f"VAE: {SEED_RULE}"),
])
def test_vae_refusals_name_the_argument(kwargs, error, message):
    with refuses(error, message):
        VAE(**kwargs)


def test_a_batch_of_one_sample_is_accepted():
    vae, x = small_vae(), pixels(1)
    assert np.isfinite(vae.negative_elbo(x, np.zeros((1, 2))).item())
    assert vae.reconstruct(x).shape == (1, 6)
    loss = aevb_step(vae, optim.SGD(vae.parameters(), lr=0.1), x, dataset_size=1, rng=np.random.default_rng(0))
    assert np.isfinite(loss)


@pytest.mark.parametrize("op", ["negative_elbo", "reconstruct"])
def test_a_batch_of_the_wrong_shape_is_refused_with_the_method_named(op):
    vae = small_vae()
    call = {"negative_elbo": lambda x: vae.negative_elbo(x, np.zeros((1, 2))), "reconstruct": vae.reconstruct}[op]
    with refuses(ValueError, f"{op}: x must be a batch of shape (batch, 6), one row of pixels per sample, got (6,); "
                             "for one sample use x.reshape(1, -1)"):
        call(pixels(1)[0])


@pytest.mark.parametrize("op", ["negative_elbo", "reconstruct"])
def test_the_first_value_outside_0_1_is_named(op):
    vae = small_vae()
    x = np.full((2, 6), 0.5)
    x[0, 3], x[1, 0], x[1, 4] = 1.5, -2.0, 7.0  # row-major: 1.5 comes first
    call = {"negative_elbo": lambda x: vae.negative_elbo(x, np.zeros((2, 2))), "reconstruct": vae.reconstruct}[op]
    with refuses(ValueError, f"{op}: x must hold pixel probabilities in [0, 1], got 1.5; binarise grey levels "
                             "first (binarised_digits() does) or divide them by their maximum"):
        call(x)


def test_the_gradient_of_negative_elbo_reaches_a_tensor_of_data():
    """A Tensor batch is used as it is, not copied: the −ELBO is differentiable in the pixels too."""
    vae, eps = small_vae(), np.random.default_rng(1).standard_normal((3, 2))
    x = Tensor(pixels(3), requires_grad=True)
    vae.negative_elbo(x, eps).backward()
    assert x.grad is not None and np.abs(x.grad).max() > 0
    x.grad = None
    assert gradcheck(lambda data: vae.negative_elbo(data, eps), [x])


def test_sample_draws_one_or_more_reproducibly_for_a_seed():
    vae = small_vae()
    one = vae.sample(1, rng=0)
    assert one.shape == (1, 6) and ((0 <= one) & (one <= 1)).all()
    np.testing.assert_array_equal(vae.sample(4, rng=3), vae.sample(4, rng=3))
    assert not np.array_equal(vae.sample(4, rng=3), vae.sample(4, rng=4))
    np.testing.assert_array_equal(vae.sample(4, rng=np.random.default_rng(3)),
                                  vae.sample(4, rng=np.random.default_rng(3)))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"count": 0}, ValueError, "VAE.sample: count must be at least 1, got 0"),
    ({"count": 1.0}, TypeError, "VAE.sample: count must be a whole number (an int), got 1.0 (a float)"),
    ({"count": 2, "rng": -1}, ValueError, f"VAE.sample: {SEED_RULE}"),
])
def test_sample_refusals_name_the_method(kwargs, error, message):
    with refuses(error, message):
        small_vae().sample(**kwargs)


# ------------------------------------------------------------------------------ aevb_step
def mean_gradient(vae: VAE, x: np.ndarray, eps: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """The batch-mean −ELBO and its gradient, for this ε."""
    params = vae.parameters()
    for p in params:
        p.grad = None
    loss = vae.negative_elbo(x, eps)
    loss.backward()
    grads = [p.grad.copy() if p.grad is not None else np.zeros_like(p.data) for p in params]
    for p in params:
        p.grad = None
    return loss.item(), grads


@pytest.mark.parametrize("dataset_size", [1, 7])
def test_aevb_step_leaves_n_times_the_mean_gradient_in_grad_not_the_old_grad(dataset_size):
    vae, x = small_vae(), pixels(4)
    eps = np.random.default_rng(11).standard_normal((4, 2))  # what aevb_step draws from default_rng(11)
    loss, grads = mean_gradient(vae, x, eps)
    params = vae.parameters()
    for p in params:
        p.grad = np.full_like(p.data, 123.0)  # left from before: must be replaced, not kept or added to
    before = [p.data.copy() for p in params]
    total = aevb_step(vae, optim.SGD(params, lr=0.1), x, dataset_size=dataset_size, rng=np.random.default_rng(11))
    assert total == pytest.approx(dataset_size * loss, rel=1e-12)
    for p, g, old in zip(params, grads, before):
        assert p.grad is not None
        np.testing.assert_allclose(p.grad, dataset_size * g, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(p.data, old - 0.1 * dataset_size * g, rtol=1e-12, atol=1e-14)


def test_aevb_step_refusals_say_what_is_wrong():
    vae, x = small_vae(), pixels(2)
    params = vae.parameters()
    adam, rng = optim.Adam(params), np.random.default_rng(0)
    with refuses(ValueError, "aevb_step: dataset_size must be a whole number N >= 1 (the number of samples the "
                             "batch was drawn from), got 0 (an int)"):
        aevb_step(vae, adam, x, dataset_size=0, rng=rng)
    with refuses(TypeError, "aevb_step: rng must be a numpy Generator (np.random.default_rng(seed)), made once and "
                            "passed to every step, got 5 (an int)"):
        aevb_step(vae, adam, x, dataset_size=10, rng=5)  # type: ignore[arg-type]
    with refuses(TypeError, "aevb_step: optimizer must be an optimizer that steps along .grad as it is, such as "
                            "optim.Adam(vae.parameters()), got 'adam' (a str)"):
        aevb_step(vae, "adam", x, dataset_size=10, rng=rng)  # type: ignore[arg-type]
    sgld = optim.SGLD(params, lr=0.01, dataset_size=10, seed=0)
    with refuses(TypeError, "aevb_step: optimizer must be an optimizer that steps along .grad as it is, such as "
                            f"optim.Adam(vae.parameters()), got {describe(sgld)}; SGLD multiplies .grad by its "
                            "dataset_size, so N would count twice"):
        aevb_step(vae, sgld, x, dataset_size=10, rng=rng)
    with refuses(ValueError, "aevb_step: the optimizer holds none of the VAE's parameters, so the step would change "
                             "nothing; build it with optim.Adam(vae.parameters())"):
        aevb_step(vae, optim.Adam(small_vae(rng=1).parameters()), x, dataset_size=10, rng=rng)
    with refuses(ValueError, "aevb_step: x must hold pixel probabilities in [0, 1], got 2.0; binarise grey levels "
                             "first (binarised_digits() does) or divide them by their maximum"):
        aevb_step(vae, adam, x * 0 + 2.0, dataset_size=10, rng=rng)


# ------------------------------------------------------------------------------ binarised_digits
def test_binarised_digits_turn_on_exactly_the_pixels_above_half_of_the_16_grey_levels():
    from sklearn.datasets import load_digits

    grey = load_digits().data
    X, labels = binarised_digits()
    assert X.dtype == np.float64 and X.shape == grey.shape and len(labels) == len(grey)
    assert {8.0, 9.0} <= set(np.unique(grey))  # both sides of the threshold occur
    assert (X[grey <= 8] == 0).all() and (X[grey > 8] == 1).all()


# ------------------------------------------------------------------------------ batches
def test_batches_of_no_samples_are_none_and_batches_of_one_cover_every_sample() -> None:
    assert list(batches(0, 3)) == []
    assert [b.tolist() for b in batches(3, 1)] == [[0], [1], [2]]
    assert sorted(np.concatenate(list(batches(7, 1, shuffle=True, rng=np.random.default_rng(0)))).tolist()) \
        == list(range(7))


@pytest.mark.parametrize("call, message", [
    (lambda: batches(-1, 2), "batches: n (the number of samples) must be at least 0, got -1"),
    (lambda: batches(2.5, 2), "batches: n (the number of samples) must be a whole number (an int), got 2.5 (a float)"),
    (lambda: batches(4, 0), "batches: batch_size must be at least 1, got 0"),
    (lambda: batches(4, "2"), "batches: batch_size must be a whole number (an int), got '2' (a str)"),
    (lambda: batches(4, 2, shuffle="yes"), "batches: shuffle must be True or False, got 'yes' (a str)"),
    (lambda: batches(4, 2, shuffle=True, rng=7),
     "batches: rng must be a numpy Generator (np.random.default_rng(seed)) or None, got 7 (an int)"),
])
def test_batches_refuses_with_the_full_message(call: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert str(info.value) == message
