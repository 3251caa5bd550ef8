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
# # 7. How big should the batch be?
#
# Tutorials 2 and 3 settled *what* a mini-batch gradient is: the average of the B per-sample
# gradients, an unbiased estimate of the gradient over the whole data set. This tutorial asks
# the practical question that follows: **how many samples should go into that average?**
# (The founding question and its answers write M for the batch size; here it is B, and N is
# the number of samples in the data set.)
#
# A larger batch gives a less noisy gradient but costs more per step. We measure, on real
# data, what that trade buys:
#
# 1. how the noise of the batch gradient falls with B, against the exact law for batches
#    drawn without replacement;
# 2. the *gradient noise scale* B_simple, the batch size at which noise and signal are equal,
#    and how it grows as training proceeds;
# 3. how many steps and how many epochs it takes to reach a target loss at each B, each with
#    its best learning rate: the regime where doubling B halves the steps, and the regime
#    where it stops helping;
# 4. the linear learning-rate scaling rule (lr ∝ B), and where it breaks;
# 5. full-batch gradient descent against SGD, counted in steps, in samples and in seconds;
# 6. the loss floor that gradient noise sets when the learning rate stays constant;
# 7. sampling with replacement against a fresh shuffle each epoch.
#
# Everything except section 6 runs on the 1,797 handwritten 8×8 digits of tutorial 5, with a
# small MLP and plain SGD (no momentum: the theory below is about plain SGD, and momentum would
# change the effective learning rate). Every measured number the text mentions is printed by
# the code before it.

# %%
import math
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from tinygrad_mb import Tensor, minibatch, nn, no_grad, optim
from tinygrad_mb.data import batches
from tinygrad_mb.train import Trainer

# numpy's matrix products on one thread, as the project's benchmarks do: the wall-clock
# comparison in section 5 is then fair and repeatable on a machine shared with other work.
threadpool_limits(limits=1, user_api="blas")

# %% [markdown]
# ## The data, the model and the starting point
#
# The question here is optimisation: how fast does SGD drive down the loss on the data it
# trains on? So all N = 1,797 images form the training set (tutorial 5 covers held-out
# testing). Every run below starts from the same initial parameters θ₀, and every loss we
# report is the mean cross-entropy over all N samples.

# %%
images, labels = load_digits(return_X_y=True)
X = images / 16.0
y = labels.astype(np.int64)
N = len(X)
SIZES = [64, 32, 10]  # 64 pixels, 32 tanh units, 10 digit scores
theta_0 = nn.MLP(SIZES, activation="tanh", rng=0).state_dict()


def fresh_model() -> nn.MLP:
    """The MLP at the common starting point θ₀."""
    model = nn.MLP(SIZES, activation="tanh")
    model.load_state_dict(theta_0)
    return model


def full_loss(model: nn.Module) -> float:
    """The mean cross-entropy over all N samples: the loss L(θ) that training drives down."""
    with no_grad():
        return nn.cross_entropy(model(Tensor(X)), y).item()


def flat(grads: list[np.ndarray]) -> np.ndarray:
    """A gradient (one array per parameter) as one vector."""
    return np.concatenate([g.ravel() for g in grads])


print(f"N = {N} images; the MLP {SIZES} has {sum(p.data.size for p in fresh_model().parameters())} parameters; "
      f"L(θ₀) = {full_loss(fresh_model()):.4f}")

# %% [markdown]
# ## 1. The noise of a batch gradient
#
# Write g_n = ∇ℓ_n(θ) for sample n's gradient and ∇L = (1/N) Σ_n g_n for the gradient over
# the whole data set. A batch of B distinct samples, drawn at random, gives the estimate
# ĝ_B = (1/B) Σ_{i ∈ batch} g_i. Tutorial 3 proved that it is unbiased, E ĝ_B = ∇L. How far
# from ∇L is it on average? With the spread of a single sample's gradient
#
#     tr Σ = (1/N) Σ_n ‖g_n − ∇L‖²,
#
# the answer for batches drawn **without** replacement is exact:
#
#     E ‖ĝ_B − ∇L‖² = (tr Σ / B) · (N − B) / (N − 1).
#
# The first factor is the familiar 1/B of averaging B independent draws. The second is the
# finite-population correction: the samples of a batch are distinct, so a large batch is a
# large part of the data set, and at B = N every batch *is* the data set and the error is zero.
#
# tr Σ needs only per-sample gradient *norms*, because (1/N) Σ_n ‖g_n − ∇L‖² equals
# (1/N) Σ_n ‖g_n‖² − ‖∇L‖². `minibatch.per_sample_grad_norms` computes those norms from one
# batched backward pass (tutorial 4). We measure the left side directly: at the fixed θ₀,
# draw 150 batches of each size, compute each batch's gradient with `batched_mean`, and average
# the squared distance to ∇L.

# %%
model = fresh_model()
norms = minibatch.per_sample_grad_norms(model, nn.cross_entropy, X, y)
full_gradient = flat(minibatch.batched_mean(model, nn.cross_entropy, X, y))
trace_sigma = float(np.mean(norms**2) - full_gradient @ full_gradient)
print(f"at θ₀: ‖∇L‖² = {full_gradient @ full_gradient:.4f}, tr Σ = {trace_sigma:.4f}")

rng = np.random.default_rng(0)
noise_sizes = [1, 4, 16, 64, 256, 1024, 1536]
DRAWS = 150
measured_noise, predicted_noise = [], []
for B in noise_sizes:
    errors = []
    for _ in range(DRAWS):
        batch = rng.choice(N, size=B, replace=False)  # B distinct samples
        g = flat(minibatch.batched_mean(model, nn.cross_entropy, X[batch], y[batch]))
        errors.append(np.sum((g - full_gradient) ** 2))
    measured_noise.append(float(np.mean(errors)))
    predicted_noise.append(trace_sigma / B * (N - B) / (N - 1))
    print(f"B = {B:4d}: measured {measured_noise[-1]:.3e}, law {predicted_noise[-1]:.3e}, "
          f"ratio {measured_noise[-1] / predicted_noise[-1]:.2f}")
