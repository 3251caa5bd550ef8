# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. When the objective is a sum: SGLD and AEVB
#
# This project began from a question-and-answer thread about what gets averaged in mini-batch
# gradient descent. Its first answer cites two papers: stochastic gradient Langevin dynamics
# (SGLD; Welling & Teh 2011, eq. 1) and auto-encoding variational Bayes (AEVB; Kingma &
# Welling 2014, §2.2–2.3). Neither paper works with a *mean* loss. Both work with a **sum** over
# the data set: a log-likelihood, an evidence lower bound. And both estimate the gradient of
# that sum from a random mini-batch as
#
#     (N/M) · Σ_{i ∈ batch} ∇ℓ_i .
#
# **Notation.** The other tutorials write B for the batch size. This one follows the two papers:
# a batch holds **M** samples, drawn from a data set of **N**.
#
# The same answer then defines its loss as a sum and equates that sum's gradient with
# E_j[∇ℓ_j], the average per-sample gradient. That is off by exactly a factor N. It also leaves
# one of its questions half answered: when may the gradient ∇ and the expectation E be
# exchanged, and when does that fail?
#
# This tutorial works through both papers with the engine:
#
# 1. the factor N: what E_j[∇ℓ_j] is, and what the (N/M)·Σ estimate is, checked by enumerating
#    every batch;
# 2. SGLD on a model whose posterior is known in closed form (Bayesian linear regression), and
#    what goes wrong when N is forgotten;
# 3. SGLD on a nonlinear model, a small Bayesian neural network on two moons, and its
#    predictive uncertainty;
# 4. exchanging ∇ and E: always allowed for a finite sum, allowed under conditions for a
#    continuous expectation, and failing for a discontinuous loss or when the sampling
#    distribution depends on the parameters (which is why AEVB reparameterises);
# 5. AEVB: a variational autoencoder on handwritten digits;
# 6. short answers to the thread's four questions.

# %%
import math
from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

from tinygrad_mb import Tensor, minibatch, nn, no_grad, optim
from tinygrad_mb.data import make_moons
from tinygrad_mb.vae import VAE, aevb_step, binarised_digits

# numpy's matrix products on one thread, as in the benchmarks: the tutorial runs at the same
# speed, and prints the same numbers, on a machine shared with other work.
threadpool_limits(limits=1, user_api="blas")


def flat(grads) -> np.ndarray:
    """A gradient (one array per parameter) as one vector."""
    return np.concatenate([np.ravel(g) for g in grads])


# %% [markdown]
# ## 1. The factor N
#
# Let the objective be a sum over the N data points, S(θ) = Σ_{j=1}^N ℓ_j(θ). Its gradient is
# ∇S = Σ_j ∇ℓ_j. The average per-sample gradient is something else:
#
#     E_j[∇ℓ_j] = (1/N) Σ_j ∇ℓ_j = ∇S / N.
#
# E_j[∇ℓ_j] is the gradient of the *mean* loss S/N, the quantity tutorials 2 and 3 work with.
# For a sum it is N times too small. A batch of M samples drawn uniformly without replacement
# estimates ∇S without bias as
#
#     ĝ = (N/M) Σ_{i ∈ batch} ∇ℓ_i = N · ∇[(1/M) Σ_{i ∈ batch} ℓ_i]
#       = N · (the batch-mean gradient).
#
# The proof is tutorial 3's counting argument: each sample lies in a fraction M/N of the
# batches, so E[Σ_{i∈batch} ∇ℓ_i] = (M/N) ∇S. `minibatch.sum_estimate` computes ĝ. Below we
# compute ∇S by backpropagating the summed loss itself, then average ĝ over every possible
# batch, for every M, on a data set small enough to enumerate (N = 8).

# %%
rng = np.random.default_rng(0)
N_SMALL = 8
X_small, y_small = rng.normal(size=(N_SMALL, 3)), rng.normal(size=(N_SMALL, 1))
small_model = nn.MLP([3, 8, 1], activation="tanh", rng=1)

# ∇S, straight from the definition: backpropagate the summed loss (reduction="sum").
small_model.zero_grad()
nn.mse_loss(small_model(Tensor(X_small)), y_small, reduction="sum").backward()
grad_of_sum = flat(p.grad for p in small_model.parameters())
# E_j[∇ℓ_j]: the mean of the N per-sample gradients.
per_sample = minibatch.per_sample_gradients(small_model, nn.mse_loss, X_small, y_small)
mean_per_sample = flat(g.mean(axis=0) for g in per_sample)

norm_ratio = np.linalg.norm(grad_of_sum) / np.linalg.norm(mean_per_sample)
seed_gap = np.max(np.abs(grad_of_sum - N_SMALL * mean_per_sample))
print(f"|∇S| / |E_j[∇ℓ_j]| = {norm_ratio:.6f}   (N = {N_SMALL})")
print(f"max |∇S − N·E_j[∇ℓ_j]| = {seed_gap:.1e}")

sum_estimate_bias, batch_mean_bias = {}, {}
for M in range(1, N_SMALL + 1):
    batches = list(combinations(range(N_SMALL), M))
    estimates = [flat(minibatch.sum_estimate(small_model, nn.mse_loss, X_small[list(S)], y_small[list(S)],
                                             dataset_size=N_SMALL)) for S in batches]
    average = np.mean(estimates, axis=0)  # the exact expectation over batches
    sum_estimate_bias[M] = np.max(np.abs(average - grad_of_sum))
    batch_mean_bias[M] = np.max(np.abs(average / N_SMALL - grad_of_sum))  # without the factor N
    print(f"M = {M}: {len(batches):2d} batches   |E[(N/M)·Σ ∇ℓ_i] − ∇S| = {sum_estimate_bias[M]:.1e}   "
          f"|E[batch-mean gradient] − ∇S| = {batch_mean_bias[M]:.3f}")

