"""The backward pass step by step: frames, revealed gradients, the HTML page in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import viz.stepper
from tinygrad_mb import Tensor, nn, topological_order
from viz import available_renderer, draw_backward_steps, walk
from viz.graph import NO_GRAD_YET, NOT_NEEDED, summarize


def renderer_or_skip() -> str:
    name = available_renderer("auto")
    if name is None:
        pytest.skip("no Graphviz renderer installed (pip install pygraphviz, or install Graphviz)")
    return name


def neuron_loss() -> tuple[Tensor, list[Tensor]]:
    """tanh(x·w + b) against a target: 2 parameters, 1 input, a few operations."""
    w = Tensor([0.5, -1.0], requires_grad=True, name="w")
    b = Tensor(0.1, requires_grad=True, name="b")
    x = Tensor([1.0, 2.0], name="x")
    out = ((x * w).sum() + b).tanh()
    return (out - 0.3) ** 2, [w, b]


def test_one_frame_per_tensor_in_the_order_backward_processes_them():
    loss, _ = neuron_loss()
    steps = draw_backward_steps(loss, renderer="none")
    ids = {n.tensor: n.id for n in walk(loss).nodes}
    assert [s.node for s in steps] == [ids[t] for t in reversed(topological_order(loss))]
    assert [s.number for s in steps] == list(range(1, len(steps) + 1))


def test_a_tensor_used_twice_gets_one_frame_not_one_per_use():
    # h feeds both the add and the tanh: backward processes it once, after both have sent
    # their share, so there is one frame per tensor that requires grad (constants get none).
    x = Tensor([0.5, -1.0], requires_grad=True, name="x")
    h = x * 2
    root = (h + h.tanh()).sum()
    steps = draw_backward_steps(root, renderer="none")
    needing_grad = {n.tensor for n in walk(root).nodes if n.tensor.requires_grad}
    assert len(needing_grad) == 5  # x, h, tanh, add, sum (not the constant 2)
    assert len(steps) == len(needing_grad)
    assert len({s.node for s in steps}) == len(steps)  # no tensor twice
    assert "sent a share, and the shares were added" in caption_of(steps, h, root)


def frame_grads(step) -> dict[str, str]:
    """Node id -> the gradient text written in that node's box in this frame."""
    found = re.findall(r'^\s*(n\d+) \[label=<.*?grad (.*?)<BR ALIGN="LEFT"/></FONT>', step.picture.source, re.M)
    return dict(found)


def test_first_frame_highlights_the_loss_and_shows_only_its_gradient():
    loss, _ = neuron_loss()
    first = draw_backward_steps(loss, renderer="none")[0]
    root = walk(loss).root
    assert first.node == root
    assert re.search(rf'^\s*{root} \[.*class=current', first.picture.source, re.M)
    grads = frame_grads(first)
    assert grads[root] == "1"
    assert all(g in (NO_GRAD_YET, NOT_NEEDED) for node_id, g in grads.items() if node_id != root)
    assert "Backward starts here" in first.caption


def test_gradients_appear_once_complete_and_equal_those_of_backward():
    loss, params = neuron_loss()
    steps = draw_backward_steps(loss, renderer="none")
    graph = walk(loss)
    loss.backward()
    expected = {n.id: summarize(n.tensor.grad) for n in graph.nodes if n.tensor.requires_grad}
    for k, step in enumerate(steps):
        shown = {i: g for i, g in frame_grads(step).items() if g not in (NO_GRAD_YET, NOT_NEEDED)}
        processed = {s.node for s in steps[: k + 1]}
        assert set(shown) == processed  # revealed exactly when processed
        assert all(shown[i] == expected[i] for i in shown)  # and already complete then


def test_the_edges_receiving_gradient_in_a_step_point_back_at_the_inputs():
    loss, _ = neuron_loss()
    step = draw_backward_steps(loss, renderer="none")[0]
    flowing = re.findall(r"(n\d+) -> (n\d+) \[.*dir=back", step.picture.source)
    assert flowing and all(head == step.node for _, head in flowing)


