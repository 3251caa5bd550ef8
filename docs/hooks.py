"""MkDocs hooks: the parts of the site that are made from the repository when the site is built.

Nothing in ``docs/`` copies text that lives elsewhere; these hooks bring it in at build time,
so the site cannot drift from the code, the README or the tutorials:

- **Tutorials.** Every ``tutorials/NN_name.ipynb`` becomes a page (mkdocs-jupyter executes it
  in a fresh kernel during the build), listed in the navigation after a generated index page
  that gives each tutorial's title and opening paragraph. A new tutorial shows up by itself.
  ``DOCS_TUTORIALS=01,03 make docs`` builds only the tutorials whose names contain one of the
  comma-separated words (quicker while editing; the test suite builds one this way).
- **API reference.** One generated page per public module of ``tinygrad_mb`` (each a
  mkdocstrings ``::: module`` block) and one for ``viz``'s public names, in reading order.
- **Directives** in a Markdown page, each alone on its line, replaced by text made at build time:

  ``<!-- include PATH -->``            the file PATH (relative to the repository root);
  ``<!-- include PATH#Heading -->``    only the section under that heading (see ``section``);
  ``<!-- output-of MODULE -->``        what ``python -m MODULE`` prints, as a code block.

  In included text, a file of the engine written as code (``tinygrad_mb/nn.py``) links to its
  API page.
- **The home page's picture**, ``assets/strategies.svg``, drawn with ``viz.draw_strategies``.
- **Jupyter widgets** (the tqdm progress bar of a training run) are drawn as plain HTML in the
  state they ended in: rendering them live would load a widget library from a CDN, and the site
  loads nothing from other servers.

Every failure (a missing file or heading, a module that exits with an error) stops the build
with a message that says what to fix.
"""

from __future__ import annotations

import html
import json
import os
import pkgutil
import posixpath
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

