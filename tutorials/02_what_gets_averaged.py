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
# A mini-batch holds B samples, drawn from a data set of N. Gradient descent needs *one*
# gradient for the whole batch, so somewhere B things get averaged into one. The question
# that confuses almost everyone at first is **which** things:
#
# - **the gradients**: backpropagate every sample, then average the B gradients; or
# - **the errors**: average the samples' output errors first, then backpropagate once?
#
# The question usually comes from reading that one may "average the error, then
# backpropagate once". Picture that in code that handles one sample at a time: forward
# sample i, compute its output error g_i = ∂ℓ_i/∂ŷ_i, go on to the next sample; at the end,
# average the errors into ḡ and run one backward pass. When that loop ends, the only
# activations still in memory are the last sample's, so the one backward pass runs through
# them. That computation is `minibatch.error_first(..., variant="last_sample")`, and it is
# **wrong**.
#
# Yet every framework does "average the loss, then backpropagate once": one forward pass of
# the batch, a `mean` over the samples' losses, one `backward()`. That is **right**. The two
# sound alike; what differs is *where the average sits*:
#
# - **Right: the mean is a node of the batch's graph.** One forward pass of the whole batch
#   keeps every sample's activations, as B rows of each tensor. Backward through the mean
#   hands row i of the output g_i/B, sample i's own error times 1/B, and from there on row i
#   only ever meets sample i's own activations; the rows are added up only at the
#   parameters. This is `minibatch.batched_mean`, and it computes exactly the average of the
#   B per-sample gradients.
# - **Wrong: an averaged number is pushed through one set of activations.** The mean error ḡ
#   (or, worse, the mean loss value: `loss_as_gradient`) is one number for the whole batch,
#   and one backward pass of it needs one set of activations to run through: the last
#   sample's (`last_sample`), or those of an averaged input (`mean_input`). No single set of
#   activations is right.
#
# So "whose activations does the backward pass use?" has a definite answer: **each sample's
# own.** The gradient of the batch loss L_B(θ) = (1/B) Σ_i ℓ_i(θ) is (1/B) Σ_i ∇ℓ_i(θ),
# exactly, for any network (tutorial 3 proves it), and every ∇ℓ_i is computed with sample
# i's activations. Averaging the per-sample gradients is not an approximation of the right
# thing; it *is* the right thing, and the batched mean is the same computation, vectorised.
#
# This tutorial shows the two correct computations agree, looks at where the averaging sits
# in their graphs, draws whose activations the batched backward pass uses, and then takes
# the misconception apart, variant by variant, with a worked example you can check by hand.

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from tinygrad_mb import Tensor, minibatch, nn, optim
from tinygrad_mb.data import make_moons, make_regression
from tinygrad_mb.train import Trainer
from viz import (
    draw_error_first,
    draw_strategies,
    draw_whose_activations,
    schematic_error_first,
    schematic_strategies,
    schematic_whose_activations,
)


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
# Where does the averaging happen in each? First the idea as a sketch: on the left B separate
# graphs whose gradients are added up in `.grad` and then divided by B; on the right one
# graph whose tensors have B rows, with the mean as one of its nodes.

# %% tags=["graph"]
schematic_strategies()

# %% [markdown]
# Now the same for our real model and batch. This picture is computed, not sketched: the
# boxes labelled "sample i alone" are each sample's own graph, ending in its own loss ℓ_i and
# backpropagated alone; the sum happens in `.grad`, *after* the backward passes, and the 1/B
# after that. The box labelled "the whole batch" is the batched graph, where the mean is an
# ordinary node *before* the single backward pass. Both routes end at the same gradient.
#
# **Two `mean` nodes.** Each graph ends in two of them, and they average different things.
# `mse_loss` first makes each sample's loss the mean of its squared errors over the model's
# D outputs (the node `mean (4,)` in the batched graph: it leaves one number per sample, ℓ_i;
# here D = 1, so it has only one output to average). The last node, `mean · loss`, is the
# average over the batch, L = (1/B) Σ_i ℓ_i: the one this tutorial is about. (In a
# per-sample graph the batch is one sample, so its `mean · loss` divides by 1.)

