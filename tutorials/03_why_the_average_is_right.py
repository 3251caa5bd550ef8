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
# Mini-batch gradient descent takes a batch of B samples and steps along the gradient of their
# mean loss
#
#     L_B(θ) = (1/B) Σ_i ℓ_i(θ),      where ℓ_i(θ) = ℓ(f_θ(x_i), y_i).
#
# Three questions deserve exact answers, and this tutorial answers each with a proof and a
# computation that checks it:
#
# 1. Is the gradient of the mean loss the mean of the per-sample gradients, even for a very
#    nonlinear network? (Yes, always.)
# 2. A batch is a random part of the data. Is its gradient right *on average*? (Yes, exactly,
#    for every batch size from 1 to N.)
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
# all N samples; it sees the gradient of one random batch. Suppose a batch of M samples is
# drawn uniformly *without replacement*: each of the C(N, M) subsets is equally likely. Then
#
#     E[∇L_batch] = ∇L       exactly, for every 1 ≤ M ≤ N.
#
# **Proof by counting.** Write g_n = ∇ℓ_n(θ). The expectation is the average over all
# subsets S of (1/M) Σ_{n∈S} g_n. A fixed sample n belongs to C(N−1, M−1) of the C(N, M)
# subsets, a fraction M/N. So
#
#     E[∇L_batch] = (1/M) · (M/N) · Σ_n g_n = (1/N) Σ_n g_n = ∇L.
#
# **Why we may swap the gradient and the expectation.** The expectation is a *finite* sum
# with fixed weights 1/C(N, M), and the gradient of a finite sum is the sum of the gradients
# (section 1). So E[∇L_batch] = ∇E[L_batch] needs no conditions at all. (Over a continuous
# data distribution the expectation is an integral, and exchanging it with the gradient needs
# a condition such as the gradient being bounded by an integrable function; for a finite data
# set, nothing.)
#
# With N = 8 samples we can simply enumerate every possible batch, for every batch size.

# %%
rng = np.random.default_rng(3)
N = 8
X_all = rng.normal(size=(N, 3))
y_all = rng.normal(size=(N, 1))
model = nn.MLP([3, 8, 1], activation="tanh", rng=4)

full = gradient(model, nn.mse_loss, X_all, y_all)
per_sample_grads = np.array([gradient(model, nn.mse_loss, X_all[n:n + 1], y_all[n:n + 1]) for n in range(N)])
spread = np.mean(np.sum((per_sample_grads - full) ** 2, axis=1))  # S² = (1/N) Σ_n |g_n − ∇L|²

bias, variance, predicted = {}, {}, {}
for M in range(1, N + 1):
    batch_grads = np.array([gradient(model, nn.mse_loss, X_all[list(S)], y_all[list(S)])
                            for S in combinations(range(N), M)])
    assert len(batch_grads) == comb(N, M)
    bias[M] = np.max(np.abs(batch_grads.mean(axis=0) - full))
    variance[M] = np.mean(np.sum((batch_grads - full) ** 2, axis=1))
    predicted[M] = spread / M * (N - M) / (N - 1)
    print(f"M = {M}: {comb(N, M):3d} batches, |E[batch gradient] - full gradient| = {bias[M]:.1e}, "
          f"E|batch gradient - full gradient|^2 = {variance[M]:.5f}")

# %% [markdown]
# The average over all batches is the full gradient for every M, up to rounding. The batch
# gradient is unbiased; what the batch size changes is the **noise**. For sampling without
# replacement the expected squared deviation is
#
#     E|∇L_batch − ∇L|² = (S² / M) · (N − M) / (N − 1),     S² = (1/N) Σ_n |g_n − ∇L|²,
#
# the familiar 1/M of averaging, times a "finite population correction" that reaches zero at
# M = N, where the only batch is the whole data set. The enumeration agrees with the formula:

