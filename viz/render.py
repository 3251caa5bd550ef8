"""Turn DOT text into pictures, with whichever Graphviz is available.

Two renderers, tried in this order:

1. ``dot``: the Graphviz program, when it is on PATH (``apt-get install graphviz``,
   ``brew install graphviz``). Run as a subprocess, DOT in on stdin, the picture out on stdout.
2. ``pygraphviz``: the Python package, whose wheel bundles the Graphviz libraries, so a
   plain ``pip install`` renders with no system package at all.

Both run in a child process, which is what lets a huge graph be stopped: the layout runs
inside Graphviz's C code, where Python can neither interrupt it (Ctrl-C would wait until
the layout ends) nor give up after a time limit. A child process is killed on Ctrl-C or
after ``RENDER_TIMEOUT_S`` seconds, and the error then suggests drawing fewer nodes.

If neither works, nothing crashes: a ``Picture`` still has its DOT text, shows it in
Jupyter with a one-line hint on how to install a renderer, and ``.svg()`` / ``.save()``
raise one ``RenderError`` that says the same.

The environment variable ``VIZ_RENDERER`` (or the ``renderer=`` argument) picks one:
"dot", "pygraphviz", "none" (render nothing, e.g. to see the fallback) or "auto".
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

RENDERER_ENV = "VIZ_RENDERER"
CHOICES = ("auto", "dot", "pygraphviz", "none")
FORMATS = ("svg", "png", "pdf")  # what the renderers make; ".dot" files need no renderer
INSTALL_HINT = (
    "No Graphviz renderer found: `pip install pygraphviz` (or install Graphviz's `dot` program) "
    "to draw pictures."
)
SHOWING_DOT = "Showing the DOT text instead."  # added where the DOT text is shown: a notebook
# A safety net, far above what a readable picture needs (200 nodes lay out in under a second;
# a chain of 40,000 takes minutes). Read at each render, so a test can make it tiny.
RENDER_TIMEOUT_S: float = 300


class RenderError(RuntimeError):
    """A picture could not be made: no renderer, the renderer refused the DOT text, or it ran
    longer than ``RENDER_TIMEOUT_S`` seconds (then the message suggests ``max_nodes``)."""


class RendererChoiceError(RenderError, ValueError):
    """``renderer=`` or ``$VIZ_RENDERER`` names no known renderer.

    Both a ``ValueError`` (a wrong value was given) and a ``RenderError`` (so no picture can
    be made): Jupyter display, which shows the DOT text whenever a ``RenderError`` stops the
    picture, then shows it here too, with this error's message as the hint.
    """


def requested_renderer(renderer: str | None = None) -> str:
    """The argument if given, else ``$VIZ_RENDERER``, else "auto"; checked against CHOICES."""
    wanted = renderer or os.environ.get(RENDERER_ENV) or "auto"
    if wanted not in CHOICES:
        source = "renderer" if renderer else RENDERER_ENV
        raise RendererChoiceError(f"viz: {source} must be one of {list(CHOICES)}, got {wanted!r}")
    return wanted


def _pygraphviz_works() -> bool:
    try:
        import pygraphviz  # noqa: F401  (imported only to see whether it loads)
    except (ImportError, OSError):  # OSError: the package is there but its libraries are not
        return False
    return True


def available_renderer(renderer: str | None = None) -> str | None:
    """"dot" or "pygraphviz": the renderer that will be used; None if nothing can render."""
    wanted = requested_renderer(renderer)
    if wanted in ("auto", "dot") and shutil.which("dot"):
        return "dot"
    if wanted in ("auto", "pygraphviz") and _pygraphviz_works():
        return "pygraphviz"
    return None


def _no_renderer_message(wanted: str) -> str:
    if wanted == "none":
        return f"rendering is switched off ({RENDERER_ENV} or renderer='none'); use .source for the DOT text"
    if wanted == "dot":
        return "the Graphviz `dot` program is not on PATH (install Graphviz, or use renderer='auto')"
    if wanted == "pygraphviz":
        return "pygraphviz cannot be imported (`pip install pygraphviz`, or use renderer='auto')"
    return INSTALL_HINT


def render(source: str, fmt: str = "svg", renderer: str | None = None) -> bytes:
    """Render DOT text to ``fmt`` ("svg", "png" or "pdf") and return the file's bytes.

    Raises:
        RenderError: no renderer is available, or Graphviz rejected the DOT text. The
            message is one readable sentence; the subprocess's traceback is never shown.
    """
    if fmt not in FORMATS:
        raise ValueError(f"viz: cannot render format {fmt!r}; choose one of {list(FORMATS)}")
    wanted = requested_renderer(renderer)
    chosen = available_renderer(wanted)
    if chosen is None:
        raise RenderError(f"cannot draw the {fmt}: {_no_renderer_message(wanted)}")
    if chosen == "dot":
        # Run directly rather than through the `graphviz` package's pipe(): that function has
        # no timeout and copies Graphviz's warnings to the console unless quiet=True.
        return _run_renderer([shutil.which("dot") or "dot", f"-T{fmt}"], source, fmt, "Graphviz `dot`")
    return _run_renderer(_pygraphviz_command(fmt), source, fmt, "pygraphviz")


# The pygraphviz renderer: a small Python program run by this same interpreter, DOT in on
# stdin, the picture out on stdout, like the `dot` program (see the module docstring for why
# not in this process). Warnings are silenced so that stderr holds only the error, if any.
_PYGRAPHVIZ_PROGRAM = """\
import sys, warnings
warnings.simplefilter("ignore")
sys.path.append(sys.argv[2])  # where this process found pygraphviz (if not on the usual path)
try:
    import pygraphviz
    picture = pygraphviz.AGraph(string=sys.stdin.buffer.read().decode("utf-8")).draw(format=sys.argv[1], prog="dot")
