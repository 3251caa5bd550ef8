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
# # 1. Autograd from scratch
#
# Training a network means nudging every parameter in the direction that lowers the loss, so
# we need the derivative of one number, the loss, with respect to every parameter. A network
# can have millions of parameters. Wiggling each one in turn and watching the loss (finite
# differences) would cost one extra evaluation per parameter. **Reverse-mode automatic
# differentiation** gets all of them in a single backward sweep that costs a small multiple of
# what the forward computation costs.
#
# The idea fits in two sentences:
#
# 1. While computing, remember the graph: which operation produced each value, from which inputs.
# 2. Afterwards, walk that graph from the output back to the inputs, applying the chain rule at
#    each node: the gradient arriving at a node times the node's local derivative is what it
#    passes on to each input.
#
# This tutorial builds that idea up on a tiny scalar expression, looks at its graph, opens the
# engine to see where an operation keeps its backward rule (and how to add your own), and
# then meets the two details every autograd engine must get right: the **order** in which
# nodes are visited, and the fact that gradients **accumulate**.

# %%
import inspect

import numpy as np

from tinygrad_mb import Tensor, gradcheck, topological_order
from viz import draw_backward_steps, draw_graph

# %% [markdown]
# ## A scalar expression and its graph
#
# Every `Tensor` created with `requires_grad=True` is a *leaf* we want gradients for. Every
# operation on tensors returns a new tensor that records the operation (`.op`) and its inputs
# (`.parents`). The names are only labels for the pictures.

# %%
a = Tensor(2.0, requires_grad=True, name="a")
b = Tensor(-3.0, requires_grad=True, name="b")
c = Tensor(10.0, requires_grad=True, name="c")
f = Tensor(-2.0, requires_grad=True, name="f")

e = a * b
e.name = "e"
d = e + c
d.name = "d"
L = d * f
L.name = "L"

print("L =", L.item())
print("L was made by", repr(L.op), "from", [p.name for p in L.parents])
print("d was made by", repr(d.op), "from", [p.name for p in d.parents])

# %% [markdown]
# The recorded graph, drawn left to right. Each box shows the operation, the value and, once a
# backward pass has run, the gradient (a dash until then).

# %% tags=["graph"]
draw_graph(L)

# %% [markdown]
# ## The chain rule, node by node
#
# We want ∂L/∂a, ∂L/∂b, ∂L/∂c and ∂L/∂f. Start at the output, where ∂L/∂L = 1, and move
# backwards. Each operation only needs its *local* derivatives:
#
# | node | operation | local derivatives |
# |------|-----------|-------------------|
# | L = d · f | multiply | ∂L/∂d = f, ∂L/∂f = d |
# | d = e + c | add | ∂d/∂e = 1, ∂d/∂c = 1 |
# | e = a · b | multiply | ∂e/∂a = b, ∂e/∂b = a |
#
# The chain rule multiplies the gradient that arrives at a node by its local derivative:
#
# - ∂L/∂f = d = 4 and ∂L/∂d = f = −2
# - ∂L/∂c = ∂L/∂d · 1 = −2 and ∂L/∂e = ∂L/∂d · 1 = −2 (an addition passes its gradient through)
# - ∂L/∂a = ∂L/∂e · b = (−2)(−3) = 6 and ∂L/∂b = ∂L/∂e · a = (−2)(2) = −4
#
# That is all `backward` does. The only question left is where each node keeps its local
# derivatives, and the engine's source answers it.
#
# ## An operation's forward pass and its backward rule, side by side
#
# Here is multiplication, exactly as it stands in `tinygrad_mb/tensor.py` (printed from the
# installed package, so it cannot drift from the real thing):

# %%
print(inspect.getsource(Tensor.__mul__))

# %% [markdown]
# Read it line by line:
#
# - the **forward** pass is the last line's `np.multiply` of the two operands' values (the
#   `apply_elementwise` wrapper only adds a clear error when the shapes do not fit);
# - the **backward rule** is the little function `backward(g)` right above it. It receives
#   `g`, the gradient of the final output with respect to this product, and returns one
#   gradient per input: `g * b` for `a` and `g * a` for `b`. That is the table's "∂e/∂a = b,
#   ∂e/∂b = a", times the gradient arriving from above: the chain rule, written once, at the
#   place the operation happens. (`unbroadcast` matters only when an operand was broadcast,
#   say a bias added to every row of a batch: then its gradient is summed back to its own
#   shape. For scalars it changes nothing.)
# - `Tensor.record` ties the two together. It wraps the result in a new `Tensor` with the
#   operation's name (kept in `_op`, read as `.op`) and, if any input wants a gradient,
#   remembers the inputs (kept in `_prev`, read as `.parents`) and the `backward` function
#   (kept in `_backward`). That is the whole of "recording the graph":

