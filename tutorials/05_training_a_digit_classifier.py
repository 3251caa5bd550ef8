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
#   train the same model, one of them much faster.

# %%
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
fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
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
# The training loss keeps falling as long as the model can fit the training set better. The
# test loss is the honest one: when it stops falling while the training loss still does (here
# after about ten epochs), the model has started to learn its particular training images
# rather than digits in general. The test accuracy levels off at the same time.

# %% tags=["plot"]
epochs = np.arange(1, len(history["loss"]) + 1)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
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
# For a readable picture, take a batch of two images. From left to right: the batch X
# (2 × 64) enters a `linear` node with W1 (64 × 64) and b1, which computes X @ W1 + b1 in one
# step, the bias broadcast over the two rows; then `tanh`; then a second `linear` node with
# W2 and b2, giving the 2 × 10 logits z. One `cross_entropy` node holds the two per-sample
# losses −log softmax(z_i)[y_i], one per row, and a last node takes their **mean** over the
# two samples: that is where the averaging of tutorial 2 happens. After `backward`, every box
# shows its gradient.

# %%
small_batch = slice(0, 2)
model.zero_grad()
step_loss = nn.cross_entropy(model(Tensor(X_train[small_batch], name="X")), y_train[small_batch])
step_loss.backward()

# %% tags=["graph"]
draw_graph(step_loss, title="One training step: a batch of two digits, the mean cross-entropy, backward")

# %% [markdown]
# ## Per-sample or batched: same model, different speed
#
# Tutorial 2 showed that backpropagating each sample and averaging gives the same gradient as
# the batched mean. On real data, over a whole epoch of training, the two strategies must
# therefore produce the same weights (up to rounding). What differs is the time: the
# per-sample strategy runs 32 small backward passes per batch where the batched one runs one
# large, vectorised pass.

# %%
start = nn.MLP([64, 64, 10], activation="tanh", rng=1).state_dict()
trained, seconds = {}, {}
for strategy in ("per_sample", "batched_mean"):
    net = nn.MLP([64, 64, 10], activation="tanh")
    net.load_state_dict(start)
    run = Trainer(net, nn.cross_entropy, optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                  strategy=strategy, progress=False)
    began = time.perf_counter()
    run.fit(X_train, y_train, batch_size=32, epochs=1, seed=0)
    seconds[strategy] = time.perf_counter() - began
    trained[strategy] = net.state_dict()
weight_gap = max(float(np.max(np.abs(trained["per_sample"][k] - trained["batched_mean"][k]))) for k in start)
print(f"largest weight difference after one epoch: {weight_gap:.1e}")
for strategy, s in seconds.items():
    print(f"{strategy:12s} one epoch in {s:.2f} s")

# %% [markdown]
# (The timings depend on your machine; the equality of the weights does not.)
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
# Per-sample averaging and the batched mean train the same model on real data.
assert weight_gap < 1e-9
