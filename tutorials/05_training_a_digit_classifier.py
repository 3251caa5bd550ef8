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
# # 5. Training a real classifier: handwritten digits
#
# Everything so far used tiny, made-up data so that every number could be checked by hand.
# Now the engine trains on real data: 1,797 handwritten digits, each an 8×8 grayscale image,
# from the data set that ships with scikit-learn (no download). We will
#
# - prepare the data and hold a test set aside, so that we measure how well the model
#   *generalises* and not how well it memorised;
# - train a multilayer perceptron with mini-batches of the mean cross-entropy loss, watching a
#   progress bar;
# - read the loss and accuracy curves, and the confusion matrix of the test set;
# - look at the computation graph of one training step;
# - and check, on real data, the claim of tutorial 2: per-sample averaging and the batched mean
#   train the same model; the batched mean is the faster of the two, and we time by how much.

# %%
import re
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tinygrad_mb import Tensor, nn, no_grad, optim
from tinygrad_mb.train import Trainer
from viz import draw_graph

# %% [markdown]
# ## The data
#
# Each image is 64 pixel intensities from 0 to 16, flattened into a row, and labelled with the
# digit it shows. Dividing by 16 puts the inputs in [0, 1]: with inputs of that scale the
# initial weights (chosen for inputs of roughly unit size) give the tanh units moderate
# pre-activations, neither saturated nor negligible.
#
# A quarter of the images is held out as a **test set** that training never sees. Splitting
# with `stratify=y` keeps the ten digits in the same proportions in both parts.

# %%
images, labels = load_digits(return_X_y=True)
X = images / 16.0
y = labels.astype(np.int64)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
print("training set:", X_train.shape, " test set:", X_test.shape)

# %% tags=["plot"]
fig, axes = plt.subplots(2, 10, figsize=(9, 2.2))
for ax, image, label in zip(axes.ravel(), X_train[:20], y_train[:20]):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_title(str(label))
    ax.axis("off")
fig.suptitle("The first twenty training images and their labels")
plt.show()

# %% [markdown]
# ## The model and the training loop
#
# An MLP with 64 inputs, one hidden layer of 64 tanh units and 10 outputs, one score (logit)
# per digit. `nn.cross_entropy` turns the scores into probabilities with a softmax and
# measures −log of the probability given to the right digit, averaged over the batch.
#
# The `Trainer` runs the loop every tutorial so far wrote by hand: shuffle the training set,
# cut it into batches of 32, compute each batch's gradient with the chosen strategy
# (`"batched_mean"`: one forward and one backward pass per batch), take an optimizer step.
# After every epoch it records the loss and accuracy on the training set and, given
# `validation=`, on the test set. The progress bar counts epochs.

# %%
model = nn.MLP([64, 64, 10], activation="tanh", rng=0)
optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
trainer = Trainer(model, nn.cross_entropy, optimizer, strategy="batched_mean", progress=True)
history = trainer.fit(X_train, y_train, batch_size=32, epochs=30, seed=0, validation=(X_test, y_test))
print(f"after {len(history['loss'])} epochs: training accuracy {history['accuracy'][-1]:.3f}, "
      f"test accuracy {history['val_accuracy'][-1]:.3f}")

# %% [markdown]
# ## Loss and accuracy curves
#
# The training loss measures how well the model fits the images it learns from. The test loss
# is the honest one: it measures how well the model does on images it has never seen. If the
# model began to learn its particular training images rather than digits in general
# (*overfitting*), the test loss would turn upward while the training loss kept falling.
# Let us see what these curves actually do.

# %% tags=["plot"]
epochs = np.arange(1, len(history["loss"]) + 1)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
ax_loss.plot(epochs, history["loss"], label="training set")
ax_loss.plot(epochs, history["val_loss"], label="test set")
ax_loss.set_yscale("log")
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("mean cross-entropy")
ax_loss.legend()
ax_acc.plot(epochs, history["accuracy"], label="training set")
ax_acc.plot(epochs, history["val_accuracy"], label="test set")
ax_acc.set_xlabel("epoch")
ax_acc.set_ylabel("accuracy")
ax_acc.legend()
fig.suptitle("Training an MLP [64, 64, 10] on 8×8 digits")
plt.show()

