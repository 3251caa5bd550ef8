"""viz: pictures of tinygrad_mb computation graphs, drawn with Graphviz.

    from viz import draw_graph
    loss.backward()
    draw_graph(loss).save("graph.svg")      # or just `draw_graph(loss)` in Jupyter
    draw_graph(loss, view="compact")        # a model's graph: one small box per operation

Pictures for the question "what gets averaged in a mini-batch?", each with a small fixed
schematic to show first (same idea, no numbers):

- ``schematic_strategies()``, then ``draw_strategies(model, loss_fn, X, y)``: per-sample
  graphs (the sum and the 1/B come after backward) beside the batched graph (the mean is
  a node of the forward graph);
- ``schematic_error_first()``, then ``draw_error_first(model, loss_fn, X, y, variant)``:
  averaging the error *before* backpropagation, and the "which activations?" question it
  cannot answer;
- ``schematic_whose_activations()``, then ``draw_whose_activations(model, loss_fn, X, y)``:
  the answer, each sample's own. The batched graph with every tensor's B rows as lanes that
  never touch until the parameters, where dW = (1/B) Σᵢ outer(hᵢ, gᵢ); checked on the batch;
- ``draw_backward_steps(loss)``: the backward pass frame by frame, with an HTML slider.

Two views. ``view="compact"`` (the default of ``draw_strategies`` and ``draw_error_first``):
one box per operation, no value summaries, the parameters drawn once per picture, laid out
top to bottom so that a picture fits a notebook's width (about 900 px) with its text at
12 px; it is never scaled down to fit. ``view="detailed"`` (the default of ``draw_graph``):
every tensor's shape, values and gradient, left to right.

``python -m viz gallery --out DIR`` draws all of them for a small example.

How it is built: ``graph.walk`` lists the tensors in the engine's own topological order,
``dot`` writes them as DOT with the ``graphviz`` package, ``render`` runs Graphviz. Fused
operations (``linear``, ``cross_entropy``) print their backward rules in their box; the
rules are a small table in ``formulas.py``, where your own operation can add its lines.
The engine never imports this package; this package only reads graphs, never changes them
(every ``.grad`` it uses for a drawing is put back afterwards).
"""

from .draw import draw_graph
from .graph import Graph, Node, walk
from .render import INSTALL_HINT, Picture, RendererChoiceError, RenderError, available_renderer
from .schematics import schematic_error_first, schematic_strategies, schematic_whose_activations
from .stepper import BackwardSteps, draw_backward_steps
from .strategies import draw_error_first, draw_strategies
from .whose import draw_whose_activations

__all__ = [
    "INSTALL_HINT",
    "BackwardSteps",
    "Graph",
    "Node",
    "Picture",
    "RenderError",
    "RendererChoiceError",
    "available_renderer",
    "draw_backward_steps",
    "draw_error_first",
    "draw_graph",
    "draw_strategies",
    "draw_whose_activations",
    "schematic_error_first",
    "schematic_strategies",
    "schematic_whose_activations",
    "walk",
]
