"""Data parallelism over MPI: sums and counts all-reduced give the batch-mean gradient.

The MPI tests start real processes with the ``mpiexec`` installed next to this Python (the
mpich wheel of the ``distributed`` extra). Each launch runs a script of ``tests/mpi/`` whose
ranks check many things at once and whose rank 0 prints one report; the tests below read it.
Every launch is bounded by a timeout that kills its whole process group, so a hang fails the
test instead of stalling the suite.

The Trainer checks train with ``Trainer(strategy="data_parallel", comm=comm)`` and compare
with single-process ``batched_mean`` training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tinygrad_mb.distributed import shard

ROOT = Path(__file__).resolve().parent.parent
MPI_SCRIPTS = ROOT / "tests" / "mpi"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
TIMEOUT = 60  # seconds for any launch; each takes about 2 s on a 2-core machine


def require_mpi() -> None:
    """Skip, saying why, where mpi4py or its mpiexec is missing."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed: pip install -e '.[distributed]'")
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec next to {sys.executable}: pip install -e '.[distributed]' (the mpich wheel)")


@dataclass
class Launch:
    returncode: int
    stdout: str
    stderr: str


def mpiexec(n: int, *args: str, timeout: float = TIMEOUT) -> Launch:
    """Run ``mpiexec -n n python args...`` from the repository root, killed after ``timeout`` seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # 3 ranks share 2 cores: one thread each
    # A session of its own, so that a timeout kills mpiexec and every rank it started.
    proc = subprocess.Popen([str(MPIEXEC), "-n", str(n), sys.executable, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {' '.join(args)} still ran after {timeout} s (a hang?)\n{out}\n{err}")
    return Launch(proc.returncode, out, err)


@pytest.fixture(scope="module", params=[2, 3], ids=["2 ranks", "3 ranks"])
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The checks of tests/mpi/checks.py on 2 or 3 ranks: one dict per rank."""
    require_mpi()
    tmp = tmp_path_factory.mktemp(f"mpi{request.param}")
    run = mpiexec(request.param, str(MPI_SCRIPTS / "checks.py"), str(tmp))
    lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
    assert run.returncode == 0 and lines, f"the MPI checks failed (exit code {run.returncode}):\n{run.stderr}"
    return json.loads(lines[-1][len("REPORT "):])


def cases(report: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(r["rank"], case) for r in report["ranks"] for case in r["gradients"]]


# ------------------------------------------------------------------------------ without MPI
def test_shard_splits_a_batch_as_evenly_as_possible() -> None:
    for size in range(1, 6):
        for n in range(0, 13):
            slices = [shard(n, rank, size) for rank in range(size)]
            assert [s.start for s in slices[1:]] == [s.stop for s in slices[:-1]]  # in order, no gap
            assert slices[0].start == 0 and slices[-1].stop == n
            counts = [s.stop - s.start for s in slices]
            assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)
    assert [shard(10, r, 3) for r in range(3)] == [slice(0, 4), slice(4, 7), slice(7, 10)]


def test_the_engine_imports_without_mpi4py_and_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['mpi4py'] = None  # as if mpi4py were not installed\n"
        "import tinygrad_mb, tinygrad_mb.distributed\n"
        "from tinygrad_mb import nn\n"
        "from tinygrad_mb.distributed import data_parallel_gradient\n"
        "try:\n"
        "    data_parallel_gradient(nn.Linear(2, 1), nn.mse_loss, [[1.0, 2.0]], [[0.0]])\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert "pip install 'tinygrad-mb[distributed]'" in run.stdout


def test_trainer_refuses_comm_without_data_parallel() -> None:
    from tinygrad_mb import nn, optim
    from tinygrad_mb.train import Trainer

    model = nn.MLP([2, 4, 2], rng=0)
    with pytest.raises(ValueError, match="comm is used only by strategy 'data_parallel'"):
        Trainer(model, nn.cross_entropy, optim.SGD(model.parameters(), lr=0.1), comm=object())


