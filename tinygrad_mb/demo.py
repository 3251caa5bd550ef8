"""The demo: one model, one initialisation, every strategy — which ones agree?

For each strategy it prints how far the first step's gradient is from ``batched_mean``'s,
and the loss and accuracy after training. The correct strategies agree to ~1e-16; the
"average the error first" variants and the naive accumulation do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import minibatch, nn, optim
from .data import make_moons, make_regression
from .train import Trainer

# (label, Trainer keyword arguments)
Runs = list[tuple[str, dict[str, Any]]]
CLASSIFICATION_RUNS: Runs = [
    ("batched_mean", {"strategy": "batched_mean"}),
    ("per_sample", {"strategy": "per_sample"}),
    ("accumulated (m=10)", {"strategy": "accumulated", "micro_batch": 10}),
    ("naive_accumulated (m=10)  WRONG", {"strategy": "naive_accumulated", "micro_batch": 10}),
    ("error_first mean_input    WRONG", {"strategy": "error_first", "variant": "mean_input"}),
    ("error_first last_sample   WRONG", {"strategy": "error_first", "variant": "last_sample"}),
    ("error_first loss_as_grad  WRONG", {"strategy": "error_first", "variant": "loss_as_gradient"}),
]
REGRESSION_RUNS: Runs = [
    ("batched_mean", {"strategy": "batched_mean"}),
    ("per_sample", {"strategy": "per_sample"}),
    ("accumulated (m=10)", {"strategy": "accumulated", "micro_batch": 10}),
    ("error_first mean_input    WRONG", {"strategy": "error_first", "variant": "mean_input"}),
    ("error_first mean_residual WRONG", {"strategy": "error_first", "variant": "mean_residual"}),
]


def compare(title: str, X: np.ndarray, y: np.ndarray, sizes: list[int], loss_fn: nn.LossFn,
            runs: Runs, batch_size: int, epochs: int, lr: float) -> dict[str, dict]:
    """Train a fresh copy of the same model with each strategy; print and return a summary."""
    print(f"\n{title}")
    print(f"  {len(X)} samples, batch size {batch_size} (the last batch has {len(X) % batch_size or batch_size}),"
          f" {epochs} epochs, SGD lr={lr}, MLP {sizes}")
    classification = bool(nn.loss_info(loss_fn).classification)
    header = f"  {'strategy':<33}{'step-1 gradient':>16}{'final weights':>15}{'final loss':>12}"
    print(header + (f"{'accuracy':>10}" if classification else ""))
    print("  " + "-" * (len(header) - 2 + (10 if classification else 0)))

    reference = minibatch.batched_mean(nn.MLP(sizes, rng=0), loss_fn, X[:batch_size], y[:batch_size])
    final_reference: list[np.ndarray] = []
    results = {}
    for label, kwargs in runs:
        model = nn.MLP(sizes, activation="tanh", rng=0)  # the same initial weights every time
        trainer = Trainer(model, loss_fn, optim.SGD(model.parameters(), lr=lr), progress=False, **kwargs)
        first = trainer.gradient(X[:batch_size], y[:batch_size])
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(first, reference))
        history = trainer.fit(X, y, batch_size=batch_size, epochs=epochs, seed=0)
        weights = [p.data for p in model.parameters()]
        final_reference = final_reference or weights  # the first run is batched_mean
        drift = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, final_reference))
        results[label] = {"grad_diff": diff, "weight_diff": drift, **{k: v[-1] for k, v in history.items()}}
        line = f"  {label:<33}{diff:>16.2e}{drift:>15.2e}{history['loss'][-1]:>12.4f}"
        print(line + (f"{history['accuracy'][-1]:>10.3f}" if classification else ""))
    return results


def main() -> None:
    print("What gets averaged in mini-batch gradient descent?")
    print("Every row starts from the same weights. Columns: the largest difference from batched_mean")
    print("of the first batch's gradient and of the weights after training, then the final loss.")
    X, y = make_moons(200, noise=0.15, seed=0)
    compare("Classification: two moons, cross-entropy", X, y, [2, 16, 16, 2], nn.cross_entropy,
            CLASSIFICATION_RUNS, batch_size=24, epochs=60, lr=0.5)
    Xr, yr = make_regression(120, in_features=2, out_features=2, noise=0.05, seed=0)
    compare("Regression: y = sin(x A) + noise, squared error", Xr, yr, [2, 16, 2], nn.mse_loss,
            REGRESSION_RUNS, batch_size=24, epochs=60, lr=0.2)
    print("\nper_sample, batched_mean and accumulated compute the same gradient (differences are")
    print("floating-point rounding). Averaging the error first, or averaging chunk means, computes a")
    print("different gradient: it may still lower the loss, but it is not the mini-batch gradient.")
    print("naive_accumulated can even end lower: batches of 24 in micro-batches of 10 leave a last chunk")
    print("of 4 samples weighted as a third of the batch, and over-weighting a few samples fits them")
    print("more tightly. A lower training loss from a different gradient is not a better gradient.")


if __name__ == "__main__":
    main()
