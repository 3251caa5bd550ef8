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
# (Notation, as in every tutorial: B is the number of samples in a batch, N the number in the
# whole data set. The founding question and its answers write M for the batch size.)
#
# 1. **Per-sample gradients.** The B individual gradients can be had from one batched backward
#    pass, without a loop. They tell us things the average hides: which samples pull hardest,
#    how noisy a batch gradient is, and how to bound any one sample's influence (clipping, the
#    first half of differentially private SGD; the second half is noise).
# 2. **Gradient accumulation.** A batch too large for memory can be processed in chunks, with
#    the gradients added up. Done right, the result is exactly the batched gradient. Done the
#    obvious way, averaging the chunks' mean losses, it is wrong whenever the chunks hold
#    different amounts of data: a short last chunk, or, when the loss is a mean over tokens,
#    chunks with different numbers of tokens. That second form was found in 2024 in the
#    gradient accumulation of widely used training libraries.
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


def norm(gradient: list[np.ndarray]) -> float:
    """The Euclidean norm of a whole gradient, all parameters together."""
    return float(np.sqrt(sum(np.sum(g ** 2) for g in gradient)))


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
# The data set is N = 200 points of the two-moons problem, and in sections 1 and 2 the batch
# is the whole data set, B = N. Here is the formula by hand for a single linear layer with
# cross-entropy:

# %%
X, y = make_moons(200, noise=0.2, seed=0)
N = len(X)  # samples in the data set
B = N  # sections 1 and 2 take the whole data set as one batch
layer = nn.Linear(2, 2, rng=0)

z = layer(Tensor(X))
nn.cross_entropy(z, y).backward()
dz = z.grad * B  # row i: ∂ℓ_i/∂z_i
by_hand_W = np.einsum("bi,bo->bio", X, dz)  # one outer product per sample: shape (B, 2, 2)
by_hand_b = dz  # shape (B, 2)

per_sample = minibatch.per_sample_gradients(layer, nn.cross_entropy, X, y)
print(f"N = B = {B}")
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
# **How noisy is a batch gradient?** With the per-sample gradients of all N samples in hand,
# the gradient of any batch is just the mean of some of their rows, so we can draw thousands
# of random batches for the price of an index. Tutorial 3 checked, by enumerating every
# batch of a small data set, that for batches of B samples drawn without replacement
#
#     E|∇L_batch − ∇L|² = (S² / B) · (N − B) / (N − 1),    S² = (1/N) Σ_n |g_n − ∇L|².
#
# Sampling confirms it: for small B the noise falls like 1/B (a straight line of slope −1 on
# log-log axes). The factor (N − B)/(N − 1) pulls it below that line as B grows: at B = 150
# of N = 200 it is about a quarter (printed below). It would reach zero at B = N, where every
# batch is the whole data set; the plot stops at B = 150 because a logarithmic axis cannot
# show zero.

# %%
flat = np.concatenate([g.reshape(N, -1) for g in stacked], axis=1)  # (N, number of parameters)
full = flat.mean(axis=0)
spread = np.mean(np.sum((flat - full) ** 2, axis=1))
rng = np.random.default_rng(0)
batch_sizes = [1, 2, 5, 10, 20, 50, 100, 150]
measured, predicted = [], []
for size in batch_sizes:
    # 4000 random batches of `size` distinct samples, as rows of a 0/1 membership matrix.
    chosen = np.argsort(rng.random((4000, N)), axis=1)[:, :size]
    membership = np.zeros((4000, N))
    np.put_along_axis(membership, chosen, 1.0, axis=1)
    batch_gradients = membership @ flat / size
    measured.append(np.mean(np.sum((batch_gradients - full) ** 2, axis=1)))
    predicted.append(spread / size * (N - size) / (N - 1))
    print(f"B = {size:3d}: sampled {measured[-1]:.3e}, formula {predicted[-1]:.3e}")
print(f"the factor (N − B)/(N − 1) at B = 150: {(N - 150) / (N - 1):.3f}")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(batch_sizes, predicted, "-", color="tab:gray", label="(S²/B)(N−B)/(N−1)")
ax.loglog(batch_sizes, measured, "o", color="tab:blue", label="4000 random batches per size")
ax.set_xlabel("batch size B")
ax.set_ylabel("E |batch gradient − full gradient|²")
ax.set_title(f"Gradient noise against batch size (N = {N})")
ax.legend()
plt.show()

