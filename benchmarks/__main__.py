"""Run every benchmark: each module ``benchmarks/bench_*.py`` and its ``main()``, in name order.

    python -m benchmarks              # all of them
    python -m benchmarks engine       # only those whose name contains "engine"
    python -m benchmarks --markdown docs/data/benchmarks.md    # also write the figures there

``--markdown PATH`` writes what the benchmarks printed, with when, where and how they ran, as a
Markdown file; the documentation site's benchmarks page shows ``docs/data/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import pkgutil
import platform
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import TextIO

import numpy as np

import benchmarks


def bench_modules(selected: list[str]) -> list[str]:
    """Names of the benchmark modules, filtered by the words given on the command line."""
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    return [n for n in names if not selected or any(word in n for word in selected)]


class Tee(io.TextIOBase):
    """Print to the terminal as usual and keep a copy of the text."""

    def __init__(self, terminal: TextIO):
        self.terminal, self.copy = terminal, io.StringIO()

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.copy.write(text)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()


def machine() -> str:
    """Where the figures were measured: CPU, cores, OS, Python, numpy and its BLAS."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{i.get('internal_api')} {i.get('version') or ''}".strip() for i in threadpool_info()
                if i.get("user_api") == "blas"]
        blas = f" ({', '.join(libs)})" if libs else ""
    except ImportError:
        pass
    tuned = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    # Other programs running at the same time slow the timings down: say how busy the machine was.
    load = f"; load average {os.getloadavg()[0]:.1f} when the run ended" if hasattr(os, "getloadavg") else ""
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, numpy {np.__version__}{blas}"
            + (f"; environment {tuned}" if tuned else "") + load)


def write_markdown(path: Path, argv: list[str], results: list[tuple[str, str]], started: float) -> None:
    """The printed figures of each benchmark as Markdown, headed by when, where and how they ran."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    minutes = (time.time() - started) / 60
    lines = [
        f"<!-- Written by `python -m benchmarks {' '.join(argv)}`; rerun it to update, do not edit. -->",
        "",
        f"**Measured** on {when}, in {minutes:.1f} minutes, with `python -m benchmarks {' '.join(argv)}`.",
        "",
        f"**Machine:** {machine()}.",
        "",
    ]
    for name, printed in results:
        module = importlib.import_module(f"benchmarks.{name}")
        summary = (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines += [f"## `benchmarks.{name}`", "", summary, "", "```text", printed.rstrip(), "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run the benchmarks.")
    parser.add_argument("words", nargs="*", help="run only the modules whose name contains one of these")
    parser.add_argument("--markdown", metavar="PATH", type=Path,
                        help="also write the figures to PATH as Markdown (the docs site shows docs/data/benchmarks.md)")
    args = parser.parse_args(argv)
    names = bench_modules(args.words)
    if not names:
        print(f"no benchmark module matches {args.words}", file=sys.stderr)
        return 1
    started = time.time()
    results = []
    for name in names:
        print(f"== benchmarks.{name}")
        tee = Tee(sys.stdout)
        with redirect_stdout(tee):
            importlib.import_module(f"benchmarks.{name}").main()
        results.append((name, tee.copy.getvalue()))
        print()
    if args.markdown:
        write_markdown(args.markdown, argv, results, started)
        print(f"figures written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