# %% [markdown]
# The norm ratio is N = 8, and ∇S − N·E_j[∇ℓ_j] is rounding error: the average per-sample
# gradient is the sum's gradient divided by N. Averaged over all batches, the (N/M)·Σ estimate
# is ∇S for every batch size, up to rounding. The plain batch-mean gradient is off by the same
# amount at every M, because it estimates ∇S/N.
#
# For *optimisation* the factor is a matter of scale. It multiplies the gradient by N, so a
# learning rate tuned for the mean must be divided by N (tutorial 3, section 3, shows the same
# with the batch size in place of N). For *sampling*, as in SGLD, the factor decides which
# distribution you sample.
#
# ## 2. SGLD on a model with a known posterior
#
# **The model.** Bayesian linear regression with one input: y_n = w·x_n + b + noise, the noise
# N(0, σ²) with σ = 0.5 known, and a prior N(0, 1/λ) on each of w and b, with precision λ = 1.
# Each data point contributes a negative log-likelihood ℓ_n(θ) = (y_n − w x_n − b)² / (2σ²),
# plus a constant. The posterior is p(θ | data) ∝ exp(−Σ_n ℓ_n(θ) − λ|θ|²/2), with the
# likelihood summed over all N points. It is Gaussian, with precision matrix and mean
#
#     Λ = λI + ΦᵀΦ/σ²,     m = Λ⁻¹ Φᵀy / σ²,      Φ = [x 1], one row (x_n, 1) per point.
#
# **SGLD** (Welling & Teh 2011, eq. 1) is a gradient step on the negative log-posterior plus
# Gaussian noise:
#
#     θ ← θ − (ε/2)·(N·∇[(1/M) Σ_{i∈batch} ℓ_i] + λθ) + η,     η ~ N(0, ε·I).
#
# As ε → 0 its iterates are samples from the posterior. `optim.SGLD(params, lr=ε,
# dataset_size=N, prior_precision=λ)` implements it. `.grad` holds the gradient of the
# batch-**mean** loss, which is what every strategy and every `loss.backward()` of a mean loss
# produces, and the optimizer multiplies it by N. What if we forget N, and set
# `dataset_size=1`? The update then follows exp(−(1/N)Σ_n ℓ_n − λ|θ|²/2): the same closed
# form, with ΦᵀΦ/σ² divided by N.
#
# **The step size.** With a fixed ε, SGLD samples a slightly distorted posterior. We choose
# ε so that ε·Λ_max = 0.1 for each run, where Λ_max is the largest eigenvalue of the precision
# of the distribution that run targets. The chain then forgets its start within a few hundred
# steps, and the distortion stays small; we compute its size after the run.

# %%
N_LINE, SIGMA, PRIOR, M_LINE = 100, 0.5, 1.0, 10
rng = np.random.default_rng(0)
x_line = rng.uniform(-1.5, 2.5, size=(N_LINE, 1))
y_line = 0.5 + 2.0 * x_line + rng.normal(0.0, SIGMA, size=(N_LINE, 1))
Phi = np.hstack([x_line, np.ones((N_LINE, 1))])  # θ = (w, b)


