"""Turn DOT text into pictures, with whichever Graphviz is available.

Two renderers, tried in this order:

1. ``dot``: the Graphviz program, when it is on PATH (``apt-get install graphviz``,
   ``brew install graphviz``). Run as a subprocess, DOT in on stdin, the picture out on stdout.
2. ``pygraphviz``: the Python package, whose wheel bundles the Graphviz libraries, so a
   plain ``pip install`` renders in-process with no system package at all.

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
from pathlib import Path
from typing import Any

RENDERER_ENV = "VIZ_RENDERER"
CHOICES = ("auto", "dot", "pygraphviz", "none")
FORMATS = ("svg", "png", "pdf")  # what the renderers make; ".dot" files need no renderer
INSTALL_HINT = (
    "No Graphviz renderer found: `pip install pygraphviz` (or install Graphviz's `dot` program) "
    "to draw pictures; showing the DOT text instead."
)
RENDER_TIMEOUT_S = 300  # a safety net against a hung subprocess, far above any real graph


class RenderError(RuntimeError):
    """A picture could not be made: no renderer, or the renderer refused the DOT text."""


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
        return _render_with_dot_program(source, fmt)
    return _render_with_pygraphviz(source, fmt)


def _render_with_dot_program(source: str, fmt: str) -> bytes:
    # Run directly rather than through the `graphviz` package's pipe(): that function has no
    # timeout, copies Graphviz's warnings to the console unless quiet=True, and would make
    # this renderer need the package as well as the program.
    program = shutil.which("dot") or "dot"
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
            timeout=RENDER_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RenderError(f"cannot draw the {fmt}: running Graphviz `dot` failed ({exc})") from None
    if done.returncode != 0 or not done.stdout:
        raise RenderError(f"cannot draw the {fmt}: Graphviz `dot` said: {_graphviz_complaint(done.stderr)}")
    return done.stdout


def _render_with_pygraphviz(source: str, fmt: str) -> bytes:
    import pygraphviz

    try:
        picture = pygraphviz.AGraph(string=source).draw(format=fmt, prog="dot")
    except Exception as exc:  # pygraphviz raises several types for bad DOT or missing plugins
        raise RenderError(f"cannot draw the {fmt}: pygraphviz said: {str(exc).strip() or type(exc).__name__}") from None
    if not picture:
        raise RenderError(f"cannot draw the {fmt}: pygraphviz returned nothing")
    return bytes(picture)


def _graphviz_complaint(stderr: bytes) -> str:
    """The useful lines of Graphviz's stderr (font-configuration chatter left out)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith("Fontconfig")]
    return " / ".join(useful[:5]) or "no explanation"


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

        Returns the path written. Raises ``RenderError`` (nothing written) when a picture
        format is asked for and nothing can render; .dot always works.
        """
        out = Path(path)
        fmt = out.suffix.lower().lstrip(".")
        if fmt == "dot":
            content = self.source.encode("utf-8")
        elif fmt in FORMATS:
            content = render(self.source, fmt, self.renderer)
        else:
            raise ValueError(
                f"save: cannot tell the format from {out.name!r}; end the name with .svg, .png, .pdf or .dot"
            )
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
            hint = str(exc)
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
