"""Hypothesis strategies shared by the test suite: shapes, broadcastable pairs, arrays.

Finite differences only approximate a derivative where the function is smooth around the
point, so the array strategies can keep values away from the places where an op is not
(``abs`` and ``relu`` at 0, ``log`` and ``sqrt`` near 0, a denominator near 0, ties of
``max``). Everything is float64: the tests compare against finite differences, which need
the precision.

    from strategies import shapes, broadcastable_pair, arrays, away_from_zero, upstream_like
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MAX_SIDE = 4


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
           max_side: int = MAX_SIDE) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes, e.g. (), (3,), (2, 1, 4)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_pair(min_dims: int = 0, max_dims: int = 3,
                       max_side: int = MAX_SIDE) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """Two shapes that broadcast together: missing leading axes, axes of size 1, equal axes."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             max_side=max_side).map(lambda b: b.input_shapes)


def axis_and_keepdims(ndim: int) -> st.SearchStrategy[tuple[Any, bool]]:
    """A reduction's arguments for an ``ndim``-dimensional tensor: None, one axis (positive or
    negative) or a tuple of distinct axes, and keepdims."""
    if ndim == 0:
        axis: st.SearchStrategy[Any] = st.just(None)
    else:
        one = st.integers(-ndim, ndim - 1)
        several = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                           unique=True).map(tuple)
        axis = st.one_of(st.none(), one, several)
    return st.tuples(axis, st.booleans())


def arrays(shape: tuple[int, ...], low: float = -2.0, high: float = 2.0,
           dtype: Any = np.float64) -> st.SearchStrategy[np.ndarray]:
    """Arrays of ``shape`` with values in [low, high]."""
    return hnp.arrays(dtype, shape, elements=st.floats(low, high, allow_nan=False,
                                                       allow_infinity=False, width=64))


def away_from_zero(shape: tuple[int, ...], margin: float = 0.2,
                   high: float = 2.0) -> st.SearchStrategy[np.ndarray]:
    """Arrays whose values lie in [-high, -margin] or [margin, high] (kinks and poles at 0)."""
    magnitudes = arrays(shape, margin, high)
    signs = hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0]))
    return st.tuples(magnitudes, signs).map(lambda ms: np.asarray(ms[0] * ms[1]))


def positive(shape: tuple[int, ...], low: float = 0.2,
             high: float = 3.0) -> st.SearchStrategy[np.ndarray]:
    """Arrays with values in [low, high]: inside the domain of log, sqrt and fractional powers."""
    return arrays(shape, low, high)


def separated(shape: tuple[int, ...], gap: float = 0.1) -> st.SearchStrategy[np.ndarray]:
    """Arrays of distinct values at least ``gap`` apart (no ties, for ``max``), in random order."""
    size = int(np.prod(shape))

    def build(args: tuple[list[int], float]) -> np.ndarray:
        order, offset = args
        values = offset + gap * np.asarray(order, dtype=np.float64)  # distinct integers * gap
        return values.reshape(shape)

    return st.tuples(st.permutations(list(range(size))),
                     st.floats(-2.0, 2.0, allow_nan=False)).map(build)


def upstream_like(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """A non-uniform upstream gradient of ``shape``: magnitudes in [0.5, 1.5], random signs.

    Seeding backward with ones would let a backward that mixes up its elements (a wrong
    transpose, a sum over the wrong axis) pass unnoticed; distinct values expose it.
    """
    return away_from_zero(shape, margin=0.5, high=1.5)


@st.composite
def classification_batch(draw: st.DrawFn, max_batch: int = 8, max_features: int = 4,
                         max_classes: int = 4) -> tuple[np.ndarray, np.ndarray, int]:
    """A batch (X of shape (B, D), integer labels y of shape (B,), number of classes C)."""
    batch = draw(st.integers(1, max_batch))
    features = draw(st.integers(1, max_features))
    classes = draw(st.integers(2, max_classes))
    X = draw(arrays((batch, features)))
    y = np.asarray(draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)),
                   dtype=np.int64)
    return X, y, classes


@st.composite
def logits_and_labels(draw: st.DrawFn, max_batch: int = 8, max_classes: int = 5,
                      scale: float = 5.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores for a classifier: logits of shape (B, C), integer labels of shape (B,), and C."""
    batch = draw(st.integers(1, max_batch))
    classes = draw(st.integers(2, max_classes))
    logits = draw(arrays((batch, classes), -scale, scale))
    y = np.asarray(draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)),
                   dtype=np.int64)
    return logits, y, classes
