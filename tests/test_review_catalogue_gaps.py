"""Inputs the bad-input catalogue found handled badly: each now a clear error naming the function."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_mb import Tensor, nn, optim
from tinygrad_mb.distributed import shard
from tinygrad_mb.train import Trainer
from viz import walk


@pytest.mark.parametrize("n, rank, size, fragment", [
    (10, 0, 0, "size must be a whole number >= 1"),
    ("10", 0, 2, "n must be a whole number >= 0"),
    (2.5, 0, 2, "n must be a whole number >= 0"),
    (-4, 0, 2, "n must be a whole number >= 0"),
    (10, -1, 3, "rank must be a whole number >= 0"),
    (10, 3, 3, "rank 3 does not exist among 3 ranks"),
])
def test_shard_refuses_sizes_and_ranks_that_do_not_exist(n, rank, size, fragment):
    with pytest.raises(ValueError, match="shard: " + fragment):
        shard(n, rank, size)


def test_shard_covers_every_sample_once_as_evenly_as_possible():
    for n in range(0, 12):
        for size in range(1, 5):
            parts = [shard(n, r, size) for r in range(size)]
            assert [i for p in parts for i in range(n)[p]] == list(range(n))
            assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


@pytest.mark.parametrize("args", [(0, 1.0, 0.0, 1.0), (0, 1.0, -2.0, 0.5), ("a", 1.0, 1.0, 0.5), (0, -1.0, 1.0, 0.5)])
def test_polynomial_decay_refuses_arguments_without_a_positive_step_size(args):
    with pytest.raises(ValueError, match="polynomial_decay: "):
        optim.polynomial_decay(*args)
    assert optim.polynomial_decay(3, 0.1, 1.0, 0.55) == pytest.approx(0.1 * 4**-0.55)


@pytest.mark.parametrize("params", [None, 3, "abc"])
def test_an_optimizer_needs_a_list_of_parameters(params):
    with pytest.raises(TypeError, match="SGD: params must be a list of parameters"):
        optim.SGD(params, lr=0.1)


def test_the_trainer_checks_the_types_of_its_parts():
    model = nn.MLP([2, 2], rng=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="Trainer: model must be an nn.Module, got int"):
        Trainer(3, nn.cross_entropy, opt)
    with pytest.raises(TypeError, match="Trainer: optimizer must be one of tinygrad_mb.optim's optimizers"):
        Trainer(model, nn.cross_entropy, 3)
    with pytest.raises(ValueError, match="Trainer: strategy must be a name"):
        Trainer(model, nn.cross_entropy, opt, strategy=["x"])
    with pytest.raises(ValueError, match="Trainer: progress must be True or False, got 'no'"):
        Trainer(model, nn.cross_entropy, opt, progress="no")


def test_viz_walk_refuses_what_is_not_a_tensor():
    with pytest.raises(TypeError, match="walk: expected a Tensor"):
        walk(np.ones(3))
    assert len(walk(Tensor(np.ones(2), requires_grad=True).sum()).nodes) == 2