def test_drawing_the_steps_leaves_every_gradient_as_it_was():
    loss, (w, b) = neuron_loss()
    assert w.grad is None and loss.grad is None
    draw_backward_steps(loss, renderer="none")
    assert w.grad is None and b.grad is None and loss.grad is None
    earlier = np.array([7.0, 7.0])
    w.grad = earlier
    steps = draw_backward_steps(loss, renderer="none")
    assert w.grad is earlier
    # ... and an earlier gradient does not leak into the frames: they show this pass alone.
    w_id = walk(loss).id_of(w)
    assert frame_grads(steps[-1])[w_id] != summarize(earlier)


def test_a_failing_backward_leaves_every_gradient_as_it_was():
    w = Tensor([0.5, -1.0], requires_grad=True, name="w")

    def broken(g):
        raise RuntimeError("broken backward")

    # Backward reaches the sum and the mul (storing their .grad) before the broken op raises.
    root = (Tensor.record(w.data * 1.0, (w,), "broken", broken) * 3).sum()
    marker = np.array(9.0)
    root.grad, w.grad = marker, None
    with pytest.raises(RuntimeError, match="broken backward"):
        draw_backward_steps(root, renderer="none")
    assert root.grad is marker and w.grad is None
    assert all(t.grad is None for t in root.topological_order() if t is not root)


def test_a_1_by_1_output_starts_backward_as_an_output_not_a_loss():
    w = Tensor([[0.5]], requires_grad=True, name="w")
    pred = Tensor([[2.0]], name="x") @ w  # one number, shape (1, 1): backward() needs no grad
    first = draw_backward_steps(pred, renderer="none")[0]
    assert "the gradient of the output with respect to itself is 1" in first.caption
    assert "loss" not in first.caption


def test_saving_the_steps_into_a_path_under_a_file_is_refused_and_writes_nothing(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    loss, _ = neuron_loss()
    steps = draw_backward_steps(loss, renderer="none")
    with pytest.raises(NotADirectoryError, match=f"cannot write {re.escape(str(blocker / 'frames'))}: "
                                                 f"{re.escape(str(blocker))} is a file"):
        steps.save(blocker / "frames")
    assert blocker.read_text() == "a file, not a folder" and sorted(tmp_path.iterdir()) == [blocker]


def caption_of(steps, tensor: Tensor, root: Tensor) -> str:
    node_id = walk(root).id_of(tensor)
    return next(s.caption for s in steps if s.node == node_id)


def test_captions_count_every_use_of_a_tensor_as_one_share():
    x = Tensor(3.0, requires_grad=True, name="x")
    square = x * x  # one operation, two uses of x: mul sends x two shares, which are added
    text = caption_of(draw_backward_steps(square, renderer="none"), x, square)
    assert "uses it 2 times" in text and "2 shares" in text
    assert "has sent it" not in text

    y = x * x + x  # two operations, three uses
    text = caption_of(draw_backward_steps(y, renderer="none"), x, y)
    assert "the 2 operations that use it sent 3 shares" in text

    w = Tensor(2.0, requires_grad=True, name="w")
    z = w * 2 + w.exp()  # two operations, one use each
    text = caption_of(draw_backward_steps(z, renderer="none"), w, z)
    assert "each of the 2 operations that use it sent a share" in text

    single = w.exp()
    assert "the one operation that uses it has sent it" in caption_of(
        draw_backward_steps(single, renderer="none"), w, single)


def test_the_graph_is_walked_once(monkeypatch):
    calls = []
    real_walk = viz.stepper.walk

    def counting_walk(*args, **kwargs):
        calls.append(args)
        return real_walk(*args, **kwargs)

    monkeypatch.setattr(viz.stepper, "walk", counting_walk)
    loss, _ = neuron_loss()
    draw_backward_steps(loss, renderer="none")
    assert len(calls) == 1  # the gradients are computed for the tensors of that one walk


def test_a_root_without_grad_or_a_huge_graph_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="does not require grad"):
        draw_backward_steps(Tensor([1.0, 2.0]).sum())
    model = nn.MLP([2, 8, 8, 1], rng=0)
    big = nn.mse_loss(model(Tensor(np.ones((3, 2)))), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="one frame per tensor would be unreadable"):
        draw_backward_steps(big, max_nodes=10)