# %% tags=["graph"]
picture = draw_strategies(model, nn.mse_loss, X, y, max_samples=2)
display(picture)

# %% [markdown]
# ## Whose activations? Each sample's own
#
# The batched graph is where "average the loss, then backpropagate once" is done right, so
# look inside it. Every tensor before the loss holds the B samples as B rows, and every
# operation there works row by row: row i of the hidden activations is computed from row i
# of X alone. The mean joins the rows only at the very end, and its backward sends each
# sample's loss 1/B. So, going backwards, row i of the output receives g_i/B, where
# g_i = ∂ℓ_i/∂ŷ_i is **sample i's own error** (what sample i alone would send back; it does
# not include the 1/B). From there row i of every gradient meets only row i of every
# activation. The rows meet again at the parameters, and only there: for a layer
# z = hW + b, the weight's gradient is one outer product per row, added up,
#
#     dW = hᵀG = Σ_i outer(h_i, g_i/B) = (1/B) Σ_i outer(h_i, g_i),      db = (1/B) Σ_i g_i,
#
# where G is the gradient at the layer's output (row i: g_i/B), h_i is row i of the layer's
# input and g_i is sample i's own error at that layer's output. The 1/B comes from the mean;
# the sum over i is where the B samples' contributions are finally averaged. First as a
# sketch, with three lanes standing for the B samples:

# %% tags=["graph"]
schematic_whose_activations()

# %% [markdown]
# Now the real batched graph of our model and batch of four, each tensor drawn as a strip of
# its B = 4 rows, one colour per sample. The numbers in the ŷ strip are what the mean's
# backward sent to each row, g_i/B; the yellow boxes are the parameters, where the rows
# meet. The green box at the bottom lists what the picture checked on this batch, by running
# every sample through the model alone.

# %% tags=["graph"]
whose = draw_whose_activations(model, nn.mse_loss, X, y)
display(whose)

# %% [markdown]
# The same claims, checked by hand for the output layer ŷ = hW2 + b2: its input rows h_i
# are the hidden activations, and with one output and squared error sample i's own error is
# g_i = ∂(ŷ_i − y_i)²/∂ŷ_i = 2(ŷ_i − y_i).

# %%
first_layer, activation, _ = model.layers  # Linear, Tanh, Linear (the output layer)
hidden = activation(first_layer(Tensor(X))).data  # row i: h_i
own_rows = max(float(np.max(np.abs(activation(first_layer(Tensor(X[i:i + 1]))).data[0] - hidden[i])))
               for i in range(B))
own_error = 2 * (model(Tensor(X)).data - y)  # g_i = ∂ℓ_i/∂ŷ_i, sample i's own error (no 1/B)
dW2 = sum(np.outer(hidden[i], own_error[i]) for i in range(B)) / B  # (1/B) Σ_i outer(h_i, g_i)
db2 = own_error.sum(axis=0) / B  # (1/B) Σ_i g_i
row_gradient_gap = float(np.max(np.abs(whose.facts["output_gradient"] - own_error / B)))
outer_gap = max_difference([dW2, db2], batched[2:])

print("row i of the batch's hidden layer vs sample i run alone:", own_rows)
print("what the mean sent to row i of ŷ:", whose.facts["output_gradient"].ravel().round(3))
print("g_i / B, with g_i = 2(ŷ_i − y_i):  ", (own_error / B).ravel().round(3))
print("(1/B) Σ_i outer(h_i, g_i) and (1/B) Σ_i g_i vs the batched gradients of W2 and b2:", outer_gap)

# %% [markdown]
# Every sample's gradient was computed with that sample's own activations, and the average
# happened at the parameters. Nothing was averaged *before* backpropagation except the loss,
# inside the graph, by a node whose backward keeps the samples apart. Hold on to this
# picture: each wrong variant below breaks it in one specific place.

