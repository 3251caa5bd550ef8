"""A small variational autoencoder trained with AEVB (Kingma & Welling 2014, §2.2-2.3).

The objective is a SUM over the N data points, the evidence lower bound

    ELBO = Σ_{j=1}^N [ E_q(z|x_j) log p(x_j | z) − KL(q(z | x_j) ‖ p(z)) ],

and AEVB climbs it with the mini-batch estimate (N/M) Σ_{i∈batch} [...] (their eq. 8): N
times the batch mean, as for every sum objective (``minibatch.sum_estimate``). Two tricks
make one sample's term differentiable:

- **The reparameterisation.** z ~ N(μ, σ²) is written z = μ + σ·ε with ε ~ N(0, I) drawn
  outside the graph, so the expectation over z becomes one over ε, which does not depend on
  the parameters: ∇E_ε[f(μ + σε)] = E_ε[∇f(μ + σε)], estimated with one ε per sample.
- **The KL in closed form** (``nn.gaussian_kl``), for a Gaussian q against the N(0, I) prior.

Binarised 8x8 digits: p(x | z) is a Bernoulli per pixel with logits from the decoder, so
−log p(x | z) is a sum over the D = 64 pixels of binary cross-entropies. ``nn.binary_cross_entropy``
returns the MEAN over a sample's outputs (like ``mse_loss``): the reconstruction term is D times
it. What gets averaged, once more.
"""

from __future__ import annotations

import numpy as np

from . import nn
from .checks import check_int, check_seed, describe, shape_str
from .grad_mode import grads_put_back, no_grad
from .optim import SGLD, Optimizer
from .tensor import Tensor


class VAE(nn.Module):
    """Encoder x → (μ, log σ²) and decoder z → pixel logits, each an MLP with one tanh hidden layer.

    Args:
        data_dim: pixels per sample (64 for 8x8 digits).
        hidden: width of the hidden layers.
        latent: dimensions of z.
        rng: a numpy Generator or seed, for the initial weights.
    """

    def __init__(self, data_dim: int = 64, hidden: int = 128, latent: int = 8, rng: nn.Rng = None):
        for what, size in (("data_dim", data_dim), ("hidden", hidden), ("latent", latent)):
            check_int(size, "VAE", what, minimum=1)
        gen = np.random.default_rng(check_seed(rng, "VAE"))  # a Generator is used as it is
        self.latent, self.data_dim = int(latent), int(data_dim)
        self.encoder = nn.MLP([data_dim, hidden, 2 * latent], activation="tanh", rng=gen)
        self.decoder = nn.MLP([latent, hidden, data_dim], activation="tanh", rng=gen)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """μ and log σ² of q(z | x), each of shape (B, latent)."""
        h = self.encoder(x)
        return h[:, :self.latent], h[:, self.latent:]

    def decode(self, z: Tensor) -> Tensor:
        """The logits of p(x | z): σ(logit) is each pixel's probability of being on."""
        return self.decoder(z)

    def negative_elbo(self, x: Tensor | np.ndarray, eps: np.ndarray) -> Tensor:
        """The batch MEAN of −ELBO_i, one reparameterised sample z_i = μ_i + σ_i ε_i per data point.

        −ELBO_i = −log p(x_i | z_i) + KL(q(z | x_i) ‖ N(0, I))
                = D · binary_cross_entropy(logits_i, x_i) + gaussian_kl(μ_i, log σ²_i).
        """
        x = self.check_batch(x, "negative_elbo")
        noise = Tensor(eps)
        if noise.shape != (len(x), self.latent):  # broadcasting would share one ε between samples
            raise ValueError(f"negative_elbo: eps must have shape {shape_str((len(x), self.latent))}, one standard "
                             f"normal draw per sample and latent dimension, got {shape_str(noise.shape)}")
        mu, logvar = self.encode(x)
        z = mu + (logvar * 0.5).exp() * noise  # σ = exp(½ log σ²)
        logits = self.decode(z)
        reconstruction = nn.binary_cross_entropy(logits, x, reduction="none") * self.data_dim  # sum over pixels
        return (reconstruction + nn.gaussian_kl(mu, logvar, reduction="none")).mean()

    def check_batch(self, x: Tensor | np.ndarray, op: str) -> Tensor:
        """x as a Tensor of shape (batch, data_dim) holding pixel probabilities, or a clear error."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != 2 or x.shape[1] != self.data_dim or len(x) == 0:
            raise ValueError(f"{op}: x must be a batch of shape (batch, {self.data_dim}), one row of pixels per "
                             f"sample, got {shape_str(x.shape)}; for one sample use x.reshape(1, -1)")
        outside = ~((x.data >= 0) & (x.data <= 1))  # each pixel is a target of a binary cross-entropy; nan too
        if outside.any():
            raise ValueError(f"{op}: x must hold pixel probabilities in [0, 1], got {float(x.data[outside][0])!r}; "
                             f"binarise grey levels first (binarised_digits() does) or divide them by their maximum")
        return x

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Pixel probabilities of the decoder at the mean z = μ(x)."""
        with no_grad():
            mu, _ = self.encode(self.check_batch(x, "reconstruct"))
            return self.decode(mu).sigmoid().data

    def sample(self, count: int, rng: nn.Rng = None) -> np.ndarray:
        """Pixel probabilities of the decoder at z drawn from the prior N(0, I)."""
        count = check_int(count, "VAE.sample", "count", minimum=1)
        gen = np.random.default_rng(check_seed(rng, "VAE.sample"))
        with no_grad():
            return self.decode(Tensor(gen.standard_normal((count, self.latent)))).sigmoid().data


