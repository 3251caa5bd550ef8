"""viz: pictures of tinygrad_mb computation graphs, drawn with Graphviz.

    from viz import draw_graph
    loss.backward()
    draw_graph(loss).save("graph.svg")      # or just `draw_graph(loss)` in Jupyter

Pictures for the question "what gets averaged in a mini-batch?":

- ``draw_strategies(model, loss_fn, X, y)``: per-sample graphs (the sum and the 1/B come
  after backward) beside the batched graph (the mean is a node of the forward graph);
- ``draw_error_first(model, loss_fn, X, y, variant)``: averaging the error *before*
  backpropagation, and the "which activations?" question it cannot answer;
- ``draw_backward_steps(loss)``: the backward pass frame by frame, with an HTML slider.

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
from .stepper import BackwardSteps, draw_backward_steps
from .strategies import draw_error_first, draw_strategies

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
    "walk",
]
