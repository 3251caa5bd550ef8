"""The exercises' checkers work in both directions.

A learner's checker is useful only if it passes on a right answer and fails on the untouched
stub. For every task marker of ``tutorials/exercises``, these tests run the checkers in a
separate pytest process twice: against the reference solutions (every checker must pass) and
against the learner-facing stubs (every checker must fail, with the stub's
NotImplementedError). The stubs' failures stay inside those processes, so the normal suite
never collects the learner-facing checkers directly.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "tutorials" / "exercises"


def _exercise_conftest():
    spec = importlib.util.spec_from_file_location("exercise_conftest", EXERCISES / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Each test here starts pytest in a subprocess (twice per module, shared by all tests).
pytestmark = pytest.mark.slow

conftest = _exercise_conftest()
TASKS = list(conftest.TASKS)


def _run_checkers(implementation: str, workdir: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Run every checker against ``implementation``; per task, (test, outcome, message) rows."""
    report = workdir / f"{implementation}.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop(conftest.IMPLEMENTATION_ENV, None)
    if implementation == "solutions":
        env[conftest.IMPLEMENTATION_ENV] = "solutions"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXERCISES), "-q", "-p", "no:cacheprovider",
         f"--junitxml={report}", "-o", "junit_family=xunit1"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    if not report.exists():
        raise AssertionError(f"the checkers did not run:\n{result.stdout}\n{result.stderr}")
    by_task: dict[str, list[tuple[str, str, str]]] = {}
    for case in ET.parse(report).iter("testcase"):
        task = next((p.get("value") for p in case.iter("property") if p.get("name") == "task"), "no task")
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome, message = kind, (node.get("message") or "") + (node.text or "")
        by_task.setdefault(task, []).append((case.get("name", "?"), outcome, message))
    return by_task


@pytest.fixture(scope="module")
def on_solutions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str, str]]]:
    return _run_checkers("solutions", tmp_path_factory.mktemp("solutions"))


@pytest.fixture(scope="module")
def on_stubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str, str]]]:
    return _run_checkers("stubs", tmp_path_factory.mktemp("stubs"))


def test_every_checker_belongs_to_a_registered_task(on_solutions: dict) -> None:
    assert set(on_solutions) <= set(TASKS), f"checkers outside the tasks {TASKS}: {set(on_solutions) - set(TASKS)}"


@pytest.mark.parametrize("task", TASKS)
def test_checkers_pass_on_the_reference_solution(task: str, on_solutions: dict) -> None:
    rows = on_solutions.get(task, [])
    assert len(rows) >= 3, f"{task}: only {len(rows)} checker(s)"
    failed = [(name, outcome, message[:300]) for name, outcome, message in rows if outcome != "passed"]
    assert not failed, f"{task}: checkers that do not pass on the reference solution: {failed}"


@pytest.mark.parametrize("task", TASKS)
def test_checkers_fail_on_the_untouched_stub(task: str, on_stubs: dict) -> None:
    rows = on_stubs.get(task, [])
    assert rows, f"{task}: no checkers ran against the stubs"
    passed = [name for name, outcome, _ in rows if outcome == "passed"]
    assert not passed, f"{task}: checkers that pass although the task is not done: {passed}"
    other = [(name, message[:300]) for name, outcome, message in rows
             if outcome != "failure" or "NotImplementedError" not in message]
    assert not other, f"{task}: checkers that fail for another reason than the stub's NotImplementedError: {other}"
