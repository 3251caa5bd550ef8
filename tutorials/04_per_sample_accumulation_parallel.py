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
# # 4. Per-sample gradients, gradient accumulation and data parallelism
#
# Tutorials 2 and 3 established one fact: the mini-batch gradient is the average of the
# per-sample gradients, (1/B) Σ_i ∇ℓ_i. This tutorial puts that fact to work three ways.
#
# 1. **Per-sample gradients.** The B individual gradients can be had from one batched backward
#    pass, without a loop. They tell us things the average hides: which samples pull hardest,
#    how noisy a batch gradient is, and how to bound any one sample's influence (clipping).
# 2. **Gradient accumulation.** A batch too large for memory can be processed in chunks, with
#    the gradients added up. Done right, the result is exactly the batched gradient. Done the
#    obvious way, it is wrong whenever the last chunk is shorter, a bug that affected major
#    training libraries in 2024.
# 3. **Data parallelism.** Splitting a batch across several workers is the same arithmetic
#    with shards instead of chunks, and has the same trap.
#
# We finish by measuring the memory each way of computing the gradient needs.

# %%
import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

from tinygrad_mb import Tensor, minibatch, nn, optim
from tinygrad_mb.data import make_moons
from tinygrad_mb.train import Trainer


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The largest difference between two gradients (lists of arrays, one per parameter)."""
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


# %% [markdown]
# ## 1. Per-sample gradients without a loop
#
# Take one linear layer z = h @ W + b inside a network, with the batch as rows: row i of z
# is z_i = h_i @ W + b. Sample i's loss depends on W only through its own row z_i, so by the
# chain rule
#
#     ∇_W ℓ_i = outer(h_i, ∂ℓ_i/∂z_i)        ∇_b ℓ_i = ∂ℓ_i/∂z_i.
#
# One backward pass of the **mean** loss already computes every ∂ℓ_i/∂z_i, just scaled:
# the mean hands each sample 1/B of the gradient, so z's `.grad` has row i equal to
# (1/B) ∂ℓ_i/∂z_i. Multiply by B, and one outer product per row gives every sample's weight
# gradient. (Summing those outer products over i is exactly what h.T @ dz does in the
# ordinary backward pass: the batched gradient is the sum we just refused to take.)
#
# Here it is by hand for a single linear layer with cross-entropy:

# %%
X, y = make_moons(200, noise=0.2, seed=0)
layer = nn.Linear(2, 2, rng=0)
B = len(X)

z = layer(Tensor(X))
nn.cross_entropy(z, y).backward()
dz = z.grad * B  # row i: ∂ℓ_i/∂z_i
by_hand_W = np.einsum("bi,bo->bio", X, dz)  # one outer product per sample: shape (B, 2, 2)
by_hand_b = dz  # shape (B, 2)

per_sample = minibatch.per_sample_gradients(layer, nn.cross_entropy, X, y)
print("shapes:", [g.shape for g in per_sample])
print("by hand vs per_sample_gradients:", max_difference([by_hand_W, by_hand_b], per_sample))

# %% [markdown]
# `minibatch.per_sample_gradients` does this for every layer of an MLP: one array of shape
# (B, *parameter shape) per parameter. Each slice equals the gradient of that sample alone,
# and their mean is the ordinary batch gradient:

# %%
mlp = nn.MLP([2, 16, 16, 2], activation="tanh", rng=1)
stacked = minibatch.per_sample_gradients(mlp, nn.cross_entropy, X, y)
one_at_a_time = [minibatch.batched_mean(mlp, nn.cross_entropy, X[i:i + 1], y[i:i + 1]) for i in range(B)]
loop_vs_vectorised = max(max_difference([g[i] for g in stacked], one_at_a_time[i]) for i in range(B))
mean_vs_batched = max_difference([g.mean(axis=0) for g in stacked],
                                 minibatch.batched_mean(mlp, nn.cross_entropy, X, y))
print("each sample's slice vs its own backward pass:", loop_vs_vectorised)
print("mean of the slices vs the batch gradient:    ", mean_vs_batched)

# %% [markdown]
# The formula needs samples that **do not interact**: row i of every layer must depend on
# sample i alone. A layer that mixes samples, such as batch normalisation (which subtracts the
# batch's mean from every sample), breaks it, because sample j's input then moves sample i's
# output. `per_sample_gradients` refuses such a model with an error rather than returning
# something silently wrong:

# %%
class CenterOverBatch(nn.Module):
    """Subtract the batch mean from every sample, as batch normalisation does: samples interact."""

    def forward(self, h: Tensor) -> Tensor:
        return h - h.mean(axis=0, keepdims=True)


mixing = nn.Sequential(nn.Linear(2, 4, rng=2), CenterOverBatch(), nn.Tanh(), nn.Linear(4, 2, rng=3))
try:
    minibatch.per_sample_gradients(mixing, nn.cross_entropy, X, y)
    refused = False
except TypeError as error:
    refused = True
    print("TypeError:", error)

# %% [markdown]
# ## 2. What per-sample gradients are good for
#
# **Which samples pull hardest?** Train the MLP for a few epochs, then look at the norm of each
# sample's gradient. For cross-entropy, ∂ℓ_i/∂z_i is softmax(z_i) minus the one-hot label:
# small when the model is confidently right, large when it is wrong. The samples the model
# gets wrong dominate the batch gradient.

# %%
Trainer(mlp, nn.cross_entropy, optim.SGD(mlp.parameters(), lr=0.5, momentum=0.9),
        progress=False).fit(X, y, batch_size=20, epochs=15, seed=0)
stacked = minibatch.per_sample_gradients(mlp, nn.cross_entropy, X, y)
norms = np.sqrt(sum(np.sum(g.reshape(B, -1) ** 2, axis=1) for g in stacked))
wrong = mlp(Tensor(X)).data.argmax(axis=1) != y
print(f"{wrong.sum()} of {B} samples misclassified")
print(f"mean gradient norm: correct {norms[~wrong].mean():.3f}, misclassified {norms[wrong].mean():.3f}")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(7, 3.5))
bins = np.linspace(0, norms.max(), 30)
ax.hist(norms[~wrong], bins=bins, alpha=0.7, label="classified correctly")
ax.hist(norms[wrong], bins=bins, alpha=0.7, label="misclassified")
ax.set_xlabel("norm of the sample's gradient ‖∇ℓ_i‖")
ax.set_ylabel("samples")
ax.set_title("Per-sample gradient norms on the moons data")
ax.legend()
plt.show()

# %% [markdown]
# **How noisy is a batch gradient?** With all N per-sample gradients in hand, the gradient of
# any batch is just the mean of some of their rows, so we can draw thousands of random batches
# for the price of an index. Tutorial 3 proved that for batches of M drawn without replacement
#
#     E|∇L_batch − ∇L|² = (S² / M) · (N − M) / (N − 1),    S² = (1/N) Σ_n |g_n − ∇L|².
#
# Sampling confirms it: for small M the noise falls like 1/M (a straight line of slope −1 on
# log-log axes). The factor (N − M)/(N − 1) pulls it below that line as M grows: at M = 150
# of N = 200 it is a quarter of the 1/M value. It would reach zero at M = N, where every
# batch is the whole data set; the plot stops at M = 150 because a logarithmic axis cannot
# show zero.

# %%
flat = np.concatenate([g.reshape(B, -1) for g in stacked], axis=1)  # (N, number of parameters)
full = flat.mean(axis=0)
spread = np.mean(np.sum((flat - full) ** 2, axis=1))
rng = np.random.default_rng(0)
batch_sizes = [1, 2, 5, 10, 20, 50, 100, 150]
measured, predicted = [], []
for M in batch_sizes:
    # 4000 random batches of M distinct samples, as rows of a 0/1 membership matrix.
    chosen = np.argsort(rng.random((4000, B)), axis=1)[:, :M]
    membership = np.zeros((4000, B))
    np.put_along_axis(membership, chosen, 1.0, axis=1)
    batch_gradients = membership @ flat / M
    measured.append(np.mean(np.sum((batch_gradients - full) ** 2, axis=1)))
    predicted.append(spread / M * (B - M) / (B - 1))
    print(f"M = {M:3d}: sampled {measured[-1]:.3e}, formula {predicted[-1]:.3e}")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(batch_sizes, predicted, "-", color="tab:gray", label="(S²/M)(N−M)/(N−1)")
ax.loglog(batch_sizes, measured, "o", color="tab:blue", label="4000 random batches per size")
ax.set_xlabel("batch size M")
ax.set_ylabel("E |batch gradient − full gradient|²")
ax.set_title(f"Gradient noise against batch size (N = {B})")
ax.legend()
plt.show()

# %% [markdown]
# **Bounding each sample's influence: clipping.** Differentially private SGD must guarantee
# that no single sample moves the model by more than a fixed amount. It clips every sample's
# gradient to norm at most c *before* averaging; then any one sample contributes at most c/B
# to the average. Clipping the averaged gradient would not do: one sample with a huge
# gradient could still dominate it. Only per-sample gradients make per-sample clipping
# possible. Here is how many samples a threshold at the median norm would clip, and by how
# much. (Exercise 4 asks you to write the clipped average as a strategy of its own.)

# %%
c = float(np.median(norms))
scale = np.minimum(1.0, c / norms)
print(f"c = {c:.3f}: {np.sum(scale < 1)} of {B} samples clipped; the strongest is scaled by {scale.min():.3f}")

# The clipped average: scale sample i's gradient (every parameter) by scale_i, then average.
contributions = [scale.reshape(B, *[1] * (g.ndim - 1)) * g / B for g in stacked]  # sample i's share
clipped_average = [share.sum(axis=0) for share in contributions]
plain_average = [g.mean(axis=0) for g in stacked]
contribution_norms = np.sqrt(sum(np.sum(share.reshape(B, -1) ** 2, axis=1) for share in contributions))


def norm(gradient: list[np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum(g ** 2) for g in gradient)))


print(f"largest single contribution to the average: before {norms.max() / B:.4f}, "
      f"after {contribution_norms.max():.4f} (at most c/B = {c / B:.4f})")
print(f"norm of the average: plain {norm(plain_average):.4f}, clipped {norm(clipped_average):.4f} (at most c)")

# %% [markdown]
# ## 3. Gradient accumulation, and the short-last-chunk bug
#
# When a batch of B samples does not fit in memory, split it into micro-batches (chunks) of
# at most m samples, backpropagate each chunk, and let `.grad` add up the results. The
# question is what each chunk should backpropagate.
#
# The batch gradient weights every sample by 1/B. A chunk c computes its mean loss
# (1/|c|) Σ_{i∈c} ℓ_i. To give each of its samples the weight 1/B, scale that mean by |c|/B
# before the backward pass:
#
#     correct:   Σ_c (|c|/B) · mean_{i∈c} ℓ_i  =  (1/B) Σ_i ℓ_i.
#
# The obvious alternative, averaging the K chunk means, weights a sample in chunk c by
# 1/(K·|c|):
#
#     naive:     (1/K) Σ_c mean_{i∈c} ℓ_i.
#
# The two agree when every chunk has the same size. With B = 10 and m = 4 the chunks have 4, 4
# and 2 samples, and the naive rule gives each sample of the short chunk twice the weight of
# the others:

# %%
B_acc, m = 10, 4
chunk_sizes = [min(m, B_acc - start) for start in range(0, B_acc, m)]
K = len(chunk_sizes)
correct_weights = np.full(B_acc, 1 / B_acc)
naive_weights = np.concatenate([np.full(size, 1 / (K * size)) for size in chunk_sizes])
print("chunk sizes:", chunk_sizes)
print("weight per sample, correct:", np.round(correct_weights, 4))
print("weight per sample, naive:  ", np.round(naive_weights, 4))

# %%
rng = np.random.default_rng(4)
X10 = rng.normal(size=(B_acc, 2))
y10 = rng.integers(0, 2, size=B_acc)
net = nn.MLP([2, 8, 2], activation="tanh", rng=4)

batched = minibatch.batched_mean(net, nn.cross_entropy, X10, y10)
accumulated = minibatch.accumulated(net, nn.cross_entropy, X10, y10, micro_batch=m)
naive = minibatch.naive_accumulated(net, nn.cross_entropy, X10, y10, micro_batch=m)
per_sample_10 = minibatch.per_sample_gradients(net, nn.cross_entropy, X10, y10)
naive_by_formula = [np.tensordot(naive_weights, g, axes=1) for g in per_sample_10]
print("accumulated vs batched:        ", max_difference(accumulated, batched))
print("naive vs batched:              ", max_difference(naive, batched))
print("naive vs its weights 1/(K|c|): ", max_difference(naive, naive_by_formula))

# %% [markdown]
# The naive rule is exactly the reweighted average its formula predicts, and it is not the
# batch gradient. When the chunks come out equal (B = 12, m = 4) the bug hides, which is how
# it can go unnoticed for a long time:

# %%
X12 = rng.normal(size=(12, 2))
y12 = rng.integers(0, 2, size=12)
naive_equal_chunks = max_difference(minibatch.naive_accumulated(net, nn.cross_entropy, X12, y12, micro_batch=4),
                                    minibatch.batched_mean(net, nn.cross_entropy, X12, y12))
print("naive vs batched with equal chunks:", naive_equal_chunks)

# %% [markdown]
# The same trap appears whenever the unit being averaged is not the unit being chunked. In a
# language model, for instance, the loss is a mean over *tokens*, and micro-batches of equal
# numbers of sequences can hold very different numbers of tokens: averaging per-chunk means
# then misweights the tokens even when every chunk holds the same number of sequences.
#
# ## 4. Data parallelism: shards instead of chunks
#
# Data-parallel training gives each of K workers a shard of the batch. Each worker computes
# the gradient of its own shard's mean loss, and the workers then combine their gradients
# (an "all-reduce"). This is accumulation again, done side by side instead of one after the
# other, with the same right and wrong answers: weight shard k by n_k/B, or, if every worker
# simply averages, make sure all the shards have the same size.

# %%
shards = np.split(np.arange(B_acc), [5, 8])  # three workers with 5, 3 and 2 samples
worker_gradients = [minibatch.batched_mean(net, nn.cross_entropy, X10[s], y10[s]) for s in shards]
weighted = [sum(len(s) / B_acc * g[k] for s, g in zip(shards, worker_gradients)) for k in range(len(batched))]
plain_mean = [sum(g[k] for g in worker_gradients) / len(shards) for k in range(len(batched))]
print("shard sizes:", [len(s) for s in shards])
print("weighted by n_k/B vs batched:", max_difference(weighted, batched))
print("plain mean of workers vs batched:", max_difference(plain_mean, batched))

# %% [markdown]
# ## 5. Memory: per-sample, batched, accumulated
#
# Each strategy trades memory for speed differently, and the difference is easy to measure:
# numpy reports its allocations to Python's `tracemalloc`, so we can record the peak memory
# a call allocates.
#
# - **batched mean** keeps the activations of all B samples for the backward pass: memory grows
#   with B. In exchange it is one large matrix product per layer, the fastest way to compute.
# - **per-sample average** holds one sample's graph at a time: memory stays flat, whatever B is,
#   but B small backward passes are slow.
# - **accumulated** with micro-batches of m holds one chunk: flat once B exceeds m. This is why
#   accumulation exists.
# - **per-sample gradients** keep B copies of every parameter's gradient: memory grows with B
#   times the model size. Their information has a price.

# %%
def peak_bytes(strategy, *args) -> int:
    """The peak memory allocated while ``strategy(*args)`` runs, above what was there before."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    strategy(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - before