def gaussian_posterior(likelihood_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of exp(−weight · Σ_n ℓ_n − λ|θ|²/2): the posterior when weight = 1."""
    precision = PRIOR * np.eye(2) + likelihood_weight * Phi.T @ Phi / SIGMA**2
    cov = np.linalg.inv(precision)
    return cov @ (likelihood_weight * Phi.T @ y_line[:, 0] / SIGMA**2), cov


def per_sample_nll(pred: Tensor, target: np.ndarray) -> Tensor:
    """The batch mean of ℓ_n = (y_n − ŷ_n)² / (2σ²): a mean loss, as every strategy expects."""
    return nn.mse_loss(pred, target) * (0.5 / SIGMA**2)


def step_size(cov: np.ndarray) -> float:
    """ε with ε·Λ_max = 0.1, Λ_max the largest eigenvalue of the target's precision matrix."""
    return 0.1 / np.linalg.eigvalsh(np.linalg.inv(cov)).max()


def sgld_line(dataset_size: int, eps: float, steps: int = 12000, seed: int = 1) -> np.ndarray:
    """SGLD on the line's (w, b) with batches of M; returns the iterates, one (w, b) row per step."""
    model = nn.Linear(1, 1, rng=0)
    opt = optim.SGLD(model.parameters(), lr=eps, dataset_size=dataset_size, prior_precision=PRIOR, seed=seed)
    draw = np.random.default_rng(seed)
    iterates = np.empty((steps, 2))
    for t in range(steps):
        batch = draw.choice(N_LINE, M_LINE, replace=False)
        opt.zero_grad()
        per_sample_nll(model(Tensor(x_line[batch])), y_line[batch]).backward()
        opt.step()
        iterates[t] = model.weight.data[0, 0], model.bias.data[0]
    return iterates


BURN_IN = 500
exact_mean, exact_cov = gaussian_posterior(1.0)
wrong_mean, wrong_cov = gaussian_posterior(1.0 / N_LINE)
eps_line = step_size(exact_cov)
draws = sgld_line(dataset_size=N_LINE, eps=eps_line)[BURN_IN:]
draws_without_n = sgld_line(dataset_size=1, eps=step_size(wrong_cov))[BURN_IN:]

exact_sd, wrong_sd = np.sqrt(np.diag(exact_cov)), np.sqrt(np.diag(wrong_cov))
exact_corr = exact_cov[0, 1] / (exact_sd[0] * exact_sd[1])
sgld_mean, sgld_sd = draws.mean(axis=0), draws.std(axis=0)
sgld_corr = np.corrcoef(draws.T)[0, 1]
without_n_sd = draws_without_n.std(axis=0)
print(f"{len(draws)} SGLD iterates per run after a burn-in of {BURN_IN}, ε = {eps_line:.2e} for dataset_size=N")
print(f"exact posterior:       mean (w, b) = ({exact_mean[0]:.3f}, {exact_mean[1]:.3f})   "
      f"sd = ({exact_sd[0]:.4f}, {exact_sd[1]:.4f})   correlation {exact_corr:.2f}")
print(f"SGLD, dataset_size=N:  mean (w, b) = ({sgld_mean[0]:.3f}, {sgld_mean[1]:.3f})   "
      f"sd = ({sgld_sd[0]:.4f}, {sgld_sd[1]:.4f})   correlation {sgld_corr:.2f}")
print(f"SGLD, dataset_size=1:  sd = ({without_n_sd[0]:.3f}, {without_n_sd[1]:.3f}), "
      f"{without_n_sd[0] / exact_sd[0]:.1f} and {without_n_sd[1] / exact_sd[1]:.1f} times the posterior's "
      f"(√N = {math.sqrt(N_LINE):.0f});\n"
      f"                       the closed form with likelihood / N says ({wrong_sd[0]:.3f}, {wrong_sd[1]:.3f})")

# %% tags=["plot"]
fig, (ax_joint, ax_w, ax_wide) = plt.subplots(1, 3, figsize=(15, 4.2))
thin = draws[::10]
ax_joint.plot(thin[:, 0], thin[:, 1], ".", ms=2, alpha=0.4, color="tab:blue", label="SGLD iterates (every 10th)")
gw, gb = np.meshgrid(np.linspace(exact_mean[0] - 4 * exact_sd[0], exact_mean[0] + 4 * exact_sd[0], 120),
                     np.linspace(exact_mean[1] - 4 * exact_sd[1], exact_mean[1] + 4 * exact_sd[1], 120))
offsets = np.stack([gw - exact_mean[0], gb - exact_mean[1]], axis=-1)
mahalanobis = np.sqrt(np.einsum("...i,ij,...j->...", offsets, np.linalg.inv(exact_cov), offsets))
ax_joint.contour(gw, gb, mahalanobis, levels=[1, 2, 3], colors="black", linewidths=1)
ax_joint.set_xlabel("slope w")
ax_joint.set_ylabel("intercept b")
ax_joint.set_title("Exact posterior (1, 2, 3 sd contours) and SGLD")
ax_joint.legend(loc="upper right")


def normal_pdf(t: np.ndarray, mean: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


w_axis = np.linspace(exact_mean[0] - 4 * exact_sd[0], exact_mean[0] + 4 * exact_sd[0], 200)
ax_w.hist(draws[:, 0], bins=50, density=True, color="tab:blue", alpha=0.5, label="SGLD, dataset_size=N")
ax_w.plot(w_axis, normal_pdf(w_axis, exact_mean[0], exact_sd[0]), "k-", label="exact posterior")
ax_w.set_xlabel("slope w")
ax_w.set_title("The slope's marginal")
ax_w.legend()

wide_axis = np.linspace(wrong_mean[0] - 4 * wrong_sd[0], wrong_mean[0] + 4 * wrong_sd[0], 400)
ax_wide.hist(draws[:, 0], bins=50, density=True, color="tab:blue", alpha=0.5, label="SGLD, dataset_size=N")
ax_wide.hist(draws_without_n[:, 0], bins=50, density=True, color="tab:red", alpha=0.5,
             label="SGLD, dataset_size=1 (N forgotten)")
ax_wide.plot(wide_axis, normal_pdf(wide_axis, wrong_mean[0], wrong_sd[0]), "r-", label="likelihood / N")
ax_wide.set_yscale("log")
ax_wide.set_ylim(1e-2, 30)
ax_wide.set_xlabel("slope w")
ax_wide.set_title("Forgetting N: a posterior far too wide (log scale)")
ax_wide.legend(loc="upper left", fontsize=8)
plt.show()

# %% [markdown]
# With `dataset_size=N`, the SGLD iterates match the exact posterior. The mean agrees to a
# small fraction of a standard deviation, and the spreads agree to within 10%. The negative
# correlation between slope and intercept comes out too, a little weaker than the exact one.
#
# **Why not exactly?** For a fixed ε the chain samples its own stationary distribution, which
# differs from the posterior by O(ε). For this model it can be computed. Here the update is
# linear in θ, θ′ = (I − (ε/2)Λ)θ + constant + noise. The noise has two parts. One is the
# injected η, with covariance ε·I. The other is the error of the mini-batch gradient, which
# near the posterior mean has covariance about (ε²/4)·(N/M)·(N − M)/(N − 1)·ΦᵀΦ/σ². The
# stationary covariance C of such a recursion solves C = A C Aᵀ + Q:

# %%
A_step = np.eye(2) - (eps_line / 2) * np.linalg.inv(exact_cov)
Q_noise = eps_line * np.eye(2) + (eps_line**2 / 4) * (N_LINE / M_LINE) * (N_LINE - M_LINE) / (N_LINE - 1) \
    * Phi.T @ Phi / SIGMA**2
stationary_cov = np.linalg.solve(np.eye(4) - np.kron(A_step, A_step), Q_noise.ravel()).reshape(2, 2)
stationary_sd = np.sqrt(np.diag(stationary_cov))
stationary_corr = stationary_cov[0, 1] / (stationary_sd[0] * stationary_sd[1])
print(f"SGLD's stationary law at this ε: sd = {stationary_sd[0] / exact_sd[0]:.2f} and "
      f"{stationary_sd[1] / exact_sd[1]:.2f} times the posterior's, correlation {stationary_corr:.2f}")
print(f"the chain measured:                sd = {sgld_sd[0] / exact_sd[0]:.2f} and "
      f"{sgld_sd[1] / exact_sd[1]:.2f} times the posterior's, correlation {sgld_corr:.2f}")

# %% [markdown]
# The chain agrees with that prediction, within the sampling noise of a finite chain. The
# mini-batch noise inflates the variance most along the direction the data pin down best, and
# that weakens the correlation. Both distortions vanish as ε → 0, which is Welling & Teh's
# argument; the price is a chain that moves more slowly and must run longer.
#
# With `dataset_size=1`, the likelihood counts once instead of N = 100 times. The chain is
# still a correct sampler, but of the wrong distribution: its spread matches the closed form
# with the likelihood divided by N, roughly √N times wider than the posterior. In the right
# panel of the figure above, the correct posterior is the narrow spike in the middle. The
# mini-batch gives the batch *mean*; the posterior needs the *sum*; N converts one into the
# other.
#
# ## 3. SGLD on a nonlinear model: a Bayesian neural network
#
# For a neural network no closed form exists, but SGLD runs the same way. We take an MLP
# 2-16-16-2 (tanh) on N = 200 points of two moons, the cross-entropy as the per-sample negative
# log-likelihood, a N(0, 1) prior on every parameter (λ = 1), and batches of M = 20. The step
# size follows Welling & Teh's schedule ε_t = a·(b + t)^(−γ) with γ = 0.55
# (`optim.polynomial_decay`), starting at ε_0 = 10⁻³. After a burn-in of 3,000 steps we keep
# every 25th iterate θ_s as a posterior sample. The step size still shrinks while we collect,
# so each sample is weighted by its step size, w_s = ε_t, as the paper prescribes.
#
# The prediction of a Bayesian network is the posterior average of the network's predictions,
# p(y = 1 | x) ≈ Σ_s w_s p(y = 1 | x, θ_s) / Σ_s w_s. The spread of p(y = 1 | x, θ_s) across
# the samples shows how uncertain the posterior is at x.

# %%
X_moons, y_moons = make_moons(200, noise=0.2, seed=0)
X_held_out, y_held_out = make_moons(1000, noise=0.2, seed=1)
N_MOONS, M_MOONS = len(X_moons), 20
grid_x, grid_y = np.meshgrid(np.linspace(-2.5, 3.5, 61), np.linspace(-2.0, 2.5, 46))
grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])