# %% [markdown]
# **Bounding each sample's influence: differentially private SGD.** DP-SGD (Abadi et al.,
# 2016) trains a model that reveals little about any one training sample. It changes each
# step in two ways, and both are needed:
#
# 1. **Clip** every sample's gradient to norm at most C, then average:
#    (1/B) Σ_i min(1, C/‖∇ℓ_i‖) ∇ℓ_i. Now no sample moves the average by more than C/B.
#    Clipping the *averaged* gradient would not do: one sample with a huge gradient could
#    still dominate it. Only per-sample norms make per-sample clipping possible.
# 2. **Add Gaussian noise** of standard deviation σ·C/B to every coordinate of the clipped
#    mean: σ (the noise multiplier) times the most any one sample can contribute.
#
# Clipping alone gives **no privacy**: the clipped mean is still an exact function of the
# data, from which a sample's (bounded) contribution can be read. The noise is what hides
# whether any one sample was in the batch. How much privacy a whole training run then has
# (the (ε, δ) of differential privacy) follows from σ, the sampling rate B/N and the number
# of steps, computed by a "privacy accountant"; that is beyond this tutorial.
#
# `minibatch.clipped_mean(model, loss_fn, X, y, max_norm=C)` computes step 1 **without
# per-sample gradients**. `minibatch.per_sample_grad_norms` gets every ‖∇ℓ_i‖ from one
# batched backward pass (the norm of an outer product factorises:
# ‖outer(h_i, g_i)‖ = ‖h_i‖·‖g_i‖), and scaling sample i's gradient by a factor is scaling its
# row of ∂ℓ/∂z, so each weight's clipped gradient is still one matrix product. Check it
# against clipping the per-sample gradients we already have, with C at the median norm:

# %%
C = float(np.median(norms))
fast_norms = minibatch.per_sample_grad_norms(mlp, nn.cross_entropy, X, y)
clipped = minibatch.clipped_mean(mlp, nn.cross_entropy, X, y, max_norm=C)
factors = np.minimum(1.0, C / norms)  # min(1, C/‖∇ℓ_i‖), one per sample
clipped_by_hand = [np.tensordot(factors, g, axes=1) / B for g in stacked]  # (1/B) Σ_i factor_i ∇ℓ_i
print(f"C = {C:.3f}: {np.sum(factors < 1)} of {B} samples clipped; the strongest is scaled by {factors.min():.3f}")
print("per_sample_grad_norms vs the norms of the per-sample gradients:", float(np.max(np.abs(fast_norms - norms))))
print("clipped_mean vs clipping the per-sample gradients:             ", max_difference(clipped, clipped_by_hand))

contribution_norms = factors * norms / B  # the norm of sample i's share of the clipped mean
plain_average = [g.mean(axis=0) for g in stacked]
print(f"largest single contribution to the average: before {norms.max() / B:.4f}, "
      f"after {contribution_norms.max():.4f} (at most C/B = {C / B:.4f})")
print(f"norm of the average: plain {norm(plain_average):.4f}, clipped {norm(clipped):.4f} (at most C)")

# %% [markdown]
# Step 2, the noise, with σ = 1:

# %%
sigma = 1.0  # the noise multiplier
noise_rng = np.random.default_rng(6)
noise = [noise_rng.normal(0.0, sigma * C / B, size=g.shape) for g in clipped]
private_gradient = [g + n for g, n in zip(clipped, noise)]  # what DP-SGD steps along
noise_values = np.concatenate([n.ravel() for n in noise])
print(f"noise per coordinate: σC/B = {sigma * C / B:.2e} (measured standard deviation {noise_values.std():.2e}, "
      f"{noise_values.size} coordinates)")
print(f"norm of the noise {norm(noise):.4f}, of the clipped mean {norm(clipped):.4f}, "
      f"of their sum {norm(private_gradient):.4f}")

# %% [markdown]
# The noise is comparable in size to the clipped gradient itself here (compare the norms):
# privacy is paid for in accuracy. Its scale σC/B falls as the batch grows, while the clipped
# mean, an average, does not shrink with B: one reason DP-SGD is run with large batches.
# (Exercise 4 asks you to write the clipped average yourself, from per-sample gradients.)
#
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
# the others. Both sets of weights add up to 1: the naive gradient is not a scaled or noisier
# batch gradient but the gradient of a *different* weighted average of the losses.