# %% [markdown]
# ## The worked example: averaging the loss value
#
# Start with the most literal reading of "average the loss, then backpropagate once": compute
# the mean loss as a *number* and send that number back as if it were the error. (This is
# `error_first(variant="loss_as_gradient")`.) Two data points with the same input and
# different targets: (x = 1, y = 2) and (x = 1, y = 4). The model is ŷ = w · x, one weight,
# and it sits at w = 3, predicting 3 for both. For squared error that is the best any w can
# do: the prediction is exactly the mean of the targets.
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
each_sample = minibatch.per_sample_gradients(line, nn.mse_loss, X_two, y_two)[0].ravel()  # ∂ℓ_i/∂w
print("mean loss:", right.loss)
print("each sample's gradient ∂ℓ_i/∂w:     ", each_sample)
print("average of the per-sample gradients:", right[0].item())
print("the loss value used as the error:   ", wrong[0].item())

# %% [markdown]
# Drawn as a function of the one weight w: each sample's loss is a parabola, ℓ_1(w) = (w − 2)²
# and ℓ_2(w) = (w − 4)², and the batch loss L(w) = ((w − 2)² + (w − 4)²)/2 is their average,
# lowest at w = 3. The arrows are gradients, so they point uphill, and a descent step goes
# against them. At w = 3 sample 1's gradient is +2 (a step on it would move w down towards 2)
# and sample 2's is −2 (up towards 4): the two arrows are equal and opposite, and their
# average, the batch gradient, is 0. The red arrow is the mean loss value, 1, sent back as if
# it were a gradient: it points one way although neither direction is better.

# %% tags=["plot"]
w_grid = np.linspace(0.5, 5.5, 501)
L_grid = ((w_grid - 2) ** 2 + (w_grid - 4) ** 2) / 2
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(w_grid, (w_grid - 2) ** 2, color="tab:blue", linewidth=1, alpha=0.6, label="ℓ₁(w) = (w − 2)²: x = 1, y = 2")
ax.plot(w_grid, (w_grid - 4) ** 2, color="tab:orange", linewidth=1, alpha=0.6, label="ℓ₂(w) = (w − 4)²: x = 1, y = 4")
ax.plot(w_grid, L_grid, color="black", linewidth=2.5, label="L(w) = (ℓ₁ + ℓ₂)/2, the batch loss")
ax.plot([3], [1], "o", color="black", markersize=7)
arrow_scale = 0.5  # w units per unit of gradient
for grad, color, height, text in ((each_sample[0], "tab:blue", 2.6, "∂ℓ₁/∂w = {:+g}"),
                                  (each_sample[1], "tab:orange", 2.6, "∂ℓ₂/∂w = {:+g}")):
    ax.annotate("", xy=(3 + arrow_scale * grad, height), xytext=(3, height),
                arrowprops={"arrowstyle": "-|>", "color": color, "linewidth": 2.5})
    ax.text(3 + arrow_scale * grad, height + 0.25, text.format(grad), color=color, ha="center", fontsize=9)
ax.text(3, 3.35, f"average: {right[0].item():g}, so w = 3 stays", ha="center", fontsize=9)
ax.annotate("", xy=(3 + arrow_scale * wrong[0].item(), -0.6), xytext=(3, -0.6),
            arrowprops={"arrowstyle": "-|>", "color": "tab:red", "linewidth": 2.5})
ax.text(3.6, -0.7, f"mean loss {right.loss:g} used as the gradient: +{wrong[0].item():g}", color="tab:red",
        va="center", fontsize=9)
