"""Hints for the exercises, in three tiers: 1 the idea, 2 the formula, 3 the code.

Take one tier at a time, and try again after each. From the repository root:

    python tutorials/exercises/hints.py                     # the tasks
    python tutorials/exercises/hints.py ex_maximum 1        # the idea
    python tutorials/exercises/hints.py ex_maximum 2        # the formula
    python tutorials/exercises/hints.py ex_maximum 3        # the code

Hint 3 shows the heart of an answer, not every check; ``solutions/`` holds whole answers.
"""

from __future__ import annotations

import sys

TIERS = ("the idea", "the formula", "the code")

# task marker -> (the idea, the formula, the code)
HINTS: dict[str, tuple[str, str, str]] = {
    "ex_leaky_relu": (
        """\
Leaky ReLU is ReLU with a small slope for negative inputs instead of a flat zero. Its
backward multiplies the upstream gradient g by the local derivative, elementwise: the
derivative is 1 on one side of 0 and the slope on the other. Tensor.relu in
tinygrad_mb/tensor.py has the same shape of code: one call to Tensor.record, the forward
and the backward side by side.""",
        """\
forward:     y = x          where x > 0
             y = slope · x  elsewhere
derivative:  dy/dx = 1 where x > 0, slope elsewhere (at x = 0 either is a valid subgradient)
backward:    grad_x = g · dy/dx, elementwise, in x's dtype""",
        """\
positive = x.data > 0
local = np.where(positive, 1.0, slope)                      # dy/dx
data = np.where(positive, x.data, slope * x.data).astype(x.dtype, copy=False)
return Tensor.record(data, (x,), "leaky_relu", lambda g: (g * local,))""",
    ),
    "ex_logsumexp": (
        """\
exp(1000) overflows, but log Σ_j exp(x_j) does not change if you subtract the same number m
from every x_j before the exp and add m back after the log. Pick m so that the largest term
becomes exp(0) = 1. The derivative of log Σ exp is a function you know from classification.
The upstream gradient g has lost the reduced axis: put it back before you multiply.""",
        """\
m = max_j x_j                         (along the axis, kept as size 1)
logsumexp(x) = m + log Σ_j exp(x_j − m)
∂ logsumexp / ∂x_j = exp(x_j − m) / Σ_k exp(x_k − m) = softmax(x)_j
grad_x = expand_dims(g, axis) · softmax(x)      (just g · softmax(x) when keepdims)""",
        """\
m = x.data.max(axis=axis, keepdims=True)
e = np.exp(x.data - m)
total = e.sum(axis=axis, keepdims=True)
out = m + np.log(total)
softmax = e / total

def backward(g):
    return ((g if keepdims else np.expand_dims(g, axis)) * softmax,)

data = out if keepdims else np.squeeze(out, axis=axis)
return Tensor.record(data, (x,), "logsumexp", backward)""",
    ),
    "ex_maximum": (
        """\
As with max, the gradient flows to whichever input was larger, and is shared on a tie. With
broadcasting, an input of a smaller shape was copied to fill the output; the gradients of
its copies add up, so each input's gradient is summed back to its own shape. The helpers
as_operand and apply_elementwise (tinygrad_mb.checks) prepare the second operand and do the
broadcasting, as the built-in two-input operations do.""",
        """\
out = max(a, b), elementwise, broadcast
share_a = 1 where a > b,  1/2 where a = b,  0 where a < b
grad_a = unbroadcast(g · share_a, a.shape)
grad_b = unbroadcast(g · (1 − share_a), b.shape)""",
        """\
b = as_operand(b, like=a)
data = apply_elementwise("maximum", np.maximum, a, b)

def backward(g):
    share_a = (a.data > b.data) + 0.5 * (a.data == b.data)
    return unbroadcast(g * share_a, a.shape), unbroadcast(g * (1 - share_a), b.shape)

return Tensor.record(data, (a, b), "maximum", backward)""",
    ),
    "ex_clipped_average": (
        """\
Clip first, average second. Each sample's gradient is scaled down on its own, so that no
single sample can move the model by more than max_norm; only then are the B clipped
gradients averaged. minibatch.per_sample_gradients gives all the per-sample gradients at
once. A sample's norm is taken over all the parameters together, and a sample whose
gradient is zero stays zero (it must not be divided by its norm of 0).""",
        """\
per-sample gradients:  G_p[i] = ∇_p ℓ_i, one array (B, *p.shape) per parameter p
norm_i  = sqrt( Σ_p Σ_entries G_p[i]² )              (all parameters together)
scale_i = min(1, max_norm / norm_i)                   (1 when norm_i = 0)
g_p     = (1/B) Σ_i scale_i · G_p[i]                  (B counts every sample)
max_norm <= 0 is an error: ValueError naming the function and max_norm""",
        """\
if not max_norm > 0:
    raise ValueError(f"clipped_per_sample_average: max_norm must be positive, got {max_norm!r}")
per_sample = minibatch.per_sample_gradients(model, loss_fn, X, y)
B = len(per_sample[0])
norms = np.sqrt(sum(np.sum(g.reshape(B, -1) ** 2, axis=1) for g in per_sample))
scale = np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(float).tiny))
result = []
for p, g in zip(model.parameters(), per_sample):
    p.grad = np.tensordot(scale, g, axes=1) / B           # Σ_i scale_i g_i / B
    result.append(p.grad.copy())
return result""",
    ),
    "ex_property": (
        """\
A property test states a fact for every input and lets hypothesis search for an input that
breaks it. The fact: a strategy's result equals the gradient of the batch's mean loss,
computed directly. Then ask which batches expose which mistake. A sum instead of a mean, or
one sample instead of all, shows only when B > 1. The mean of chunk means shows only when
the batch does not split into equal chunks (for chunks of 5: a batch size above 5 that 5
does not divide). Averaging the error first shows only with different inputs (even a
linear model: the weight's gradient mean_i outer(x_i, g_i) is not outer(mean x, mean g)). And
compare with a tolerance for rounding only: np.allclose's defaults, not rtol=0.5.""",
        """\
for many draws of (B, seed), B from 1 to about 12:
    model    = a small network, e.g. nn.MLP([3, 5, 2], activation="tanh", rng=seed)
    X, y     = random (B, 3) inputs and (B, 2) targets from np.random.default_rng(seed)
    expected = ∇ (1/B) Σ_i ℓ_i   (minibatch.batched_mean(model, nn.mse_loss, X, y))
    got      = strategy(model, nn.mse_loss, X, y)
    every parameter: np.allclose(got, expected); otherwise AssertionError""",
        """\
@settings(max_examples=40, deadline=None)
@given(batch_size=st.integers(1, 12), seed=st.integers(0, 2**16))
def returns_batch_gradient(batch_size, seed):
    rng = np.random.default_rng(seed)
    model = nn.MLP([3, 5, 2], activation="tanh", rng=seed)
    X, y = rng.normal(size=(batch_size, 3)), rng.normal(size=(batch_size, 2))
    expected = minibatch.batched_mean(model, nn.mse_loss, X, y)
    got = strategy(model, nn.mse_loss, X, y)
    for g, e in zip(got, expected, strict=True):
        assert np.allclose(g, e), f"batch of {batch_size}: off by {np.max(np.abs(g - e)):.3g}"

returns_batch_gradient()      # hypothesis runs it on many draws and raises on a failure""",
    ),
    "ex_weighted_accumulation": (
        """\
The batch loss is the mean over all B samples. Split the batch into micro-batches and let
each backward pass add its micro-batch's share into .grad. loss_fn gives each micro-batch's
MEAN loss, so weight it by how much of the batch it holds: a short last micro-batch holds
fewer samples and must count less. Giving every micro-batch the same weight 1/K is the
mistake behind the bug that major training libraries shipped in 2024 (there with tokens:
exercise 8).""",
        """\
(1/B) Σ_i ℓ_i  =  Σ_c (|c|/B) · mean_{i∈c} ℓ_i        |c| = samples in micro-batch c
so for each micro-batch c:  backward of  loss_fn(model(X_c), y_c) · |c|/B
wrong:  (1/K) Σ_c mean_{i∈c} ℓ_i    (equal only when every |c| is the same)
micro_batch < 1 is an error: ValueError naming accumulated and micro_batch""",
        """\
if micro_batch < 1:
    raise ValueError(f"accumulated: micro_batch must be a whole number >= 1, got {micro_batch!r}")
B = len(X)
model.zero_grad()                                  # .grad accumulates: start from nothing
for start in range(0, B, micro_batch):
    X_c, y_c = X[start:start + micro_batch], y[start:start + micro_batch]
    (loss_fn(model(Tensor(X_c)), y_c) * (len(X_c) / B)).backward()
return [p.grad.copy() for p in model.parameters()]""",
    ),
    "ex_sum_estimate": (
        """\
The objective is a SUM over the whole data set of N samples (a log-likelihood, an ELBO),
not a mean. A batch of M samples drawn at random holds only M of the N terms: each sample
has a chance M/N to be in it. Scale the batch's sum up to undo that chance, so that the
estimate, averaged over every batch that could have been drawn, is the full sum's gradient.
The batch-MEAN gradient is the easiest thing to compute; how far is it from the answer?""",
        """\
∇ Σ_{j=1}^N ℓ_j  ≈  (N/M) Σ_{i∈batch} ∇ℓ_i  =  N · ∇[(1/M) Σ_{i∈batch} ℓ_i]
                 =  N · (the batch-mean gradient)
not the batch mean alone (off by N), not the batch sum alone (off by N/M)
dataset_size < M is an error: ValueError naming sum_estimate and dataset_size""",
        """\
if dataset_size < len(X):
    raise ValueError(f"sum_estimate: dataset_size must be >= the batch size {len(X)}, got {dataset_size!r}")
model.zero_grad()
loss_fn(model(Tensor(X)), y).backward()            # ∇ of the batch MEAN
for p in model.parameters():
    p.grad = p.grad * dataset_size                   # (N/M) · Σ = N · mean
return [p.grad.copy() for p in model.parameters()]""",
    ),
    "ex_token_weighted_accumulation": (
        """\
The batch loss averages over TOKENS, not over sequences or micro-batches: every real token
of the whole batch weighs the same, 1/N, with N the number of real (unmasked) tokens in the
whole batch. A micro-batch's own token mean divides by its own token count, so a micro-batch
with few tokens would count as much as one with many; that was the gradient-accumulation bug
of 2024. Count the tokens of the whole batch once, before the loop. Weighting by the share of
sequences (exercise 6's fix) is not enough either: micro-batches of equal sequence counts
hold different token counts.""",
        """\
L = Σ_{s,t} mask_st · ℓ_st / N,          N = Σ_{s,t} mask_st over ALL sequences
  = Σ_c (Σ_{(s,t)∈c} mask_st · ℓ_st) / N  = Σ_c (n_c/N) · (micro-batch c's own token mean)
so for each micro-batch c:  backward of  (token losses of c · mask_c).sum() / N
wrong:  (1/K) Σ_c (Σ_c mask ℓ) / n_c      (the 2024 bug; n_c = real tokens of c, maybe 0)""",
        """\
mask = np.asarray(mask, dtype=float)
total_tokens = mask.sum()                            # the whole batch, counted once
model.zero_grad()
for start in range(0, len(X), micro_batch):
    c = slice(start, start + micro_batch)
    ((token_losses(model, X[c], labels[c]) * mask[c]).sum() / total_tokens).backward()
return [p.grad.copy() for p in model.parameters()]""",
    ),
}


