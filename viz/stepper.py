"""The backward pass, one frame per step, and a self-contained HTML page to step through it.

``Tensor.backward`` visits the graph from the loss back to the leaves in reverse
topological order (``topological_order(root)`` reversed): a tensor is processed only after
every operation that uses it, so by then its gradient is complete. Each frame here shows
one such step: the tensor being processed is highlighted, the gradients already complete
are written in the boxes, and the edges along which its backward function now sends
gradients are drawn against the flow (arrowheads pointing back at its inputs).

The gradients come from one real ``backward`` run (on a clean slate, with every ``.grad``
put back afterwards, so drawing changes nothing); a frame reveals them in the order the
engine finalises them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_mb import Tensor
from tinygrad_mb.checks import seed_gradient
from tinygrad_mb.grad_mode import grads_put_back

from .dot import add_graph, natural_rankdir, new_digraph, node_header
from .draw import check_tensor
from .graph import NO_GRAD_YET, NOT_NEEDED, Graph, Node, check_max_nodes, summarize, walk
from .render import Picture, RenderError, check_location

DEFAULT_MAX_NODES = 60  # one frame per tensor: past this the page is a slide show nobody reads

CURRENT = {"fillcolor": "#ffcc80", "color": "#e65100", "penwidth": "3", "class": "current"}
DONE = {"color": "#2e7d32", "penwidth": "2", "class": "done"}
FLOWING = {"color": "#e65100", "penwidth": "2", "dir": "back", "class": "flowing"}


@dataclass(frozen=True)
class Step:
    """One frame: ``number`` counts from 1, ``node`` is the id of the tensor processed."""

    number: int
    node: str
    caption: str
    picture: Picture


def backward_gradients(root: Tensor, tensors: list[Tensor], grad: Any = None) -> dict[Tensor, np.ndarray]:
    """Every gradient one ``root.backward(grad)`` computes, keyed by tensor.

    ``tensors`` are all the tensors of root's graph (the caller has walked it already).
    Runs backward from a clean slate (their ``.grad`` cleared first, so earlier backward
    calls do not leak in) and afterwards puts every ``.grad`` back as it was, also when
    backward raises.
    """
    with grads_put_back(tensors):
        root.backward(grad)
        return {t: t.grad.copy() for t in tensors if t.grad is not None}


class BackwardSteps:
    """The frames of a backward pass. ``len()``, indexing, ``.html()``, ``.save(dir)``."""

    def __init__(self, steps: list[Step], title: str = "The backward pass, step by step"):
        self.steps = steps
        self.title = title

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> Step:
        return self.steps[i]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def html(self, svgs: list[str] | None = None) -> str:
        """One self-contained HTML page (inline SVGs, no network) with a slider over the frames.

        Opening ``page.html#step=3`` shows step 3. Raises ``RenderError`` if nothing can render.
        ``svgs``: the frames already rendered, one per step (``save`` renders each only once).
        """
        if svgs is None:
            svgs = [step.picture.svg() for step in self.steps]
        frames = []
        for i, (step, svg) in enumerate(zip(self.steps, svgs)):
            hidden = "" if i == 0 else " hidden"  # without JavaScript the first frame still shows
            frames.append(
                f'<div class="frame" data-node="{step.node}"{hidden}>\n'
                f'<p class="caption">{html.escape(step.caption)}</p>\n'
                f'<div class="picture">{_inline_svg(svg, f"f{step.number}_")}</div>\n</div>'
            )
        return _PAGE.format(
            title=html.escape(self.title), last=len(self.steps) - 1, count=len(self.steps),
            first=self.steps[0].node if self.steps else "", frames="\n".join(frames),
        )

    def save(self, out_dir: str | Path, prefix: str = "step") -> list[Path]:
        """Write ``step_01.svg``, ``step_02.svg``, ... and ``backward_steps.html`` into ``out_dir``.

        Returns the paths written, the HTML page last. ``prefix`` is a plain file name (no
        folders): every file goes into ``out_dir`` (``~`` means the home folder). Every frame is
        rendered before anything is written, so a frame that cannot be drawn leaves no folder
        and no half set of files. Frames of an earlier, longer run into the same folder with the
        same prefix (``step_12.svg`` when this run has 9) are removed: the folder shows one run.
        """
        if not isinstance(prefix, str) or prefix in ("", ".", "..") or Path(prefix).name != prefix:
            raise ValueError(f"BackwardSteps.save: prefix must be a plain file name such as 'step' "
                             f"(the files go into out_dir), got {prefix!r}")
        out = Path(out_dir).expanduser()
        page = out / "backward_steps.html"
        check_location(out, "BackwardSteps.save", folder=True)  # a clear error, and nothing written
        check_location(page, "BackwardSteps.save")
        svgs = [s.picture.svg() for s in self.steps]
        text = self.html(svgs)
        out.mkdir(parents=True, exist_ok=True)
        width = max(len(str(len(self.steps))), 2)
        paths = []
        for step, svg in zip(self.steps, svgs):
            path = out / f"{prefix}_{step.number:0{width}d}.svg"
            path.write_bytes(svg.encode("utf-8"))
            paths.append(path)
        page.write_text(text, encoding="utf-8")
        frame = re.compile(re.escape(prefix) + r"_\d+\.svg")  # only files this method names
        for old in out.iterdir():
            if frame.fullmatch(old.name) and old not in paths and old.is_file():
                old.unlink()
        return [*paths, page]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        # The page runs in an iframe of its own, so its script and ids cannot clash with the notebook.
        try:
            page = self.html()
        except RenderError as exc:  # nothing can render: show what can be shown instead
            return {"text/plain": f"{exc}\n\n" + "\n\n".join(s.caption for s in self.steps)}
        frame = f'<iframe srcdoc="{html.escape(page)}" style="width:100%;height:640px;border:0"></iframe>'
        return {"text/html": frame, "text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"<BackwardSteps: {len(self.steps)} frames; .html(), .save(dir)>"


def _inline_svg(svg: str, id_prefix: str) -> str:
    """An SVG file's text ready to sit inside HTML: no XML prolog, ids unique on the page."""
    svg = svg[svg.index("<svg"):]
    return re.sub(r'\bid="([^"]*)"', lambda m: f'id="{id_prefix}{m.group(1)}"', svg)