# %% [markdown]
# The numbers behind the curves, read from the history rather than by eye:

# %%
epochs_run = len(history["loss"])
best_epoch = int(np.argmin(history["val_loss"])) + 1  # the epoch with the lowest test loss
early = 10  # an early stopping point, for comparison
print(f"test loss: {history['val_loss'][0]:.3f} after epoch 1, {history['val_loss'][early - 1]:.3f} after epoch "
      f"{early}, lowest {history['val_loss'][best_epoch - 1]:.3f} after epoch {best_epoch}, "
      f"{history['val_loss'][-1]:.3f} after epoch {epochs_run}")
above_lowest = history["val_loss"][early - 1] / min(history["val_loss"]) - 1
print(f"after epoch {early} the test loss is {100 * above_lowest:.0f}% above its lowest")
print(f"test loss / training loss: {history['val_loss'][0] / history['loss'][0]:.1f} after epoch 1, "
      f"{history['val_loss'][-1] / history['loss'][-1]:.0f} after epoch {epochs_run}")
print(f"test accuracy: {history['val_accuracy'][early - 1]:.3f} after epoch {early}, "
      f"{history['val_accuracy'][-1]:.3f} after epoch {epochs_run}")

# %% [markdown]
# Over these 30 epochs the test loss keeps falling. It goes up and down from one epoch to the
# next (each epoch ends wherever its last mini-batch steps happened to leave the model), but
# its trend is downward: it reaches its lowest value late, at the epoch printed above, and
# shows no sustained rise. So this run shows **no sign of overfitting yet**; stopping at
# epoch 10 would have left the test loss well above its lowest value (by the percentage
# printed above).
#
# Two other things the curves do show. The gap between the two losses widens: after the first
# epoch they are close, by the end the training loss is many times lower than the test loss,
# because the model grows more confident on images it has been fitted to than it can be on
# new ones. And the accuracy curves flatten much earlier than the loss curves: accuracy only
# counts whether the right digit gets the highest score, while the loss keeps rewarding the
# model for being surer of it.
#
# ### What if we keep training?
#
# Does the model overfit if it trains longer? Train the same model from the same start for
# 150 epochs (its first 30 are exactly the run above):

# %%
long_model = nn.MLP([64, 64, 10], activation="tanh", rng=0)
long_trainer = Trainer(long_model, nn.cross_entropy, optim.SGD(long_model.parameters(), lr=0.1, momentum=0.9),
                       strategy="batched_mean", progress=True)
long_history = long_trainer.fit(X_train, y_train, batch_size=32, epochs=150, seed=0,
                                validation=(X_test, y_test))
long_best = int(np.argmin(long_history["val_loss"])) + 1
lowest, final = min(long_history["val_loss"]), long_history["val_loss"][-1]
print(f"lowest test loss {lowest:.4f}, after epoch {long_best}; after epoch 150: {final:.4f} "
      f"({100 * (final / lowest - 1):.0f}% above the lowest)")
print(f"training loss: {long_history['loss'][29]:.4f} after epoch 30, {long_history['loss'][-1]:.4f} after epoch 150")
print(f"test accuracy: {long_history['val_accuracy'][29]:.3f} after epoch 30, between "
      f"{min(long_history['val_accuracy'][30:]):.3f} and {max(long_history['val_accuracy'][30:]):.3f} "
      f"after epochs 31-150")
print(f"test loss after epoch 30: {long_history['val_loss'][29]:.4f}; "
      f"the lowest after any later epoch: {min(long_history['val_loss'][30:]):.4f}")