def p_class_1(model: nn.Module, points: np.ndarray) -> np.ndarray:
    with no_grad():
        return model(Tensor(points)).softmax().data[:, 1]


bnn = nn.MLP([2, 16, 16, 2], activation="tanh", rng=0)
sgld = optim.SGLD(bnn.parameters(), lr=1e-3, dataset_size=N_MOONS, prior_precision=1.0, seed=0)
draw = np.random.default_rng(0)
STEPS, BNN_BURN_IN, EVERY, B_SCHEDULE, GAMMA = 8000, 3000, 25, 1000.0, 0.55
A_SCHEDULE = 1e-3 * B_SCHEDULE**GAMMA  # so that ε_0 = 1e-3
step_weights, on_grid, on_held_out = [], [], []
for t in range(STEPS):
    sgld.lr = optim.polynomial_decay(t, a=A_SCHEDULE, b=B_SCHEDULE, gamma=GAMMA)
    batch = draw.choice(N_MOONS, M_MOONS, replace=False)
    sgld.zero_grad()
    nn.cross_entropy(bnn(Tensor(X_moons[batch])), y_moons[batch]).backward()
    sgld.step()
    if t >= BNN_BURN_IN and t % EVERY == 0:
        step_weights.append(sgld.lr)
        on_grid.append(p_class_1(bnn, grid))
        on_held_out.append(p_class_1(bnn, X_held_out))

step_weights = np.array(step_weights)
predictive_grid = np.average(on_grid, axis=0, weights=step_weights)
spread_grid = np.sqrt(np.average((np.array(on_grid) - predictive_grid) ** 2, axis=0, weights=step_weights))
predictive_held_out = np.average(on_held_out, axis=0, weights=step_weights)
bayes_accuracy = np.mean((predictive_held_out > 0.5) == y_held_out)
distance_to_data = np.min(np.linalg.norm(grid[:, None, :] - X_moons[None, :, :], axis=2), axis=1)
confident = (distance_to_data < 0.1) & (np.abs(predictive_grid - 0.5) > 0.4)  # on the data, p < 0.1 or p > 0.9
boundary = (distance_to_data < 0.3) & (np.abs(predictive_grid - 0.5) < 0.3)  # near the data, 0.2 < p < 0.8
far = distance_to_data > 1.0
spread_confident, spread_boundary, spread_far = (spread_grid[where].mean() for where in (confident, boundary, far))
print(f"{len(step_weights)} posterior samples (step sizes from {step_weights[0]:.2e} down to {step_weights[-1]:.2e})")
print(f"held-out accuracy of the posterior average: {bayes_accuracy:.3f}")
print("average sd of p(y=1|x, θ) across the samples, over grid points")
print(f"  within 0.1 of a training point, classified confidently (p < 0.1 or p > 0.9): {spread_confident:.3f}")
print(f"  within 0.3 of a training point, near the boundary (0.2 < p < 0.8):           {spread_boundary:.3f}")
print(f"  farther than 1.0 from every training point:                                  {spread_far:.3f}")

# %% tags=["plot"]
fig, (ax_p, ax_sd) = plt.subplots(1, 2, figsize=(12, 4.5))
for ax, values, title, cmap in ((ax_p, predictive_grid, "posterior average of p(y = 1 | x)", "RdBu_r"),
                                (ax_sd, spread_grid, "sd of p(y = 1 | x, θ) across posterior samples", "viridis")):
    image = ax.contourf(grid_x, grid_y, values.reshape(grid_x.shape), levels=20, cmap=cmap)
    fig.colorbar(image, ax=ax)
    ax.scatter(*X_moons[y_moons == 0].T, s=8, c="white", edgecolors="black", linewidths=0.5)
    ax.scatter(*X_moons[y_moons == 1].T, s=8, c="black")
    ax.set_title(title)
ax_p.contour(grid_x, grid_y, predictive_grid.reshape(grid_x.shape), levels=[0.5], colors="black")
plt.show()