def test_saved_steps_are_numbered_svgs_and_one_self_contained_page(tmp_path):
    renderer_or_skip()
    loss, _ = neuron_loss()
    steps = draw_backward_steps(loss)
    paths = steps.save(tmp_path)
    svgs = sorted(tmp_path.glob("step_*.svg"))
    assert [p.name for p in svgs] == [f"step_{k:02d}.svg" for k in range(1, len(steps) + 1)]
    assert paths[-1] == tmp_path / "backward_steps.html"
    page = paths[-1].read_text(encoding="utf-8")
    assert page.count('<div class="frame"') == len(steps) == page.count("<svg")
    assert "<?xml" not in page and "<script src" not in page and "<link" not in page
    # Nothing is fetched: the only URLs are the SVG namespace names.
    assert set(re.findall(r'(?:src|href)="(https?:[^"]*)"', page)) == set()
    assert {u for u in re.findall(r'"(https?://[^"]*)"', page)} <= {
        "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


# ------------------------------------------------------------------------------ in a browser
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (scripts/install-system-deps.sh installs the Debian "
                "`chromium` package where apt-get and root are available)")


def dump_dom(page: Path, fragment: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, as headless Chromium serialises it."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--dump-dom", page.as_uri() + fragment,
    ]
    # The timeout only stops a hung browser; the test never depends on how fast it is.
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout


class FrameReader(HTMLParser):
    """Which frames are visible, and the <title> of the highlighted node inside each."""

    def __init__(self) -> None:
        super().__init__()
        self.body_current: str | None = None
        self.visible: list[str] = []  # data-node of each frame not hidden
        self.highlighted: list[str] = []  # titles of class="current" nodes in visible frames
        self._frame_visible = False
        self._div_depth = 0  # open <div>s inside the current frame, the frame's own included
        self._want_title = False
        self._title = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "body":
            self.body_current = a.get("data-current")
        elif tag == "div" and self._div_depth:
            self._div_depth += 1
        elif tag == "div" and "frame" in classes:
            self._div_depth = 1
            self._frame_visible = "hidden" not in a
            if self._frame_visible:
                self.visible.append(a["data-node"])
        elif tag == "g" and "current" in classes and self._frame_visible:
            self._want_title, self._title = True, ""

    def handle_data(self, data):
        if self._want_title and self.lasttag == "title":
            self._title += data

    def handle_endtag(self, tag):
        if tag == "title" and self._want_title:
            self.highlighted.append(self._title.strip())
            self._want_title = False
        elif tag == "div" and self._div_depth:
            self._div_depth -= 1
            if not self._div_depth:
                self._frame_visible = False


def test_moving_the_slider_in_chromium_changes_the_highlighted_node(tmp_path):
    renderer_or_skip()
    loss, _ = neuron_loss()
    steps = draw_backward_steps(loss)
    page = steps.save(tmp_path / "out")[-1]
    last, middle = len(steps), len(steps) // 2 + 1
    seen = {}
    for k in (1, middle, last):
        # The page reads #step=k, moves the slider there and fires its "input" event,
        # exactly as dragging it would.
        reader = FrameReader()
        reader.feed(dump_dom(page, f"#step={k}", tmp_path / "profile"))
        expected = steps[k - 1].node
        assert reader.visible == [expected]  # exactly one frame shows: step k's
        assert reader.highlighted == [expected]  # and in it, step k's node is highlighted
        assert reader.body_current == expected
        seen[k] = reader.highlighted[0]
    assert len(set(seen.values())) == 3  # three steps, three different highlighted nodes


def test_jupyter_shows_the_slider_page_or_else_the_captions():
    loss, _ = neuron_loss()
    without = draw_backward_steps(loss, renderer="none")._repr_mimebundle_()
    assert "rendering is switched off" in without["text/plain"] and "Step 1 of" in without["text/plain"]
    bad_name = draw_backward_steps(loss, renderer="typo")._repr_mimebundle_()  # must not raise either
    assert "renderer must be one of" in bad_name["text/plain"] and "Step 1 of" in bad_name["text/plain"]
    renderer_or_skip()
    bundle = draw_backward_steps(loss)._repr_mimebundle_()
    assert bundle["text/html"].startswith("<iframe srcdoc=") and "&lt;svg" in bundle["text/html"]