def aevb_step(vae: VAE, optimizer: Optimizer, x: np.ndarray, dataset_size: int, rng: np.random.Generator) -> float:
    """One AEVB step on a batch x of M samples; returns the estimate of the summed −ELBO.

    The gradient of the batch mean, times N, is the (N/M) Σ estimate of the gradient of the sum
    over the data set (``minibatch.sum_estimate``); the optimizer then steps along it, so use
    one that takes .grad as it is (SGD, Adam), not ``SGLD``, which multiplies by N itself. Bad
    input is refused before anything changes: a failed step leaves every .grad, every parameter
    and the generator (so every later ε) as they were.
    """
    # N >= 1: the tutorials pass dataset_size=1 on purpose, to step along the batch mean instead
    if isinstance(dataset_size, (bool, np.bool_)) or not isinstance(dataset_size, (int, np.integer)) \
            or dataset_size < 1:
        raise ValueError(f"aevb_step: dataset_size must be a whole number N >= 1 (the number of samples the "
                         f"batch was drawn from), got {describe(dataset_size)}")
    if not isinstance(rng, np.random.Generator):  # a seed passed every step would draw the same ε every step
        raise TypeError(f"aevb_step: rng must be a numpy Generator (np.random.default_rng(seed)), made once and "
                        f"passed to every step, got {describe(rng)}")
    if not isinstance(optimizer, Optimizer) or isinstance(optimizer, SGLD):
        raise TypeError(f"aevb_step: optimizer must be an optimizer that steps along .grad as it is, such as "
                        f"optim.Adam(vae.parameters()), got {describe(optimizer)}"
                        + ("; SGLD multiplies .grad by its dataset_size, so N would count twice" if
                           isinstance(optimizer, SGLD) else ""))
    params = vae.parameters()
    if not {id(p) for p in params} & {id(p) for p in optimizer.params}:
        raise ValueError("aevb_step: the optimizer holds none of the VAE's parameters, so the step would change "
                         "nothing; build it with optim.Adam(vae.parameters())")
    batch = vae.check_batch(x, "aevb_step")
    generator_state = rng.bit_generator.state
    try:
        with grads_put_back(params, on_success=False):
            loss = vae.negative_elbo(batch, rng.standard_normal((len(batch), vae.latent)))
            loss.backward()
            for p in params:
                if p.grad is not None:
                    p.grad *= dataset_size  # N · ∇(batch mean) = (N/M) Σ_i ∇(−ELBO_i)
            optimizer.step()  # inside: if it refuses (a schedule set a bad lr), the old .grad comes back
    except BaseException:
        rng.bit_generator.state = generator_state  # and the next step draws the ε this one would have
        raise
    return loss.item() * dataset_size


def binarised_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as 0/1 pixels (on where the grey level is above half), and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.data > 8).astype(np.float64), digits.target