# %% [markdown]
# The averaged prediction separates the moons (left). The right panel shows where the samples
# disagree: along the decision boundary, and most strongly where that boundary runs on, away
# from the data (the two bright corners). Where no training point constrains the network, the
# posterior still holds many different networks, and they draw the boundary in different
# places. Far from the data but well to one side of the boundary they still agree, so on
# average over all the far points the spread is below that near the boundary, though many
# times that at the confidently classified points (the three averages printed above). A single
# trained network has one prediction at each point, and no spread to show.
#
# ## 4. When may ∇ and E be exchanged?
#
# Both papers use the same step: the gradient of an expectation is computed as the expectation
# of a gradient, ∇E[f] = E[∇f], and the right side is then estimated by sampling.
#
# **A finite sum: always.** The expectation over mini-batches drawn from a finite data set is
# a finite sum with fixed weights, and the gradient of a finite sum is the sum of the
# gradients. No conditions are needed. Section 1 checked it by enumeration, and tutorial 3,
# section 2, proves it by counting.
#
# **A continuous expectation: under conditions.** For E_x[f(x, θ)] with x drawn from a
# distribution that does *not* depend on θ, the exchange holds when (the Leibniz rule, via
# dominated convergence):
#
# - for almost every x, θ′ ↦ f(x, θ′) is continuous near θ and differentiable at almost every
#   θ′ there (precisely: absolutely continuous; any Lipschitz function qualifies, so a kink
#   such as ReLU's is fine), and
# - its gradient is dominated near θ: |∇_θ f(x, θ′)| ≤ g(x) wherever it exists, for all θ′
#   close to θ, with E[g(x)] < ∞.
#
# Continuity is not a technicality. The step function below is differentiable at almost
# every θ′, with derivative 0, which the bound g = 0 dominates. It meets every condition
# except continuity, and the exchange fails.
#
# **Where it fails: a discontinuous loss.** Take x ~ N(0, 1) and f(x, θ) = 1(x < θ), a 0/1
# loss. Then E[f] = P(x < θ) = Φ(θ), whose derivative is the density φ(θ) > 0. But for every x
# the function θ ↦ 1(x < θ) is flat except at its jump, so every sample's derivative is 0, and
# so is their average. Autodiff computes exactly that. The engine has no step function, so we
# add one through the public extension point; its backward returns the derivative wherever
# it exists, which is 0. Compare the kink f(x, θ) = max(θ − x, 0), whose expectation has
# derivative P(x < θ) = Φ(θ). It is Lipschitz in θ with the bound g = 1, and the exchange holds.

# %%
def step(d: Tensor) -> Tensor:
    """1(d > 0), elementwise. Its derivative is 0 at every d except the jump at 0."""
    return Tensor.record((d.data > 0).astype(np.float64), (d,), "step", lambda g: (np.zeros_like(g),))


def Phi_cdf(t: float) -> float:  # noqa: N802  (Φ, the standard normal distribution function)
    return 0.5 * (1 + math.erf(t / math.sqrt(2)))


def phi_pdf(t: float) -> float:
    return math.exp(-t * t / 2) / math.sqrt(2 * math.pi)


x_draws = np.random.default_rng(2).standard_normal(20000)
thetas = np.linspace(-2.5, 2.5, 41)
step_value, step_grad, kink_grad = [], [], []
for value in thetas:
    theta = Tensor(value, requires_grad=True)
    estimate = step(theta - Tensor(x_draws)).mean()  # (1/K) Σ_k 1(x_k < θ), a sample mean
    estimate.backward()
    step_value.append(estimate.item())
    step_grad.append(theta.grad.item())
    theta = Tensor(value, requires_grad=True)
    (theta - Tensor(x_draws)).relu().mean().backward()  # (1/K) Σ_k max(θ − x_k, 0)
    kink_grad.append(theta.grad.item())
step_value, step_grad, kink_grad = map(np.array, (step_value, step_grad, kink_grad))
true_step_grad = np.array([phi_pdf(t) for t in thetas])
true_kink_grad = np.array([Phi_cdf(t) for t in thetas])
print(f"jump: autodiff's estimate of d/dθ E[1(x < θ)] is {np.abs(step_grad).max()} at every θ; "
      f"the true derivative φ(θ) reaches {true_step_grad.max():.3f}")
print(f"kink: autodiff's estimate of d/dθ E[max(θ − x, 0)] is off by at most "
      f"{np.abs(kink_grad - true_kink_grad).max():.4f} from Φ(θ)")

# %% tags=["plot"]
fig, (ax_f, ax_g) = plt.subplots(1, 2, figsize=(12, 4))
ax_f.plot(thetas, [Phi_cdf(t) for t in thetas], "k-", label="E[1(x < θ)] = Φ(θ)")
ax_f.plot(thetas, step_value, ".", color="tab:blue", label="sample mean over 20,000 draws")
ax_f.set_xlabel("θ")
ax_f.set_title("The expectation of a step is smooth ...")
ax_f.legend()
ax_g.plot(thetas, true_step_grad, "k-", label="d/dθ E[1(x < θ)] = φ(θ)")
ax_g.plot(thetas, step_grad, "o", color="tab:red", label="autodiff: mean of per-sample derivatives")
ax_g.plot(thetas, true_kink_grad, "k--", label="d/dθ E[max(θ − x, 0)] = Φ(θ)")
ax_g.plot(thetas, kink_grad, ".", color="tab:green", label="autodiff, for the kink")
ax_g.set_xlabel("θ")
ax_g.set_title("... but every sample's derivative is 0")
ax_g.legend(fontsize=8)
plt.show()

