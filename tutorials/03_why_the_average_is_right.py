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
# # 3. Why the average is the right thing
#
# Mini-batch gradient descent takes a batch of B samples, drawn from a data set of N, and
# steps along the gradient of their mean loss
#
#     L_B(θ) = (1/B) Σ_i ℓ_i(θ),      where ℓ_i(θ) = ℓ(f_θ(x_i), y_i).
#
# **Notation.** Throughout these tutorials B is the batch size and N the size of the data
# set. Some write-ups use M for the batch size instead (the answer this project grew out of
# does, and so do the SGLD and VAE papers, whose "N/M" is our N/B); it is the same number.
#
# Three questions deserve exact answers, and this tutorial answers each with a proof and a
# computation that checks it:
#
# 1. Is the gradient of the mean loss the mean of the per-sample gradients, even for a very
#    nonlinear network? (Yes, always.)
# 2. A batch is a random part of the data. Is its gradient right *on average*? (Yes, exactly,
#    for every batch size B from 1 to N.)
# 3. Why the mean and not the sum? (Only a factor B apart, but that factor lands in the
#    learning rate.)

# %%
from itertools import combinations
from math import comb

import matplotlib.pyplot as plt
import numpy as np

from tinygrad_mb import Tensor, nn, optim
from tinygrad_mb.data import batches