def _describe(node: Node) -> str:
    return f"{node_header(node)} ({node.id})"


def shares_sent(tensors: list[Tensor], grads: dict[Tensor, np.ndarray],
                ids: dict[Tensor, str]) -> list[tuple[str, str]]:
    """(input, operation) once per use through which the operation's backward sent a gradient.

    A rule may send None to an input (a custom op that stops the gradient): asking each rule
    again, with the gradient it received, tells which inputs it really sent a share to.
    """
    sent = []
    for t in tensors:
        if t._backward is None or t not in grads:
            continue
        try:  # on a copy: a rule that (wrongly) changes its g in place must not change the frames' numbers
            shares = t._backward(grads[t].copy())
        except Exception:  # a rule that cannot run twice: count every input that needs a gradient
            shares = [np.zeros(0)] * len(t.parents)
        for parent, share in zip(t.parents, shares):
            if share is not None and parent.requires_grad and parent in ids:
                sent.append((ids[parent], ids[t]))
    return sent


def _caption(number: int, total: int, node: Node, graph: Graph, names: dict[str, str], seeded: bool,
             sent: list[tuple[str, str]], reached: bool = True) -> str:
    """What step ``number`` does. ``names`` holds the nodes that receive a gradient; ``sent`` the
    shares (input, operation) that were sent; ``reached`` says whether any gradient reached this
    node (an operation may send None instead)."""
    inputs = list(dict.fromkeys(tail for tail, head in sent if head == node.id and names.get(tail)))
    # Every use sends one share of the gradient: x * x has one operation (consumer) but two
    # uses, so mul sends x two shares, which backward adds up. Uses that sent None do not count.
    uses = sum(1 for tail, _ in sent if tail == node.id)
    consumers = len({head for tail, head in sent if tail == node.id})
    text = f"Step {number} of {total}: {_describe(node)}. "
    if number == 1:
        what = "loss" if node.kind == "loss" else "output"  # only a 0-d root is a loss
        text += ("Backward starts here with the output gradient it was given. " if seeded else
                 f"Backward starts here: the gradient of the {what} with respect to itself is 1. ")
    elif not reached:
        return text + ("Nothing reached it: every operation that uses it sent no gradient (None), so "
                       "backward skips it, sends nothing on, and its .grad stays None.")
    elif uses == 1:
        text += "Its gradient is complete: the one operation that uses it has sent it. "
    elif consumers == 1:
        text += (f"Its gradient is complete: the one operation that uses it uses it {uses} times, "
                 f"so it sent {uses} shares, and the shares were added. ")
    elif uses == consumers:
        text += (f"Its gradient is complete: each of the {consumers} operations that use it "
                 f"sent a share, and the shares were added. ")
    else:
        text += (f"Its gradient is complete: the {consumers} operations that use it sent {uses} shares "
                 f"(one per use), and the shares were added. ")
    if inputs:
        receivers = ", ".join(names[i] for i in inputs)
        text += f"Now the {node.op} backward function sends gradients to its inputs: {receivers}."
        refused = [_describe(graph.node(tail)) for tail in dict.fromkeys(graph.inputs(node.id))
                   if tail not in inputs and (t := graph.node(tail).tensor) is not None and t.requires_grad]
        if refused:
            text += f" To {', '.join(refused)} it sends no gradient (None)."
    elif node.kind == "parameter":
        text += "This is a parameter: its gradient is final, the one an optimizer step uses."
    elif any(n.tensor is not None and n.tensor.requires_grad
             for n in (graph.node(tail) for tail in graph.inputs(node.id))):
        text += f"Now the {node.op} backward function sends its inputs no gradient (None)."
    return text


