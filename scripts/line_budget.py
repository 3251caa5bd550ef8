"""Line counts of the engine, and the budget that keeps its core readable in one sitting.

    python scripts/line_budget.py        # a table; exit status 1 if a budget is exceeded

For every file of ``tinygrad_mb`` it prints the physical lines (what a reader scrolls through)
and the lines of code (lines holding a token that is not a comment or a docstring, counted
with ``tokenize`` as tinygrad's ``sz.py`` does). The budget applies to physical lines: a
learner reads the docstrings and comments too.
"""

from __future__ import annotations

import io
import sys
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tinygrad_mb"
BUDGETS = {"tensor.py": 400}  # the autograd core: Tensor, record, backward, topological order, ops


def code_lines(source: str) -> int:
    """Lines holding a name, operator, number or non-docstring string."""
    lines: set[int] = set()
    previous = tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        is_docstring = token.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT,
                                                                      tokenize.DEDENT)
        if token.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER, tokenize.STRING) and not is_docstring:
            lines.update(range(token.start[0], token.end[0] + 1))
        if token.type not in (tokenize.COMMENT, tokenize.NL):
            previous = token.type
    return len(lines)


def main() -> int:
    over = []
    print(f"{'file':24} {'lines':>6} {'code':>6} {'budget':>7}")
    for path in sorted(PACKAGE.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        physical = len(source.splitlines())
        budget = BUDGETS.get(path.name)
        print(f"{path.name:24} {physical:6} {code_lines(source):6} {budget if budget else '':>7}")
        if budget is not None and physical > budget:
            over.append(f"{path.name} has {physical} lines, over its budget of {budget}")
    for problem in over:
        print(f"line budget: {problem}; move checks to checks.py or split an idea into its own module",
              file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