for first, last in [(31, 60), (61, 90), (91, 120), (121, 150)]:
    print(f"mean test loss over epochs {first:3d}-{last}: {np.mean(long_history['val_loss'][first - 1:last]):.4f}")

# %% tags=["plot"]
long_epochs = np.arange(1, len(long_history["loss"]) + 1)
fig, (ax_both, ax_test) = plt.subplots(1, 2, figsize=(8.5, 3.5))
ax_both.plot(long_epochs, long_history["loss"], label="training set")
ax_both.plot(long_epochs, long_history["val_loss"], label="test set")
ax_both.set_yscale("log")
ax_both.set_title("both losses (log scale)", fontsize=10)
ax_test.plot(long_epochs, long_history["val_loss"], color="tab:orange", label="test loss")
for first in (31, 61, 91, 121):  # the 30-epoch means printed above, as horizontal segments
    ax_test.hlines(np.mean(long_history["val_loss"][first - 1:first + 29]), first, first + 29, color="black",
                   label="mean over 30 epochs" if first == 31 else None)
ax_test.plot(long_best, lowest, "o", color="tab:red", label=f"lowest (epoch {long_best})")
ax_test.set_ylim(0.9 * lowest, 1.4 * lowest)  # zoom in: the first epochs lie above
ax_test.set_title("the test loss alone (linear scale, zoomed)", fontsize=10)
for ax in (ax_both, ax_test):
    ax.axvline(epochs_run, color="gray", linestyle=":")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
ax_both.set_ylabel("mean cross-entropy")
fig.suptitle(f"The same training continued to 150 epochs (dotted: the end of the {epochs_run}-epoch run)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The test loss never again gets as low as it was within the first 30 epochs, and from there
# on it drifts slowly upward: each 30-epoch mean printed above is higher than the one before.
# Meanwhile the training loss falls more than tenfold again, and the test accuracy stays where
# it was, within a few images of 450. That slow rise is where overfitting begins: the model
# grows ever more confident about its training images, more than is warranted on new ones.
# Here it is mild and comes late, and the 30-epoch model has a lower test loss than the model
# after any later epoch.

# %% [markdown]
# ## Which digits does it confuse?
#
# Accuracy is one number; the **confusion matrix** shows where the errors are. Row r, column c
# counts the test images of digit r that the model called c. A perfect classifier has
# numbers only on the diagonal.

# %%
with no_grad():  # evaluation needs no graph
    predicted = model(Tensor(X_test)).data.argmax(axis=1)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (y_test, predicted), 1)  # one count per (true digit, predicted digit)
test_accuracy = np.trace(confusion) / confusion.sum()
print(f"test accuracy: {test_accuracy:.3f} ({confusion.sum() - np.trace(confusion)} mistakes "
      f"out of {confusion.sum()})")

# %% tags=["plot"]
fig, ax = plt.subplots(figsize=(5, 4.5))
ax.imshow(confusion, cmap="Blues")
for r in range(10):
    for c in range(10):
        if confusion[r, c]:
            ax.text(c, r, confusion[r, c], ha="center", va="center",
                    color="white" if confusion[r, c] > confusion.max() / 2 else "black", fontsize=8)
ax.set_xticks(range(10))
ax.set_yticks(range(10))
ax.set_xlabel("predicted digit")
ax.set_ylabel("true digit")
ax.set_title("Confusion matrix, test set")
plt.show()

# %% [markdown]
# And the mistakes themselves, with what the model thought:

# %% tags=["plot"]
mistakes = np.flatnonzero(predicted != y_test)[:10]
fig, axes = plt.subplots(1, max(len(mistakes), 1), figsize=(1.1 * max(len(mistakes), 1), 1.6), squeeze=False)
for ax, i in zip(axes[0], mistakes):
    ax.imshow(X_test[i].reshape(8, 8), cmap="gray_r")
    ax.set_title(f"{y_test[i]} → {predicted[i]}", fontsize=9)
    ax.axis("off")