whole_set_error = float(np.sum((flat(minibatch.batched_mean(model, nn.cross_entropy, X, y)) - full_gradient) ** 2))
print(f"B = N = {N}: every batch is the whole data set, error {whole_set_error:.1e}")

# %% tags=["plot"]
B_axis = np.geomspace(1, noise_sizes[-1], 200)
fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
ax.loglog(B_axis, trace_sigma / B_axis, ":", color="tab:gray", label="tr Σ / B (independent draws)")
ax.loglog(B_axis, trace_sigma / B_axis * (N - B_axis) / (N - 1), "-", color="tab:gray",
          label="(tr Σ / B)(N − B)/(N − 1)")
ax.loglog(noise_sizes, measured_noise, "o", color="tab:blue", label=f"measured, {DRAWS} batches per size")
ax.set_xlabel("batch size B")
ax.set_ylabel("E ‖ĝ_B − ∇L‖²")
ax.set_title(f"Noise of the batch gradient at θ₀ (N = {N})")
ax.legend()
plt.show()

# %% [markdown]
# The measured points sit on the law. For small B it is a straight line of slope −1: four
# times the batch, a quarter of the squared error (half the typical distance). Near B = N the
# finite-population factor pulls the noise below the 1/B line, towards zero at B = N.
#
# ## 2. The gradient noise scale, and how it grows during training
#
# Noise matters only relative to the signal it blurs. The squared error of ĝ_B is about
# tr Σ / B, and the squared length of what we are estimating is ‖∇L‖². They are equal at
#
#     B_simple = tr Σ / ‖∇L‖²,
#
# the **simple gradient noise scale** of McCandlish et al. (2018). A batch much smaller than
# B_simple gives a gradient dominated by noise, whose direction is a poor guess; a batch much
# larger gives a nearly exact gradient, and more samples can hardly improve it.
#
# `minibatch.gradient_noise_scale(model, loss_fn, X, y)` estimates it from one batch, using
# per-sample gradient norms. By default its formula treats the batch as drawn from an endless
# supply of samples: it subtracts the expected noise tr Σ̂ / B from ‖ĝ‖² to estimate the
# signal. Our batches come from a fixed set of N, and relative to that set the whole set has
# no noise; passing `dataset_size=N` applies the finite-population factor (N − B)/N, so the
# signal measured on all N samples is ‖∇L‖² exactly. The library's value is then the
# data-set value tr Σ / ‖∇L‖² of section 1 (call it b) up to the unbiased variance's factor:
# library = b · N / (N − 1). We compute both.
#
# Train with SGD (B = 32, lr = 0.25) for 2,000 steps, a fresh shuffle each epoch, and measure
# every 40 steps.

# %%
def endless_batches(B: int, rng: np.random.Generator):
    """Batches of B, a fresh shuffle every epoch, for as long as the caller asks."""
    while True:
        yield from batches(N, B, shuffle=True, rng=rng)


model = fresh_model()
optimizer = optim.SGD(model.parameters(), lr=0.25)
losses, library_scale, dataset_scale, noise_trace, signal = [], [], [], [], []
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # (none expected: on all N samples |G|² is exact)
    for step, batch in zip(range(2001), endless_batches(32, np.random.default_rng(0))):
        if step % 40 == 0:
            library_scale.append(minibatch.gradient_noise_scale(model, nn.cross_entropy, X, y, dataset_size=N))
            norms = minibatch.per_sample_grad_norms(model, nn.cross_entropy, X, y)
            grad_sq = float(sum(np.sum(p.grad**2) for p in model.parameters()))  # ‖∇L‖², left in .grad
            noise_trace.append(float(np.mean(norms**2)) - grad_sq)
            signal.append(grad_sq)
            dataset_scale.append(noise_trace[-1] / grad_sq)
            losses.append(full_loss(model))
        if step < 2000:
            minibatch.batched_mean(model, nn.cross_entropy, X[batch], y[batch])
            optimizer.step()
losses, library_scale, dataset_scale = np.array(losses), np.array(library_scale), np.array(dataset_scale)
noise_trace, signal = np.array(noise_trace), np.array(signal)
for i in (0, 5, 10, 20, 30, 40, 50):
    print(f"step {40 * i:4d}: L = {losses[i]:.4f}, tr Σ = {noise_trace[i]:.3f}, ‖∇L‖² = {signal[i]:.5f}, "
          f"B_simple = {dataset_scale[i]:6.1f} (library {library_scale[i]:.1f})")
high_loss, low_loss = np.median(dataset_scale[losses > 0.3]), np.median(dataset_scale[losses < 0.1])
print(f"median B_simple while L > 0.3: {high_loss:.0f}; while L < 0.1: {low_loss:.0f}")
early, late = np.median(dataset_scale[:5]), np.median(dataset_scale[-5:])
print(f"median of the first five measurements {early:.0f}, of the last five {late:.0f}")
noise_drop = np.median(noise_trace[:5]) / np.median(noise_trace[-5:])
signal_drop = np.median(signal[:5]) / np.median(signal[-5:])
print(f"from the first five measurements to the last five, tr Σ fell {noise_drop:.1f}-fold, "
      f"‖∇L‖² {signal_drop:.0f}-fold")

