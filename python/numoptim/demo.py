"""The main job: train a small NumPy MLP with numoptim, as a torch user would.

A 2-layer perceptron with a hand-written backward pass learns a generated two-spirals
data set (no download). It trains once with SGD (Nesterov momentum) under a one-cycle
schedule and once with Adam under cosine annealing, printing the loss per epoch and
the final accuracy, and draws the loss and learning-rate curves to PNG files in the
current directory when matplotlib is installed (``pip install matplotlib``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from .adam import Adam
from .lr_scheduler import CosineAnnealingLR, OneCycleLR
from .parameter import Parameter
from .sgd import SGD


def two_spirals(n_per_class: int = 500, noise: float = 0.2, seed: int = 0):
    """Two interleaved spirals in 2-D: a classic problem no linear model solves."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1.0, n_per_class)) * 3.0 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3.0 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0.0, noise / (3.0 * np.pi), (2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class, np.int64), np.ones(n_per_class, np.int64)])
    order = rng.permutation(2 * n_per_class)
    return x[order].astype(np.float32), y[order]


class MLP:
    """x -> tanh(x W1 + b1) -> W2 + b2 -> logits, with its backward pass written out."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w1 = Parameter(rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_hidden)).astype(np.float32))
        self.b1 = Parameter(np.zeros(n_hidden, np.float32))
        self.w2 = Parameter(
            rng.normal(0, 1 / np.sqrt(n_hidden), (n_hidden, n_out)).astype(np.float32)
        )
        self.b2 = Parameter(np.zeros(n_out, np.float32))

    def named_parameters(self):
        return [("w1", self.w1), ("b1", self.b1), ("w2", self.w2), ("b2", self.b2)]

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def forward(self, x):
        self._x = x
        self._h = np.tanh(x @ self.w1 + self.b1)
        return self._h @ self.w2 + self.b2

    def backward(self, dlogits):
        """Sets each parameter's grad from the gradient of the loss w.r.t. the logits."""
        self.w2.grad = (self._h.T @ dlogits).astype(np.float32)
        self.b2.grad = dlogits.sum(axis=0).astype(np.float32)
        dh = (dlogits @ self.w2.T) * (1.0 - self._h**2)
        self.w1.grad = (self._x.T @ dh).astype(np.float32)
        self.b1.grad = dh.sum(axis=0).astype(np.float32)


def cross_entropy(logits, y):
    """Mean cross-entropy and its gradient w.r.t. the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(y)), y].mean()
    dlogits = np.exp(log_probs)
    dlogits[np.arange(len(y)), y] -= 1.0
    return float(loss), (dlogits / len(y)).astype(np.float32)


def train(
    make_optimizer,
    epochs: int = 60,
    batch_size: int = 64,
    hidden: int = 64,
    seed: int = 0,
    verbose: bool = True,
    make_scheduler=None,
    lrs=None,
):
    """Trains a fresh MLP on two spirals; returns (final loss, accuracy, epoch losses).

    Args:
        make_optimizer: builds the optimizer from the model's parameters.
        epochs, batch_size, hidden, seed: the run's size and randomness.
        verbose: print the loss every 5 epochs.
        make_scheduler: optional; builds a scheduler from (optimizer, steps in total),
            stepped after every optimizer step.
        lrs: optional list that receives the learning rate of every step.
    """
    x, y = two_spirals(seed=seed)
    model = MLP(2, hidden, 2, seed=seed)
    optimizer = make_optimizer(model.parameters())
    batches = -(-len(x) // batch_size)
    scheduler = make_scheduler(optimizer, epochs * batches) if make_scheduler else None
    rng = np.random.default_rng(seed + 1)
    losses = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        total = 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss, dlogits = cross_entropy(model.forward(x[batch]), y[batch])
            model.backward(dlogits)
            optimizer.step()
            if lrs is not None:
                lrs.append(float(optimizer.param_groups[0]["lr"]))
            if scheduler is not None:
                scheduler.step()
            total += loss * len(batch)
        losses.append(total / len(x))
        if verbose and (epoch == 1 or epoch % 5 == 0):
            print(f"  epoch {epoch:3d}  loss {losses[-1]:.4f}")
    accuracy = float((model.forward(x).argmax(axis=1) == y).mean())
    return losses[-1], accuracy, losses


def _plot(curves: dict, title: str, ylabel: str, xlabel: str, path: str, log: bool = False) -> Any:
    """Draws ``curves`` (label: values) into a PNG at ``path``; returns the Figure."""
    # A Figure rather than pyplot: no global state, no GUI backend to pick.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for name, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    # Under the axes, where no curve runs: the labels are long.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    fig.savefig(path, dpi=100)
    return fig


def main(epochs: int = 60, plots: bool = True) -> int:
    """Runs the demo; returns a process exit code."""
    runs = {
        "SGD(lr=0.1, momentum=0.9, nesterov=True) + OneCycleLR(max_lr=0.3)": (
            lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
            lambda opt, steps: OneCycleLR(opt, max_lr=0.3, total_steps=steps),
        ),
        "Adam(lr=0.03) + CosineAnnealingLR": (
            lambda p: Adam(p, lr=0.03),
            lambda opt, steps: CosineAnnealingLR(opt, T_max=steps, eta_min=1e-4),
        ),
    }
    losses, lrs = {}, {}
    for name, (make_optimizer, make_scheduler) in runs.items():
        print(f"two spirals, 2-64-2 MLP, {name}")
        start = time.perf_counter()
        lrs[name] = []
        loss, accuracy, losses[name] = train(
            make_optimizer, epochs=epochs, make_scheduler=make_scheduler, lrs=lrs[name]
        )
        print(
            f"  final loss {loss:.4f}  accuracy {accuracy:.1%}  ({time.perf_counter() - start:.2f} s)"
        )
    if plots:
        try:
            _plot(
                losses,
                "Two spirals, 2-64-2 MLP: training loss",
                "training loss (log scale)",
                "epoch",
                "numoptim-demo-loss.png",
                log=True,
            )
            _plot(
                lrs, "Learning rate at each step", "learning rate", "step", "numoptim-demo-lr.png"
            )
        except ImportError:
            print("plots skipped: matplotlib is not installed (pip install matplotlib)")
        else:
            here = os.getcwd()
            print(
                f"wrote {os.path.join(here, 'numoptim-demo-loss.png')} and "
                f"{os.path.join(here, 'numoptim-demo-lr.png')}"
            )
    return 0