def hint(task: str, tier: int) -> str:
    """Hint ``tier`` (1 the idea, 2 the formula, 3 the code) for the task with marker ``task``."""
    if task not in HINTS:
        raise KeyError(f"no task {task!r}; the tasks are {', '.join(HINTS)}")
    if tier not in (1, 2, 3):
        raise ValueError(f"hint {tier!r}: choose 1, 2 or 3 (the idea, the formula, the code)")
    return HINTS[task][tier - 1]


def main(argv: list[str]) -> int:
    command = "python tutorials/exercises/hints.py"
    if not argv:
        print(f"Hints in three tiers: 1 the idea, 2 the formula, 3 the code. Usage: {command} TASK 1\n")
        for task in HINTS:
            print(f"  {task}")
        return 0
    task, tier_text = argv[0], argv[1] if len(argv) > 1 else "1"
    try:
        tier = int(tier_text)
        text = hint(task, tier)
    except KeyError:
        print(f"hints.py: no task {task!r}; the tasks are: {', '.join(HINTS)}", file=sys.stderr)
        return 2
    except ValueError:
        print(f"hints.py: hint {tier_text!r}: choose 1, 2 or 3 (the idea, the formula, the code)", file=sys.stderr)
        return 2
    print(f"{task}, hint {tier} of 3 ({TIERS[tier - 1]}):\n")
    print(text)
    if tier < 3:
        print(f"\nStill stuck after trying? Next: {command} {task} {tier + 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
