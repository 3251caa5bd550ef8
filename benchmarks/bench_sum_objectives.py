"""Sum objectives: one AEVB step of a VAE and one SGLD step, engine against hand-written numpy.

1. **AEVB.** One training step of the VAE of ``tinygrad_mb.vae`` (encoder 64-128-16, giving μ
   and log σ² for 8 latent dimensions; decoder 8-128-64; tanh hidden layers) on a batch of
   M = 100 binary 8x8 images: draw ε, forward, the batch mean of −ELBO_i (D · binary
   cross-entropy + the Gaussian KL), backward, every gradient times N (the (N/M)·Σ estimate
   of the summed ELBO's gradient), Adam update. The engine runs ``vae.aevb_step``; the
   reference is the same step written out in numpy, its backward pass derived by hand.
   Target: at most 1.5 times the numpy step.
2. **SGLD.** One step of ``optim.SGLD`` on the MLP 64-128-128-10 (tanh, mean softmax
   cross-entropy) of ``benchmarks.common`` at batch 64: forward, backward, then
   θ ← θ − (ε/2)(N·∇L_M + λθ) + η. The reference draws the same noise the same way
   (a generator seeded with (seed, parameter, step), so a resumed run draws the same noise);
   a second reference draws all its noise from one generator, to show what that seeding costs.
   No target is set.

Both sides of each comparison run in this process, interleaved, with BLAS pinned to one
thread and glibc's malloc thresholds fixed; each ratio is taken between timings of the same
run. Before timing, each engine step is checked against its reference: the same starting
weights, data and noise must give the same loss, gradients and updated weights (to 1e-10).

    python -m benchmarks sum_objectives
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.bench_engine import TrainingLoop, engine_model
from benchmarks.common import (
    BATCH,
    SIZES,
    fixed_malloc_thresholds,
    init_params,
    numpy_mlp_loss_and_grads,
    one_blas_thread,
    random_digits_like,
    time_calls,
)
from tinygrad_mb import optim
from tinygrad_mb.vae import VAE, aevb_step

VAE_TARGET = 1.5
DATA_DIM, HIDDEN, LATENT, VAE_BATCH = 64, 128, 8, 100
DATASET_SIZE = 1500  # N: the summed ELBO runs over the 1,500 training digits of tutorial 6
ADAM_LR, BETAS, ADAM_EPS = 1e-3, (0.9, 0.999), 1e-8
SGLD_N, SGLD_LR, SGLD_PRIOR, SGLD_SEED = 1797, 1e-6, 1.0, 0  # N: all 1,797 digits
TOLERANCE = 1e-10


# ------------------------------------------------------------------------------ the VAE by hand
def vae_params(seed: int = 0) -> list[np.ndarray]:
    """The VAE's weights as ``VAE(...).parameters()`` lists them: encoder W1, b1, W2, b2, decoder W1, b1, W2, b2."""
    return [p.data.copy() for p in VAE(DATA_DIM, HIDDEN, LATENT, rng=seed).parameters()]


def binary_images(seed: int = 0) -> np.ndarray:
    """A batch of M random 0/1 images, about 30% of the pixels on (as in the binarised digits)."""
    return (np.random.default_rng(seed).random((VAE_BATCH, DATA_DIM)) < 0.3).astype(np.float64)


