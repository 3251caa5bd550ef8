"""The exercises' checkers catch plausible wrong answers and say what to try; every task has tiered hints.

``tests/test_exercises.py`` proves that each checker passes on the reference solution and fails
on the untouched stub. That is not enough: a checker must also fail on the mistakes learners
actually make, with a message that says what to try instead. ``tutorials/exercises/wrong/``
holds such mistakes, one function each; here each task's checkers run against each of its
mistakes (``TINYGRAD_MB_EXERCISES=wrong:<mistake>``, in a separate pytest process) and must
fail, at least one of them with a message matching the mistake's advice.

Hints come in three tiers per task (the idea, the formula, the code), printed one at a time by
``tutorials/exercises/hints.py``; the stubs' error messages point there and give nothing away.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "tutorials" / "exercises"


def _module_from(path: Path, name: str) -> ModuleType:
    """Import a file of the exercises under a name of its own, without putting their folder on sys.path."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


conftest = _module_from(EXERCISES / "conftest.py", "exercise_conftest")
wrong = _module_from(EXERCISES / "wrong" / "__init__.py", "exercise_wrong")  # plain data: imports nothing else
hints = _module_from(EXERCISES / "hints.py", "exercise_hints")
TASKS = list(conftest.TASKS)
MISTAKES = wrong.MISTAKES


# ------------------------------------------------------------------ hints
def test_every_task_has_three_tiers_of_hints() -> None:
    assert set(hints.HINTS) == set(TASKS), (
        f"tasks without hints: {sorted(set(TASKS) - set(hints.HINTS))}; hints without a task: "
        f"{sorted(set(hints.HINTS) - set(TASKS))}"
    )
    for task, tiers in hints.HINTS.items():
        assert len(tiers) == 3 and all(t.strip() for t in tiers), f"{task}: give exactly three non-empty hints"


def test_only_the_code_hint_shows_code() -> None:
    """Hint 1 (the idea) and hint 2 (the formula) leave the writing to the learner: no Tensor.record(...) call."""
    for task, (idea, formula, code) in hints.HINTS.items():
        for tier, text in (("1", idea), ("2", formula)):
            assert "Tensor.record(" not in text and "backward()" not in text and "def " not in text, (
                f"{task}, hint {tier} shows code; keep code for hint 3"
            )
        assert "return" in code or "raise" in code, f"{task}: hint 3 should show the code"


def _hint_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXERCISES / "hints.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_hint_command_prints_one_tier_at_a_time() -> None:
    task = "ex_token_weighted_accumulation"
    first, third = _hint_command(task, "1"), _hint_command(task, "3")
    assert first.returncode == 0 and third.returncode == 0, first.stderr + third.stderr
    idea, _, code = hints.HINTS[task]
    assert idea.split("\n")[0] in first.stdout and code.split("\n")[0] not in first.stdout
    assert code.split("\n")[0] in third.stdout and idea.split("\n")[0] not in third.stdout
    assert f"hints.py {task} 2" in first.stdout, "hint 1 should say how to get hint 2"


def test_the_hint_command_lists_the_tasks_and_refuses_unknown_ones() -> None:
    listing = _hint_command()
    assert listing.returncode == 0 and all(task in listing.stdout for task in TASKS)
    unknown = _hint_command("ex_nonexistent", "1")
    assert unknown.returncode != 0 and "ex_leaky_relu" in unknown.stderr, "an unknown task lists the known ones"
    too_far = _hint_command("ex_maximum", "4")
    assert too_far.returncode != 0 and "1, 2 or 3" in too_far.stderr