except Exception as exc:
    sys.exit(str(exc).strip() or type(exc).__name__)
sys.stdout.buffer.write(picture)
"""


def _pygraphviz_command(fmt: str) -> list[str]:
    import pygraphviz

    if not sys.executable:  # an embedded interpreter that cannot start another Python
        raise RenderError(f"cannot draw the {fmt}: no Python program to run pygraphviz in (sys.executable is empty)")
    # The child finds pygraphviz where this process did, even in a folder added to sys.path.
    found_in = str(Path(pygraphviz.__file__).resolve().parent.parent)
    return [sys.executable, "-c", _PYGRAPHVIZ_PROGRAM, fmt, found_in]


def _run_renderer(command: list[str], source: str, fmt: str, who: str) -> bytes:
    """Run a renderer in a child process with a time limit; Ctrl-C stops it too."""
    try:
        # On a timeout or a KeyboardInterrupt, subprocess.run kills the child before raising.
        done = subprocess.run(command, input=dot_bytes(source), capture_output=True,
                              timeout=RENDER_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        nodes = len(_NODE_STATEMENT.findall(source))
        raise RenderError(
            f"cannot draw the {fmt}: {who} was stopped after {RENDER_TIMEOUT_S:g} s laying out {nodes:,} "
            f"nodes; draw fewer, e.g. draw_graph(loss, max_nodes=200) (max_nodes=None draws every tensor)"
        ) from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise RenderError(f"cannot draw the {fmt}: running {who} failed ({exc})") from None
    if done.returncode != 0 or not done.stdout:
        raise RenderError(f"cannot draw the {fmt}: {who} said: {_graphviz_complaint(done.stderr)}")
    return done.stdout


def dot_bytes(source: str) -> bytes:
    """DOT text as UTF-8 bytes; a lone surrogate (only in hand-written DOT) is written as ``\\udXXX``."""
    return source.encode("utf-8", "backslashreplace")


def _graphviz_complaint(stderr: bytes) -> str:
    """The useful lines of Graphviz's stderr (font-configuration chatter left out)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith("Fontconfig")]
    return " / ".join(useful[:5]) or "no explanation"