fig.suptitle("Test images the model got wrong (true → predicted)", fontsize=10)
plt.show()

# %% [markdown]
# ## The graph of one training step
#
# Every step of that training built a graph like the one below and walked it backwards.
# For a readable picture, take a batch of two images, and draw it in the compact view: one
# box per operation with its shape, top to bottom. The batch X (2 × 64) enters a `linear`
# node with W1 (64 × 64) and b1, which computes X @ W1 + b1 in one step, the bias broadcast
# over the two rows; then `tanh`; then a second `linear` node with W2 and b2, giving the
# 2 × 10 logits z. One `cross_entropy` node holds the two per-sample losses
# −log softmax(z_i)[y_i], one per row, and a last node takes their **mean** over the two
# samples: that is where the averaging of tutorial 2 happens. The `linear` boxes also show
# their backward rules: dW = hᵀG sums the rows, so that is where the two samples' gradients
# are added up.

# %%
small_batch = slice(0, 2)
model.zero_grad()
step_loss = nn.cross_entropy(model(Tensor(X_train[small_batch], name="X")), y_train[small_batch])
step_loss.backward()

# %% tags=["graph"]
draw_graph(step_loss, view="compact", title="One training step: a batch of two digits, the mean cross-entropy")

# %% [markdown]
# The detailed view, `draw_graph(step_loss)`, adds every tensor's shape, a summary of its
# values and, after `backward`, of its gradient. It reads left to right and is more than twice
# as wide as a notebook page (about 900 px), so save it to a file and open that instead:
# `draw_graph(step_loss).save("one_step.svg")`. The two widths:

# %%
def svg_width_px(svg: str) -> float:
    """The width of a Graphviz SVG in pixels (it gives points; 1 pt = 4/3 px)."""
    return float(re.search(r'<svg width="([\d.]+)pt"', svg).group(1)) * 4 / 3


compact_px = svg_width_px(draw_graph(step_loss, view="compact").svg())
detailed_px = svg_width_px(draw_graph(step_loss).svg())
print(f"compact view {compact_px:.0f} px wide, detailed view {detailed_px:.0f} px")

# %% [markdown]
# ## Per-sample or batched: same model, different speed
#
# Tutorial 2 showed that backpropagating each sample and averaging gives the same gradient as
# the batched mean. On real data, over a whole epoch of training, the two strategies must
# therefore produce the same weights (up to rounding). What differs is the time: the
# per-sample strategy runs 32 small backward passes per batch where the batched one runs one
# large, vectorised pass.
#
# One timing is a poor measurement: whatever else the computer is doing at that moment ends
# up in it. So we train the epoch several times with each strategy, alternating between them
# so that a busy moment slows both, and compare the **medians**, which a single slow run
# cannot move much.

# %%
start = nn.MLP([64, 64, 10], activation="tanh", rng=1).state_dict()


def one_epoch(strategy: str) -> tuple[float, dict[str, np.ndarray]]:
    """Train one epoch from `start` with `strategy`; return the seconds it took and the trained weights."""
    net = nn.MLP([64, 64, 10], activation="tanh")
    net.load_state_dict(start)
    run = Trainer(net, nn.cross_entropy, optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                  strategy=strategy, progress=False)
    began = time.perf_counter()
    run.fit(X_train, y_train, batch_size=32, epochs=1, seed=0)
    return time.perf_counter() - began, net.state_dict()


repeats = 5
seconds: dict[str, list[float]] = {"per_sample": [], "batched_mean": []}
trained = {}
for _ in range(repeats):
    for strategy in seconds:  # alternate, so that a busy moment of the machine slows both
        elapsed, trained[strategy] = one_epoch(strategy)
        seconds[strategy].append(elapsed)