def draw_backward_steps(
    root: Tensor,
    grad: Any = None,
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    rankdir: str | None = "LR",
    renderer: str | None = None,
) -> BackwardSteps:
    """The backward pass from ``root`` as frames: one per tensor, in the order backward processes them.

    Args:
        root: where backward starts, usually a scalar loss.
        grad: the output gradient, needed only when ``root`` has more than one element.
        max_nodes: refuse graphs with more tensors than this (a frame per tensor would be
            unreadable); draw a smaller example, e.g. one sample through a small model.
            None draws every graph, however large.
        rankdir, renderer: as for ``draw_graph`` (``rankdir=None``: "LR").

    Returns:
        ``BackwardSteps``; ``.save(dir)`` writes numbered SVGs and a slider page.
        The tensors' ``.grad`` are left as they were.
    """
    check_tensor(root, "draw_backward_steps")
    max_nodes = check_max_nodes(max_nodes, "draw_backward_steps")
    rankdir = natural_rankdir("detailed", rankdir, "draw_backward_steps")
    if not root.requires_grad:
        raise ValueError(
            "draw_backward_steps: the root does not require grad, so there is no backward pass to "
            "show. Compute it from parameters created with requires_grad=True (outside no_grad())."
        )
    try:  # the engine's own check of grad, before anything is walked or run
        seed_gradient(root, grad)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise type(exc)(f"draw_backward_steps: {exc}") from None
    graph = walk(root)
    if max_nodes is not None and len(graph.nodes) > max_nodes:
        raise ValueError(
            f"draw_backward_steps: the graph has {len(graph.nodes)} tensors, more than max_nodes="
            f"{max_nodes}; one frame per tensor would be unreadable. Use a smaller example (one "
            f"sample, a smaller model) or pass a larger max_nodes."
        )
    tensors = [n.tensor for n in graph.nodes if n.tensor is not None]
    grads = backward_gradients(root, tensors, grad)
    ids = {n.tensor: n.id for n in graph.nodes if n.tensor is not None}
    # The engine's own order: backward visits exactly the tensors that require grad, root first.
    order = [ids[t] for t in reversed(root.topological_order())]
    # Display names of the nodes that receive gradients (inputs that do not are not listed):
    # those that require grad and were reached (an operation may send None instead of a gradient).
    names = {n.id: _describe(n) for n in graph.nodes if n.tensor is not None and n.tensor in grads}
    sent = shares_sent(tensors, grads, ids)

    steps = []
    for k, current in enumerate(order):
        done = set(order[: k + 1])
        nodes = [replace(n, grad=_frame_grad(n, n.id in done, grads)) for n in graph.nodes]
        frame = replace(graph, nodes=nodes)
        node_attrs = {i: DONE for i in done} | {current: CURRENT}
        reached = current in names
        edge_attrs = {(tail, head): FLOWING for tail, head in set(sent) if head == current and reached}
        dot = new_digraph(rankdir=rankdir)
        add_graph(dot, frame, extra_node_attrs=node_attrs, extra_edge_attrs=edge_attrs)
        caption = _caption(k + 1, len(order), frame.node(current), frame, names if reached else {},
                           seeded=grad is not None, sent=sent, reached=reached)
        steps.append(Step(k + 1, current, caption, Picture(dot.source, renderer=renderer)))
    return BackwardSteps(steps)