ax.axvline(3, color="tab:gray", linewidth=0.6, linestyle=":")
ax.set_ylim(-1.2, 6)
ax.set_xlabel("the weight w (the prediction for x = 1)")
ax.set_ylabel("loss")
ax.set_title("Two samples' gradients cancel at the batch loss's minimum, w = 3")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()
plt.show()

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
# therefore contains the slopes f′(z_i) of every sample, each multiplying that sample's own
# error. Averaging the error first keeps one error and so can use only one slope: the slope
# at an averaged sample, f′(z̄), for `mean_input` (or the last sample's, f′(z_B), for
# `last_sample`). For any function that is not a straight line, the slope at the average is
# not the average of the slopes:

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
# - `last_sample`: backpropagates ḡ through the last sample's graph, the activations a loop
#   over samples still holds when it has averaged the errors. **This is the computation the
#   question describes** ("average the error first, then backpropagate once" in code that
#   handles one sample at a time). Every sample is treated as if it had the last sample's
#   activations, where the right answer is each sample's own.
# - `mean_input`: backpropagates ḡ through one forward pass of the mean input x̄, a sample
#   that does not exist. Every nonlinearity then uses f′(mean) instead of mean(f′).
# - `loss_as_gradient`: backpropagates the mean loss *value* as if it were the output error
#   (the worked example above). A loss is not an error: this is in general wrong, even for a
#   single sample.
# - `mean_residual` (squared error only): backpropagates the loss of the mean prediction
#   against the mean target. It keeps every sample's activations but averages the residuals
#   before squaring, and misses a covariance term, computed exactly below.
#
# The sketch: every sample's forward pass leaves its own activations and its own error g_i;
# averaging the errors leaves one number ḡ for one backward pass, which must choose one set
# of activations to run through.

# %% tags=["graph"]
schematic_error_first()

# %% [markdown]
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
# `last_sample`, the question's own computation, for the real network. Each sample's forward
# pass (two are drawn) leaves its error g_i; the errors are averaged into ḡ *before*
# backpropagation; the one backward pass then runs through the activations still in memory,
# the last sample's. Compare it with the batched graph above, where row i of the gradient
# met row i of the activations:

# %% tags=["graph"]
draw_error_first(net, nn.mse_loss, X6, y6, variant="last_sample", max_samples=2)

# %% [markdown]
# Which sample is last is an accident of the batch order, so this "gradient" changes when
# the batch is merely shuffled, while the true gradient cannot:

# %%
reversed_order = np.arange(len(X6))[::-1]
last_then = minibatch.error_first(net, nn.mse_loss, X6, y6, variant="last_sample")
last_reversed = minibatch.error_first(net, nn.mse_loss, X6[reversed_order], y6[reversed_order], variant="last_sample")
true_reversed = minibatch.batched_mean(net, nn.mse_loss, X6[reversed_order], y6[reversed_order])
print("last_sample, batch reversed: changes by", max_difference(last_then, last_reversed))
print("true gradient, batch reversed: changes by", max_difference(true_gradient, true_reversed))

# %% [markdown]
# `mean_input` avoids picking a sample by inventing one: the whole batch is replaced by its
# average input x̄, and the one graph it backpropagates through is the graph of a sample that
# does not exist:

# %% tags=["graph"]
draw_error_first(net, nn.mse_loss, X6, y6, variant="mean_input", max_samples=2)

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
# Beyond that, one piece of the gradient *can* be right: the gradient of the **output
# layer's bias**, and only when the output layer is affine, ŷ = hW + b with nothing after
# it. Then ∂ŷ_i/∂b = 1 for every sample, so the true bias gradient is the plain average of
# the output errors, (1/B) Σ_i g_i = ḡ, which is exactly what `mean_input`, `last_sample` and
# `mean_residual` send into b (`loss_as_gradient` sends the loss value instead).
# That is a property of the last layer's form, not of "any network"; a sigmoid after it
# breaks it, as we will see.
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
print("tanh network (affine output layer), output bias gradient off by:",
      {k: f"{v:.1e}" for k, v in output_bias_gap.items()})

# %% [markdown]
# **A sigmoid output breaks even the bias.** Put a sigmoid after the last layer, ŷ = σ(z)
# with z = hW + b, as one might for targets between 0 and 1. Now ∂ŷ_i/∂b = σ′(z_i), a
# different slope for every sample, and
#
#     true gradient of b:  (1/B) Σ_i g_i σ′(z_i),
#     mean_input:          ḡ · σ′(z at the mean input x̄),
#     last_sample:         ḡ · σ′(z_B), the last sample's slope,
#     mean_residual:       ḡ · (1/B) Σ_i σ′(z_i), the mean of the errors times the mean of the slopes,
#
# f′(mean) ≠ mean(f′) again, this time at the output. The gap is small while all the z_i sit
# on the same nearly straight part of the sigmoid, and large once they spread over its bend,
# which is what happens as soon as a network has learned something and its outputs become
# confident. So take a tanh network with a sigmoid output and a batch of 8 points of the
# two-moons data (targets 0 and 1, squared error), and compare the output bias gradients
# before and after 50 full-batch training steps on 64 points. For contrast, the same trained
# layers *without* the sigmoid (output z, an affine last layer) get the bias exactly right.