# %% tags=["plot"]
Ms = np.arange(1, N + 1)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(Ms, [predicted[M] for M in Ms], "-", color="tab:gray", label="(S²/M)(N−M)/(N−1)")
ax.plot(Ms, [variance[M] for M in Ms], "o", color="tab:blue", label="enumerated over all batches")
ax.set_xlabel("batch size M")
ax.set_ylabel("E |batch gradient − full gradient|²")
ax.set_title(f"Batch gradients are unbiased; their noise shrinks with M (N = {N})")
ax.legend()
plt.show()

# %% [markdown]
# **M = 1 is classic stochastic gradient descent**: each step uses one sample's gradient.
# The counting proof covers it too (a sample is picked with probability 1/N), so even one
# sample at a time points the right way on average, with the largest noise, S². At the other
# end, M = N is full-batch gradient descent, with no noise at all.
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
# Now train a line with the same learning rate, 0.1, at two batch sizes, once with the mean
# and once with the sum. The third run uses the sum with the learning rate divided by B,
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


runs = {}
with np.errstate(over="ignore", invalid="ignore"):
    for B in (8, 128):
        runs[f"mean, lr 0.1, B={B}"] = train_line(nn.mse_loss, 0.1, B)
        runs[f"sum, lr 0.1, B={B}"] = train_line(mse_sum, 0.1, B)
        runs[f"sum, lr 0.1/B, B={B}"] = train_line(mse_sum, 0.1 / B, B)
for name, losses in runs.items():
    print(f"{name:22s} loss after 40 steps: {losses[-1]:.3g}")

# %% tags=["plot"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, B in zip(axes, (8, 128)):
    for name, style in ((f"mean, lr 0.1, B={B}", "-"), (f"sum, lr 0.1/B, B={B}", "--"),
                        (f"sum, lr 0.1, B={B}", ":")):
        ax.plot(np.arange(1, 41), np.clip(runs[name], 1e-3, 1e6), style, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_title(f"batch size {B}")
    ax.legend()
axes[0].set_ylabel("mean squared error on all data (clipped at 10⁶)")
plt.show()

# %% [markdown]
# With the mean, one learning rate serves both batch sizes. With the sum, the same learning
# rate is 8 times larger in effect at B = 8, where this easy problem still converges, and
# 128 times larger at B = 128, where every step overshoots further and the loss explodes.
# Dividing the learning rate by B repairs it, because that *is* the mean.
#
# ## What this tutorial established

# %%
# Linearity: mean of per-sample gradients = batch gradient, for any network (up to rounding).
assert all(gap < 1e-12 for gap in linearity_gap.values())
# ... at the same θ; gradients taken at different θ (online SGD) are a different sum.
assert np.max(np.abs(at_theta - batch_sum)) < 1e-12
assert np.max(np.abs(online - batch_sum)) > 1e-3
# Unbiasedness for every batch size 1 <= M <= N, by enumerating every batch (M = 1 is SGD).
assert all(bias[M] < 1e-12 for M in range(1, N + 1))
# The noise follows (S²/M)(N−M)/(N−1) and vanishes at M = N.
assert all(abs(variance[M] - predicted[M]) <= 1e-9 * spread for M in range(1, N + 1))
assert variance[1] > variance[2] > variance[N // 2] > variance[N - 1] > 0
assert predicted[N] == 0.0  # the factor (N − M)/(N − 1) is exactly zero at M = N
# Sanity check of the enumeration, not evidence for the formula: at M = N the one batch is the
# whole data set, so its gradient is the full gradient computed a second time, the same way.
assert variance[N] < 1e-25
# Sum versus mean: a factor B, and the learning rate pays for it.
assert all(np.allclose(ratio, B) for B, ratio in sum_over_mean.items())
assert runs["mean, lr 0.1, B=128"][-1] < 0.05 and runs["mean, lr 0.1, B=8"][-1] < 0.05
assert not runs["sum, lr 0.1, B=128"][-1] < 1e3  # diverged (possibly to inf or nan)
for B in (8, 128):
    assert np.allclose(runs[f"sum, lr 0.1/B, B={B}"], runs[f"mean, lr 0.1, B={B}"], rtol=1e-9)
