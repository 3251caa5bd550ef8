"""The demo shows what it claims: the correct strategies agree, the error-first ones do not.

``python -m tinygrad_mb.demo`` (``make demo``) trains one model from one initialisation with
every strategy and prints, per strategy, the largest difference from ``batched_mean`` of the
first batch's gradient and of the final weights. The tests run the demo's own ``main`` once,
keep the numbers each table was printed from, and check them: the correct strategies agree to
rounding (< 1e-12), the ones labelled WRONG differ by more than 1e-3.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tinygrad_mb import demo, minibatch

ROOT = Path(__file__).resolve().parent.parent
ALL_RUNS = demo.CLASSIFICATION_RUNS + demo.REGRESSION_RUNS


@pytest.fixture(scope="module")
def demo_output() -> tuple[str, dict[str, dict[str, dict[str, Any]]]]:
    """Run ``demo.main()`` once; return what it printed and each table's numbers, by title."""
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    original = demo.compare

    def recording(title: str, *args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
        tables[title] = original(title, *args, **kwargs)
        return tables[title]

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(demo, "compare", recording)
        demo.main()
    return out.getvalue(), tables


def is_wrong(label: str) -> bool:
    return label.rstrip().endswith("WRONG")


def test_demo_covers_every_strategy_and_every_error_first_variant() -> None:
    used = {(kwargs["strategy"], kwargs.get("variant")) for _, kwargs in ALL_RUNS}
    assert {("batched_mean", None), ("per_sample", None), ("accumulated", None)} <= used
    assert {v for s, v in used if s == "error_first"} == set(minibatch.ERROR_FIRST_VARIANTS)


def test_demo_labels_exactly_the_wrong_strategies_as_wrong() -> None:
    for label, kwargs in ALL_RUNS:
        assert is_wrong(label) == (kwargs["strategy"] in ("naive_accumulated", "error_first")), label


def test_demo_prints_one_table_per_data_set_with_every_strategy(demo_output: tuple[str, dict]) -> None:
    text, tables = demo_output
    assert len(tables) == 2
    for title, results in tables.items():
        assert title in text
        section = text.split(title, 1)[1].splitlines()  # this table, then anything printed after it
        for label, row in results.items():
            line = next(line for line in section if line.strip().startswith(label.strip()))
            assert f"{row['grad_diff']:.2e}" in line and f"{row['loss']:.4f}" in line
    assert "(the last batch has 8)" in text  # 200 samples in batches of 24: a short last batch


def test_correct_strategies_agree_with_batched_mean_to_rounding(demo_output: tuple[str, dict]) -> None:
    _, tables = demo_output
    for results in tables.values():
        reference = results["batched_mean"]
        assert reference["grad_diff"] == 0.0 and reference["weight_diff"] == 0.0
        for label, row in results.items():
            if not is_wrong(label):
                assert row["grad_diff"] < 1e-12, label
                assert row["weight_diff"] < 1e-12, label  # after 60 epochs of training
                assert row["loss"] == pytest.approx(reference["loss"], abs=1e-12), label


def test_error_first_and_naive_accumulation_differ_from_batched_mean(demo_output: tuple[str, dict]) -> None:
    _, tables = demo_output
    wrong = [(label, row) for results in tables.values() for label, row in results.items() if is_wrong(label)]
    assert len(wrong) == sum(is_wrong(label) for label, _ in ALL_RUNS) == 6
    for label, row in wrong:
        assert row["grad_diff"] > 1e-3, label
        assert row["weight_diff"] > 1e-3, label


def test_classification_table_reports_accuracy(demo_output: tuple[str, dict]) -> None:
    _, tables = demo_output
    classification = next(results for title, results in tables.items() if "cross-entropy" in title)
    for row in classification.values():
        assert 0.0 <= row["accuracy"] <= 1.0
    assert classification["batched_mean"]["accuracy"] > 0.9  # the correct gradient does learn the moons


def test_the_demo_command_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "tinygrad_mb.demo"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("WRONG") == 6 and "Regression" in result.stdout
