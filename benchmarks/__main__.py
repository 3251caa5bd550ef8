"""Run every benchmark: each module ``benchmarks/bench_*.py`` and its ``main()``, in name order.

    python -m benchmarks              # all of them
    python -m benchmarks engine       # only those whose name contains "engine"
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def bench_modules(selected: list[str]) -> list[str]:
    """Names of the benchmark modules, filtered by the words given on the command line."""
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    return [n for n in names if not selected or any(word in n for word in selected)]


def main(argv: list[str]) -> int:
    names = bench_modules(argv)
    if not names:
        print(f"no benchmark module matches {argv}", file=sys.stderr)
        return 1
    for name in names:
        print(f"== benchmarks.{name}")
        importlib.import_module(f"benchmarks.{name}").main()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