def _stub_messages() -> dict[str, str]:
    """function name -> the text of the NotImplementedError its stub raises, read from the source."""
    messages = {}
    for path in sorted(EXERCISES.glob("my_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                for inner in ast.walk(node):
                    if (isinstance(inner, ast.Raise) and isinstance(inner.exc, ast.Call)
                            and getattr(inner.exc.func, "id", None) == "NotImplementedError"):
                        messages[node.name] = "".join(
                            part.value for arg in inner.exc.args for part in ast.walk(arg)
                            if isinstance(part, ast.Constant) and isinstance(part.value, str))
    return messages


def test_every_stub_points_to_its_hints_and_gives_nothing_away() -> None:
    messages = _stub_messages()
    assert len(messages) >= len(TASKS), f"found stubs {sorted(messages)}"
    for function, message in messages.items():
        named = [task for task in TASKS if f"hints.py {task} 1" in message]
        assert len(named) == 1, f"{function}'s stub should name its task's hint command: {message!r}"
        code = re.findall(r"np\.|\.data|Tensor|backward|minibatch\.|=|\*|/ ", message)
        assert not code, f"{function}'s stub message gives the solution away ({code}): {message!r}"


# ------------------------------------------------------------------ wrong answers
def test_every_wrong_answer_is_registered_and_written() -> None:
    written = {}
    for path in (EXERCISES / "wrong").glob("my_*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                written[node.name] = path.stem
    assert set(written) == set(MISTAKES), (
        f"wrong answers without an entry in MISTAKES: {sorted(set(written) - set(MISTAKES))}; entries without "
        f"a function: {sorted(set(MISTAKES) - set(written))}"
    )
    for name, mistake in MISTAKES.items():
        assert mistake.task in TASKS, f"{name}: unknown task {mistake.task}"
        assert written[name] == mistake.module, (
            f"{name} is written in {written[name]}.py but registered for {mistake.module}")
    assert {m.task for m in MISTAKES.values()} == set(TASKS), "every task needs wrong answers its checkers catch"


def _run_checkers(mistake: str, workdir: Path) -> list[tuple[str, str, str]]:
    """Run the mistake's task's checkers against it; (test, outcome, message) rows."""
    report = workdir / f"{mistake}.xml"
    checkers = EXERCISES / f"test_ex_{MISTAKES[mistake].module.removeprefix('my_')}.py"  # my_ops -> test_ex_ops
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           conftest.IMPLEMENTATION_ENV: f"wrong:{mistake}"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(checkers), "-q", "-p", "no:cacheprovider", "-m", MISTAKES[mistake].task,
         f"--junitxml={report}", "-o", "junit_family=xunit1"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    if not report.exists():
        raise AssertionError(f"the checkers did not run for {mistake}:\n{result.stdout}\n{result.stderr}")
    rows = []
    for case in ET.parse(report).iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome, message = kind, (node.get("message") or "") + "\n" + (node.text or "")
        rows.append((case.get("name", "?"), outcome, message))
    return rows


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str, str]]]:
    """Every mistake's checker results, the pytest processes run a few at a time."""
    workdir = tmp_path_factory.mktemp("wrong")
    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        results = pool.map(lambda name: (name, _run_checkers(name, workdir)), MISTAKES)
        return dict(results)


@pytest.mark.slow
@pytest.mark.parametrize("mistake", MISTAKES)
def test_checkers_reject_the_wrong_answer_saying_what_to_try(mistake: str, verdicts: dict) -> None:
    rows = verdicts[mistake]
    spec = MISTAKES[mistake]
    assert rows, f"{mistake}: no checker of {spec.task} ran"
    errors = [(name, message[-600:]) for name, outcome, message in rows if outcome == "error"]
    assert not errors, f"{mistake}: checkers that broke instead of failing: {errors}"
    failures = [message for _, outcome, message in rows if outcome == "failure"]
    assert failures, f"{mistake}: every checker of {spec.task} accepted this wrong answer"
    assert not any("not written yet" in message for message in failures), f"{mistake}: the stub ran, not the mistake"
    advised = [message for message in failures if re.search(spec.advice, message, re.DOTALL)]
    assert advised, (
        f"{mistake}: {len(failures)} checker(s) of {spec.task} reject it, but none says /{spec.advice}/; "
        f"they say:\n" + "\n---\n".join(m[:800] for m in failures)
    )
