"""The documentation site builds in strict mode, every link in it resolves, and it works in a browser.

``make docs`` builds the whole site, executing every tutorial. Here the site is built the same
way (``python -m mkdocs build --strict`` with the project's ``mkdocs.yml``) but with one
tutorial, the first that shows the backward-pass stepper (``DOCS_TUTORIALS`` narrows the
tutorials; docs/hooks.py reads it): the home page, the API reference of every module and the
other pages are all built, and executing every notebook is already the job of
``tests/test_tutorials.py``. What this build leaves out is the other tutorials' pages.

Then headless Chromium, driven by Playwright's Python package (``executable_path`` pointing at
the system's ``chromium``; Playwright's own browser download is never used), opens the home
page, the tutorial page and an API page from a local HTTP server on 127.0.0.1, and checks that
every image and graph picture loaded with a non-zero size, that nothing logged an error or
failed to load, that nothing was fetched from another server, and that moving the stepper's
slider changes the frame. Without the docs extra, Playwright or Chromium those tests are
skipped with the reason. Everything that needs the built site carries the ``slow`` marker.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 900  # stops a hung build only; the verdict never depends on speed

for _module in ("mkdocs", "material", "mkdocs_jupyter", "mkdocstrings_handlers.python"):
    pytest.importorskip(_module, reason="needs the docs extra: pip install -e '.[docs]'")


def stepper_tutorial() -> Path:
    """The first tutorial notebook that shows the backward-pass stepper."""
    for notebook in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.ipynb")):
        if "draw_backward_steps" in notebook.read_text(encoding="utf-8"):
            return notebook
    raise AssertionError("no tutorial calls viz.draw_backward_steps; the site must show the stepper somewhere")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built in strict mode with one tutorial; the path of its folder."""
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "DOCS_TUTORIALS": stepper_tutorial().stem, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return out


def api_modules() -> list[str]:
    modules = [m.stem for m in (ROOT / "tinygrad_mb").glob("*.py") if not m.stem.startswith("_")]
    return [f"tinygrad_mb.{m}" for m in modules if m not in ("demo",)] + ["viz"]


def load_hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ the hooks, alone
def test_an_included_section_ends_at_the_next_heading_of_its_level() -> None:
    hooks = load_hooks()
    text = "# Title\n\nintro\n\n## A\n\na\n```\n# not a heading\n```\n### A.1\n\nsub\n\n## B\n\nb\n"
    assert hooks.section(text, "Title", "t") == "intro\n"  # a document's title: only its introduction
    assert hooks.section(text, "A", "t") == "a\n```\n# not a heading\n```\n### A.1\n\nsub\n"
    assert hooks.section(text, "B", "t") == "b\n"
    with pytest.raises(Exception, match="has no heading 'C'"):
        hooks.section(text, "C", "t")