rng = np.random.default_rng(5)
wide = nn.MLP([32, 64, 64, 10], activation="tanh", rng=5)
memory_batch_sizes = [8, 32, 128, 512]
memory = {name: [] for name in ("batched mean", "per-sample average", "accumulated (m = 32)", "per-sample gradients")}
for size in memory_batch_sizes:
    Xm = rng.normal(size=(size, 32))
    ym = rng.integers(0, 10, size=size)
    memory["batched mean"].append(peak_bytes(minibatch.batched_mean, wide, nn.cross_entropy, Xm, ym))
    memory["per-sample average"].append(peak_bytes(minibatch.per_sample_average, wide, nn.cross_entropy, Xm, ym))
    memory["accumulated (m = 32)"].append(
        peak_bytes(minibatch.accumulated, wide, nn.cross_entropy, Xm, ym, 32))
    memory["per-sample gradients"].append(
        peak_bytes(minibatch.per_sample_gradients, wide, nn.cross_entropy, Xm, ym))
for name, values in memory.items():
    print(f"{name:22s}", "  ".join(f"B={s}: {v / 1e6:6.2f} MB" for s, v in zip(memory_batch_sizes, values)))

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(7, 4))
for name, values in memory.items():
    ax.loglog(memory_batch_sizes, np.array(values) / 1e6, "o-", label=name)
