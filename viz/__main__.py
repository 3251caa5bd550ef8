"""Command line: ``python -m viz gallery --out DIR`` draws every picture for a small example.

The example is a batch of 4 samples with 2 features, a regression target, a [2, 3, 1]
tanh MLP and the mean squared error: small enough that each graph can be read box by box.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinygrad_mb import Tensor, nn
from tinygrad_mb.minibatch import ERROR_FIRST_VARIANTS

from .draw import draw_graph
from .render import CHOICES, INSTALL_HINT, Picture, RendererChoiceError, RenderError, available_renderer
from .schematics import schematic_error_first, schematic_strategies, schematic_whose_activations
from .stepper import draw_backward_steps
from .strategies import draw_error_first, draw_strategies
from .whose import draw_whose_activations


def example() -> tuple[nn.MLP, np.ndarray, np.ndarray]:
    """The gallery's model and batch (fixed seeds: the same pictures every time)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 2))
    y = np.tanh(X[:, :1] - 0.5 * X[:, 1:])
    return nn.MLP([2, 3, 1], activation="tanh", rng=0), X, y


def gallery(out: Path, renderer: str | None = None) -> list[tuple[Path, str]]:
    """Draw every picture into ``out``; returns (path, what it shows) pairs.

    With no renderer available, the DOT text of each picture is written instead
    (``.dot`` files, which any Graphviz can render later).
    """
    model, X, y = example()
    can_render = available_renderer(renderer) is not None
    suffix = ".svg" if can_render else ".dot"
    written: list[tuple[Path, str]] = []

    def save(picture: Picture, name: str, what: str) -> None:
        written.append((picture.save(out / f"{name}{suffix}"), what))

    loss = nn.mse_loss(model(Tensor(X, name="X")), Tensor(y, name="y"))
    save(draw_graph(loss, title="Before backward: every gradient is —", renderer=renderer),
         "graph_before_backward", "the batched loss graph, before backward")
    steps = draw_backward_steps(loss, renderer=renderer)  # leaves every .grad as it was
    loss.backward()
    save(draw_graph(loss, title="After loss.backward()", renderer=renderer),
         "graph_after_backward", "the same graph after backward, with gradients")
    save(draw_graph(loss, view="compact", title="The same graph, compact", renderer=renderer),
         "graph_compact", "the same graph in the compact view: one small box per operation")
    model.zero_grad()
    save(schematic_strategies(renderer=renderer),
         "schematic_strategies", "sketch: per-sample average beside batched mean")
    save(draw_strategies(model, nn.mse_loss, X, y, renderer=renderer),
         "strategies", "per-sample graphs (sum and 1/B after backward) beside the batched graph (mean node)")
    save(draw_strategies(model, nn.mse_loss, X, y, view="detailed", renderer=renderer),
         "strategies_detailed", "the same, detailed: every tensor's values and gradient (wide)")
    save(schematic_error_first(renderer=renderer),
         "schematic_error_first", "sketch: averaging the error first, through which activations?")
    for variant in ERROR_FIRST_VARIANTS:
        save(draw_error_first(model, nn.mse_loss, X, y, variant, renderer=renderer),
             f"error_first_{variant}", f"averaging the error first ({variant}): which activations?")
    save(schematic_whose_activations(renderer=renderer),
         "schematic_whose_activations", "sketch: whose activations? each sample's own")
    save(draw_whose_activations(model, nn.mse_loss, X, y, renderer=renderer),
         "whose_activations", "the batched graph's rows as lanes: each sample's own activations, checked")
    if can_render:
        paths = steps.save(out / "backward_steps")
        written += [(p, "one frame of the backward pass") for p in paths[:-1]]
        written.append((paths[-1], "the backward pass with a slider (open in a browser)"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viz", description="Pictures of computation graphs.")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("gallery", help="draw every picture for a small built-in example")
    cmd.add_argument("--out", type=Path, default=Path("gallery"), help="folder to write into (default: gallery)")
    cmd.add_argument("--renderer", choices=CHOICES, default=None,
                     help="which Graphviz to use (default: $VIZ_RENDERER, else auto)")
    args = parser.parse_args(argv)

    try:
        chosen = available_renderer(args.renderer)
    except RendererChoiceError as exc:  # a bad $VIZ_RENDERER: a usage error, not a traceback
        parser.error(str(exc))
    try:
        written = gallery(args.out, args.renderer)
    except (OSError, RenderError) as exc:  # --out under a file, a renderer that fails: one clear line
        print(f"python -m viz: {exc}", file=sys.stderr)
        return 1
    frames = sum(1 for _, what in written if what.startswith("one frame"))
    how = f"rendered with {chosen}" if chosen else "DOT text only"
    print(f"Gallery: {len(written)} files in {args.out}/ ({how})")
    for path, what in written:
        if not what.startswith("one frame"):
            print(f"  {path}  {what}")
    if frames:
        print(f"  {args.out / 'backward_steps'}/step_*.svg  {frames} frames of the backward pass")
    if not chosen:
        print(INSTALL_HINT, "The files hold the DOT text.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