def check_location(path: Path, where: str, folder: bool = False) -> None:
    """Refuse a path nothing can be written to, before anything is: a folder on the way is a
    file, or (for a file, ``folder=False``) the path itself is a folder."""
    if not folder and path.is_dir():
        raise IsADirectoryError(
            f"{where}: cannot write {path}: it is a folder; give a file name such as {path / 'graph.svg'}"
        )
    for place in [*([path] if folder else []), *path.parents]:  # the nearest existing one decides
        if place.exists():
            if not place.is_dir():
                raise NotADirectoryError(
                    f"{where}: cannot write {path}: {place} is a file, not a folder; "
                    f"choose another path (or move that file away)"
                )
            return


class Picture:
    """DOT text that can become a picture: ``.source``, ``.svg()``, ``.save(path)``, Jupyter display.

    Args:
        source: the DOT text.
        renderer: "auto", "dot", "pygraphviz" or "none"; None reads ``$VIZ_RENDERER``
            each time a picture is made.
        facts: numbers the picture states (for example the gradient difference in
            ``draw_strategies``), so that code can read them too.
    """

    def __init__(self, source: str, renderer: str | None = None, facts: dict[str, Any] | None = None):
        self.source = source
        self.renderer = renderer
        self.facts: dict[str, Any] = dict(facts or {})

    def svg(self) -> str:
        """The picture as SVG text (raises ``RenderError`` when nothing can render)."""
        return render(self.source, "svg", self.renderer).decode("utf-8")

    def png(self) -> bytes:
        """The picture as PNG bytes (raises ``RenderError`` when nothing can render)."""
        return render(self.source, "png", self.renderer)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the picture; the suffix picks the format: .svg, .png, .pdf or .dot (the text).

        ``~`` means the home folder, as in the shell. Missing folders on the way are created.
        Returns the path written.

        Raises (and then nothing is written):
            ValueError: the suffix names no format.
            NotADirectoryError / IsADirectoryError: the path cannot hold a file -- a folder on
                the way is a file, or the path is a folder. Both are ``OSError``s, as Python's
                own file errors are; the message names the path.
            RenderError: a picture format is asked for and nothing can render (.dot always works).
        """
        out = Path(path).expanduser()
        fmt = out.suffix.lower().lstrip(".")
        if fmt != "dot" and fmt not in FORMATS:
            raise ValueError(
                f"save: cannot tell the format from {out.name!r}; end the name with .svg, .png, .pdf or .dot"
            )
        check_location(out, "save")  # before rendering: a bad path should not cost a layout
        content = dot_bytes(self.source) if fmt == "dot" else render(self.source, fmt, self.renderer)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content)
        return out

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """What Jupyter shows: the SVG, or when that cannot be made, the hint and the DOT text.

        Never raises a ``RenderError`` (a bad renderer name included): in a notebook a
        one-line hint above the DOT text helps more than a traceback.
        """
        try:
            return {"image/svg+xml": self.svg(), "text/plain": repr(self)}
        except RenderError as exc:
            hint = f"{exc} {SHOWING_DOT}"
            return {
                "text/plain": f"{hint}\n\n{self.source}",
                "text/html": f"<p>{html.escape(hint)}</p>\n<pre>{html.escape(self.source)}</pre>",
            }

    def __repr__(self) -> str:
        nodes = len(_NODE_STATEMENT.findall(self.source))
        return f"<Picture: DOT text with {nodes} nodes; .svg(), .save(path), .source>"


# A node statement is a line that starts with a node id followed by its attributes: "n3 [...]".
# Not counted: "graph [...]" / "node [...]" / "edge [...]" (defaults and cluster titles, which
# have labels too) and edges "n0 -> n3 [...]" (whose labels are not boxes).
_NODE_STATEMENT = re.compile(r"^\s*(?!(?:graph|node|edge)\b)[A-Za-z_]\w*\s*\[", re.MULTILINE)