# %%
X_moons, labels = make_moons(64, noise=0.15, seed=0)
y_moons = labels.reshape(-1, 1).astype(float)  # targets 0 and 1
X8, y8 = X_moons[:8], y_moons[:8]
sigmoid_net = nn.Sequential(*nn.MLP([2, 8, 1], activation="tanh", rng=1).layers, nn.Sigmoid())
affine_part = nn.Sequential(*sigmoid_net.layers[:-1])  # the same layers (shared), output z = hW + b
SIGMOID_VARIANTS = ("mean_input", "last_sample", "mean_residual")


def output_bias_error(model: nn.Module, variant: str) -> float:
    """|error-first − true| / |true| for the gradient of the model's last bias, on the batch of 8."""
    true = minibatch.batched_mean(model, nn.mse_loss, X8, y8)[-1].item()
    first = minibatch.error_first(model, nn.mse_loss, X8, y8, variant=variant)[-1].item()
    return abs(first - true) / abs(true)


untrained_bias_error = {v: output_bias_error(sigmoid_net, v) for v in SIGMOID_VARIANTS}
untrained_z = affine_part(Tensor(X8)).data.ravel()
print(f"untrained: z_i from {untrained_z.min():.2f} to {untrained_z.max():.2f}; output bias gradient off by",
      ", ".join(f"{v} {e:.1%}" for v, e in untrained_bias_error.items()))

opt = optim.SGD(sigmoid_net.parameters(), lr=2.0)
for _ in range(50):
    minibatch.batched_mean(sigmoid_net, nn.mse_loss, X_moons, y_moons)  # leaves the gradient in .grad
    opt.step()

sigmoid_true = minibatch.batched_mean(sigmoid_net, nn.mse_loss, X8, y8)[-1].item()
affine_true = minibatch.batched_mean(affine_part, nn.mse_loss, X8, y8)[-1].item()


def sigmoid_slope(z: np.ndarray) -> np.ndarray:
    """σ′(z) = σ(z)(1 − σ(z))."""
    s = 1 / (1 + np.exp(-z))
    return s * (1 - s)


z8 = affine_part(Tensor(X8)).data.ravel()  # z_i, the sigmoid's input for each sample
slopes = sigmoid_slope(z8)
g8 = 2 * (sigmoid_net(Tensor(X8)).data.ravel() - y8.ravel())  # g_i = ∂ℓ_i/∂ŷ_i = 2(ŷ_i − y_i)
z_at_mean_input = affine_part(Tensor(X8.mean(axis=0, keepdims=True))).data.item()
predicted_bias = {  # what each variant should send into b, by the formulas above
    "mean_input": g8.mean() * sigmoid_slope(z_at_mean_input),
    "last_sample": g8.mean() * slopes[-1],
    "mean_residual": g8.mean() * slopes.mean(),
}
print(f"trained: z_i from {z8.min():.2f} to {z8.max():.2f}, so the slopes σ′(z_i) run from "
      f"{slopes.min():.3f} to {slopes.max():.3f}")
print(f"true output bias gradient: {sigmoid_true:.4f}   (= (1/B) Σ g_i σ′(z_i): {np.mean(g8 * slopes):.4f})")
sigmoid_bias_error, sigmoid_formula_gap, affine_bias_gap = {}, {}, {}
for variant, predicted in predicted_bias.items():
    with_sigmoid = minibatch.error_first(sigmoid_net, nn.mse_loss, X8, y8, variant=variant)[-1].item()
    without = minibatch.error_first(affine_part, nn.mse_loss, X8, y8, variant=variant)[-1].item()
    sigmoid_bias_error[variant] = abs(with_sigmoid - sigmoid_true) / abs(sigmoid_true)
    sigmoid_formula_gap[variant] = abs(with_sigmoid - predicted)
    affine_bias_gap[variant] = abs(without - affine_true)
    print(f"{variant:13s} sigmoid output: {with_sigmoid:+.4f}, off by {sigmoid_bias_error[variant]:.0%}; "
          f"affine output: off by {affine_bias_gap[variant]:.1e}")

