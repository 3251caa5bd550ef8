"""The demo: train a small MLP on the two-moons data with the batched mean loss."""

from __future__ import annotations

import numpy as np

from . import nn, optim
from .data import make_moons
from .tensor import Tensor, no_grad


def main() -> None:
    X, y = make_moons(200, noise=0.15, seed=0)
    model = nn.MLP([2, 16, 16, 2], activation="tanh", rng=0)
    opt = optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    print("Training MLP [2, 16, 16, 2] on two moons (200 samples), batched mean cross-entropy")
    for epoch in range(1, 101):
        opt.zero_grad()
        loss = nn.cross_entropy(model(Tensor(X)), y)
        loss.backward()
        opt.step()
        if epoch % 20 == 0 or epoch == 1:
            with no_grad():
                acc = float(np.mean(model(Tensor(X)).data.argmax(axis=1) == y))
            print(f"epoch {epoch:3d}  loss {loss.item():.4f}  accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
