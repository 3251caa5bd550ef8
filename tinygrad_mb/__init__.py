"""tinygrad_mb: a small reverse-mode autograd engine that teaches what gets averaged in
mini-batch gradient descent.

    import tinygrad_mb as tg
    from tinygrad_mb import Tensor, no_grad, gradcheck, nn, optim, minibatch
    from tinygrad_mb.train import Trainer
"""

from . import data, minibatch, nn, optim, tensor, train  # tinygrad_mb.tensor is the module, not a function
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor, is_grad_enabled, no_grad, topological_order, unbroadcast

__all__ = [
    "GradcheckError",
    "Tensor",
    "data",
    "gradcheck",
    "is_grad_enabled",
    "minibatch",
    "nn",
    "no_grad",
    "optim",
    "tensor",
    "topological_order",
    "train",
    "unbroadcast",
]
__version__ = "0.1.0"