# %% [markdown]
# Untrained, the z_i lie close together on the sigmoid's straight middle and the error is
# tiny (0.1%): easy to mistake for "exact". Trained, the z_i spread over the bend, and the
# three variants' output bias gradients are off by 16%, 74% and 48% (each exactly as the
# formulas above predict); without the sigmoid, on the very same trained layers, they are
# exact. So the rule is: an error-first variant gets the output layer's bias right
# when that layer is affine, and with a nonlinearity after it not even that.

# %% [markdown]
# ## Training with each rule
#
# Gradients that are wrong by tens of percent might still point roughly downhill. Are they
# good enough to train with? Train the same network from the same starting point with each
# rule on a small regression problem (64 samples, batches of B = 16, learning rate 0.1) and
# compare the loss curves. The three correct strategies compute the same gradient at every
# step, so their curves lie exactly on top of each other. The error-first variants follow
# paths of their own; to see where those paths lead, train for 1000 epochs.

# %%
EPOCHS = 1000
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
            trainer.fit(X_fit, y_fit, batch_size=16, epochs=EPOCHS, seed=0)
    except FloatingPointError:
        diverged[label] = trainer.epochs_done + 1
    curves[label] = np.array(trainer.history.get("loss", []))

correct_at_40 = curves["batched mean"][39]  # where the correct gradient is after 40 epochs
print(f"{'loss after epoch':34s} {'40':>7s} {EPOCHS:>7d}   {'last 200 epochs':>16s}   "
      f"first at or below {correct_at_40:.4f}")
for label, losses in curves.items():
    if label in diverged:
        print(f"{label:34s} diverged in epoch {diverged[label]}")
        continue
    last = losses[-200:]
    reached = f"in epoch {np.argmax(losses <= correct_at_40) + 1}" if np.any(losses <= correct_at_40) else "never"
    print(f"{label:34s} {losses[39]:7.4f} {losses[-1]:7.4f}   {last.min():.4f} to {last.max():.4f}   {reached}")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(8, 4.2))
styles = {"per-sample average": ("-", 5, 0.35, "tab:blue"), "batched mean": ("--", 2, 1.0, "tab:orange"),
          "accumulated (micro-batches of 5)": (":", 2, 1.0, "tab:green"),
          "error first: mean_input": ("-", 1.0, 0.9, "tab:red"),
          "error first: last_sample": ("-", 1.0, 0.9, "tab:purple"),
          "error first: loss_as_gradient": ("-", 1.0, 0.9, "tab:gray"),
          "error first: mean_residual": ("-", 1.0, 0.9, "tab:brown")}
for label, losses in curves.items():
    style, width, alpha, color = styles[label]
    shown = label + (f" (diverged in epoch {diverged[label]})" if label in diverged else "")
    ax.plot(np.arange(1, len(losses) + 1), losses, style, color=color, linewidth=width, alpha=alpha, label=shown)
ax.set_xscale("log")
ax.set_yscale("log")
bounded = [loss for label, losses in curves.items() if label not in diverged for loss in losses]
ax.set_ylim(min(bounded) / 2, max(bounded) * 3)  # a diverging run leaves through the top
ax.set_xlabel("epoch (log scale)")
ax.set_ylabel("mean squared error (training set)")
ax.set_title("The correct strategies coincide; the error-first variants do not")
ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
plt.show()