def gradient(model: nn.Module, loss_fn, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The gradient of loss_fn on (X, y) with respect to all parameters, as one flat vector."""
    model.zero_grad()
    loss_fn(model(Tensor(X)), y).backward()
    return np.concatenate([p.grad.ravel() for p in model.parameters()])


# %% [markdown]
# ## 1. Linearity: the gradient of a sum is the sum of the gradients
#
# A claim you will find in write-ups of backpropagation goes like this: *"because each term
# ℓ_i is evaluated at a different input x_i, and the network is nonlinear, the gradient of
# the summed loss may differ from the sum of the per-sample gradients."* It is wrong, and the
# reason is worth getting exactly right.
#
# We differentiate with respect to the **parameters θ**, not the inputs. Each x_i is a fixed
# number; it decides *which function* ℓ_i of θ we have, not *where* that function is
# evaluated. All the terms are evaluated at the **same θ**. Differentiation is linear for any
# differentiable functions of the same variable, ∇(h_1 + h_2)(θ) = ∇h_1(θ) + ∇h_2(θ), so
#
#     ∇_θ L_B(θ) = (1/B) Σ_i ∇_θ ℓ_i(θ)       exactly, for any network, however nonlinear.
#
# The nonlinearity of the network decides what each ∇ℓ_i looks like, not whether they add
# up. (What *does* go wrong with nonlinearity is averaging something else first, such as the
# inputs or the output errors, before backpropagating. That is tutorial 2.)
#
# Let us check it on a tanh network with squared error and on a ReLU network with
# cross-entropy, backpropagating each sample alone and then the whole batch at once.

# %%
rng = np.random.default_rng(0)
X = rng.normal(size=(6, 3))
y_reg = rng.normal(size=(6, 2))
y_cls = rng.integers(0, 4, size=6)

cases = {
    "tanh MLP, squared error": (nn.MLP([3, 16, 16, 2], activation="tanh", rng=1), nn.mse_loss, y_reg),
    "ReLU MLP, cross-entropy": (nn.MLP([3, 16, 16, 4], activation="relu", rng=2), nn.cross_entropy, y_cls),
}
linearity_gap = {}
for label, (model, loss_fn, y) in cases.items():
    per_sample = [gradient(model, loss_fn, X[i:i + 1], y[i:i + 1]) for i in range(len(X))]
    batched = gradient(model, loss_fn, X, y)
    linearity_gap[label] = np.max(np.abs(np.mean(per_sample, axis=0) - batched))
    print(f"{label}: max |mean of per-sample gradients - batch gradient| = {linearity_gap[label]:.1e}")

# %% [markdown]
# The differences are rounding errors, around 10⁻¹⁶. The two computations add the same numbers
# in a different order, nothing more.
#
# Where *would* the sum of gradients differ? If the gradients were taken at **different
# parameters**. Online SGD does exactly that: it updates θ after every sample, so the second
# sample's gradient is evaluated at a moved θ. That is a different algorithm (one step per
# sample), not a different way of computing the batch gradient:

# %%
model, loss_fn, y = cases["tanh MLP, squared error"]
at_theta = gradient(model, loss_fn, X[:1], y[:1]) + gradient(model, loss_fn, X[1:2], y[1:2])
opt = optim.SGD(model.parameters(), lr=0.5)
saved = model.state_dict()
gradient(model, loss_fn, X[:1], y[:1])
opt.step()  # θ moves after the first sample, as in online SGD
moved = gradient(model, loss_fn, X[1:2], y[1:2])
model.load_state_dict(saved)
online = gradient(model, loss_fn, X[:1], y[:1]) + moved
batch_sum = 2 * gradient(model, loss_fn, X[:2], y[:2])
print("sum of gradients at the same θ vs gradient of the sum:", np.max(np.abs(at_theta - batch_sum)))
print("gradients taken at two different θ vs gradient of the sum:", np.max(np.abs(online - batch_sum)))

# %% [markdown]
# One condition is hidden in the formula: the loss must *be* a sum of per-sample terms. When
# samples interact inside the network, as in batch normalisation where each sample is
# normalised with statistics of the whole batch, ℓ_i depends on the other samples too and
# there is no "per-sample loss" to differentiate alone. The networks here have no such layer.
#
# ## 2. Unbiasedness: a random batch is right on average
#
# Training never sees the full-data gradient ∇L, the gradient of L(θ) = (1/N) Σ_n ℓ_n(θ) over
# all N samples; it sees the gradient of one random batch. Suppose a batch of B samples is
# drawn uniformly *without replacement*: each of the C(N, B) subsets is equally likely. Then
#
#     E[∇L_batch] = ∇L       exactly, for every 1 ≤ B ≤ N.
#
# **Proof by counting.** Write g_n = ∇ℓ_n(θ). The expectation is the average over all
# subsets S of (1/B) Σ_{n∈S} g_n. A fixed sample n belongs to C(N−1, B−1) of the C(N, B)
# subsets (choose the other B − 1 members from the other N − 1 samples), a fraction B/N. So
# every sample carries the same total weight, and
#
#     E[∇L_batch] = (1/C(N, B)) Σ_S (1/B) Σ_{n∈S} g_n = (1/B) · (B/N) · Σ_n g_n = (1/N) Σ_n g_n = ∇L.
#
# The whole proof is one count, and a picture shows it. Take N = 8 and B = 3: each column
# below is one of the C(8, 3) = 56 possible batches, each row one sample, and a filled cell
# means "this sample is in this batch". Every column has B = 3 cells filled; every row has
# the same number, C(7, 2) = 21, so no sample is favoured.

# %%
N_grid, B_grid = 8, 3
grid_batches = list(combinations(range(N_grid), B_grid))
membership = np.zeros((N_grid, len(grid_batches)), dtype=int)  # membership[n, k] = 1: sample n in batch k
for k, S in enumerate(grid_batches):
    membership[list(S), k] = 1
batches_per_sample = membership.sum(axis=1)
samples_per_batch = membership.sum(axis=0)
print(f"{len(grid_batches)} batches; samples per batch: {set(samples_per_batch.tolist())}; "
      f"batches per sample: {batches_per_sample.tolist()}")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(10, 2.8))
ax.imshow(membership, cmap="Blues", vmin=0, vmax=1.4, aspect="auto", interpolation="nearest")
ax.set_xticks(np.arange(-0.5, len(grid_batches), 1), minor=True)
ax.set_yticks(np.arange(-0.5, N_grid, 1), minor=True)
ax.grid(which="minor", color="white", linewidth=1)
ax.tick_params(which="minor", length=0)
ax.set_yticks(range(N_grid), [f"sample {n}" for n in range(N_grid)], fontsize=8)
ax.set_xticks([0, len(grid_batches) - 1], ["batch 1", f"batch {len(grid_batches)}"], fontsize=8)
for n, count in enumerate(batches_per_sample):
    ax.text(len(grid_batches) + 0.5, n, f"in {count} of {len(grid_batches)}", va="center", fontsize=8)
ax.set_title(f"All C({N_grid}, {B_grid}) = {comb(N_grid, B_grid)} batches of B = {B_grid} from N = {N_grid} "
             f"(columns): each sample (row) is in C({N_grid - 1}, {B_grid - 1}) = {comb(N_grid - 1, B_grid - 1)} "
             f"of them, a fraction B/N = {B_grid}/{N_grid}", fontsize=10)
fig.subplots_adjust(right=0.88)
plt.show()

# %% [markdown]
# **Why we may swap the gradient and the expectation.** The expectation is a *finite* sum
# with fixed weights 1/C(N, B), and the gradient of a finite sum is the sum of the gradients
# (section 1). So E[∇L_batch] = ∇E[L_batch] needs no conditions at all. (Over a continuous
# data distribution the expectation is an integral, and exchanging it with the gradient needs
# a condition such as the gradient being bounded by an integrable function; for a finite data
# set, nothing.)
#
# With N = 8 samples we can simply enumerate every possible batch, for every batch size B, and
# check both the count and the conclusion on a real network's gradients.

# %%
rng = np.random.default_rng(3)
N = 8
X_all = rng.normal(size=(N, 3))
y_all = rng.normal(size=(N, 1))
model = nn.MLP([3, 8, 1], activation="tanh", rng=4)

full = gradient(model, nn.mse_loss, X_all, y_all)
per_sample_grads = np.array([gradient(model, nn.mse_loss, X_all[n:n + 1], y_all[n:n + 1]) for n in range(N)])
spread = np.mean(np.sum((per_sample_grads - full) ** 2, axis=1))  # S² = (1/N) Σ_n |g_n − ∇L|²

bias, variance, predicted, counts_equal = {}, {}, {}, {}
for B in range(1, N + 1):
    subsets = list(combinations(range(N), B))
    counts_equal[B] = all(sum(n in S for S in subsets) == comb(N - 1, B - 1) for n in range(N))
    batch_grads = np.array([gradient(model, nn.mse_loss, X_all[list(S)], y_all[list(S)]) for S in subsets])
    assert len(batch_grads) == comb(N, B)
    bias[B] = np.max(np.abs(batch_grads.mean(axis=0) - full))
    variance[B] = np.mean(np.sum((batch_grads - full) ** 2, axis=1))
    predicted[B] = spread / B * (N - B) / (N - 1)
    print(f"B = {B}: {comb(N, B):3d} batches, each sample in {comb(N - 1, B - 1):2d}, "
          f"|E[batch gradient] - full gradient| = {bias[B]:.1e}, "
          f"E|batch gradient - full gradient|^2 = {variance[B]:.5f}")

# %% [markdown]
# The average over all batches is the full gradient for every B, up to rounding. The batch
# gradient is unbiased; what the batch size changes is the **noise**. For sampling without
# replacement the expected squared deviation is
#
#     E|∇L_batch − ∇L|² = (S² / B) · (N − B) / (N − 1),     S² = (1/N) Σ_n |g_n − ∇L|²,
#
# the familiar 1/B of averaging, times a "finite population correction" that reaches zero at
# B = N, where the only batch is the whole data set. The enumeration agrees with the formula:

# %% tags=["plot"]
Bs = np.arange(1, N + 1)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(Bs, [predicted[B] for B in Bs], "-", color="tab:gray", label="(S²/B)(N−B)/(N−1)")
ax.plot(Bs, [variance[B] for B in Bs], "o", color="tab:blue", label="enumerated over all batches")
ax.set_xlabel("batch size B")
ax.set_ylabel("E |batch gradient − full gradient|²")
ax.set_title(f"Batch gradients are unbiased; their noise shrinks with B (N = {N})")
ax.legend()
plt.show()

# %% [markdown]
# **B = 1 is classic stochastic gradient descent**: each step uses one sample's gradient.
# The counting proof covers it too (a sample is picked with probability 1/N), so even one
# sample at a time points the right way on average, with the largest noise, S². At the other
# end, B = N is full-batch gradient descent, with no noise at all.
#
# ## 3. Sum versus mean, and the learning rate
#
# If we summed the losses instead of averaging them, the gradient would be exactly B times
# larger: ∇ Σ_i ℓ_i = B · ∇ (1/B) Σ_i ℓ_i. A gradient step moves θ by the learning rate times
# the gradient, so with a summed loss the step grows with the batch size, and a learning rate
# tuned for one batch size is B′/B times too large for a batch of B′. With the mean, the size
# of the gradient does not depend on B, so a learning rate that works at one batch size is a
# sensible start at another. That is why `mse_loss` and `cross_entropy` average by default.
# (Larger batches also bring less noise, and practitioners often raise the learning rate with
# the batch size for that reason; that is a choice about noise, not a correction for scale.)
#
# First, the factor B:

# %%
rng = np.random.default_rng(5)
x_line = rng.uniform(-1, 1, size=(512, 1))
y_line = 3 * x_line + 1 + rng.normal(0, 0.1, size=(512, 1))


def mse_sum(pred: Tensor, target: np.ndarray) -> Tensor:
    return nn.mse_loss(pred, target, reduction="sum")


line = nn.Linear(1, 1, rng=6)
sum_over_mean = {}
for B in (8, 128):
    g_sum = gradient(line, mse_sum, x_line[:B], y_line[:B])
    g_mean = gradient(line, nn.mse_loss, x_line[:B], y_line[:B])
    sum_over_mean[B] = g_sum / g_mean
    print(f"B = {B:3d}: gradient of the sum / gradient of the mean = {sum_over_mean[B]}")

# %% [markdown]
# Now train a line, from a fixed start and with a fixed order of batches, at two batch sizes,
# B = 8 and B = 128, for 40 SGD steps each. The mean gets the learning rate 0.5 (a good one
# at both batch sizes, as the sweep below shows). The sum gets the same 0.5, and then 0.5/B,
# which is the mean in disguise: it follows the mean's trajectory exactly.

# %%
def batch_stream(batch_size: int, seed: int):
    """Index batches forever: epoch after epoch, each in a fresh random order."""
    rng = np.random.default_rng(seed)
    while True:
        yield from batches(len(x_line), batch_size, shuffle=True, rng=rng)


def train_line(loss_fn, lr: float, batch_size: int, steps: int = 40) -> list[float]:
    """Full-data mean loss after each SGD step on the line data, from a fixed start."""
    model = nn.Linear(1, 1, rng=6)
    opt = optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _, idx in zip(range(steps), batch_stream(batch_size, seed=7)):
        opt.zero_grad()
        loss_fn(model(Tensor(x_line[idx])), y_line[idx]).backward()
        opt.step()
        losses.append(nn.mse_loss(model(Tensor(x_line)), y_line).item())
    return losses


LR = 0.5
runs = {}
with np.errstate(over="ignore", invalid="ignore"):  # the diverging runs overflow on purpose
    for B in (8, 128):
        runs[f"mean, lr {LR}, B={B}"] = train_line(nn.mse_loss, LR, B)
        runs[f"sum, lr {LR}, B={B}"] = train_line(mse_sum, LR, B)
        runs[f"sum, lr {LR}/B, B={B}"] = train_line(mse_sum, LR / B, B)
for name, losses in runs.items():
    print(f"{name:22s} loss after 40 steps: {losses[-1]:.3g}")

# %% tags=["plot"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, B in zip(axes, (8, 128)):
    for name, style, width in ((f"mean, lr {LR}, B={B}", "-", 4), (f"sum, lr {LR}/B, B={B}", "--", 1.5),
                               (f"sum, lr {LR}, B={B}", ":", 1.5)):
        ax.plot(np.arange(1, 41), np.clip(runs[name], 1e-3, 1e6), style, linewidth=width, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_title(f"batch size {B}")
    ax.legend()
axes[0].set_ylabel("mean squared error on all data\n(clipped at 10⁶)")
plt.show()

# %% [markdown]
# With the mean, one learning rate serves both batch sizes: both runs reach the noise floor
# of this data (the noise's variance, 0.01) within ten steps and stay there. With the sum, the same
# 0.5 acts like a learning rate of 0.5 · 8 = 4 at B = 8 and 0.5 · 128 = 64 at B = 128, and
# both runs explode. Dividing the learning rate by B repairs it, because that *is* the mean
# (the dashed line lies on the thick one).
#
# Is 0.5 a lucky choice? Sweep the learning rate from about 0.0001 to 1.5, each value twice
# the one before (0.75 · 2ᵏ), and record the loss after 40 steps, for both losses at both
# batch sizes:

# %%
sweep_lrs = 0.75 * 2.0 ** np.arange(-13, 2)  # 0.75/8192, ..., 0.75, 1.5: a factor of 2 apart
sweep = {}
with np.errstate(over="ignore", invalid="ignore"):
    for name, loss_fn in (("mean", nn.mse_loss), ("sum", mse_sum)):
        for B in (8, 128):
            sweep[name, B] = np.array([train_line(loss_fn, lr, B)[-1] for lr in sweep_lrs])


def working(name: str, B: int) -> list[float]:
    """The learning rates whose run ends within 5 times the noise floor (loss below 0.05)."""
    return [float(lr) for lr, loss in zip(sweep_lrs, sweep[name, B]) if loss < 0.05]


for name, B in sweep:
    lrs = working(name, B)
    print(f"{name:4s} B = {B:3d}: the learning rates that work run from {lrs[0]:.3g} to {lrs[-1]:.3g}")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(8, 4))
looks = {("mean", 8): ("-", "tab:blue", 5, 0.35), ("mean", 128): ("--", "tab:blue", 2, 1.0),
         ("sum", 8): ("-", "tab:red", 2, 1.0), ("sum", 128): (":", "tab:red", 2.5, 1.0)}
for (name, B), (style, color, width, alpha) in looks.items():
    ax.plot(sweep_lrs, np.clip(sweep[name, B], 1e-3, 1e6), style, color=color, linewidth=width, alpha=alpha,
            marker="o", markersize=3, label=f"{name}, B = {B}")
ax.axhline(0.05, color="tab:gray", linewidth=0.8)
ax.text(sweep_lrs[-1], 0.035, "works: below 0.05", fontsize=8, color="tab:gray", ha="right", va="top")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("learning rate")
ax.set_ylabel("loss after 40 steps (clipped at 10⁶)")
ax.set_title("The mean's good learning rates do not depend on B; the sum's shrink like 1/B")
ax.legend(loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# The two blue curves (the mean at B = 8 and at B = 128) lie on top of each other: at both
# batch sizes the learning rates from 0.0938 to 0.75 work, and 1.5 diverges. The red curves
# (the sum) are the blue curve slid to the left by a factor of B, since the sum with learning
# rate η is the mean with learning rate Bη: 0.0117 to 0.0938 works at B = 8 (the mean's range
# divided by 8), 0.000732 to 0.00586 at B = 128 (divided by 128). Every learning rate that
# works for the sum at B = 8 is 16 times too large at B = 128. That is the whole case for the
# mean: the right learning rate stops depending on how many samples you put in a batch.
# (The sum is not *worse* when its learning rate is divided by B, it is the same thing; the
# point is only that with the sum you must remember to divide.)
#
# ## What this tutorial established

# %%
# Linearity: mean of per-sample gradients = batch gradient, for any network (up to rounding).
assert all(gap < 1e-12 for gap in linearity_gap.values())
# ... at the same θ; gradients taken at different θ (online SGD) are a different sum.
assert np.max(np.abs(at_theta - batch_sum)) < 1e-12
assert np.max(np.abs(online - batch_sum)) > 1e-3
# The count behind the proof: each sample is in C(N−1, B−1) of the C(N, B) batches, for every B.
assert set(samples_per_batch) == {B_grid} and set(batches_per_sample) == {comb(N_grid - 1, B_grid - 1)}
assert all(counts_equal.values())
# Unbiasedness for every batch size 1 <= B <= N, by enumerating every batch (B = 1 is SGD).
assert all(bias[B] < 1e-12 for B in range(1, N + 1))
# The noise follows (S²/B)(N−B)/(N−1) at every B, and shrinks as B grows. (At B = N both sides
# are zero by construction: the one batch is the whole data set, so there is nothing to test.)
assert all(abs(variance[B] - predicted[B]) <= 1e-9 * spread for B in range(1, N + 1))
assert variance[1] > variance[2] > variance[N // 2] > variance[N - 1] > 0
# Sum versus mean: a factor B, and the learning rate pays for it.
assert all(np.allclose(ratio, B) for B, ratio in sum_over_mean.items())
for B in (8, 128):
    assert max(runs[f"mean, lr {LR}, B={B}"][9:]) < 0.02  # from step 10 on, near the noise floor 0.01
    assert not runs[f"sum, lr {LR}, B={B}"][-1] < 1e3  # diverged (possibly to inf or nan)
    assert np.allclose(runs[f"sum, lr {LR}/B, B={B}"], runs[f"mean, lr {LR}, B={B}"], rtol=1e-9)
# The sweep: the mean's working learning rates are the same at both batch sizes, and include 0.5;
# the sum's are the mean's divided by B, so they move by 128/8 = 16 between the two.
assert working("mean", 8) == working("mean", 128) and min(working("mean", 8)) < LR < max(working("mean", 8))
assert sweep_lrs[-1] == 1.5 and all(not sweep["mean", B][-1] < 1e3 for B in (8, 128))  # 1.5 diverges at both
for B in (8, 128):
    assert working("sum", B) == [lr / B for lr in working("mean", B)]
assert working("sum", 8) == [16 * lr for lr in working("sum", 128)]
