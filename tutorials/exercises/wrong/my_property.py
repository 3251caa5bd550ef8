"""Wrong answers to exercise 5 (see __init__.py): each function is one mistake, named after it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from solutions.my_property import Strategy

from tinygrad_mb import minibatch, nn


def _compare(strategy: Strategy, batch_size: int, seed: int, same_input: bool = False,
             values: bool = True) -> None:
    rng = np.random.default_rng(seed)
    model = nn.MLP([3, 5, 2], activation="tanh", rng=seed)
    X = rng.normal(size=(1 if same_input else batch_size, 3))
    X = np.repeat(X, batch_size, axis=0) if same_input else X
    y = rng.normal(size=(batch_size, 2))
    expected = minibatch.batched_mean(model, nn.mse_loss, X, y)
    got = strategy(model, nn.mse_loss, X, y)
    for g, e in zip(got, expected, strict=True):
        assert np.shape(g) == e.shape
        if values:
            assert np.allclose(g, e, rtol=1e-7, atol=1e-10)


def batches_of_at_most_five(strategy: Strategy) -> None:
    """Many draws, but every batch holds 1 to 5 samples: a micro-batch of 5 never splits one."""

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(batch_size=st.integers(1, 5), seed=st.integers(0, 2**16))
    def prop(batch_size: int, seed: int) -> None:
        _compare(strategy, batch_size, seed)

    prop()


def the_same_input_for_every_sample(strategy: Strategy) -> None:
    """Different targets, but one input row repeated: every sample's activations are the same."""

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(batch_size=st.integers(1, 12), seed=st.integers(0, 2**16))
    def prop(batch_size: int, seed: int) -> None:
        _compare(strategy, batch_size, seed, same_input=True)

    prop()


def one_fixed_batch(strategy: Strategy) -> None:
    """One hand-picked batch of 7 samples, no hypothesis."""
    _compare(strategy, 7, seed=0)


def compares_shapes_only(strategy: Strategy) -> None:
    """Many batches, but only the gradients' shapes are compared."""

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(batch_size=st.integers(1, 12), seed=st.integers(0, 2**16))
    def prop(batch_size: int, seed: int) -> None:
        _compare(strategy, batch_size, seed, values=False)

    prop()


def a_loose_tolerance(strategy: Strategy) -> None:
    """Good batches, but values compared with rtol=0.5: a factor of 1.01, or 0.6, passes."""

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(batch_size=st.integers(1, 12), seed=st.integers(0, 2**16))
    def prop(batch_size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        model = nn.MLP([3, 5, 2], activation="tanh", rng=seed)
        X, y = rng.normal(size=(batch_size, 3)), rng.normal(size=(batch_size, 2))
        expected = minibatch.batched_mean(model, nn.mse_loss, X, y)
        for g, e in zip(strategy(model, nn.mse_loss, X, y), expected, strict=True):
            assert np.allclose(g, e, rtol=0.5, atol=1e-8)

    prop()


def even_batch_sizes_only(strategy: Strategy) -> None:
    """Batch sizes 2, 4, ..., 12: chunks of 2 always split them evenly."""

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(half=st.integers(1, 6), seed=st.integers(0, 2**16))
    def prop(half: int, seed: int) -> None:
        _compare(strategy, 2 * half, seed)

    prop()