ax.set_xlabel("batch size B")
ax.set_ylabel("peak memory allocated (MB)")
ax.set_title("Memory of one gradient computation, MLP [32, 64, 64, 10]")
ax.legend()
plt.show()

# %% [markdown]
# ## What this tutorial established

# %%
# Per-sample gradients: the outer-product formula, equal to one backward pass per sample,
# averaging to the batch gradient; refused (not silently wrong) when samples interact.
assert max_difference([by_hand_W, by_hand_b], per_sample) < 1e-12
assert loop_vs_vectorised < 1e-12 and mean_vs_batched < 1e-12
assert refused
# Misclassified samples pull harder; batch-gradient noise follows (S²/M)(N−M)/(N−1).
assert norms[wrong].mean() > 2 * norms[~wrong].mean()
assert all(abs(s - p) < 0.1 * p for s, p in zip(measured, predicted))
# Clipping: no sample contributes more than c/B, so the clipped average has norm at most c;
# and since some norms exceed c, it is not the plain mean.
assert contribution_norms.max() <= c / B * (1 + 1e-12)
assert norm(clipped_average) <= c * (1 + 1e-12)
assert np.any(norms > c) and max_difference(clipped_average, plain_average) > 1e-3
# Accumulation: weighting chunks by |c|/B is exact; the mean of chunk means is not, when a chunk is short.
assert max_difference(accumulated, batched) < 1e-12
assert max_difference(naive, batched) > 1e-3 and max_difference(naive, naive_by_formula) < 1e-12
assert naive_equal_chunks < 1e-12
# Data parallelism is the same arithmetic.
assert max_difference(weighted, batched) < 1e-12 and max_difference(plain_mean, batched) > 1e-3
# Memory: batched grows with B; per-sample and accumulated stay flat; per-sample gradients are
# the largest and grow fastest (the largest ratio from B = 8 to B = 512, 64 times the samples).
assert memory["batched mean"][-1] > 10 * memory["batched mean"][0]
assert memory["per-sample average"][-1] < 1.5 * memory["per-sample average"][0]
assert memory["accumulated (m = 32)"][-1] < 1.5 * memory["accumulated (m = 32)"][1]
assert memory["per-sample gradients"][-1] > memory["batched mean"][-1]
growth = {name: values[-1] / values[0] for name, values in memory.items()}
assert all(growth["per-sample gradients"] > 2 * g for name, g in growth.items() if name != "per-sample gradients")