# %%
B_acc, m = 10, 4
chunk_sizes = [min(m, B_acc - start) for start in range(0, B_acc, m)]
K = len(chunk_sizes)
correct_weights = np.full(B_acc, 1 / B_acc)
naive_weights = np.concatenate([np.full(size, 1 / (K * size)) for size in chunk_sizes])
print("chunk sizes:", chunk_sizes)
print(f"sum of the weights: correct {correct_weights.sum():.3f}, naive {naive_weights.sum():.3f}; "
      f"naive weight of a short-chunk sample / of the others: {naive_weights[-1] / naive_weights[0]:.1f}")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(7, 3.2))
samples = np.arange(B_acc)
ax.bar(samples - 0.2, correct_weights, width=0.4, label="correct: 1/B")
ax.bar(samples + 0.2, naive_weights, width=0.4, label="naive: 1/(K·|c|)")
for edge in np.cumsum(chunk_sizes)[:-1]:
    ax.axvline(edge - 0.5, color="gray", linestyle=":")
ax.set_xticks(samples)
ax.set_xlabel(f"sample i (chunks of {', '.join(map(str, chunk_sizes))})")
ax.set_ylabel("weight of sample i")
ax.set_title(f"Accumulating B = {B_acc} samples in chunks of at most m = {m}")
ax.legend(loc="upper left")
plt.show()

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
# ### The token form of the bug, found in 2024
#
# The trap appears whenever the unit being averaged is not the unit being chunked. A language
# model's loss is a mean over **tokens**. A batch holds B sequences padded to a common length
# T; a mask marks each real token (1) and each padding position (0); the batch loss is the
# mean over the real tokens of the whole batch:
#
#     L = Σ_{s,t} mask_st · ℓ_st / Σ_{s,t} mask_st.
#
# Accumulated over micro-batches of sequences, micro-batch c must backpropagate its
# Σ mask·ℓ divided by the **total** number of real tokens in the whole batch. In 2024 it was
# found that the gradient accumulation of several widely used training libraries divided each
# micro-batch by **its own** token count n_c (it took the micro-batch's mean token loss) and
# then averaged over the K micro-batches, so a token of micro-batch c weighed 1/(K·n_c)
# instead of 1/Σ_c n_c. Libraries including Hugging Face's `transformers` and PyTorch's
# `torchtune` then changed theirs to divide by the total count.
#
# Notice what this bug does not need: a short last chunk. Every micro-batch below holds the
# same number of sequences (two), yet their token counts differ, because the sequences have
# different lengths. The example: six sequences of at most T = 8 tokens, each token a vector
# of three features, and a small MLP that gives every token a score for each of four classes,
# a stand-in for a language model predicting the next token. (Exercise 8 asks you to write the
# correct accumulation for any micro-batch size, including micro-batches with no real token.)

# %%
lengths = np.array([8, 7, 3, 2, 6, 4])  # real tokens in each sequence
B_seq, T, F, V = len(lengths), 8, 3, 4  # sequences, positions, features per token, classes
token_rng = np.random.default_rng(7)
X_tok = token_rng.normal(size=(B_seq, T, F))
labels = token_rng.integers(0, V, size=(B_seq, T))
mask = (np.arange(T) < lengths[:, None]).astype(float)  # 1.0 for a real token, 0.0 for padding
lm = nn.MLP([F, 8, V], activation="tanh", rng=7)


def token_losses(rows: np.ndarray) -> Tensor:
    """Each token's cross-entropy loss ℓ_st for the sequences `rows`, shape (n, T), padding included."""
    logits = lm(Tensor(X_tok[rows]))  # (n, T, V): the MLP works token by token
    n = len(rows)
    per_token = nn.cross_entropy(logits.reshape(n * T, V), labels[rows].reshape(n * T), reduction="none")
    return per_token.reshape(n, T)


def token_gradient(micro_batches: list[np.ndarray], divide_by: str) -> list[np.ndarray]:
    """Accumulate Σ mask·ℓ over the micro-batches, each divided by the batch's token count or its own."""
    lm.zero_grad()
    total_tokens = mask.sum()
    for rows in micro_batches:
        summed = (token_losses(rows) * mask[rows]).sum()  # Σ mask·ℓ over this micro-batch's real tokens
        if divide_by == "total tokens":  # right: every real token weighs 1 / (all real tokens)
            loss = summed / total_tokens
        else:  # "own tokens", the 2024 bug: this micro-batch's mean token loss, averaged over the K
            loss = summed / mask[rows].sum() / len(micro_batches)
        loss.backward()
    return [p.grad.copy() for p in lm.parameters()]


lm.zero_grad()
everything = np.arange(B_seq)
((token_losses(everything) * mask).sum() / mask.sum()).backward()  # the definition, in one pass
one_pass = [p.grad.copy() for p in lm.parameters()]