# %% [markdown]
# The expectation of the step is the smooth curve Φ(θ), and the sample mean follows it. Its
# true slope is φ(θ), but autodiff returns 0 at every θ. The derivative of the sample mean
# *is* 0 almost everywhere: the sample mean is a staircase. Exchanging ∇ and E is what fails
# here, not the engine. For the kink, autodiff's average matches Φ(θ) to within sampling noise.
# This is why a classifier is trained on the cross-entropy and not on its 0/1 error: the error's
# gradient is 0 wherever it exists.
#
# **Where it fails: the distribution depends on θ.** AEVB needs the gradient of
# E_{z ~ q_θ}[f(z)], where z is drawn from a distribution with parameters θ = (μ, σ). The
# Leibniz rule does not even apply: θ sits in the distribution, not in f. Draw z with numpy
# and autodiff sees no θ at all; the "expectation of the gradient" is 0, which is wrong. There
# are two correct ways:
#
# - **Reparameterise** (AEVB, §2.4): write z = μ + σ·ε with ε ~ N(0, 1). Now the distribution
#   of ε does not depend on θ, f(μ + σε) is an ordinary differentiable function of θ, and
#   ∇E_ε[f(μ + σε)] = E_ε[∇f(μ + σε)] under the conditions above.
# - **The score function** (also called REINFORCE, or the likelihood-ratio estimator):
#   ∇E_{q_θ}[f(z)] = E_{q_θ}[f(z) ∇ log q_θ(z)]. It needs no gradient of f at all, which is
#   why it works for a discontinuous f, but it is far noisier.
#
# One example, with the exact answer: f(z) = (z − a)² with a = 3, at μ = 1, σ = 0.5. Then
# E[f] = (μ − a)² + σ², so ∂/∂μ = 2(μ − a) = −4 and ∂/∂σ = 2σ = 1. We compute both
# estimators with the engine, each of K draws with its own copy of μ and σ. Backpropagating
# the sum then leaves draw k's own gradient in entry k.

# %%
MU_Q, SIGMA_Q, A_TARGET, K = 1.0, 0.5, 3.0, 100_000
exact_gradient = {"μ": 2 * (MU_Q - A_TARGET), "σ": 2 * SIGMA_Q}
eps = np.random.default_rng(3).standard_normal(K)

# Drawing z outside the graph: f(z) does not involve μ or σ at all.
z_numbers = MU_Q + SIGMA_Q * eps
naive = ((Tensor(z_numbers) - A_TARGET) ** 2).mean()
print(f"f(z) with z drawn by numpy: requires_grad = {naive.requires_grad}; nothing to backpropagate to μ or σ")

# The reparameterisation: z = μ + σ·ε inside the graph.
mu, sd = Tensor(np.full(K, MU_Q), requires_grad=True), Tensor(np.full(K, SIGMA_Q), requires_grad=True)
((mu + sd * Tensor(eps) - A_TARGET) ** 2).sum().backward()
reparameterised = {"μ": mu.grad.copy(), "σ": sd.grad.copy()}

# The score function: f(z) as a constant times log q(z; μ, σ), whose gradient is ∇ log q.
mu, sd = Tensor(np.full(K, MU_Q), requires_grad=True), Tensor(np.full(K, SIGMA_Q), requires_grad=True)
log_q = -((Tensor(z_numbers) - mu) ** 2) / (sd * sd * 2) - sd.log()  # up to a constant
(Tensor((z_numbers - A_TARGET) ** 2) * log_q).sum().backward()
score_function = {"μ": mu.grad.copy(), "σ": sd.grad.copy()}

variance_ratio = {}
for name in ("μ", "σ"):
    for label, g in (("reparameterised", reparameterised[name]), ("score function", score_function[name])):
        print(f"∂/∂{name}: {label:16s} mean {g.mean():+.4f} ± {g.std() / math.sqrt(K):.4f}   "
              f"variance per draw {g.var():8.2f}   (exact {exact_gradient[name]:+.1f})")
    variance_ratio[name] = score_function[name].var() / reparameterised[name].var()
    print(f"   the score function's variance is {variance_ratio[name]:.0f} times the reparameterised one")

# %% tags=["plot"]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for ax, name in zip(axes, ("μ", "σ")):
    low, high = np.percentile(score_function[name], [1, 99])
    bins = np.linspace(low, high, 80)
    ax.hist(score_function[name], bins=bins, density=True, alpha=0.5, color="tab:orange", label="score function")
    ax.hist(reparameterised[name], bins=bins, density=True, alpha=0.6, color="tab:blue", label="reparameterised")
    ax.axvline(exact_gradient[name], color="black", label=f"exact ∂E[f]/∂{name}")
    ax.set_xlabel(f"one draw's estimate of ∂E[f]/∂{name}")
    ax.set_title(f"∂/∂{name}: variance ratio {variance_ratio[name]:.0f}")
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Both estimators are unbiased: their means agree with the exact gradient within a few
# standard errors. The score function pays for its generality in variance: here 123 times
# more for μ and 21 times more for σ. It would need that many times more draws for the
# same accuracy. A VAE's encoder outputs μ and σ for every data point, and AEVB draws one ε per
# data point per step. That is affordable only with the reparameterised estimator.
#
# ## 5. AEVB: a variational autoencoder
#
# A VAE has an encoder q_φ(z | x) = N(μ_φ(x), σ_φ(x)²) and a decoder p_θ(x | z). It maximises
# the evidence lower bound, a **sum** over the N data points:
#
#     ELBO = Σ_{j=1}^N [ E_{q(z|x_j)} log p(x_j | z) − KL(q(z | x_j) ‖ N(0, I)) ].
#
# AEVB estimates its gradient as (N/M)·Σ over a batch (their eq. 8), with one reparameterised
# z = μ + σ·ε per data point and the KL in closed form (`nn.gaussian_kl`). `tinygrad_mb.vae`
# has the model (encoder 64-128-16, giving μ and log σ² for 8 latent dimensions; decoder
# 8-128-64) and `aevb_step`. The step backpropagates the batch mean of −ELBO_i, multiplies every
# gradient by N, and hands the result to the optimizer.
#
# **What gets averaged, once more.** The data are the 8×8 digits, binarised: each of the
# D = 64 pixels is on or off, and p(x | z) is a Bernoulli per pixel. So −log p(x | z) is a
# **sum** over the pixels of binary cross-entropies. `nn.binary_cross_entropy` returns, like
# `mse_loss`, a sample's **mean** over its outputs, so the reconstruction term is D times it:

# %%
digits, _ = binarised_digits()
order = np.random.default_rng(0).permutation(len(digits))
train, held_out = digits[order[:1500]], digits[order[1500:]]
N_DIGITS, M_DIGITS = len(train), 100
D = train.shape[1]
print(f"{N_DIGITS} training digits and {len(held_out)} held out, each D = {D} pixels")