TUTORIALS_NAV = "Tutorials"
API_NAV = "API reference"
TUTORIAL_GLOB = "[0-9][0-9]_*.ipynb"
# The order of "Reading the code" in the README; modules not listed follow in name order.
READING_ORDER = ["tensor", "checks", "grad_mode", "nn", "minibatch", "optim", "train", "gradcheck", "data"]
NOT_API = {"demo", "__main__"}  # scripts, not library modules
DIRECTIVE = re.compile(r"^<!--\s*(include|output-of)\s+(.+?)\s*-->\s*$", re.MULTILINE)
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
WIDGET_VIEW = re.compile(r'<script type="application/vnd\.jupyter\.widget-view\+json">(.*?)</script>', re.S)
WIDGET_STATE = re.compile(r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', re.S)
WIDGET_LOADER = re.compile(r"<script>\s*\(function\(\) \{\s*function addWidgetsRenderer\(\).*?</script>", re.S)
ENGINE_FILE = re.compile(r"`(tinygrad_mb/(\w+)\.py|viz/(?:\w+\.py)?)`")


def repo_root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


# ------------------------------------------------------------------------------ what the site holds
def tutorials(config: MkDocsConfig) -> list[Path]:
    """The tutorial notebooks in the build, in name order (``DOCS_TUTORIALS`` narrows them)."""
    found = sorted((repo_root(config) / "tutorials").glob(TUTORIAL_GLOB))
    words = [w.strip() for w in os.environ.get("DOCS_TUTORIALS", "").split(",") if w.strip()]
    chosen = [p for p in found if not words or any(w in p.stem for w in words)]
    if not chosen:
        raise PluginError(f"no tutorial notebook tutorials/{TUTORIAL_GLOB} matches DOCS_TUTORIALS={words} "
                          f"(found: {[p.name for p in found]})")
    return chosen


def api_modules(config: MkDocsConfig) -> list[str]:
    """The public modules of tinygrad_mb in reading order, then ``viz``."""
    package = repo_root(config) / "tinygrad_mb"
    names = {m.name for m in pkgutil.iter_modules([str(package)])
             if not m.name.startswith("_") and m.name not in NOT_API}
    ordered = [n for n in READING_ORDER if n in names] + sorted(names - set(READING_ORDER))
    return [f"tinygrad_mb.{n}" for n in ordered] + ["viz"]


def api_page(module: str) -> str:
    return f"api/{module}.md"


# ------------------------------------------------------------------------------ navigation
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Fill the "Tutorials" and "API reference" sections of the navigation with what exists."""
    filled = {
        TUTORIALS_NAV: ["tutorials/index.md", *(f"tutorials/{p.name}" for p in tutorials(config))],
        API_NAV: ["api/index.md", *({m: api_page(m)} for m in api_modules(config))],
    }
    nav = []
    for item in config.nav or []:
        if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in filled:
            title = next(iter(item))
            item = {title: filled.pop(title)}
        nav.append(item)
    if filled:
        raise PluginError(f"mkdocs.yml: the nav needs the entries {list(filled)} (the hooks fill them in)")
    config.nav = nav
    return config


# ------------------------------------------------------------------------------ files
@event_priority(100)  # before mkdocs-jupyter, which turns the notebooks added here into pages
def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = repo_root(config)
    notebooks = tutorials(config)
    for notebook in notebooks:
        files.append(File(f"tutorials/{notebook.name}", str(root), config.site_dir, config.use_directory_urls))
    files.append(File.generated(config, "tutorials/index.md", content=tutorials_index(notebooks, config)))
    modules = api_modules(config)
    files.append(File.generated(config, "api/index.md", content=api_index(modules, root)))
    for module in modules:
        files.append(File.generated(config, api_page(module), content=f"::: {module}\n"))
    files.append(File.generated(config, "assets/strategies.svg", content=home_picture()))
    return files


def notebook_intro(notebook: Path) -> tuple[str, str]:
    """A notebook's title (its first heading) and the first paragraph after it."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    text = next(("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"), "")
    lines = text.strip().splitlines()
    title = notebook.stem
    if lines and lines[0].startswith("#"):
        title, lines = lines[0].lstrip("#").strip(), lines[1:]
    paragraph = "\n".join(lines).strip().split("\n\n")[0]
    return title, paragraph


def tutorials_index(notebooks: list[Path], config: MkDocsConfig) -> str:
    every = sorted((repo_root(config) / "tutorials").glob(TUTORIAL_GLOB))
    lines = [
        "# Tutorials",
        "",
        "Each tutorial is a notebook in the repository's `tutorials/` folder, stored without outputs "
        "and **executed when this site was built**, in a fresh Jupyter kernel with the engine as it "
        "is in the repository: every number, plot and graph picture below was computed then, and the "
        "assertions each tutorial ends with held. The backward-pass steppers have a slider: drag it, "
        "or click it and use the arrow keys.",
        "",
        "To run them yourself, `make lab` opens them in JupyterLab (see [Installation](../installation.md)).",
        "",
    ]
    if len(notebooks) < len(every):
        lines += ["!!! note \"A partial build\"",
                  f"    This build includes {len(notebooks)} of the {len(every)} tutorials "
                  f"(`DOCS_TUTORIALS={os.environ.get('DOCS_TUTORIALS', '')}`); `make docs` builds them all.", ""]
    for notebook in notebooks:
        title, paragraph = notebook_intro(notebook)
        lines += [f"## [{title}]({notebook.name})", "", paragraph, ""]
    return "\n".join(lines)


def api_index(modules: list[str], root: Path) -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings when the site was built. The modules of `tinygrad_mb` come in the "
        "order of [Reading the code](../reading-the-code.md): the autograd core first, then what is built "
        "on it. `viz`, the pictures, is a separate package that only reads graphs.",
        "",
        "| module | what it holds |",
        "|---|---|",
    ]
    for module in modules:
        lines.append(f"| [`{module}`]({module}.md) | {module_summary(module, root)} |")
    return "\n".join(lines) + "\n"


def module_summary(module: str, root: Path) -> str:
    """The first line of a module's docstring, read from the source (nothing is imported)."""
    path = root / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = root / module.replace(".", "/") / "__init__.py"
    match = re.match(r'\s*(?:#.*\n|\s)*[rRuU]?("""|\'\'\')(.*?)(?:\n|\1)', path.read_text(encoding="utf-8"))
    return match.group(2).strip().replace("|", "\\|") if match else ""


def home_picture() -> str:
    """The worked example of tutorial 2 (x = 1, y ∈ {2, 4}) drawn both ways, as SVG text."""
    import numpy as np

    from tinygrad_mb import nn
    from viz import draw_strategies

    X, y = np.array([[1.0], [1.0]]), np.array([[2.0], [4.0]])
    model = nn.MLP([1, 1], rng=0)
    svg = draw_strategies(model, nn.mse_loss, X, y).svg()
    return svg[svg.index("<svg"):]  # no XML prolog: the file is served as an image either way