weight_gap = max(float(np.max(np.abs(trained["per_sample"][k] - trained["batched_mean"][k]))) for k in start)
median = {strategy: float(np.median(times)) for strategy, times in seconds.items()}
speedup = median["per_sample"] / median["batched_mean"]
print(f"largest weight difference after one epoch: {weight_gap:.1e}")
for strategy, times in seconds.items():
    print(f"{strategy:12s} one epoch: median {median[strategy]:.3f} s over {repeats} runs "
          f"(fastest {min(times):.3f} s, slowest {max(times):.3f} s)")
print(f"the batched mean is {speedup:.1f} times as fast as the per-sample average on this machine")

# %% [markdown]
# The ratio depends on your machine and on how busy it is; the equality of the weights does
# not. Only the ratio is worth comparing across machines, and only its order of magnitude.
#
# ## What this tutorial established

# %%
# The MLP learns the digits: far above chance (10%) on images it never trained on.
assert history["val_accuracy"][-1] > 0.9 and test_accuracy > 0.9
assert history["loss"][-1] < history["loss"][0] / 2
# The confusion matrix accounts for every test image: row r adds up to the number of test
# images of digit r (counted straight from the labels, with the proportions `stratify` kept).
assert np.array_equal(confusion.sum(axis=1), np.bincount(y_test, minlength=10))
assert np.array_equal(confusion.sum(axis=1), np.bincount(y, minlength=10) - np.bincount(y_train, minlength=10))
# Its diagonal is the accuracy, the same as the trainer's own evaluation of the test set
# (a separate forward pass through its loss-and-accuracy code).
assert np.isclose(np.trace(confusion) / len(y_test), history["val_accuracy"][-1])
assert np.isclose(test_accuracy, history["val_accuracy"][-1])
# The test loss does not turn upward within 30 epochs: its lowest point comes in the last third
# of the run, far later than epoch 10 (whose test loss is more than 20% higher), and the last
# epoch is within 10% of it; the two losses start close and end far apart; the test accuracy
# moves little after epoch 10 while the test loss still falls.
assert best_epoch > 2 * early and best_epoch > 2 * epochs_run // 3
assert history["val_loss"][-1] < 1.1 * min(history["val_loss"])
assert history["val_loss"][early - 1] > 1.2 * min(history["val_loss"])
assert history["val_loss"][0] < 2 * history["loss"][0] and history["val_loss"][-1] > 5 * history["loss"][-1]
assert abs(history["val_accuracy"][-1] - history["val_accuracy"][early - 1]) < 0.02
assert history["val_loss"][-1] < 0.85 * history["val_loss"][early - 1]
# Trained on to 150 epochs (the first 30 are the run above): the test loss never beats its low
# of the first 30 epochs, ends more than 10% above it, and each 30-epoch mean after epoch 30 is
# higher than the one before; the training loss falls more than tenfold again; the test accuracy
# stays within 0.01; the 30-epoch model's test loss is lower than after any later epoch.
assert np.allclose(long_history["val_loss"][:epochs_run], history["val_loss"], rtol=1e-9, atol=0)
assert long_best == best_epoch and final > 1.1 * lowest
later_means = [np.mean(long_history["val_loss"][first - 1:first + 29]) for first in (31, 61, 91, 121)]
assert all(a < b for a, b in zip(later_means, later_means[1:]))
assert long_history["loss"][-1] < long_history["loss"][29] / 10
assert max(long_history["val_accuracy"][29:]) - min(long_history["val_accuracy"][29:]) < 0.01
assert long_history["val_loss"][29] < min(long_history["val_loss"][30:])
# The compact picture of one step fits a notebook page (about 900 px); the detailed one does not.
assert compact_px <= 900 and detailed_px > 2 * 900
# Per-sample averaging and the batched mean train the same model on real data. The batched mean
# is faster; measured as a ratio of medians it was several times faster here, so "faster by at
# least 2" leaves a wide margin (the ratio itself depends on the machine: printed, not asserted).
assert weight_gap < 1e-9
assert speedup > 2
