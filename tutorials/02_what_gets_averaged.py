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
# # 2. What gets averaged in mini-batch gradient descent?
#
# A mini-batch holds B samples. Gradient descent needs *one* gradient for the whole batch.
# So somewhere, B things get averaged into one. The question that confuses almost everyone
# at first is **which** things:
#
# - **the gradients**: backpropagate every sample, then average the B gradients; or
# - **the errors**: average the samples' errors (or the loss) first, then backpropagate once?
#
# The answer is the gradients. The mini-batch loss is L_B(θ) = (1/B) Σ_i ℓ_i(θ), and its
# gradient is (1/B) Σ_i ∇ℓ_i(θ), exactly, for any network (tutorial 3 proves it). Averaging
# the gradients is not an approximation of the right thing; it *is* the right thing. In
# practice nobody loops over samples: one forward pass of the whole batch with a `mean` at
# the end computes the very same number, faster.
#
# "Average the error first" is a misconception, and a tempting one: it would save B − 1
# backward passes. This tutorial shows the two correct computations agree, looks at where the
# averaging sits in their graphs, and then takes the misconception apart, variant by variant,
# with a worked example you can check by hand.

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from tinygrad_mb import Tensor, minibatch, nn, optim
from tinygrad_mb.data import make_regression
from tinygrad_mb.train import Trainer
from viz import draw_error_first, draw_strategies


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The largest difference between two gradients (lists of arrays, one per parameter)."""
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


rng = np.random.default_rng(0)
X = rng.normal(size=(4, 2))
y = rng.normal(size=(4, 1))
model = nn.MLP([2, 3, 1], activation="tanh", rng=0)

# %% [markdown]
# ## Two correct answers that are one answer
#
# **Per-sample average.** For each sample alone: forward, loss ℓ_i, backward. Each
# `backward` *adds* its gradient into the parameters' `.grad` (tutorial 1), so after the loop
# `.grad` holds Σ_i ∇ℓ_i, and one division by B gives the average. Only one sample's graph
# exists at a time, so memory does not grow with B.

# %%
B = len(X)
model.zero_grad()
for i in range(B):
    loss_i = nn.mse_loss(model(Tensor(X[i:i + 1])), y[i:i + 1])
    loss_i.backward()  # .grad += ∇ℓ_i
per_sample = [p.grad / B for p in model.parameters()]

# %% [markdown]
# **Batched mean.** Forward all B samples as one matrix, take the mean of their losses,
# backpropagate once. Here the sum and the 1/B are a node of the graph (the `mean`), and its
# backward hands every sample's branch 1/B of the gradient.

# %%
model.zero_grad()
nn.mse_loss(model(Tensor(X)), y).backward()
batched = [p.grad.copy() for p in model.parameters()]

print("largest difference between the two:", max_difference(per_sample, batched))

# %% [markdown]
# The difference is rounding, around 10⁻¹⁶. `tinygrad_mb.minibatch` has both, with the
# gradient-accumulation variant that sits between them (chunks of samples), and they all
# agree:

# %%
strategies = {
    "per_sample_average": minibatch.per_sample_average(model, nn.mse_loss, X, y),
    "batched_mean": minibatch.batched_mean(model, nn.mse_loss, X, y),
    "accumulated (chunks of 3)": minibatch.accumulated(model, nn.mse_loss, X, y, micro_batch=3),
}
for name, grads in strategies.items():
    print(f"{name:26s} differs from the hand-written loop by {max_difference(grads, per_sample):.1e}")

# %% [markdown]
# The picture below is computed, not sketched. The boxes labelled "sample i" are each
# sample's own graph, ending in its own loss ℓ_i and backpropagated alone; the sum happens in
# `.grad`, *after* the backward passes, and the 1/B after that. The box labelled "the whole
# batch" is the batched graph, where the mean is an ordinary node *before* the single backward
# pass. Both routes end at the same gradient.

# %% tags=["graph"]
picture = draw_strategies(model, nn.mse_loss, X, y, max_samples=2)
display(picture)

# %% [markdown]
# ## The worked example: averaging the loss value
#
# Two data points with the same input and different targets: (x = 1, y = 2) and (x = 1, y = 4).
# The model is ŷ = w · x, one weight, and it sits at w = 3, predicting 3 for both. For squared
# error that is the best any w can do: the prediction is exactly the mean of the targets.
#
# - The per-sample gradients are ∂ℓ_i/∂w = 2(ŷ − y_i) · x: **+2** for the first sample and
#   **−2** for the second. Their average is **0**: the model stays where it is. Correct.
# - The mean loss is ((3 − 2)² + (3 − 4)²) / 2 = **1**. Sending that value back as if it were
#   the output error gives ∂/∂w = 1 · x = **1**, and a gradient step moves w *away* from 3.
#   The loss is a measure of how wrong we are; it has no sign and no direction. The gradient
#   of the loss is what tells each parameter which way to move.

# %%
X_two = np.array([[1.0], [1.0]])
y_two = np.array([[2.0], [4.0]])
line = nn.Linear(1, 1, bias=False)
line.weight.data[...] = 3.0

right = minibatch.per_sample_average(line, nn.mse_loss, X_two, y_two)
wrong = minibatch.error_first(line, nn.mse_loss, X_two, y_two, variant="loss_as_gradient")
print("mean loss:", right.loss)
print("average of the per-sample gradients:", right[0].item())
print("the loss value used as the error:   ", wrong[0].item())

# %% [markdown]
# Follow each rule for a few steps of gradient descent (learning rate 0.1): the average of
# gradients leaves the optimum alone; the loss-as-error rule walks away from it, and since
# the loss is never negative it keeps pushing the same way.

# %%
def descend(strategy, steps: int = 20) -> list[float]:
    """w after each of ``steps`` gradient descent steps from w = 3 on the two-point data set."""
    line = nn.Linear(1, 1, bias=False)
    line.weight.data[...] = 3.0
    opt = optim.SGD(line.parameters(), lr=0.1)
    path = []
    for _ in range(steps):
        strategy(line, nn.mse_loss, X_two, y_two)  # leaves the batch gradient in .grad
        opt.step()
        path.append(line.weight.item())
    return path


w_averaged = descend(minibatch.per_sample_average)
w_loss_as_error = descend(lambda *batch: minibatch.error_first(*batch, variant="loss_as_gradient"))
print("averaging gradients:   w =", np.round(w_averaged[:5], 3), "...", round(w_averaged[-1], 3))
print("loss value as error:   w =", np.round(w_loss_as_error[:5], 3), "...", round(w_loss_as_error[-1], 3))

# %% [markdown]
# Averaging the *output errors* g_i = ∂ℓ_i/∂ŷ_i instead (+2 and −2 again, mean 0) happens to
# give the right answer here. That is luck, not a method: both samples have the **same input**,
# so they share every activation and there is nothing for the averaging to get wrong. The next
# section shows what goes wrong as soon as the inputs differ.

# %%
mean_error_here = minibatch.error_first(line, nn.mse_loss, X_two, y_two, variant="mean_input")
print("mean output error, same inputs:", mean_error_here[0].item())

# %% [markdown]
# ## Why averaging before the nonlinearity fails: f′(mean) ≠ mean(f′)
#
# Backpropagation through a tanh unit h = tanh(z) multiplies the incoming gradient by the
# local slope f′(z) = 1 − tanh²(z), evaluated at *that sample's* z. The true batch gradient
# therefore contains the slopes f′(z_i) of every sample. "Average first" computes one forward
# pass of an averaged sample, so it uses the slope at the average, f′(z̄). For any function
# that is not a straight line, the slope at the average is not the average of the slopes:

# %%
z = np.array([-2.2, -0.4, 0.3, 1.9, 2.6])


def tanh_slope(z: np.ndarray) -> np.ndarray:
    return 1 - np.tanh(z) ** 2


slope_of_mean = tanh_slope(z.mean())
mean_of_slopes = tanh_slope(z).mean()
print(f"f'(mean z) = {slope_of_mean:.3f}    mean f'(z_i) = {mean_of_slopes:.3f}")

# %% tags=["plot"]
grid = np.linspace(-3.5, 3.5, 300)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(grid, tanh_slope(grid), color="tab:gray", label="f′(z) = 1 − tanh²(z)")
ax.plot(z, tanh_slope(z), "o", color="tab:blue", label="each sample's slope f′(z_i)")
ax.axhline(mean_of_slopes, color="tab:blue", linestyle="--", label=f"mean of the slopes = {mean_of_slopes:.2f}")
ax.plot([z.mean()], [slope_of_mean], "s", color="tab:red", markersize=9,
        label=f"slope at the mean input = {slope_of_mean:.2f}")
ax.set_xlabel("pre-activation z")
ax.set_ylabel("local slope")
ax.set_title("The slope at the average is not the average slope")
ax.legend(loc="upper right", fontsize=8)
plt.show()

# %% [markdown]
# ## The error-first variants, one by one
#
# Let g_i = ∂ℓ_i/∂ŷ_i be sample i's output error and ḡ its mean over the batch. There are
# several ways to "average the error first"; `minibatch.error_first` implements four of them,
# labelled as wrong, so that each can be measured against the true gradient:
#
# - `mean_input`: backpropagates ḡ through one forward pass of the mean input x̄. Every
#   nonlinearity then uses f′(mean) instead of mean(f′).
# - `last_sample`: backpropagates ḡ through the last sample's graph (the activations an online
#   loop still holds). "Which sample's activations?" has no right answer.
# - `loss_as_gradient`: backpropagates the mean loss *value* as if it were the output error.
#   A loss is not an error: this is in general wrong, even for a single sample.
# - `mean_residual` (squared error only): backpropagates the loss of the mean prediction
#   against the mean target. It misses a covariance term, computed exactly below.
#
# On a small tanh network with six different inputs, every variant is off:

# %%
rng = np.random.default_rng(1)
X6 = rng.normal(size=(6, 2))
y6 = rng.normal(size=(6, 1))
net = nn.MLP([2, 8, 1], activation="tanh", rng=1)
true_gradient = minibatch.batched_mean(net, nn.mse_loss, X6, y6)

variant_error = {}
for variant in minibatch.ERROR_FIRST_VARIANTS:
    g = minibatch.error_first(net, nn.mse_loss, X6, y6, variant=variant)
    variant_error[variant] = max_difference(g, true_gradient) / max(float(np.max(np.abs(t))) for t in true_gradient)
    print(f"{variant:17s} largest error, relative to the largest true gradient entry: {variant_error[variant]:.2f}")

# %% [markdown]
# `mean_input`: the whole batch is replaced by its average sample x̄. The one graph it
# backpropagates through is the graph of a sample that does not exist:

# %% tags=["graph"]
draw_error_first(net, nn.mse_loss, X6, y6, variant="mean_input", max_samples=2)

# %% [markdown]
# `last_sample`: an implementation that processes samples one at a time still holds the
# activations of the last one when it has averaged the errors. Backpropagating ḡ through them
# treats every sample as if it had the last sample's activations. Which sample is last is an
# accident of the batch order, so the "gradient" changes when the batch is merely shuffled,
# while the true gradient cannot:

# %% tags=["graph"]
draw_error_first(net, nn.mse_loss, X6, y6, variant="last_sample", max_samples=2)

# %%
reversed_order = np.arange(len(X6))[::-1]
last_then = minibatch.error_first(net, nn.mse_loss, X6, y6, variant="last_sample")
last_reversed = minibatch.error_first(net, nn.mse_loss, X6[reversed_order], y6[reversed_order], variant="last_sample")
true_reversed = minibatch.batched_mean(net, nn.mse_loss, X6[reversed_order], y6[reversed_order])
print("last_sample, batch reversed: changes by", max_difference(last_then, last_reversed))
print("true gradient, batch reversed: changes by", max_difference(true_gradient, true_reversed))

# %% [markdown]
# `mean_residual`: average the residuals e_i = ŷ_i − y_i, then square. For squared error this
# variant is wrong by an amount we can write down exactly. With D outputs and the loss
# averaging over them,
#
#     true gradient − mean_residual gradient = (2/D) · Σ_d Cov_i(e_id, ∇e_id),
#
# the covariance, over the samples of the batch, between each residual and its gradient with
# respect to the parameters (for each parameter component). It is the *population* covariance
# of the batch, Cov_i(a_i, b_i) = (1/B) Σ_i (a_i − ā)(b_i − b̄), dividing by B (not by B − 1,
# as `np.cov` does by default): the batch is all there is, not a sample from which to
# estimate something. It is zero when the residuals and their gradients do not co-vary
# across the batch, for instance when all the inputs coincide. Let us check the identity with
# the per-sample gradients of the residual (D = 1 here, so ∇e_i = ∇ŷ_i):

# %%
def output_gradient(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """∇θ ŷ for one sample with one output, as a flat vector."""
    model.zero_grad()
    model(Tensor(x[None, :])).backward(np.ones((1, 1)))
    return np.concatenate([p.grad.ravel() for p in model.parameters()])


def flat(grads: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([g.ravel() for g in grads])


residuals = (net(Tensor(X6)).data - y6)[:, 0]
residual_grads = np.array([output_gradient(net, x) for x in X6])
covariance = np.mean(residuals[:, None] * residual_grads, axis=0) - residuals.mean() * residual_grads.mean(axis=0)
mean_residual = minibatch.error_first(net, nn.mse_loss, X6, y6, variant="mean_residual")
identity_gap = np.max(np.abs((flat(true_gradient) - flat(mean_residual)) - 2 * covariance))
print("|(true − mean_residual) − 2·Cov(e, ∇e)| at most", identity_gap)

# %% [markdown]
# **When do the variants happen to be right?** `mean_input`, `last_sample` and
# `mean_residual` are exact when B = 1, or when every sample in the batch has the same input
# (as in the worked example): then all activations coincide, and backpropagation, which is
# linear in the gradient sent into it, turns the average of the errors into the average of
# the gradients. `loss_as_gradient` is in general wrong, even for a single sample: it sends
# back the loss value instead of the error. (For one output and squared error that is e²
# instead of 2e, with e = ŷ − y; the two agree only by accident, when e = 0 or e = 2.)
#
# Check both cases on the tanh network: a batch of one sample, then one input row repeated
# six times, with six different targets.

# %%
one = slice(0, 1)
exact_for_one_sample = {
    variant: max_difference(minibatch.error_first(net, nn.mse_loss, X6[one], y6[one], variant=variant),
                            minibatch.batched_mean(net, nn.mse_loss, X6[one], y6[one]))
    for variant in minibatch.ERROR_FIRST_VARIANTS
}
print("B = 1:          ", {k: f"{v:.1e}" for k, v in exact_for_one_sample.items()})

X_same = np.repeat(X6[:1], len(y6), axis=0)  # one input, six times
same_input_true = minibatch.batched_mean(net, nn.mse_loss, X_same, y6)  # y6: six different targets
exact_for_same_input = {
    variant: max_difference(minibatch.error_first(net, nn.mse_loss, X_same, y6, variant=variant), same_input_true)
    for variant in minibatch.ERROR_FIRST_VARIANTS
}
print("same input, B = 6:", {k: f"{v:.1e}" for k, v in exact_for_same_input.items()})

# %% [markdown]
# Beyond that, only one piece is always right: the gradient of the **output layer's bias**,
# for any network, because the bias gradient *is* the averaged output error.
#
# Even for a purely linear model, ŷ_i = x_i W + b, the weight gradients are wrong, and by an
# amount we can write down. Let x_i be sample i's input and g_i its output error, both as
# columns, so that x_i g_iᵀ has the shape of W (inputs × outputs). The true weight gradient is
# the mean of the per-sample outer products, (1/B) Σ_i x_i g_iᵀ. `mean_input` computes x̄ ḡᵀ,
# and so does `mean_residual` (for squared error ḡ = (2/D) ē, and the mean prediction is
# x̄ W + b); `last_sample` computes x_B ḡᵀ, with the last sample's input x_B. Hence
#
#     true − mean_input = true − mean_residual = Cov_i(x_i, g_i) = (1/B) Σ_i (x_i − x̄)(g_i − ḡ)ᵀ,
#     true − last_sample = Cov_i(x_i, g_i) + (x̄ − x_B) ḡᵀ,
#
# again the population covariance of the batch. `mean_input` and `mean_residual` are wrong
# when the errors co-vary with the inputs; `last_sample` has a second term, nonzero whenever
# the last input is not the mean input and ḡ ≠ 0. Checked on a linear model with the six
# distinct inputs:

# %%
linear = nn.Linear(2, 1, rng=2)
linear_true = minibatch.batched_mean(linear, nn.mse_loss, X6, y6)
errors = 2 * (linear(Tensor(X6)).data - y6)  # g_i = ∂ℓ_i/∂ŷ_i = 2(ŷ_i − y_i), one output
x_mean, g_mean = X6.mean(axis=0), errors.mean(axis=0)
input_error_covariance = (X6 - x_mean).T @ (errors - g_mean) / len(X6)  # divide by B
predicted_weight_gap = {
    "mean_input": input_error_covariance,
    "mean_residual": input_error_covariance,
    "last_sample": input_error_covariance + np.outer(x_mean - X6[-1], g_mean),
}
linear_weight_gap, linear_formula_gap, linear_bias_gap = {}, {}, {}
for variant, predicted in predicted_weight_gap.items():
    first = minibatch.error_first(linear, nn.mse_loss, X6, y6, variant=variant)
    linear_weight_gap[variant] = max_difference(first[:1], linear_true[:1])
    linear_formula_gap[variant] = float(np.max(np.abs((linear_true[0] - first[0]) - predicted)))
    linear_bias_gap[variant] = max_difference(first[1:], linear_true[1:])
    print(f"linear model, {variant:13s} weight gradient off by {linear_weight_gap[variant]:.3f}; "
          f"formula misses by {linear_formula_gap[variant]:.1e}; bias off by {linear_bias_gap[variant]:.1e}")

output_bias_gap = {
    variant: max_difference(minibatch.error_first(net, nn.mse_loss, X6, y6, variant=variant)[-1:], true_gradient[-1:])
    for variant in ("mean_input", "last_sample", "mean_residual")
}
print("tanh network, output bias gradient off by:", {k: f"{v:.1e}" for k, v in output_bias_gap.items()})

# %% [markdown]
# ## Training with each rule
#
# Gradients that are wrong by tens of percent might still point roughly downhill. Are they
# good enough to train with? Train the same network from the same starting point with each
# rule on a small regression problem and compare the loss curves. The three correct
# strategies compute the same gradient at every step, so their curves lie exactly on top of
# each other. The error-first variants follow paths of their own.

# %%
X_fit, y_fit = make_regression(n=64, in_features=2, out_features=1, noise=0.05, seed=3)
start = nn.MLP([2, 16, 1], activation="tanh", rng=3).state_dict()

rules = {
    "per-sample average": {"strategy": "per_sample"},
    "batched mean": {"strategy": "batched_mean"},
    "accumulated (micro-batches of 5)": {"strategy": "accumulated", "micro_batch": 5},
    **{f"error first: {v}": {"strategy": "error_first", "variant": v} for v in minibatch.ERROR_FIRST_VARIANTS},
}
curves, diverged = {}, {}
for label, options in rules.items():
    mlp = nn.MLP([2, 16, 1], activation="tanh")
    mlp.load_state_dict(start)
    trainer = Trainer(mlp, nn.mse_loss, optim.SGD(mlp.parameters(), lr=0.1), progress=False, **options)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # one rule overflows; fit stops it
            trainer.fit(X_fit, y_fit, batch_size=16, epochs=40, seed=0)
    except FloatingPointError:
        diverged[label] = trainer.epochs_done + 1
    curves[label] = trainer.history.get("loss", [])
    ending = f"diverged in epoch {diverged[label]}" if label in diverged else f"final loss {curves[label][-1]:.4f}"
    print(f"{label:34s} {ending}")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(8, 4))
styles = {"per-sample average": ("-", 5, 0.35), "batched mean": ("--", 2, 1.0),
          "accumulated (micro-batches of 5)": (":", 2, 1.0)}
for label, losses in curves.items():
    style, width, alpha = styles.get(label, ("-", 1.2, 1.0))
    shown = label + (f" (diverged in epoch {diverged[label]})" if label in diverged else "")
    ax.plot(np.arange(1, len(losses) + 1), losses, style, linewidth=width, alpha=alpha, label=shown)
ax.set_yscale("log")
bounded = [loss for label, losses in curves.items() if label not in diverged for loss in losses]
ax.set_ylim(min(bounded) / 2, max(bounded) * 3)  # a diverging run leaves through the top
ax.set_xlabel("epoch")
ax.set_ylabel("mean squared error (training set)")
ax.set_title("The correct strategies coincide; the error-first variants do not")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The thick pale line (per-sample), the dashed line (batched) and the dotted line
# (accumulated) are one curve. The variants that average an *error* still go downhill on this
# easy problem, since their gradients are biased but not useless; they train more slowly and
# settle at a worse loss. Sending the loss value back as an error has no such luck: nothing
# makes it point downhill, and the run blows up within a few epochs (the `Trainer` stops it
# when the numbers stop being finite).

# %% [markdown]
# ## What this tutorial established

# %%
# The correct strategies are one gradient: per-sample average = batched mean = accumulated.
assert max_difference(per_sample, batched) < 1e-12
assert all(max_difference(g, per_sample) < 1e-12 for g in strategies.values())
assert picture.facts["max_abs_difference"] < 1e-12
# Worked example: averaging gradients keeps the converged model; the loss value pushes it away.
assert right.loss == 1.0 and right[0].item() == 0.0 and wrong[0].item() == 1.0
assert w_averaged[-1] == 3.0 and w_loss_as_error[-1] < 2.0
# ... averaging output errors is right there only because both inputs are the same.
assert mean_error_here[0].item() == 0.0
# f′(mean) ≠ mean(f′) for tanh.
assert abs(slope_of_mean - mean_of_slopes) > 0.1
# Distinct inputs, nonlinear network: every error-first variant is wrong.
assert all(err > 0.01 for err in variant_error.values())
# last_sample depends on the order of the batch; the true gradient does not.
assert max_difference(last_then, last_reversed) > 1e-3 and max_difference(true_gradient, true_reversed) < 1e-12
# mean_residual misses exactly (2/D)·Σ_d Cov_i(e_id, ∇e_id).
assert identity_gap < 1e-12
# Exact for B = 1 and for identical inputs (except loss_as_gradient, which is wrong there too).
assert all(exact_for_one_sample[v] < 1e-12 for v in ("mean_input", "last_sample", "mean_residual"))
assert exact_for_one_sample["loss_as_gradient"] > 1e-3
assert all(exact_for_same_input[v] < 1e-12 for v in ("mean_input", "last_sample", "mean_residual"))
assert exact_for_same_input["loss_as_gradient"] > 1e-3
# Linear model: the weights are off by Cov(x, g) (plus (x̄ − x_B) ḡᵀ for last_sample), the bias is exact.
assert all(gap > 1e-3 for gap in linear_weight_gap.values())
assert all(gap < 1e-12 for gap in linear_formula_gap.values())
assert all(gap < 1e-12 for gap in linear_bias_gap.values())
# The output bias gradient is exact for any network.
assert all(gap < 1e-12 for gap in output_bias_gap.values())
# Training: the correct strategies trace one curve; the error-first variants do not.
for label in ("batched mean", "accumulated (micro-batches of 5)"):
    assert np.allclose(curves[label], curves["per-sample average"], rtol=1e-9, atol=0)
assert not diverged.keys() & {"per-sample average", "batched mean", "accumulated (micro-batches of 5)"}
for v in ("mean_input", "last_sample", "mean_residual"):
    assert curves[f"error first: {v}"][-1] > 1.5 * curves["batched mean"][-1]
assert "error first: loss_as_gradient" in diverged