vae = VAE(data_dim=D, hidden=128, latent=8, rng=0)
logits = vae.decode(Tensor(np.random.default_rng(4).standard_normal((5, 8)))).data
x5 = train[:5]
by_hand = -(x5 * np.log(1 / (1 + np.exp(-logits))) + (1 - x5) * np.log(1 - 1 / (1 + np.exp(-logits)))).sum(axis=1)
library = nn.binary_cross_entropy(Tensor(logits), x5, reduction="none").data
pixel_sum_gap = np.max(np.abs(by_hand - D * library))
print("−log p(x | z), summed over the 64 pixels by hand:", np.round(by_hand, 3))
print("nn.binary_cross_entropy, per sample:            ", np.round(library, 4))
print(f"max |sum over pixels − D · binary_cross_entropy| = {pixel_sum_gap:.1e}")

# %% [markdown]
# Forgetting that factor D would weight the reconstruction 64 times less against the KL term,
# a different model altogether (a strongly regularised one). `VAE.negative_elbo` multiplies by
# D. Now train: 60 epochs of AEVB with Adam, batches of M = 100 from N = 1,500 digits. We record
# the ELBO per digit: the training estimate (each step's (N/M)·Σ, divided by N) and the value
# on the 297 held-out digits. The summed ELBO that AEVB climbs is N times the per-digit one.

# %%
def held_out_elbo(model: VAE, x: np.ndarray, draws: int = 5) -> float:
    """The ELBO per digit on x, averaged over a few fixed draws of ε."""
    noise = np.random.default_rng(123)
    with no_grad():
        return -float(np.mean([model.negative_elbo(x, noise.standard_normal((len(x), model.latent))).item()
                               for _ in range(draws)]))