arrangements = {  # the same six sequences, paired two ways
    "uneven": [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])],  # lengths (8, 7), (3, 2), (6, 4)
    "even": [np.array([0, 3]), np.array([1, 2]), np.array([4, 5])],  # lengths (8, 2), (7, 3), (6, 4)
}
token_counts, right_vs_one_pass, own_vs_one_pass = {}, {}, {}
for name, micro_batches in arrangements.items():
    token_counts[name] = [int(mask[rows].sum()) for rows in micro_batches]
    right_vs_one_pass[name] = max_difference(token_gradient(micro_batches, "total tokens"), one_pass)
    own_vs_one_pass[name] = max_difference(token_gradient(micro_batches, "own tokens"), one_pass)
    print(f"{name:6s} real tokens per micro-batch {token_counts[name]}: vs one pass, divided by the total "
          f"{right_vs_one_pass[name]:.1e}, each by its own {own_vs_one_pass[name]:.1e}")

# %% [markdown]
# Dividing by the total token count reproduces the one-pass gradient whatever the pairing.
# Dividing each micro-batch by its own count is wrong when the micro-batches hold 15, 5 and 10
# tokens, and happens to be right when the same sequences are paired into 10, 10 and 10: the
# bug hides whenever the counts come out equal. Here is where its weight goes, token by token,
# in the uneven pairing; and a check that its gradient is exactly the weighted sum those
# weights describe:

# %%
counts = token_counts["uneven"]
K_tok, total_tokens = len(counts), sum(counts)
right_token_weights = np.full(total_tokens, 1 / total_tokens)
own_token_weights = np.concatenate([np.full(n, 1 / (K_tok * n)) for n in counts])
print(f"per token: right 1/{total_tokens} = {1 / total_tokens:.4f}; own count: "
      + ", ".join(f"1/(K·{n}) = {1 / (K_tok * n):.4f}" for n in counts))

# Each micro-batch's summed-loss gradient ∇ Σ_{(s,t)∈c} mask·ℓ, then the weighted sum the bars describe.
summed_gradients = [[g * total_tokens for g in token_gradient([rows], "total tokens")]
                    for rows in arrangements["uneven"]]
own_by_formula = [sum(g[k] / (K_tok * n) for g, n in zip(summed_gradients, counts)) for k in range(len(one_pass))]
own_vs_formula = max_difference(token_gradient(arrangements["uneven"], "own tokens"), own_by_formula)
print("own-count accumulation vs the weights 1/(K·n_c):", own_vs_formula)

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(8, 3.2))
tokens = np.arange(total_tokens)
ax.bar(tokens - 0.2, right_token_weights, width=0.4, label="divided by the batch's tokens: 1/Σn_c")
ax.bar(tokens + 0.2, own_token_weights, width=0.4, label="divided by its own tokens: 1/(K·n_c)")
for edge in np.cumsum(counts)[:-1]:
    ax.axvline(edge - 0.5, color="gray", linestyle=":")
ax.set_xlabel(f"real token (micro-batches of two sequences, holding {', '.join(map(str, counts))} tokens)")
ax.set_ylabel("weight of the token")
ax.set_title("Token-mean loss accumulated over micro-batches")
ax.legend(loc="upper left", fontsize=8)
plt.show()

# %% [markdown]
# ## 4. Data parallelism: shards instead of chunks
#
# Data-parallel training gives each of K workers a shard of the batch, of n_k samples; the
# shards need not be equal. Each worker backpropagates its shard, and the workers then combine
# their gradients with an "all-reduce", a sum over the workers that every worker receives.
# This is accumulation again, done side by side instead of one after the other, with the same
# right and wrong answers. The right one needs no knowledge of B in advance: each worker
# contributes the **sum** of its samples' gradients (n_k times its shard's mean gradient) and
# its count n_k; one all-reduce adds both up; every worker divides the sum by the count.
# Averaging the workers' mean gradients instead weights each worker equally, whatever its
# shard size.

# %%
shards = np.split(np.arange(B_acc), [5, 8])  # three workers with 5, 3 and 2 samples
worker_means = [minibatch.batched_mean(net, nn.cross_entropy, X10[s], y10[s]) for s in shards]
gradient_sums = [sum(len(s) * g[k] for s, g in zip(shards, worker_means)) for k in range(len(batched))]
sample_count = sum(len(s) for s in shards)  # all-reduced along with the sums
all_reduced = [g / sample_count for g in gradient_sums]
plain_mean = [sum(g[k] for g in worker_means) / len(shards) for k in range(len(batched))]
print("shard sizes:", [len(s) for s in shards])
print("sum of gradients / sum of counts vs batched:", max_difference(all_reduced, batched))
print("plain mean of the workers' means vs batched:", max_difference(plain_mean, batched))