# ------------------------------------------------------------------------------ data_parallel_gradient
def test_data_parallel_gradient_equals_batched_mean_on_every_rank(report: dict[str, Any]) -> None:
    for rank, case in cases(report):
        where = f"rank {rank}, shards {case['sizes']}, {case['loss_fn']}"
        assert case["samples_diff"] < 1e-12, where
        assert case["loss_diff"] < 1e-12, where
        assert case["grad_is_result"] and case["params_unchanged"], where


def test_every_rank_ends_with_the_same_gradient_bits(report: dict[str, Any]) -> None:
    by_case: dict[str, set[str]] = {}
    for _, case in cases(report):
        by_case.setdefault(f"{case['sizes']} {case['loss_fn']}", set()).add(case["digest"])
    assert all(len(digests) == 1 for digests in by_case.values()), by_case


def test_equal_weighting_is_the_mean_of_the_ranks_means_and_differs(report: dict[str, Any]) -> None:
    checked = [(rank, case) for rank, case in cases(report) if 0 not in case["sizes"]]
    assert checked
    for rank, case in checked:
        assert case["equal_vs_formula"] < 1e-12, (rank, case)
        assert case["equal_diff"] > 1e-3, (rank, case)  # wrong, and visibly so, with uneven shards


def test_equal_weighting_refuses_an_empty_shard_on_every_rank(report: dict[str, Any]) -> None:
    checked = [(rank, case) for rank, case in cases(report) if 0 in case["sizes"]]
    assert checked
    for rank, case in checked:
        assert "1 of the" in case.get("equal_error", "") and "weighting='samples'" in case["equal_error"], case
        assert case["equal_grad_kept"], (rank, case)


def test_a_rank_failing_on_its_shard_raises_on_every_rank_and_changes_no_grad(report: dict[str, Any]) -> None:
    size = report["size"]
    for rank, case in cases(report):
        if rank == size - 1:  # the rank with the broken shard names its own mistake
            assert case["failure"].startswith("ValueError: data_parallel_gradient: X_shard"), case["failure"]
        else:
            assert case["failure"].startswith(f"RuntimeError: data_parallel_gradient: a rank among the {size} "
                                              f"failed on its shard"), case
        assert case["failure_grad_kept"], (rank, case)


# ------------------------------------------------------------------------------ Trainer
def trainer_results(report: dict[str, Any]) -> list[dict[str, Any]]:
    results = [r["trainer"] for r in report["ranks"]]
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, f"Trainer(strategy='data_parallel') failed: {errors[0]}"
    return results


def test_trainer_data_parallel_equals_batched_mean_training(report: dict[str, Any]) -> None:
    for rank, result in enumerate(trainer_results(report)):
        assert result["param_diff"] < 1e-9, (rank, result)
        assert result["loss_diff"] < 1e-9, (rank, result)


def test_trainer_ranks_end_bit_identical(report: dict[str, Any]) -> None:
    assert len({r["digest"] for r in trainer_results(report)}) == 1


def test_trainer_shows_progress_and_writes_checkpoints_on_rank_0_only(report: dict[str, Any]) -> None:
    results = trainer_results(report)
    only_rank_0 = [True] + [False] * (len(results) - 1)
    assert [r["checkpoint_written"] for r in results] == only_rank_0
    if importlib.util.find_spec("tqdm") is not None:  # without tqdm no rank shows a bar
        assert [r["progress_shown"] for r in results] == only_rank_0