# %%
print(inspect.getsource(Tensor.record))

# %% [markdown]
# So `e = a * b` above stored a `backward` that, handed the gradient 1, returns (b, a) =
# (−3, 2). We can call it ourselves:

# %%
e_local = tuple(float(g) for g in e._backward(np.array(1.0)))
print("e's backward rule, given g = 1, returns", e_local, " (that is (b, a))")

# %% [markdown]
# `Tensor.record` is public: it is how you add an operation of your own. Cube, x³, with its
# derivative 3x² beside it, is complete in four lines, and `gradcheck` (more on it below)
# confirms the rule against finite differences:

# %%
def cube(x: Tensor) -> Tensor:
    def backward(g):  # g: gradient of the final output with respect to x³
        return (g * 3 * x.data**2,)  # one gradient per input, of that input's shape
    return Tensor.record(x.data**3, (x,), "cube", backward)


s = Tensor(np.array([0.5, -2.0]), requires_grad=True, name="s")
cube(s).sum().backward()
cube_grad = s.grad.copy()
cube_checked = gradcheck(cube, [s])
print("d/ds Σ s³ =", cube_grad, "= 3s²;  gradcheck:", cube_checked)

# %% [markdown]
# **Your turn.** `tutorials/exercises/` holds exercises that extend the engine this way:
# `leaky_relu`, `logsumexp` and `maximum` (broadcasting and ties), each one call to
# `Tensor.record` in `tutorials/exercises/my_ops.py`, with hints in three tiers and checker
# tests (`pytest tutorials/exercises -m ex_leaky_relu`; see `tutorials/exercises/README.md`).
#
# ## The whole backward pass, by hand
#
# Here is the whole backward pass written out by hand with those stored rules, before we let
# the engine do it:

# %%
def backward_by_hand(root: Tensor) -> dict[str, float]:
    """Walk the graph from ``root`` to the leaves, applying each node's local chain rule."""
    grads = {root: np.ones_like(root.data)}  # ∂root/∂root = 1
    for node in reversed(topological_order(root)):  # outputs before inputs (see below)
        if node.is_leaf:
            continue
        for parent, g in zip(node.parents, node._backward(grads[node])):
            if g is not None:  # None: the input is a constant that needs no gradient
                grads[parent] = grads.get(parent, 0.0) + g  # add: a node may feed several others
    return {node.name: float(g) for node, g in grads.items() if node.is_leaf}


by_hand = backward_by_hand(L)
print(by_hand)

# %% [markdown]
# The same walk as a sequence of pictures: each frame handles one node, in the order backward
# visits them, and shows the gradient it passes on to its inputs. Drag the slider.

# %% tags=["html"]
draw_backward_steps(L)

# %% [markdown]
# And the engine's own backward pass, which fills in `.grad` on every tensor:

# %%
L.backward()
print({t.name: t.grad.item() for t in (a, b, c, f)})

# %% tags=["graph"]
draw_graph(L)

# %% [markdown]
# `gradcheck` compares the backward pass with finite differences, (L(x + ε) − L(x − ε)) / 2ε,
# for every input. It is slow, one pair of evaluations per number, which is exactly why we
# do not train with it, but it is the tool to reach for whenever you write a new operation.

# %%
finite_differences_agree = gradcheck(lambda a, b, c, f: (a * b + c) * f, [a, b, c, f])
print("gradcheck:", finite_differences_agree)  # True, or it raises naming the input and element

# %% [markdown]
# ## Why the order of the walk matters
#
# A node must pass its gradient on only **after every node that uses it has sent its share**.
# As soon as a value feeds more than one place (fan-out), the gradients from all of its uses
# add up, and passing on a partial sum loses the rest.
#
# The smallest fan-out is `y = x + x`: both inputs of the addition are the same tensor, so
# ∂y/∂x = 1 + 1 = 2. Adding the two contributions, instead of letting the second overwrite the
# first, gives the right answer:

# %%
x = Tensor(3.0, requires_grad=True, name="x")
y = x + x
y.backward()
fan_out = x.grad.item()
print("d(x + x)/dx =", fan_out)

# %% [markdown]
# Adding is necessary but not enough: the *order* matters too. Take an inner node with
# fan-out, `u = 3x` used twice in `z = u + 2u`, so z = 9x and dz/dx = 9. Suppose we walk the
# graph breadth-first from `z`, handling each node as soon as we reach it:

# %%
def backward_in_discovery_order(root: Tensor) -> None:
    """WRONG ON PURPOSE: hands each node's gradient on as soon as the node is reached."""
    for t in topological_order(root):
        t.zero_grad()
    grads = {root: np.ones_like(root.data)}
    queue, done = [root], set()
    while queue:
        node = queue.pop(0)
        if node in done:
            continue
        done.add(node)
        node.grad = grads[node]
        if node.is_leaf:
            continue
        for parent, g in zip(node.parents, node._backward(grads[node])):
            if g is not None:
                grads[parent] = grads.get(parent, 0.0) + g  # too late if parent is done already
                queue.append(parent)


x = Tensor(1.0, requires_grad=True, name="x")
u = x * 3
u.name = "u"
v = u * 2
v.name = "v"
z = u + v
z.name = "z"

backward_in_discovery_order(z)
wrong = x.grad.item()
print("discovery order:  dz/dx =", wrong)

# %% [markdown]
# Breadth-first, `u` is reached straight from `z` and hands on the gradient it has so far (1,
# so x receives 3). Only afterwards does `v` send `u` its share (2), and by then `u` is done:
# x never hears about it. The fix is a **topological order**: list the nodes so that every
# node comes after all of its inputs, then walk that list backwards. Each node is then handled
# only after everything that depends on it has been, so its gradient is complete.
#
# `topological_order` computes that list with an explicit stack rather than recursion, so
# a chain of 100,000 operations does not hit Python's recursion limit.

# %%
print("topological order:", [t.name for t in topological_order(z)])
for t in topological_order(z):
    t.zero_grad()
z.backward()
right = x.grad.item()
print("engine's backward: dz/dx =", right)

# %% tags=["graph"]
draw_graph(z)

# %% [markdown]
# ## Gradients accumulate
#
# `backward` **adds** into `.grad`; it never overwrites. Run it twice and every gradient
# doubles:

# %%
w = Tensor(0.5, requires_grad=True, name="w")
loss = (w * 4 - 1) ** 2  # d/dw = 8 (4w - 1) = 8 at w = 0.5
loss.backward()
once = w.grad.item()
loss.backward()
twice = w.grad.item()
print("after one backward:", once, " after two:", twice)

# %% [markdown]
# This is deliberate, for the same reason as the fan-out rule: a gradient is a sum of
# contributions, and the engine lets you add contributions from *separate* backward passes
# too. Tutorial 2 uses exactly this to average per-sample gradients: backpropagate each sample
# alone and let `.grad` collect the sum.
#
# The price is that you must clear the gradients before computing new ones, which is what
# `zero_grad` does (on a tensor, on a model with `model.zero_grad()`, or on an optimizer with
# `opt.zero_grad()`). Forgetting it is one of the most common training bugs: every step then
# uses the sum of all previous gradients.

# %%
w.zero_grad()
print("after zero_grad:", w.grad)
loss.backward()
print("a fresh backward:", w.grad.item())

# %% [markdown]
# ## What this tutorial established
#
# The assertions below are the results above, checked. If the notebook runs to the end, they
# hold.

# %%
# The chain rule by hand, by the engine, and by finite differences agree.
assert by_hand == {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0}
assert {t.name: t.grad.item() for t in (a, b, c, f)} == by_hand
assert finite_differences_agree is True
# Fan-out: contributions add up (x + x), and only a topological order collects them all.
assert fan_out == 2.0
assert right == 9.0 and wrong == 3.0
# An operation's backward rule is its local derivative times the incoming gradient: mul sends (b, a).
assert e_local == (-3.0, 2.0)
# Tensor.record is the extension point: a new op (cube) with its rule passes gradcheck.
assert np.array_equal(cube_grad, 3 * np.array([0.5, -2.0]) ** 2) and cube_checked is True
# Gradients accumulate across backward calls until zero_grad clears them.
assert once == 8.0 and twice == 16.0
assert w.grad.item() == 8.0