# %% [markdown]
# Here the workers are simulated in one process. Data-parallel training over real processes
# is in `tinygrad_mb.distributed`: `data_parallel_gradient` all-reduces the gradient sums and
# the counts in one MPI call, and `weighting="equal"` keeps the plain mean of the workers'
# means, wrong on purpose, for comparison. With the `distributed` extra installed
# (`pip install 'tinygrad-mb[distributed]'`), run its demonstration on three processes from a
# terminal:
#
#     mpiexec -n 3 python -m tinygrad_mb.distributed --demo
#
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
# Misclassified samples pull harder; batch-gradient noise follows (S²/B)(N−B)/(N−1).
assert norms[wrong].mean() > 2 * norms[~wrong].mean()
assert all(abs(s - p) < 0.1 * p for s, p in zip(measured, predicted))
assert abs((N - 150) / (N - 1) - 0.25) < 0.01  # "about a quarter" at B = 150
# DP-SGD, step 1: clipped_mean, from per-sample norms alone, equals clipping the per-sample
# gradients; no sample contributes more than C/B, so the clipped mean has norm at most C; and
# since some norms exceed C, it is not the plain mean.
assert np.max(np.abs(fast_norms - norms)) < 1e-12
assert max_difference(clipped, clipped_by_hand) < 1e-12
assert contribution_norms.max() <= C / B * (1 + 1e-12)
assert norm(clipped) <= C * (1 + 1e-12)
assert np.any(norms > C) and max_difference(clipped, plain_average) > 1e-3
# Step 2: Gaussian noise of standard deviation σC/B, here comparable in size to the clipped gradient.
assert abs(noise_values.std() / (sigma * C / B) - 1) < 0.1
assert 0.5 < norm(noise) / norm(clipped) < 2
# Accumulation: weighting chunks by |c|/B is exact; the mean of chunk means is not, when a chunk
# is short: it gives the short chunk's samples twice the weight (both weightings add up to 1).
assert max_difference(accumulated, batched) < 1e-12
assert max_difference(naive, batched) > 1e-3 and max_difference(naive, naive_by_formula) < 1e-12
assert naive_equal_chunks < 1e-12
assert chunk_sizes == [4, 4, 2] and np.isclose(naive_weights[-1], 2 * naive_weights[0])
assert np.isclose(naive_weights.sum(), 1) and np.isclose(correct_weights.sum(), 1)
# Token-mean loss: dividing each micro-batch by the batch's total token count is exact for any
# pairing; dividing by its own count is wrong when the counts differ (15, 5, 10) and right when
# they are equal (10, 10, 10); it gives a token of the 5-token micro-batch 3 times the weight
# of one in the 15-token micro-batch, exactly as the bars show.
assert token_counts == {"uneven": [15, 5, 10], "even": [10, 10, 10]}
assert right_vs_one_pass["uneven"] < 1e-12 and right_vs_one_pass["even"] < 1e-12
assert own_vs_one_pass["uneven"] > 1e-3 and own_vs_one_pass["even"] < 1e-12
assert own_vs_formula < 1e-12
assert np.isclose(own_token_weights[counts[0]] / own_token_weights[0], 3)
assert np.isclose(own_token_weights.sum(), 1) and np.isclose(right_token_weights.sum(), 1)
# Data parallelism is the same arithmetic: all-reduce sums and counts, then divide.
assert max_difference(all_reduced, batched) < 1e-12 and max_difference(plain_mean, batched) > 1e-3
# Memory: batched grows with B; per-sample and accumulated stay flat; per-sample gradients are
# the largest and grow fastest (the largest ratio from B = 8 to B = 512, 64 times the samples).
assert memory["batched mean"][-1] > 10 * memory["batched mean"][0]
assert memory["per-sample average"][-1] < 1.5 * memory["per-sample average"][0]
assert memory["accumulated (m = 32)"][-1] < 1.5 * memory["accumulated (m = 32)"][1]
assert memory["per-sample gradients"][-1] > memory["batched mean"][-1]
growth = {name: values[-1] / values[0] for name, values in memory.items()}
assert all(growth["per-sample gradients"] > 2 * g for name, g in growth.items() if name != "per-sample gradients")