# ------------------------------------------------------------------------------ ranks that disagree
@pytest.fixture(scope="module")
def disagreements(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """tests/mpi/disagreements.py on 2 ranks: what each rank raised in each case (a hang fails the launch)."""
    require_mpi()
    run = mpiexec(2, str(MPI_SCRIPTS / "disagreements.py"), str(tmp_path_factory.mktemp("disagree")))
    lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
    assert run.returncode == 0 and lines, f"the MPI checks failed (exit code {run.returncode}):\n{run.stderr}"
    return json.loads(lines[-1][len("REPORT "):])["ranks"]


OTHERS_RAISE = "RuntimeError: {op}: a rank among the 2 failed on {what} (its own error says why), so every rank"


@pytest.mark.parametrize("case, failing, own, op, what", [
    ("bad_weighting_on_one_rank", 1, "ValueError: data_parallel_gradient: weighting must be one of",
     "data_parallel_gradient", "its shard"),
    ("batch_size_0_on_one_rank", 1, "ValueError: Trainer.fit: batch_size must be", "Trainer.fit (data_parallel)",
     "the checks before training"),
    ("checkpoint_unwritable_on_rank_0", 0, "CheckpointError: Trainer.fit: '", "Trainer.fit (data_parallel)",
     "the checks before training"),
])
def test_a_rank_refusing_its_arguments_makes_every_rank_raise(disagreements: list[dict[str, Any]], case: str,
                                                              failing: int, own: str, op: str, what: str) -> None:
    """It used to raise alone, before the first collective, and leave the other rank waiting forever."""
    for report in disagreements:
        expected = own if report["rank"] == failing else OTHERS_RAISE.format(op=op, what=what)
        assert report[case].startswith(expected), (report["rank"], report[case])


@pytest.mark.parametrize("case", ["weightings_differ", "models_differ", "dtypes_differ"])
def test_ranks_with_different_models_or_weightings_all_raise(disagreements: list[dict[str, Any]], case: str) -> None:
    """Different weightings gave each rank another gradient, silently; different models hung or crashed MPI."""
    for report in disagreements:
        assert report[case].startswith("ValueError: data_parallel_gradient: the model's parameter shapes and "
                                       "dtypes, and weighting differ between the 2 ranks"), report[case]


@pytest.mark.parametrize("case, fragment", [
    ("sgld_without_a_seed", "for SGLD pass the same seed="),
    ("learning_rates_differ", "build the optimizer with the same arguments on every rank"),
    ("loaded_on_rank_0_only", "call trainer.load(path) on every rank"),
])
def test_trainers_that_would_drift_apart_are_refused_on_every_rank(disagreements: list[dict[str, Any]], case: str,
                                                                   fragment: str) -> None:
    """SGLD without a seed drew other noise on every rank: the ranks' models drifted apart silently."""
    for report in disagreements:
        assert report[case].startswith("ValueError: Trainer.fit (data_parallel):") and fragment in report[case]


def test_a_communicator_that_is_not_one_is_refused(disagreements: list[dict[str, Any]]) -> None:
    for report in disagreements:
        assert report["not_a_communicator"].startswith("TypeError: data_parallel_gradient: comm must be an MPI "
                                                       "communicator"), report
        assert report["null_communicator"].startswith("TypeError: Trainer: comm must be"), report


def test_frozen_tensors_start_from_rank_0s_values_too(disagreements: list[dict[str, Any]]) -> None:
    """Only trainable parameters were broadcast: frozen ones kept each rank's own, and every step
    summed the gradients of different models."""
    assert all(r["frozen_equal_everywhere"] and r["frozen_is_rank_0s"] for r in disagreements)


def test_only_rank_0_probes_the_checkpoint(disagreements: list[dict[str, Any]]) -> None:
    """Every rank probed the path and deleted the others' probe files, rank 0's save among them."""
    assert all(r["twenty_fits_with_a_checkpoint"] == "ok" for r in disagreements), disagreements


# ------------------------------------------------------------------------------ a rank that raises
@pytest.mark.parametrize("where", ["loop", "trainer"])
def test_a_rank_raising_mid_training_ends_the_whole_job(where: str) -> None:
    require_mpi()
    run = mpiexec(3, str(MPI_SCRIPTS / "rank_raises.py"), where, timeout=30)
    assert run.returncode != 0, run.stdout
    assert "finished" not in run.stdout, run.stdout
    assert "rank 1 of 3 raised RuntimeError: rank 1's optimizer fails on purpose" in run.stderr, run.stderr
    assert "aborting all 3 ranks" in run.stderr, run.stderr


def test_the_demo_shows_samples_right_and_equal_wrong() -> None:
    require_mpi()
    run = mpiexec(3, "-m", "tinygrad_mb.distributed", "--demo", "--epochs", "2")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("Data-parallel gradient on 3 MPI ranks") == 1  # printed by rank 0 only
    line = next(line for line in run.stdout.splitlines() if line.startswith("largest difference"))
    samples, equal = (float(word.strip(",")) for word in line.split()[-3::2])
    assert samples < 1e-14 and equal > 1e-3, line