# ------------------------------------------------------------------------------ directives
def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    root = repo_root(config)

    def replace(match: re.Match[str]) -> str:
        kind, argument = match.group(1), match.group(2)
        where = f"{page.file.src_uri}: <!-- {kind} {argument} -->"
        if kind == "include":
            path, _, heading = argument.partition("#")
            text = include(root / path, heading, where)
            return link_engine_files(text, page, files)
        return "```text\n" + output_of(argument, root, where).rstrip() + "\n```"

    return DIRECTIVE.sub(replace, markdown)


def include(path: Path, heading: str, where: str) -> str:
    if not path.is_file():
        raise PluginError(f"{where}: there is no file {path}")
    text = path.read_text(encoding="utf-8")
    return section(text, heading, f"{where}: {path.name}") if heading else text


def section(markdown: str, heading: str, where: str) -> str:
    """The text under ``heading``: its subsections too, up to the next heading of its level or above.

    A level-1 heading is a document's title, so under it only the introduction is taken, up to
    the first heading of any level. Headings inside code blocks are not headings.
    """
    out: list[str] | None = None
    level = 0
    in_code = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        found = None if in_code else HEADING.match(line)
        if found and out is not None and (level == 1 or len(found.group(1)) <= level):
            break
        if found and out is None and found.group(2) == heading:
            out, level = [], len(found.group(1))
        elif out is not None:
            out.append(line)
    if out is None:
        raise PluginError(f"{where} has no heading {heading!r}")
    return "\n".join(out).strip() + "\n"


def link_engine_files(text: str, page: Page, files: Files) -> str:
    """Turn `tinygrad_mb/nn.py` and `viz/` into links to their API pages, where there is one."""
    here = posixpath.dirname(page.file.src_uri)

    def link(match: re.Match[str]) -> str:
        target = api_page(f"tinygrad_mb.{match.group(2)}") if match.group(2) else api_page("viz")
        if files.get_file_from_path(target) is None:
            return match.group(0)
        return f"[{match.group(0)}]({posixpath.relpath(target, here or '.')})"

    return ENGINE_FILE.sub(link, text)


def output_of(module: str, root: Path, where: str) -> str:
    """What ``python -m module`` prints, run from the repository root with this interpreter."""
    done = subprocess.run([sys.executable, "-m", module], cwd=root, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise PluginError(f"{where}: python -m {module} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


# ------------------------------------------------------------------------------ widgets
def on_page_content(content: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if not page.file.src_uri.endswith(".ipynb"):
        return content
    return static_widgets(content, page.file.src_uri)


def static_widgets(content: str, where: str) -> str:
    """Replace each widget view by plain HTML of its final state; drop the widget library loader."""
    state = WIDGET_STATE.search(content)
    if state:
        models = json.loads(state.group(1))["state"]
        content = WIDGET_VIEW.sub(lambda m: static_widget(json.loads(m.group(1))["model_id"], models), content)
        content = WIDGET_LOADER.sub("", WIDGET_STATE.sub("", content))
    if "widget-state+json" in content or "addWidgetsRenderer" in content:
        raise PluginError(f"{where}: a Jupyter widget was left for a CDN library to draw; docs/hooks.py "
                          f"static_widgets no longer recognises how nbconvert writes widgets")
    return content


def static_widget(ref: str, models: dict[str, Any]) -> str:
    """One widget model as HTML: boxes, progress bars and text; any other widget by its name."""
    model = models.get(ref.removeprefix("IPY_MODEL_"))
    if model is None:
        return ""
    name, state = model["model_name"], model["state"]
    if name in ("HBoxModel", "VBoxModel", "BoxModel"):
        children = "".join(static_widget(child, models) for child in state.get("children", []))
        direction = "column" if name == "VBoxModel" else "row"
        return f'<div class="static-widget" style="flex-direction: {direction}">{children}</div>'
    if name in ("FloatProgressModel", "IntProgressModel"):
        return f'<progress max="{state.get("max", 100)}" value="{state.get("value", 0)}"></progress>'
    if name == "HTMLModel":
        return f"<span>{state.get('value', '')}</span>"  # HTML written by the notebook's own code
    if name == "LabelModel":
        return f"<span>{html.escape(str(state.get('value', '')))}</span>"
    return f"<code>{html.escape(name)}</code>"