# %% [markdown]
# The thick pale line (per-sample), the dashed line (batched) and the dotted line
# (accumulated) are one curve, ending at 0.0017. The variants that average an *error* still
# go downhill on this easy problem, since their gradients are biased but not useless, but
# each goes its own way, and none is where the correct gradient is:
#
# - `mean_input` stalls. Over the last 200 epochs its loss stays between 0.0056 and 0.0072,
#   more than three times the correct one. Each of its steps is ḡ, one number per batch,
#   times the direction that changes the prediction *at the batch's average input*: it can
#   correct each batch's average error, and little else.
# - `mean_residual` keeps creeping down, slowly: it needs 733 epochs to reach the loss the
#   correct gradient had after 40, and is still above it (0.0028) after 1000.
# - `last_sample` never settles. Its step depends on which sample happens to come last in
#   each batch, and its loss keeps jumping: over the last 200 epochs between 0.0026 and
#   0.0294, a factor of more than ten.
#
# Sending the loss value back as an error has no such luck: nothing makes it point downhill,
# and the run blows up within a few epochs (the `Trainer` stops it when the numbers stop
# being finite).

# %% [markdown]
# ## What this tutorial established

# %%
# The correct strategies are one gradient: per-sample average = batched mean = accumulated.
assert max_difference(per_sample, batched) < 1e-12
assert all(max_difference(g, per_sample) < 1e-12 for g in strategies.values())
assert picture.facts["max_abs_difference"] < 1e-12
# Whose activations? Each sample's own: row i of the batch is sample i's forward pass and receives
# g_i/B; the rows meet only at the parameters, dW = (1/B) Σ_i outer(h_i, g_i), db = (1/B) Σ_i g_i.
assert max(whose.facts[k] for k in ("activations", "gradients", "outer_products", "parameters")) < 1e-12
assert own_rows < 1e-12 and row_gradient_gap < 1e-12 and outer_gap < 1e-12
# Worked example: the two samples' gradients, +2 and −2, cancel at the batch loss's minimum w = 3 ...
assert list(each_sample) == [2.0, -2.0] and w_grid[np.argmin(L_grid)] == 3.0
# ... so averaging gradients keeps the converged model; the loss value (1) pushes it away.
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
# The output bias gradient is exact when the output layer is affine (the tanh network, ŷ = hW + b) ...
assert all(gap < 1e-12 for gap in output_bias_gap.values())
assert all(gap < 1e-12 for gap in affine_bias_gap.values())
# ... and not with a sigmoid output: off by 16%, 74% and 48% once trained, each as its formula predicts
# (0.1% untrained, with every z_i on the sigmoid's nearly straight middle).
assert all(0 < error < 0.005 for error in untrained_bias_error.values())
assert all(error > 0.1 for error in sigmoid_bias_error.values())
assert [round(100 * sigmoid_bias_error[v]) for v in ("mean_input", "last_sample", "mean_residual")] == [16, 74, 48]
assert all(gap < 1e-12 for gap in sigmoid_formula_gap.values())
assert abs(sigmoid_true - np.mean(g8 * slopes)) < 1e-12
# Training: the correct strategies trace one curve; the error-first variants do not.
for label in ("batched mean", "accumulated (micro-batches of 5)"):
    assert np.allclose(curves[label], curves["per-sample average"], rtol=1e-9, atol=0)
assert not diverged.keys() & {"per-sample average", "batched mean", "accumulated (micro-batches of 5)"}
correct = curves["batched mean"]
mean_input_curve, last_sample_curve, mean_residual_curve = (
    curves[f"error first: {v}"] for v in ("mean_input", "last_sample", "mean_residual"))
assert len(correct) == EPOCHS and round(correct[-1], 4) == 0.0017
# mean_input stalls, more than three times above the correct loss for the whole of the last 200 epochs.
assert mean_input_curve[-200:].min() > 3 * correct[-1]
# mean_residual is still falling, needed more than ten times as many epochs to reach the correct
# gradient's epoch-40 loss, and is still above the correct loss.
assert mean_residual_curve[-100:].mean() < mean_residual_curve[-300:-200].mean()
assert np.argmax(mean_residual_curve <= correct_at_40) + 1 > 10 * 40 and mean_residual_curve[-1] > 1.5 * correct[-1]
# last_sample keeps jumping (a factor of more than ten in the last 200 epochs); the correct loss does not.
assert last_sample_curve[-200:].max() > 10 * last_sample_curve[-200:].min()
assert correct[-200:].max() < 1.2 * correct[-200:].min()
assert "error first: loss_as_gradient" in diverged