def numpy_negative_elbo_and_grads(params: Sequence[np.ndarray], x: np.ndarray,
                                  eps: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """The batch mean of −ELBO_i and its gradients, written out by hand.

    −ELBO_i = Σ_d [softplus(logit_id) − x_id·logit_id] + ½ Σ_k (μ_ik² + σ_ik² − 1 − log σ_ik²),
    with z_i = μ_i + σ_i ε_i. Returns the loss and the gradients aligned with ``params``.
    """
    W1, b1, W2, b2, W3, b3, W4, b4 = params
    M = x.shape[0]
    h1 = np.tanh(x @ W1 + b1)
    encoded = h1 @ W2 + b2
    mu, logvar = encoded[:, :LATENT], encoded[:, LATENT:]
    sd = np.exp(0.5 * logvar)
    z = mu + sd * eps
    h2 = np.tanh(z @ W3 + b3)
    logits = h2 @ W4 + b4
    softplus_tail = np.log1p(np.exp(-np.abs(logits)))  # log(1 + e^(−|x|)), as binary_cross_entropy does
    reconstruction = (np.maximum(logits, 0) - x * logits + softplus_tail).sum(axis=1)  # D · the per-pixel mean
    variance = sd * sd
    kl = 0.5 * (mu * mu + variance - 1 - logvar).sum(axis=1)
    loss = float(np.mean(reconstruction + kl))
    # backward of the batch mean: each sample's share is 1/M
    probability = np.exp(np.minimum(logits, 0) - softplus_tail)  # σ(logit) without overflow
    d_logits = (probability - x) / M
    d_h2 = d_logits @ W4.T
    d_a2 = d_h2 * (1 - h2 * h2)
    d_z = d_a2 @ W3.T
    d_mu = d_z + mu / M
    d_logvar = d_z * eps * sd * 0.5 + 0.5 * (variance - 1) / M
    d_encoded = np.concatenate([d_mu, d_logvar], axis=1)
    d_a1 = (d_encoded @ W2.T) * (1 - h1 * h1)
    grads = [x.T @ d_a1, d_a1.sum(axis=0), h1.T @ d_encoded, d_encoded.sum(axis=0),
             z.T @ d_a2, d_a2.sum(axis=0), h2.T @ d_logits, d_logits.sum(axis=0)]
    return loss, grads


class NumpyAdam:
    """optim.Adam's update, by hand: the same formula in the same order of operations."""

    def __init__(self, params: list[np.ndarray], lr: float = ADAM_LR):
        self.params, self.lr = params, lr
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: Sequence[np.ndarray]) -> None:
        b1, b2 = BETAS
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g**2
            p -= self.lr * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + ADAM_EPS)


def numpy_aevb_step(adam: NumpyAdam, x: np.ndarray, rng: np.random.Generator) -> float:
    """aevb_step by hand: ε as the engine draws it, forward, backward, gradients times N, Adam."""
    eps = rng.standard_normal((len(x), LATENT))
    loss, grads = numpy_negative_elbo_and_grads(adam.params, x, eps)
    for g in grads:
        g *= DATASET_SIZE  # N · ∇(batch mean) = (N/M) Σ_i ∇(−ELBO_i)
    adam.step(grads)
    return loss * DATASET_SIZE


def engine_vae() -> tuple[VAE, optim.Adam]:
    vae = VAE(DATA_DIM, HIDDEN, LATENT, rng=0)
    return vae, optim.Adam(vae.parameters(), lr=ADAM_LR, betas=BETAS, eps=ADAM_EPS)


def check_vae_agreement() -> None:
    """The same weights, images and ε give the same loss and gradients, and three steps the same weights."""
    x = binary_images()
    eps = np.random.default_rng(1).standard_normal((VAE_BATCH, LATENT))
    vae, adam = engine_vae()
    loss = vae.negative_elbo(x, eps)
    loss.backward()
    ref_loss, ref_grads = numpy_negative_elbo_and_grads(vae_params(), x, eps)
    np.testing.assert_allclose(loss.item(), ref_loss, rtol=TOLERANCE)
    for p, g in zip(vae.parameters(), ref_grads):
        assert p.grad is not None
        np.testing.assert_allclose(p.grad, g, rtol=TOLERANCE, atol=TOLERANCE, err_msg=f"gradient of {p.name}")
    reference = NumpyAdam(vae_params())
    engine_rng, reference_rng = np.random.default_rng(2), np.random.default_rng(2)
    for _ in range(3):
        engine_sum = aevb_step(vae, adam, x, dataset_size=DATASET_SIZE, rng=engine_rng)
        reference_sum = numpy_aevb_step(reference, x, reference_rng)
        np.testing.assert_allclose(engine_sum, reference_sum, rtol=TOLERANCE)
    for p, ref in zip(vae.parameters(), reference.params):
        np.testing.assert_allclose(p.data, ref, rtol=TOLERANCE, atol=TOLERANCE, err_msg=f"{p.name} after 3 steps")