# %% tags=["plot"]
fig, (ax_parts, ax_scale) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
ax_parts.loglog(losses, noise_trace, "o", color="tab:orange", label="noise: tr Σ")
ax_parts.loglog(losses, signal, "o", color="tab:blue", label="signal: ‖∇L‖²")
ax_parts.set_xlabel("training loss L")
ax_parts.set_ylabel("squared norm")
ax_parts.set_title("Noise and signal as the loss falls")
ax_parts.invert_xaxis()
ax_parts.legend()
ax_scale.loglog(losses, dataset_scale, "o", color="tab:green", label="tr Σ / ‖∇L‖² over the data set")
finite = np.isfinite(library_scale)
ax_scale.loglog(losses[finite], library_scale[finite], "o", mfc="none", color="tab:purple",
                label="minibatch.gradient_noise_scale on all N")
ax_scale.axhline(N, color="tab:gray", ls=":", label="N")
ax_scale.set_xlabel("training loss L")
ax_scale.set_ylabel("B_simple")
ax_scale.set_title("The gradient noise scale grows as the loss falls")
ax_scale.invert_xaxis()
ax_scale.legend(fontsize=8)
plt.show()

# %% [markdown]
# Read the plots from left to right, as training goes. The noise tr Σ falls slowly; the signal
# ‖∇L‖² falls much faster: the average gradient shrinks as the model fits, but single samples
# still disagree about which way to go. Their ratio B_simple therefore grows. The points
# scatter because SGD's own noise moves θ around: where a step happened to raise the loss,
# the gradient is larger and B_simple smaller. So a batch size that is large at the start of
# training becomes small later: early on, a few samples point the right way; late in
# training, many are needed to see the small average gradient through their disagreement.
#
# ## 3. Steps and epochs to a target, at the best learning rate for each B
#
# What does a bigger batch buy in practice? Count how many steps SGD needs to bring the loss
# below a target, here L = 0.03. A fair comparison gives every B its own best learning rate:
# for each B we try learning rates on a grid of powers of √2, starting from twice the previous
# B's best (a guess section 4 will examine), and walk up or down the grid while the number of
# steps falls. A run that blows up (the loss becomes infinite, nan or above 10) counts as
# diverged. The loss over all N samples is measured often (every step at first, then every 5%
# more steps), and the crossing of the target is interpolated between measurements.
#
# McCandlish et al. predict, for SGD with its best learning rate at each B,
#
#     steps  S(B) ≈ S_min · (1 + B_noise / B),        epochs  E(B) ≈ E_min · (1 + B / B_noise),
#
# with E_min = S_min · B_noise / N. Below B_noise, the noise term dominates: doubling B halves
# the steps and leaves the samples processed, the epochs, unchanged. Perfect scaling. Above
# B_noise the steps approach a floor S_min, the steps that even the exact gradient needs, and
# a larger batch only spends more samples per step. B_noise is the curvature-weighted cousin
# of B_simple, tr(HΣ) / (∇Lᵀ H ∇L) with H the Hessian; the two are equal when the loss curves
# equally in every direction.

# %%
TARGET = 0.03
DIVERGED = 10.0  # a loss above this (or inf, nan) counts as diverged


class Run:
    """One SGD run from θ₀: the steps it needed to reach the target (inf if it did not), and its trace."""

    def __init__(self, steps: float, diverged: bool, trace: list[tuple[int, float]]):
        self.steps, self.diverged, self.trace = steps, diverged, trace