def test_a_jupyter_progress_bar_is_drawn_as_plain_html_not_by_a_cdn_library() -> None:
    hooks = load_hooks()
    models = {
        "box": {"model_name": "HBoxModel",
                "state": {"children": ["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]}},
        "left": {"model_name": "HTMLModel", "state": {"value": "training: 100%"}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 30.0, "max": 30.0}},
        "right": {"model_name": "HTMLModel", "state": {"value": " 30/30 [00:01&lt;00:00]"}},
    }
    # As nbconvert writes a notebook whose cells displayed a widget (a tqdm bar in Jupyter).
    page = (
        '<div class="jp-OutputArea-output"><script type="application/vnd.jupyter.widget-view+json">'
        '{"model_id": "box", "version_major": 2, "version_minor": 0}</script></div>\n'
        "<script>\n(function() {\n  function addWidgetsRenderer() {\n    var widgetRendererSrc = "
        "'https://unpkg.com/@jupyter-widgets/html-manager@*/dist/embed-amd.js';\n  }\n})();\n</script>\n"
        '<script type="application/vnd.jupyter.widget-state+json">\n'
        + json.dumps({"state": models, "version_major": 2}) + "\n</script>"
    )
    out = hooks.static_widgets(page, "t")
    assert "unpkg.com" not in out and "application/vnd.jupyter" not in out
    assert 'training: 100%' in out and '<progress max="30.0" value="30.0">' in out and "30/30" in out
    assert hooks.static_widgets("<p>no widgets</p>", "t") == "<p>no widgets</p>"


# ------------------------------------------------------------------------------ the build
@pytest.mark.slow
def test_the_site_builds_in_strict_mode_with_every_page(site: Path) -> None:
    tutorial = stepper_tutorial().stem
    for page in ("index", "installation", "exercises", "reading-the-code", "pytorch", "benchmarks",
                 "tutorials/index", f"tutorials/{tutorial}", "api/index",
                 *(f"api/{module}" for module in api_modules())):
        assert (site / f"{page}.html").is_file(), f"{page}.html is missing from the site"
    assert (site / "assets" / "strategies.svg").stat().st_size > 1000  # the home page's picture


@pytest.mark.slow
def test_the_tutorial_page_was_executed_at_build_time(site: Path) -> None:
    page = (site / "tutorials" / f"{stepper_tutorial().stem}.html").read_text(encoding="utf-8")
    assert "jp-OutputArea-output" in page  # the notebook is stored without outputs: these are new
    assert "<svg" in page  # graph pictures
    assert "<iframe srcdoc=" in page  # the backward-pass stepper
    assert "Traceback" not in page


@pytest.mark.slow
def test_the_home_page_shows_the_demo_run_at_build_time(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "In mini-batch gradient descent, what exactly gets averaged?" in page  # the question
    assert "The answer, in one paragraph" in page
    # The agreement table, computed during the build: per_sample's first gradient is the batched mean's.
    row = re.search(r"\n\s*per_sample\s+(\S+)\s", page)
    assert row and float(row.group(1)) < 1e-12, row
    assert "WRONG" in page
    assert 'src="assets/strategies.svg"' in page


@pytest.mark.slow
def test_the_api_reference_documents_every_module(site: Path) -> None:
    page = (site / "api" / "tinygrad_mb.minibatch.html").read_text(encoding="utf-8")
    for function in ("per_sample_average", "batched_mean", "accumulated", "per_sample_gradients", "error_first"):
        assert f'id="tinygrad_mb.minibatch.{function}"' in page
    viz = (site / "api" / "viz.html").read_text(encoding="utf-8")
    assert 'id="viz.draw_graph"' in viz and 'id="viz.draw_backward_steps"' in viz


class LinkReader(HTMLParser):
    """The local links (href, src) of a page and the ids it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("id", "name"):
            if a.get(name) and (name == "id" or tag == "a"):
                self.ids.add(a[name] or "")
        for name in ("href", "src"):
            url = a.get(name)
            if url and not urlsplit(url).scheme and not url.startswith("//"):
                self.links.append(url)


def read_links(page: Path, cache: dict[Path, LinkReader]) -> LinkReader:
    if page not in cache:
        reader = LinkReader()
        reader.feed(page.read_text(encoding="utf-8"))
        cache[page] = reader
    return cache[page]


@pytest.mark.slow
def test_every_internal_link_and_image_resolves(site: Path) -> None:
    cache: dict[Path, LinkReader] = {}
    broken = []
    pages = [p for p in site.rglob("*.html") if p.name != "404.html"]  # 404.html is served at any path
    for page in pages:
        for link in read_links(page, cache).links:
            path, fragment = urldefrag(link)
            target = (page.parent / unquote(path.split("?")[0])).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {link} (no such file)")
            elif fragment and target.suffix == ".html" and unquote(fragment) not in read_links(target, cache).ids:
                broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    assert len(pages) > 10
    assert not broken, "broken links:\n" + "\n".join(broken[:40])


# ------------------------------------------------------------------------------ in a browser
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    """The built site served on 127.0.0.1; its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium, driven by Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="needs Playwright's Python package: pip install playwright")
    executable = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if executable is None:
        pytest.skip("headless Chromium is not installed (scripts/install-system-deps.sh installs the Debian "
                    "`chromium` package where apt-get and root are available)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """A page opened in the browser, with every problem it reported while loading."""

    def __init__(self, browser: Any, base: str, path: str):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.foreign: list[str] = []
        self.base = base
        page = self.page
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error}"))
        page.on("requestfailed", lambda request: self.problems.append(f"failed: {request.url} ({request.failure})"))
        page.on("response", self.on_response)
        page.on("request", self.on_request)
        page.goto(base + path, wait_until="load")
        page.wait_for_load_state("networkidle")

    def on_console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def on_response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status} for {response.url}")

    def on_request(self, request: Any) -> None:
        if request.url.startswith(("http:", "https:")) and not request.url.startswith(self.base):
            self.foreign.append(request.url)

    def check_loaded(self, min_images: int = 0, min_svgs: int = 0) -> None:
        """Every <img> loaded with a non-zero size; every visible content <svg> has one too."""
        images = self.page.eval_on_selector_all(
            "img", "els => els.map(e => ({src: e.currentSrc.slice(0, 80), complete: e.complete,"
                   " natural: e.naturalWidth * e.naturalHeight,"
                   " shown: e.getBoundingClientRect().width * e.getBoundingClientRect().height}))")
        svgs = self.page.eval_on_selector_all(
            ".md-content svg", "els => els.filter(e => e.checkVisibility()).map(e => ({"
                               " id: (e.querySelector('title') || {}).textContent || e.outerHTML.slice(0, 60),"
                               " area: e.getBoundingClientRect().width * e.getBoundingClientRect().height}))")
        assert len(images) >= min_images, f"expected at least {min_images} images, found {images}"
        assert len(svgs) >= min_svgs, f"expected at least {min_svgs} visible SVGs, found {len(svgs)}"
        assert all(i["complete"] and i["natural"] > 0 and i["shown"] > 0 for i in images), images
        assert all(s["area"] > 0 for s in svgs), [s for s in svgs if not s["area"]]
        self.check_clean()

    def check_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)
        assert not self.foreign, f"the site fetched from other servers: {self.foreign}"


@pytest.mark.slow
def test_home_page_in_chromium_shows_its_picture_without_errors(site: Path, server: str, browser: Any) -> None:
    visit = Visit(browser, server, "index.html")
    visit.check_loaded(min_images=1)
    picture = visit.page.locator('img[src$="strategies.svg"]')
    assert picture.count() == 1 and picture.evaluate("e => e.naturalWidth") > 500


@pytest.mark.slow
def test_api_page_in_chromium_loads_without_errors(site: Path, server: str, browser: Any) -> None:
    visit = Visit(browser, server, "api/tinygrad_mb.minibatch.html")
    visit.check_loaded()
    assert visit.page.locator(".doc-heading").count() > 5  # mkdocstrings rendered the docstrings


@pytest.mark.slow
def test_tutorial_page_in_chromium_shows_graphs_and_the_slider_changes_the_frame(
        site: Path, server: str, browser: Any) -> None:
    visit = Visit(browser, server, f"tutorials/{stepper_tutorial().stem}.html")
    visit.check_loaded(min_svgs=1)  # the computation graphs drawn by the notebook

    stepper = next((f for f in visit.page.frames if f.query_selector("#slider")), None)
    assert stepper is not None, "no stepper (an iframe with a slider) on the tutorial page"
    frames = stepper.locator(".frame")
    count = frames.count()
    assert count > 2

    def shown() -> tuple[list[int], str, str]:
        visible = stepper.eval_on_selector_all(".frame", "els => els.map((e, i) => e.hidden ? -1 : i)"
                                                         ".filter(i => i >= 0)")
        return visible, stepper.inner_text("#counter"), stepper.eval_on_selector("body", "b => b.dataset.current")

    first = shown()
    assert first[0] == [0] and first[1] == f"1 / {count}"
    # Drag the slider's thumb from its left end to its right end, as a reader would with the mouse.
    slider = stepper.locator("#slider")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    assert box is not None and box["width"] > 50
    mouse = visit.page.mouse
    mouse.move(box["x"] + 4, box["y"] + box["height"] / 2)
    mouse.down()
    mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2, steps=5)
    mouse.up()
    last = shown()
    assert last[0] == [count - 1], f"after dragging to the end the frames shown are {last[0]}, not [{count - 1}]"
    assert last[1] == f"{count} / {count}"
    assert last[2] != first[2]  # another tensor is highlighted
    # And the arrow button steps back one frame.
    stepper.click("#prev")
    assert shown()[0] == [count - 2]
    visit.check_clean()