def compare_vae() -> None:
    x = binary_images()
    vae, adam = engine_vae()
    reference = NumpyAdam(vae_params())
    engine_rng, reference_rng = np.random.default_rng(3), np.random.default_rng(3)
    ref, eng = time_calls([
        ("numpy AEVB step", lambda: numpy_aevb_step(reference, x, reference_rng)),
        ("tinygrad_mb aevb_step", lambda: aevb_step(vae, adam, x, dataset_size=DATASET_SIZE, rng=engine_rng)),
    ])
    print(f"  {ref}")
    print(f"  {eng}")
    ratio = eng.median / ref.median
    print(f"  ratio engine / numpy = {ratio:.2f}  ({'meets' if ratio <= VAE_TARGET else 'MISSES'} "
          f"the target <= {VAE_TARGET})")


# ------------------------------------------------------------------------------ SGLD by hand
class NumpySGLD:
    """optim.SGLD's update by hand. ``seeded``: parameter i's noise at its t-th step comes from
    ``default_rng([seed, i, t])``, exactly as the engine draws it; otherwise from one generator."""

    def __init__(self, params: list[np.ndarray], seeded: bool = True):
        self.params, self.seeded = params, seeded
        self.t = 0
        self.rng = np.random.default_rng(SGLD_SEED)

    def step(self, X: np.ndarray, y: np.ndarray) -> float:
        loss, grads = numpy_mlp_loss_and_grads(self.params, X, y)  # the batch-mean gradient
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            draw = np.random.default_rng([SGLD_SEED, i, self.t]) if self.seeded else self.rng
            noise = draw.standard_normal(p.shape)
            p -= (SGLD_LR / 2) * (SGLD_N * g + SGLD_PRIOR * p)
            p += np.sqrt(SGLD_LR) * noise
        return loss


def engine_sgld_loop(X: np.ndarray, y: np.ndarray) -> TrainingLoop:
    """A learner's SGLD loop with the engine: the training loop of bench_engine with SGLD as its optimizer."""
    model = engine_model(np.float64)
    opt = optim.SGLD(model.parameters(), lr=SGLD_LR, dataset_size=SGLD_N, prior_precision=SGLD_PRIOR, seed=SGLD_SEED)
    return TrainingLoop(model, opt, X, y)


def check_sgld_agreement() -> None:
    """Three steps from the same weights on the same batch give the same weights (same noise)."""
    X, y = random_digits_like()
    engine, reference = engine_sgld_loop(X, y), NumpySGLD(init_params(SIZES))
    for _ in range(3):
        engine.step()
        ref_loss = reference.step(X, y)
        assert engine.loss is not None
        np.testing.assert_allclose(engine.loss.item(), ref_loss, rtol=TOLERANCE)
    for p, ref in zip(engine.model.parameters(), reference.params):
        np.testing.assert_allclose(p.data, ref, rtol=TOLERANCE, atol=TOLERANCE, err_msg=f"{p.name} after 3 steps")


def compare_sgld() -> None:
    X, y = random_digits_like()
    engine, seeded, one_generator = engine_sgld_loop(X, y), NumpySGLD(init_params(SIZES)), \
        NumpySGLD(init_params(SIZES), seeded=False)
    ref, ref_one, eng = time_calls([
        ("numpy SGLD step", lambda: seeded.step(X, y)),
        ("numpy SGLD step, one generator", lambda: one_generator.step(X, y)),
        ("tinygrad_mb SGLD step", engine.step),
    ])
    for timing in (ref, ref_one, eng):
        print(f"  {timing}")
    print(f"  ratio engine / numpy (same noise draws)    = {eng.median / ref.median:.2f}  (no target set)")
    print(f"  ratio engine / numpy (one noise generator) = {eng.median / ref_one.median:.2f}")
    print(f"  (seeding a generator per parameter and step: numpy {ref.median / ref_one.median:.2f} times "
          f"the one-generator step)")


def main() -> None:
    print(f"One AEVB step, VAE {DATA_DIM}-{HIDDEN}-{2 * LATENT} / {LATENT}-{HIDDEN}-{DATA_DIM} (tanh), "
          f"batch {VAE_BATCH}, gradients times N = {DATASET_SIZE}, Adam; one BLAS thread")
    fixed_malloc_thresholds()
    with one_blas_thread():
        check_vae_agreement()
        compare_vae()
        sizes = "-".join(map(str, SIZES))
        print(f"\nOne SGLD step, MLP {sizes} (tanh), batch {BATCH}, mean cross-entropy, "
              f"N = {SGLD_N}; one BLAS thread")
        check_sgld_agreement()
        compare_sgld()


if __name__ == "__main__":
    main()