def _frame_grad(node: Node, done: bool, grads: dict[Tensor, np.ndarray]) -> str:
    t = node.tensor
    if t is None or not t.requires_grad:
        return NOT_NEEDED
    return summarize(grads.get(t)) if done else NO_GRAD_YET


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font-family: sans-serif; margin: 1.5em; }}
  .controls {{ display: flex; gap: 0.6em; align-items: center; margin: 0.5em 0; }}
  #slider {{ flex: 1; max-width: 40em; }}
  .caption {{ min-height: 3em; max-width: 60em; }}
  .picture {{ overflow-x: auto; }}  /* full-size boxes stay readable; wide graphs scroll */
</style>
</head>
<body data-current="{first}">
<h1>{title}</h1>
<p>Drag the slider (or use the arrow keys) to step through the backward pass. The highlighted
box is the tensor being processed; gradients appear in a box once they are complete; orange
arrows point back at the inputs receiving gradients in this step.</p>
<div class="controls">
  <button id="prev" type="button">&#9664;</button>
  <input id="slider" type="range" min="0" max="{last}" value="0" aria-label="step">
  <button id="next" type="button">&#9654;</button>
  <span id="counter">1 / {count}</span>
</div>
{frames}
<script>
(function () {{
  var frames = document.querySelectorAll(".frame");
  var slider = document.getElementById("slider");
  function show(k) {{
    k = Math.max(0, Math.min(frames.length - 1, k));
    for (var i = 0; i < frames.length; i++) frames[i].hidden = (i !== k);
    slider.value = k;
    document.getElementById("counter").textContent = (k + 1) + " / " + frames.length;
    document.body.setAttribute("data-current", frames[k].getAttribute("data-node"));
    var current = frames[k].querySelector(".current");
    if (current) current.scrollIntoView({{block: "nearest", inline: "center"}});
  }}
  slider.addEventListener("input", function () {{ show(Number(slider.value)); }});
  document.getElementById("prev").addEventListener("click", function () {{ show(Number(slider.value) - 1); }});
  document.getElementById("next").addEventListener("click", function () {{ show(Number(slider.value) + 1); }});
  document.addEventListener("keydown", function (e) {{
    if (e.target === slider) return;  // a focused slider steps by itself (and fires "input")
    if (e.key === "ArrowLeft") show(Number(slider.value) - 1);
    if (e.key === "ArrowRight") show(Number(slider.value) + 1);
  }});
  // A link ending in #step=3 opens at step 3: the slider is moved and told, as a drag would.
  function fromHash() {{
    var m = /step=(\\d+)/.exec(location.hash);
    if (m) {{
      slider.value = Number(m[1]) - 1;
      slider.dispatchEvent(new Event("input"));
    }}
  }}
  window.addEventListener("hashchange", fromHash);
  fromHash();
}})();
</script>
</body>
</html>
"""