def train_to_target(B: int, lr: float, max_steps: float, seed: int = 0) -> Run:
    """Plain SGD at batch size B from θ₀, a fresh shuffle every epoch, until L <= TARGET or max_steps."""
    model = fresh_model()
    optimizer = optim.SGD(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    trace = [(0, full_loss(model))]
    step, next_check = 0, 1
    with np.errstate(all="ignore"):  # a diverging run overflows; we detect it below
        while True:
            for batch in batches(N, B, shuffle=True, rng=rng):
                minibatch.batched_mean(model, nn.cross_entropy, X[batch], y[batch])
                optimizer.step()
                step += 1
                if step < next_check and step < max_steps:
                    continue
                loss = full_loss(model)
                if not loss < DIVERGED:
                    return Run(math.inf, True, trace)
                if loss <= TARGET:  # interpolate the crossing on a log scale
                    last_step, last_loss = trace[-1]
                    fraction = math.log(last_loss / TARGET) / math.log(last_loss / loss)
                    trace.append((step, loss))
                    return Run(last_step + fraction * (step - last_step), False, trace)
                trace.append((step, loss))
                if step >= max_steps:
                    return Run(math.inf, False, trace)
                next_check = step + max(1, step // 20)


runs: dict[tuple[int, int], Run] = {}  # (B, k) -> the run at learning rate 2^(k/2)


def learning_rate(k: int) -> float:
    return 2.0 ** (k / 2)


def run(B: int, k: int, max_steps: float) -> Run:
    if (B, k) not in runs:
        runs[B, k] = train_to_target(B, learning_rate(k), max_steps)
    return runs[B, k]


def tune(B: int, k: int, max_steps: float) -> int:
    """The grid index k of the learning rate that reaches the target in the fewest steps."""
    while run(B, k, max_steps).diverged:  # too large: step down until it converges
        k -= 1
    for direction in (+1, -1):  # then walk up, then down, while the steps keep falling
        # (a run is stopped as soon as it needs more steps than the best so far)
        while run(B, k + direction, min(max_steps, runs[B, k].steps)).steps < runs[B, k].steps:
            k += direction
    return k


sweep_sizes = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, N]
best_k: dict[int, int] = {}
started = time.perf_counter()
k, max_steps = -6, 20000  # the first B starts at lr = 0.125
for B in sweep_sizes:
    k = best_k[B] = tune(B, k, max_steps)
    max_steps = 3 * runs[B, k].steps  # a larger batch should not need many more steps
    k += 2  # the next B starts from twice this learning rate
steps = np.array([runs[B, best_k[B]].steps for B in sweep_sizes])
epochs = steps * np.array(sweep_sizes) / N
best_lr = np.array([learning_rate(best_k[B]) for B in sweep_sizes])
S = dict(zip(sweep_sizes, steps))  # steps to the target, by batch size
E = dict(zip(sweep_sizes, epochs))  # epochs to the target, by batch size
for B, lr, s, e in zip(sweep_sizes, best_lr, steps, epochs):
    tried = sorted(k for b, k in runs if b == B)
    print(f"B = {B:4d}: best lr {lr:5.3f} (of {len(tried)} tried), {s:6.0f} steps, {e:6.1f} epochs")
print(f"{len(runs)} runs in {time.perf_counter() - started:.1f} s")

# %% [markdown]
# Now fit the law. For a given B_noise, the best S_min in the least-squares sense on a log
# scale is the geometric mean of S(B) / (1 + B_noise/B); we try B_noise on a fine grid and
# keep the best fit.

# %%
sizes = np.array(sweep_sizes, dtype=float)
candidates = np.geomspace(1, N, 2000)
fits = []
for b in candidates:
    log_s_min = np.mean(np.log(steps) - np.log1p(b / sizes))
    fits.append((np.sum((np.log(steps) - log_s_min - np.log1p(b / sizes)) ** 2), b, np.exp(log_s_min)))
_, B_noise, S_min = min(fits)
E_min = S_min * B_noise / N
worst_misfit = float(np.max(np.abs(np.log(steps / (S_min * (1 + B_noise / sizes))))))
print(f"fit: S_min = {S_min:.0f} steps, B_noise = {B_noise:.1f}, E_min = {E_min:.2f} epochs; "
      f"the worst point is off the fit by a factor {np.exp(worst_misfit):.2f}")
print(f"from B = 2 to 4 to 8: steps × {S[4] / S[2]:.2f}, then × {S[8] / S[4]:.2f}; "
      f"epochs {E[2]:.1f}, {E[4]:.1f}, {E[8]:.1f}")
print(f"from B = 64 to B = N = {N} ({N / 64:.0f} times the batch): steps × {S[N] / S[64]:.2f}, "
      f"epochs × {E[N] / E[64]:.1f}")

# %% tags=["plot"]
B_axis = np.geomspace(sizes[0], N, 200)
fig, (ax_steps, ax_epochs) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
ax_steps.loglog(sizes, steps, "o", color="tab:blue", label="measured (best lr for each B)")
ax_steps.loglog(B_axis, S_min * (1 + B_noise / B_axis), "-", color="tab:gray",
                label=f"S_min (1 + B_noise/B), B_noise = {B_noise:.0f}")
ax_steps.loglog(B_axis, steps[0] * sizes[0] / B_axis, ":", color="tab:gray", label="perfect scaling ∝ 1/B")
ax_steps.axhline(S_min, color="tab:gray", ls="--", lw=0.8)
ax_steps.axvline(B_noise, color="tab:red", ls="--", lw=0.8, label="B = B_noise")
ax_steps.set_xlabel("batch size B")
ax_steps.set_ylabel(f"steps to L ≤ {TARGET}")
ax_steps.set_title("Steps: halved by doubling B, until B ≈ B_noise")
ax_steps.legend(fontsize=8)
ax_epochs.loglog(sizes, epochs, "o", color="tab:orange", label="measured")
ax_epochs.loglog(B_axis, E_min * (1 + B_axis / B_noise), "-", color="tab:gray", label="E_min (1 + B/B_noise)")
ax_epochs.axvline(B_noise, color="tab:red", ls="--", lw=0.8)
ax_epochs.set_xlabel("batch size B")
ax_epochs.set_ylabel(f"epochs to L ≤ {TARGET}")
ax_epochs.set_title("Epochs: constant, then growing ∝ B")
ax_epochs.legend(fontsize=8)
plt.show()

# %% [markdown]
# Two regimes, as predicted. From B = 2 to 8, each doubling of B roughly halves the steps and
# the epochs stay flat: a bigger batch is free progress, if its samples can be processed in
# parallel.
# Beyond a few dozen samples the steps level off near S_min while the epochs grow in
# proportion to B: the extra samples buy almost nothing. The measured points scatter around
# the fitted curve because the fastest runs sit near the largest stable learning rate, where
# the loss path is erratic.
#
# How does the fitted B_noise compare with B_simple of section 2? Both are measured in
# samples, and both mark where noise and signal balance; they are not the same number.

# %%
above_target = losses >= TARGET  # the measurements of section 2 before its loss reached the target
along_the_way = np.median(dataset_scale[above_target])
print(f"fitted B_noise = {B_noise:.1f}")
print(f"B_simple in section 2, until its loss reached {TARGET}: {dataset_scale[0]:.0f} at θ₀ "
      f"({dataset_scale[0] / B_noise:.1f} × B_noise), then from {dataset_scale[above_target].min():.0f} to "
      f"{dataset_scale[above_target].max():.0f}, median {along_the_way:.0f} ({along_the_way / B_noise:.0f} × B_noise)")

# %% [markdown]
# B_simple starts at a few times B_noise and then grows far above it. The two differ by
# curvature: B_simple = tr Σ / ‖∇L‖² counts every direction of θ alike, while
# B_noise = tr(HΣ) / (∇Lᵀ H ∇L) weighs both noise and signal by the Hessian H, and
#
#     B_noise / B_simple = [tr(HΣ) / tr Σ] / [∇Lᵀ H ∇L / ‖∇L‖²],
#
# the curvature the noise sees on average over the curvature along the average gradient.
# B_noise below B_simple means the average gradient points along steeper, more curved
# directions than the samples' disagreement does (that is where the loss drops fast). The
# steepest direction also caps the learning rate: no batch, however clean its gradient, can
# use a learning rate much beyond 2 / (the largest curvature) without blowing up, which is
# why the best learning rate stops growing in section 4. Treat B_simple as a cheap, rough
# guide, which here errs on the large side.
#
# ## 4. The linear learning-rate scaling rule, and where it breaks
#
# In the noise-dominated regime, a step of SGD with learning rate lr and batch B moves θ by
# lr · ∇L on average, with noise of variance about lr² tr Σ / B. Over k steps short enough
# that ∇L hardly changes, the mean moves k · lr · ∇L and the noise adds up to variance
# k · lr² tr Σ / B. Double B and double lr, and *half* as many steps give the same mean
# movement and the same noise. This is the **linear scaling rule**: multiply the batch by c,
# multiply the learning rate by c (Goyal et al. 2017). It is exactly what the search above
# assumed when it started each B at twice the previous best.
#
# The argument needs the noise to dominate, and it needs steps small enough that the gradient
# hardly changes over a few of them. Neither holds beyond B_noise. Apply the rule from the best
# setting at the smallest batch, B = 2, to every larger batch:

# %%
B_0 = sweep_sizes[0]
k_0 = best_k[B_0]
linear_steps, linear_diverged = [], []
for B, tuned in zip(sweep_sizes, steps):
    k = k_0 + math.floor(2 * math.log2(B / B_0))  # lr = lr_0 · B / B_0, rounded down onto the √2 grid
    result = runs.get((B, k))
    if result is None or (math.isinf(result.steps) and not result.diverged):
        result = runs[B, k] = train_to_target(B, learning_rate(k), 3 * tuned)  # slower than the best: finish it
    linear_steps.append(result.steps)
    linear_diverged.append(result.diverged)
    outcome = "diverged" if result.diverged else f"{result.steps:6.0f} steps (best lr: {tuned:6.0f})"
    print(f"B = {B:4d}: linear rule lr = {learning_rate(k):6.3f}: {outcome}")
linear_steps, linear_diverged = np.array(linear_steps), np.array(linear_diverged)

# %% tags=["plot"]
fig, (ax_lr, ax_rule) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
ax_lr.loglog(sizes, best_lr, "o-", color="tab:blue", label="best lr for each B")
ax_lr.loglog(sizes, learning_rate(k_0) * sizes / B_0, ":", color="tab:red", label=f"linear rule from B = {B_0}")
ax_lr.axvline(B_noise, color="tab:gray", ls="--", lw=0.8, label="B_noise (fitted)")
ax_lr.set_xlabel("batch size B")
ax_lr.set_ylabel("learning rate")
ax_lr.set_title("The best learning rate grows ∝ B, then stops")
ax_lr.legend(fontsize=8)
ax_rule.loglog(sizes, steps, "o-", color="tab:blue", label="best lr for each B")
ok = ~linear_diverged
ax_rule.loglog(sizes[ok], linear_steps[ok], "s", color="tab:red", mfc="none", ms=9, label="linear rule")
ax_rule.loglog(sizes[~ok], np.full((~ok).sum(), steps.max() * 1.5), "x", color="tab:red", ms=9,
               label="linear rule: diverged")
ax_rule.set_xlabel("batch size B")
ax_rule.set_ylabel(f"steps to L ≤ {TARGET}")
ax_rule.set_title("Linear scaling: exact below B_noise, divergence above")
ax_rule.legend(fontsize=8)
plt.show()

# %% [markdown]
# Below B_noise (here up to B = 16) the rule lands on the best learning rate, and the steps
# fall with each doubling as fast as they can. Above it the rule keeps doubling the learning
# rate while the best one stays near the stability limit, and training diverges. Large-batch
# training in practice therefore combines the rule with a cap, or with a warm-up that starts
# small; and no learning rate can make a batch far above B_noise pay for its extra samples.
#
# ## 5. Full-batch gradient descent against SGD
#
# Gradient descent (B = N) computes the exact gradient; SGD with a small batch a noisy one.
# Which is better depends on what you count. Take the best runs of section 3 for B = N and for
# B = 16, and plot the same loss curves three ways: per step (one gradient evaluation each),
# per sample processed (epochs), and per second. For the seconds we time the steps themselves,
# without the loss checks: the median of five repeats of a few steps, times the number of steps.

# %%
SGD_BATCH = 16


def seconds_per_step(B: int, lr: float, repeats: int = 5, n_steps: int = 20) -> float:
    """The median over `repeats` of the time of one step (batch gradient and update), in seconds."""
    model = fresh_model()
    optimizer = optim.SGD(model.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(repeats):
        batch_list = [rng.choice(N, size=B, replace=False) for _ in range(n_steps)]
        began = time.perf_counter()
        for batch in batch_list:
            minibatch.batched_mean(model, nn.cross_entropy, X[batch], y[batch])
            optimizer.step()
        times.append((time.perf_counter() - began) / n_steps)
    return float(np.median(times))


compare = {"gradient descent (B = N)": N, f"SGD (B = {SGD_BATCH})": SGD_BATCH}
per_step = {name: seconds_per_step(B, learning_rate(best_k[B])) for name, B in compare.items()}
to_target = {}
for name, B in compare.items():
    s = runs[B, best_k[B]].steps
    to_target[name] = {"steps": s, "epochs": s * B / N, "seconds": s * per_step[name]}
    print(f"{name:25s}: {s:5.0f} steps, {s * B / N:6.1f} epochs, "
          f"{per_step[name] * 1e3:.2f} ms per step, {to_target[name]['seconds']:.2f} s to the target")
gd, sgd = to_target["gradient descent (B = N)"], to_target[f"SGD (B = {SGD_BATCH})"]
print(f"gradient descent needs {sgd['steps'] / gd['steps']:.1f} times fewer steps, "
      f"but {gd['epochs'] / sgd['epochs']:.0f} times more epochs and {gd['seconds'] / sgd['seconds']:.1f} times "
      f"the time (on this machine)")

# %% tags=["plot"]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True, layout="constrained")
for (name, B), color in zip(compare.items(), ("tab:red", "tab:blue")):
    trace = np.array(runs[B, best_k[B]].trace[1:])  # from step 1: a log axis has no 0
    for ax, scale in zip(axes, (1.0, B / N, per_step[name])):
        ax.plot(trace[:, 0] * scale, trace[:, 1], color=color, label=name)
for ax, label in zip(axes, ("steps (gradient evaluations)", "epochs (samples processed / N)", "seconds")):
    ax.axhline(TARGET, color="tab:gray", ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(label)
axes[0].set_ylabel("training loss L")
axes[0].legend(fontsize=8)
axes[0].set_title("Per step: gradient descent wins")
axes[1].set_title("Per sample: SGD wins by far")
axes[2].set_title(f"Per second: {'SGD' if sgd['seconds'] < gd['seconds'] else 'gradient descent'} wins here")
plt.show()

# %% [markdown]
# Per step, the exact gradient is the better direction, and gradient descent needs fewer steps.
# But each of its steps reads all N samples, and most of that work goes into refining a
# direction that 16 samples already estimate well enough: per sample processed, SGD is far
# ahead. What a second buys depends on the hardware: a step's cost grows with B more slowly
# than B (vectorised arithmetic is cheap per sample, and small batches pay a fixed overhead per
# step), so the ratio in seconds lies between the ratios in steps and in epochs. On a GPU,
# which processes a large batch in about the time of a small one (up to the size that fills
# it), the balance shifts towards large batches, up to about B_noise.
#
# ## 6. The loss floor that noise sets
#
# With a constant learning rate, SGD does not settle at the minimum. Even there, where ∇L = 0,
# every batch gradient is a sample of noise with squared size about tr Σ / B, and each step
# moves θ by lr times that. The parameters keep jittering around the minimum, and the loss
# hovers above its minimum value: a **floor** that grows with lr and with the noise 1/B.
#
# The digits are not the place to see this: the MLP drives the training loss towards zero, and
# as it does, the samples' gradients shrink too (tr Σ fell during the run of section 2), so the
# noise fades along with the loss. We need data no model fits exactly. Take a linear
# regression with noisy targets, y = x · w + 0.5 · noise, N = 256 samples of 8 features, and
# `nn.mse_loss`. Its minimum θ* and minimal loss L* are known exactly (least squares), so we
# can **start SGD at the minimum** and watch noise alone push it off.

# %%
data_rng = np.random.default_rng(1)
N_REG, FEATURES = 256, 8
X_reg = data_rng.normal(size=(N_REG, FEATURES))
y_reg = X_reg @ data_rng.normal(size=(FEATURES, 1)) + 0.5 * data_rng.normal(size=(N_REG, 1))
design = np.hstack([X_reg, np.ones((N_REG, 1))])  # the last column multiplies the bias
theta_star = np.linalg.lstsq(design, y_reg, rcond=None)[0]
L_star = float(np.mean((design @ theta_star - y_reg) ** 2))


def floor_run(B: int, lr: float, n_steps: int, seed: int = 0) -> np.ndarray:
    """SGD from the exact minimum θ*; the loss over all N_REG samples after every step."""
    model = nn.Linear(FEATURES, 1)
    model.load_state_dict({"weight": theta_star[:-1], "bias": theta_star[-1]})
    optimizer = optim.SGD(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    curve = []
    while len(curve) < n_steps:
        for batch in batches(N_REG, B, shuffle=True, rng=rng):
            minibatch.batched_mean(model, nn.mse_loss, X_reg[batch], y_reg[batch])
            optimizer.step()
            with no_grad():
                curve.append(nn.mse_loss(model(Tensor(X_reg)), y_reg).item())
    return np.array(curve[:n_steps])


floor_settings = [(1, 0.02), (1, 0.01), (1, 0.005), (4, 0.04), (4, 0.02), (16, 0.08), (16, 0.02)]
floor_curves, excess = {}, {}
for B, lr in floor_settings:
    curve = floor_run(B, lr, n_steps=640)
    floor_curves[B, lr] = curve
    excess[B, lr] = float(np.mean(curve[160:]) - L_star)  # after the first quarter, time-averaged
    print(f"B = {B:2d}, lr = {lr:5.3f} (lr/B = {lr / B:.5f}): floor L − L* = {excess[B, lr]:.5f}")
print(f"L* = {L_star:.4f}")
print(f"halving lr at B = 1: the floor × {excess[1, 0.01] / excess[1, 0.02]:.2f}, "
      f"then × {excess[1, 0.005] / excess[1, 0.01]:.2f}")

# %% tags=["plot"]
fig, (ax_curve, ax_floor) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
shown = [(1, 0.02), (1, 0.01), (4, 0.02), (16, 0.02)]
for (B, lr), color in zip(shown, ("tab:red", "tab:orange", "tab:blue", "tab:green")):
    ax_curve.plot(floor_curves[B, lr] - L_star, color=color, lw=0.8, label=f"B = {B}, lr = {lr}")
    ax_curve.axhline(excess[B, lr], color=color, ls="--", lw=1)
ax_curve.set_yscale("log")
ax_curve.set_xlabel("step")
ax_curve.set_ylabel("L − L*")
ax_curve.set_title("Starting at the minimum, SGD hovers above it")
ax_curve.legend(fontsize=8)
for B, marker in zip((1, 4, 16), ("o", "s", "^")):
    settings = [(b, lr) for b, lr in floor_settings if b == B]
    ax_floor.loglog([lr / B for _, lr in settings], [excess[s] for s in settings], marker,
                    ms=9, mfc="none", label=f"B = {B}")
ratios = sorted({lr / B for B, lr in floor_settings})
ax_floor.set_xticks(ratios, [f"{r:g}" for r in ratios])
ax_floor.minorticks_off()
ax_floor.set_xlabel("lr / B")
ax_floor.set_ylabel("floor: time-averaged L − L*")
ax_floor.set_title("The floor depends on lr / B")
ax_floor.legend()
plt.show()

# %% [markdown]
# The dashed lines are the floors. A smaller batch or a larger learning rate raises the floor;
# halving the learning rate lowers it (here by more than half, partly because the jitter
# feeds itself: a displaced θ has larger residuals, hence noisier gradients). On the right, settings
# with the same lr / B land on the same floor whatever B is: the noise a step injects scales
# like lr² / B, and the pull back to the minimum like lr, so their balance depends on lr / B
# alone. That is the linear scaling rule of section 4 seen from another side: keeping lr / B
# fixed keeps the noise level fixed. It is also why training schedules lower the learning
# rate towards the end, or raise the batch size, which does the same to the noise.
#
# ## 7. With replacement, or a fresh shuffle each epoch?
#
# The analysis of SGD usually assumes every batch is drawn afresh from the data, **with
# replacement** across batches. `Trainer` (like most libraries) does something else: each
# epoch it draws a fresh permutation and cuts it into batches, so every sample is used exactly
# once per epoch. With replacement, an "epoch" of N draws misses some samples and repeats
# others: the chance that a given sample is never drawn is (1 − 1/N)^N ≈ 1/e, so an epoch
# sees only about 1 − 1/e ≈ 63% of the distinct samples. Count it (the loop below makes
# n = (N // B)·B draws, a few fewer than N, so it expects 1 − (1 − 1/N)^n):

# %%
B = 32
replacement_rng = np.random.default_rng(0)
drawn = np.concatenate([replacement_rng.integers(0, N, size=B) for _ in range(N // B)])  # one epoch's draws
counts = np.bincount(drawn, minlength=N)
shuffled = np.concatenate(list(batches(N, B, shuffle=True, rng=np.random.default_rng(0))))
shuffle_counts = np.bincount(shuffled, minlength=N)
seen = np.mean(counts > 0)
expected_seen = 1 - (1 - 1 / N) ** len(drawn)  # n draws from N samples
print(f"with replacement: {len(drawn)} draws saw {np.sum(counts > 0)} distinct samples of {N} ({seen:.3f}); "
      f"expected 1 − (1 − 1/N)^n = {expected_seen:.3f} ≈ 1 − 1/e = {1 - 1 / math.e:.3f}")
print(f"fresh shuffle: {len(shuffled)} samples, each used {shuffle_counts.min()} to {shuffle_counts.max()} times")
print(f"N / B = {N / B:.2f}: the loop with replacement draws N // B = {N // B} batches of {B} per epoch; "
      f"the shuffle cuts {N // B} such batches and a last one of {N % B}")

# %% [markdown]
# Now train the same model both ways: `Trainer.fit` with its shuffle, and a loop that draws
# each batch with replacement, N // B batches per epoch.

# %%
REPLACEMENT_EPOCHS, REPLACEMENT_LR = 15, 0.25
model = fresh_model()
shuffle_history = Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=REPLACEMENT_LR),
                          progress=False).fit(X, y, batch_size=B, epochs=REPLACEMENT_EPOCHS, seed=0)["loss"]
model = fresh_model()
optimizer = optim.SGD(model.parameters(), lr=REPLACEMENT_LR)
replacement_history = []
for _ in range(REPLACEMENT_EPOCHS):
    for _ in range(N // B):
        batch = replacement_rng.integers(0, N, size=B)
        minibatch.batched_mean(model, nn.cross_entropy, X[batch], y[batch])
        optimizer.step()
    replacement_history.append(full_loss(model))
print(f"after {REPLACEMENT_EPOCHS} epochs: fresh shuffle L = {shuffle_history[-1]:.4f}, "
      f"with replacement L = {replacement_history[-1]:.4f}")

# %% [markdown]
# The shuffled run jumps up at a few epochs, and the batch size explains it. `Trainer`
# measures the loss at the end of an epoch, right after its short last batch of N mod B
# samples: a step with a full batch's learning rate but the noise of a handful of samples.
# To look inside the epoch, repeat the run by hand (the same loop as `Trainer`'s, so the same
# losses) and measure just before that last batch as well.

# %%
model = fresh_model()
optimizer = optim.SGD(model.parameters(), lr=REPLACEMENT_LR)
shuffle_rng = np.random.default_rng(0)  # the generator Trainer.fit(seed=0) draws its permutations from
by_hand, before_last_batch = [], []
for _ in range(REPLACEMENT_EPOCHS):
    epoch_batches = list(batches(N, B, shuffle=True, rng=shuffle_rng))
    for i, batch in enumerate(epoch_batches):
        if i == len(epoch_batches) - 1:
            before_last_batch.append(full_loss(model))
        minibatch.batched_mean(model, nn.cross_entropy, X[batch], y[batch])
        optimizer.step()
    by_hand.append(full_loss(model))
same_as_trainer = np.allclose(by_hand, shuffle_history, rtol=1e-12, atol=0)
jumps = np.array(by_hand) / np.array(before_last_batch)
worst = int(np.argmax(jumps))
print(f"the loop by hand reproduces Trainer's losses: {same_as_trainer}")
print(f"epoch {worst + 1}: L = {before_last_batch[worst]:.4f} before the last batch of {len(epoch_batches[-1])} "
      f"samples, {by_hand[worst]:.4f} after it")


def total_rise(curve: list[float]) -> float:
    """How far a loss curve goes up in all, from epoch to epoch (on a log scale)."""
    return float(np.sum(np.maximum(np.diff(np.log(curve)), 0)))


print(f"total rise of the curve measured after each epoch {total_rise(by_hand):.2f}, "
      f"measured before the last batch {total_rise(before_last_batch):.2f}")

# %% tags=["plot"]
fig, (ax_counts, ax_train) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
times_used = np.arange(0, counts.max() + 1)
ax_counts.bar(times_used - 0.2, np.bincount(counts) / N, width=0.4, label="with replacement")
ax_counts.bar(times_used + 0.2, np.bincount(shuffle_counts, minlength=len(times_used)) / N, width=0.4,
              label="fresh shuffle")
poisson = [math.exp(-1) / math.factorial(k) for k in times_used]
ax_counts.plot(times_used - 0.2, poisson, "k_", ms=14, label="Poisson(1)")
ax_counts.set_xlabel("times a sample is used in one epoch")
ax_counts.set_ylabel("fraction of the samples")
ax_counts.set_title(f"One epoch: every sample once, or {1 - seen:.0%} never")
ax_counts.legend()
ax_train.plot(np.arange(1, REPLACEMENT_EPOCHS + 1), shuffle_history, "o-", label="fresh shuffle (Trainer)")
ax_train.plot(np.arange(1, REPLACEMENT_EPOCHS + 1), replacement_history, "s-", label="with replacement")
ax_train.plot(np.arange(1, REPLACEMENT_EPOCHS + 1), before_last_batch, ":", color="tab:blue",
              label="fresh shuffle, before the short last batch")
ax_train.set_yscale("log")
ax_train.set_xlabel("epoch")
ax_train.set_ylabel("training loss L")
ax_train.set_title(f"Both converge (B = {B}, lr = {REPLACEMENT_LR})")
ax_train.legend()
plt.show()

# %% [markdown]
# Both converge, at a similar pace. Measured before its short last batch, the shuffled run
# rises far less from one epoch to the next. Sampling with replacement is what the theory of the
# previous sections assumes (each batch an independent draw); the shuffle is what practice
# uses, because it wastes no sample in an epoch and, as section 1 showed, batches of distinct
# samples are a little less noisy. Over several epochs the difference fades: with replacement,
# a sample is missed by k whole epochs with probability about e^(−k).
#
# ## What this tutorial established

# %%
# 1. The noise of the batch gradient follows (tr Σ / B)(N − B)/(N − 1) from B = 1 to 1536. (At
#    B = N it is zero by definition, the one batch being the data set: nothing to test there.)
assert all(abs(m / p - 1) < 0.25 for m, p in zip(measured_noise, predicted_noise))
assert measured_noise[0] > 500 * measured_noise[-1]  # from B = 1 to B = 1536
# 2. B_simple grows as the loss falls, because the signal ‖∇L‖² falls much faster than the
#    noise tr Σ. The library's estimate with dataset_size=N and the data-set one are tied exactly.
assert losses[-1] < losses[0] / 20
assert late > 3 * early and low_loss > 3 * high_loss
assert np.corrcoef(np.log(losses), np.log(dataset_scale))[0, 1] < -0.4
assert signal_drop > 3 * noise_drop
assert np.all(np.isfinite(library_scale))
assert np.allclose(library_scale, dataset_scale * N / (N - 1), rtol=1e-6)
# 3. Steps to the target: while B is small, doubling it about halves them and the epochs stay
#    flat; beyond B_noise the steps level off and the epochs grow with B; S_min (1 + B_noise/B)
#    describes the measurements.
assert S[8] < 0.4 * S[2] and max(E[2], E[4], E[8]) < 1.4 * min(E[2], E[4], E[8])
assert S[N] > S[64] / 4  # 28 times the batch, not even 4 times fewer steps
assert E[N] > 10 * E[8]
assert 8 < B_noise < 128 and np.exp(worst_misfit) < 2
# B_noise is of the order of B_simple at the start and far below B_simple later.
assert dataset_scale[0] / 10 < B_noise < along_the_way
# 4. The linear scaling rule matches the best learning rate well below B_noise (within one
#    step of the grid, so within 1.5 times the steps) and diverges well above it; the best
#    learning rate stops growing (N / 16 = 112 times the batch, not even 4 times the lr).
assert all(linear_steps[i] < 1.5 * steps[i] for i, B in enumerate(sweep_sizes) if B <= B_noise / 3)
assert all(linear_diverged[i] for i, B in enumerate(sweep_sizes) if B >= 4 * B_noise)
assert learning_rate(best_k[N]) < 4 * learning_rate(best_k[16])
# 5. Gradient descent needs fewer steps, SGD far fewer epochs (no assertion on seconds: they
#    depend on the machine).
assert gd["steps"] < sgd["steps"]
assert gd["epochs"] > 20 * sgd["epochs"]
# 6. With a constant learning rate noise sets a floor: higher for smaller B or larger lr,
#    lower when lr is halved, and the same for the same lr / B.
assert excess[1, 0.02] > excess[1, 0.01] > excess[1, 0.005] > 0
assert excess[1, 0.02] > excess[4, 0.02] > excess[16, 0.02] > 0
assert excess[1, 0.01] / excess[1, 0.02] < 0.5 and excess[1, 0.005] / excess[1, 0.01] < 0.5  # by more than half
assert abs(excess[4, 0.04] / excess[1, 0.01] - 1) < 0.3
assert abs(excess[4, 0.02] / excess[1, 0.005] - 1) < 0.3 and abs(excess[16, 0.08] / excess[1, 0.005] - 1) < 0.3
# 7. A fresh shuffle uses every sample exactly once per epoch; drawing with replacement sees
#    about 1 − 1/e of them; both converge, at a similar pace.
assert np.all(shuffle_counts == 1)
assert abs(seen - expected_seen) < 0.03 and abs(expected_seen - (1 - 1 / math.e)) < 2e-3
assert shuffle_history[-1] < shuffle_history[0] / 5 and replacement_history[-1] < replacement_history[0] / 5
assert 0.5 < replacement_history[-1] / shuffle_history[-1] < 2
# The shuffled curve's jumps come from the epoch's short last batch (5 samples).
assert same_as_trainer and jumps.max() > 1.3
assert total_rise(before_last_batch) < total_rise(by_hand) / 2