adam = optim.Adam(vae.parameters(), lr=3e-3)
noise = np.random.default_rng(1)
EPOCHS = 60
train_elbo, test_elbo = [], [held_out_elbo(vae, held_out)]
for _ in range(EPOCHS):
    sum_estimates = [aevb_step(vae, adam, train[idx], dataset_size=N_DIGITS, rng=noise)
                     for idx in np.array_split(noise.permutation(N_DIGITS), N_DIGITS // M_DIGITS)]
    train_elbo.append(-np.mean(sum_estimates) / N_DIGITS)  # aevb_step returns the estimate of Σ_j −ELBO_j
    test_elbo.append(held_out_elbo(vae, held_out))
print(f"held-out ELBO per digit: {test_elbo[0]:.2f} nats before training, {test_elbo[-1]:.2f} after {EPOCHS} epochs "
      f"(64·log 2 = {64 * math.log(2):.2f} is a coin flip per pixel)")
print(f"the summed ELBO over the N = {N_DIGITS} training digits, estimated in the last epoch: "
      f"{train_elbo[-1] * N_DIGITS:.0f} nats")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(np.arange(1, EPOCHS + 1), train_elbo, label="training estimate, (N/M)·Σ / N, averaged over the epoch")
ax.plot(np.arange(0, EPOCHS + 1), test_elbo, label="held-out digits")
ax.set_xlabel("epoch")
ax.set_ylabel("ELBO per digit (nats)")
ax.set_title("AEVB climbs the ELBO")
ax.legend()
plt.show()

# %%
reconstructions = vae.reconstruct(held_out[:12])
samples = vae.sample(24, rng=5)
reconstruction_error = np.mean((reconstructions - held_out[:12]) ** 2)
average_digit_error = np.mean((train.mean(axis=0) - held_out[:12]) ** 2)
print(f"mean squared error of the reconstructions: {reconstruction_error:.3f}; "
      f"of the average training digit: {average_digit_error:.3f}")


def show_grid(ax, images: np.ndarray, columns: int) -> None:
    """8x8 images as one picture, ``columns`` to a row, with a one-pixel white gap around each."""
    rows = len(images) // columns
    tiles = np.zeros((rows, columns, 10, 10))
    tiles[:, :, 1:9, 1:9] = images.reshape(rows, columns, 8, 8)
    ax.imshow(tiles.transpose(0, 2, 1, 3).reshape(rows * 10, columns * 10), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


# %% tags=["plot"]
fig, (ax_rec, ax_samp) = plt.subplots(2, 1, figsize=(10, 4.6))
show_grid(ax_rec, np.concatenate([held_out[:12], reconstructions]), columns=12)
ax_rec.set_title("held-out digits (top row) and their reconstructions, p(x | z = μ(x))")
show_grid(ax_samp, samples, columns=12)
ax_samp.set_title("samples: p(x | z) with z drawn from the prior N(0, I)")
plt.show()

# %% [markdown]
# The reconstructions keep most digits' identity (the 8s come out blurred), and are much
# closer to their own digit than the average digit is. The samples, decoded from random
# points of the prior, are blurrier. Some are clear digits, some in between, as expected of
# an 8-dimensional latent space trained for 60 epochs on 1,500 tiny images.
#
# One more remark on the factor N here. Adam divides each gradient by its running root mean
# square, so it barely notices whether the gradient was multiplied by N. Training on the batch
# mean instead (`dataset_size=1`) takes almost the same steps:

# %%
def adam_steps(dataset_size: int, steps: int = 15) -> np.ndarray:
    model = VAE(data_dim=D, hidden=128, latent=8, rng=0)
    opt, rng_steps = optim.Adam(model.parameters(), lr=3e-3), np.random.default_rng(6)
    for s in range(steps):
        aevb_step(model, opt, train[s * M_DIGITS:(s + 1) * M_DIGITS], dataset_size=dataset_size, rng=rng_steps)
    return flat(p.data for p in model.parameters())


start = flat(p.data for p in VAE(data_dim=D, hidden=128, latent=8, rng=0).parameters())
with_n, without_n = adam_steps(N_DIGITS), adam_steps(1)
adam_relative_gap = np.linalg.norm(with_n - without_n) / np.linalg.norm(with_n - start)
print(f"after 15 Adam steps: |θ(with N) − θ(without N)| / |θ(with N) − θ₀| = {adam_relative_gap:.1e}")

# %% [markdown]
# The two runs differ by 6.4e-05 of the distance they travelled. With plain SGD, the factor N
# would multiply every step by 1,500, and the learning rate would have to shrink by as much.
# That is tutorial 3's "sum versus mean" again, with N in place of the batch size.
# In SGLD, by contrast, no optimizer absorbs the factor: the injected noise has a fixed scale
# √ε, and N sets the balance between the gradient and that noise (section 2).
#
# ## 6. The thread's four questions, answered
#
# 1. **Is the gradient of the mini-batch loss the average of the per-sample gradients, for any
#    network?** Yes, exactly, however nonlinear the network. Every ℓ_i is evaluated at the
#    same θ, and the gradient is linear (tutorial 3, section 1). The exceptions are layers that
#    mix samples, such as batch normalisation. When the objective is a *sum* over N data points,
#    its gradient is N times that average, and the unbiased mini-batch estimate is
#    (N/M)·Σ_{i∈batch} ∇ℓ_i, not E_j[∇ℓ_j] (section 1 here, by enumerating every batch).
# 2. **When may ∇ and E be exchanged?** Always, for the average over batches drawn from a
#    finite data set: it is a finite sum (tutorial 3, section 2; section 1 here). For an
#    expectation over a continuous distribution that does not depend on θ, the loss must be
#    continuous and differentiable almost everywhere, with a gradient bounded near θ by an
#    integrable function. Kinks such as ReLU's are fine; jumps are not. The 0/1 loss gives
#    autodiff 0 where the truth is φ(θ) (section 4). When the distribution depends on θ, as
#    q_φ(z | x) does in a VAE, reparameterise (AEVB) or use the far noisier score function
#    (section 4).
# 3. **Should the loss be a sum or a mean, and what does that do to the learning rate?** For
#    optimisation it is a choice of scale. The sum's gradient is M times the mean's (N times,
#    for a sum over the data set), so with a sum the learning rate must shrink by that factor.
#    The mean is the default because one learning rate then serves every batch size (tutorial
#    3, section 3). Adam nearly ignores the scale (section 5). When the objective *is* a sum,
#    as a log-posterior in SGLD is, the factor N is not a convention. Leaving it out samples a
#    different, far wider distribution (section 2).
# 4. **Does "averaging the error first" work?** No. Averaging the loss is right when the mean
#    is a node of the batch's graph, so that each sample's error flows back through its own
#    activations. Averaging the output errors (or the inputs, or pushing the loss value back as
#    if it were an error) and backpropagating that one number through one set of activations
#    gives a different, wrong gradient as soon as the batch's inputs differ (in general; even a
#    linear model's weight gradient is off). Tutorial 2 takes every such variant apart, and
#    tutorial 3's linearity proof shows why the correct average needs each sample's own ∇ℓ_i.
#
# ## What this tutorial established

# %%
# 1. The factor N: E_j[∇ℓ_j] = ∇S / N; the (N/M)·Σ estimate is unbiased for ∇S at every M
#    (enumerating all batches), the plain batch mean is not.
assert abs(norm_ratio - N_SMALL) < 1e-9 and seed_gap < 1e-12
assert all(sum_estimate_bias[M] < 1e-12 for M in range(1, N_SMALL + 1))
assert all(batch_mean_bias[M] > 0.1 for M in range(1, N_SMALL + 1))
# 2. SGLD with dataset_size=N samples the closed-form posterior of Bayesian linear regression;
#    forgetting N samples a posterior about √N times too wide, the closed form with likelihood / N.
assert np.all(np.abs(sgld_mean - exact_mean) < 0.5 * exact_sd)
assert np.all((0.85 < sgld_sd / exact_sd) & (sgld_sd / exact_sd < 1.2))
assert sgld_corr < 0 and abs(sgld_corr - exact_corr) < 0.2
# ... and its deviations are those of SGLD's own stationary law at this ε.
assert np.all(np.abs(sgld_sd / stationary_sd - 1) < 0.1) and abs(sgld_corr - stationary_corr) < 0.15
assert np.all((0.8 < without_n_sd / wrong_sd) & (without_n_sd / wrong_sd < 1.25))
assert np.all(without_n_sd > 5 * exact_sd)
# 3. The Bayesian neural network classifies held-out moons and is uncertain along its boundary
#    and away from the data.
assert bayes_accuracy > 0.95
assert spread_boundary > 3 * spread_confident and spread_far > 3 * spread_confident
assert spread_boundary > spread_far  # on average over the far points, less than near the boundary
# 4. ∇ and E: for a jump every per-sample derivative is 0 while the truth is φ(θ); for a kink
#    autodiff is right; a draw outside the graph has no gradient; reparameterised and score
#    function estimators are unbiased, the score function far noisier.
assert np.all(step_grad == 0.0) and true_step_grad.max() > 0.39
assert np.max(np.abs(step_value - [Phi_cdf(t) for t in thetas])) < 0.02
assert np.max(np.abs(kink_grad - true_kink_grad)) < 0.02
assert not naive.requires_grad
for name in ("μ", "σ"):
    for g in (reparameterised[name], score_function[name]):
        assert abs(g.mean() - exact_gradient[name]) < 5 * g.std() / math.sqrt(K)
assert variance_ratio["μ"] > 50 and variance_ratio["σ"] > 10
# 5. AEVB: the reconstruction term is D times binary_cross_entropy; the ELBO climbs on held-out
#    digits; reconstructions beat the average digit; samples are probabilities; Adam hardly
#    notices the factor N.
assert pixel_sum_gap < 1e-10
assert test_elbo[0] < -40 and test_elbo[-1] > test_elbo[0] / 2 and train_elbo[-1] > train_elbo[0]
assert reconstruction_error < average_digit_error / 2
assert samples.shape == (24, 64) and np.all((0 <= samples) & (samples <= 1))
assert adam_relative_gap < 1e-3
