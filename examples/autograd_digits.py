"""An MLP on scikit-learn's digits, with gradients from HIPS autograd.

AdamW with the 1cycle schedule and gradient clipping, as a torch user would write it:
autograd differentiates with respect to numoptim Parameters directly, and its gradients
are assigned to ``.grad`` as they come.

    pip install autograd scikit-learn
    python examples/autograd_digits.py
"""

from typing import Any

import autograd
import autograd.numpy as anp
import numoptim
import numpy as np
import numpy.typing as npt
from numoptim.lr_scheduler import OneCycleLR
from numoptim.utils import clip_grad_norm_
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def forward(params: list[Any], x: Any) -> Any:
    w1, b1, w2, b2 = params
    return anp.tanh(x @ w1 + b1) @ w2 + b2


def loss_fn(params: list[Any], x: Any, y: npt.NDArray[np.int_]) -> Any:
    logits = forward(params, x)
    log_probs = logits - anp.log(anp.sum(anp.exp(logits), axis=1, keepdims=True))
    return -anp.mean(log_probs[anp.arange(len(y)), y])


def main() -> None:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=0
    )
    rng = np.random.default_rng(0)
    params = [
        numoptim.Parameter(rng.normal(0, 64**-0.5, (64, 128))),
        numoptim.Parameter(np.zeros(128)),
        numoptim.Parameter(rng.normal(0, 128**-0.5, (128, 10))),
        numoptim.Parameter(np.zeros(10)),
    ]
    optimizer = numoptim.AdamW(params, lr=1e-3, weight_decay=1e-2)
    epochs, batch = 20, 64
    steps_per_epoch = -(-len(x_train) // batch)
    scheduler = OneCycleLR(optimizer, max_lr=1e-2, epochs=epochs, steps_per_epoch=steps_per_epoch)
    grad_fn = autograd.grad(loss_fn)

    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            grads = grad_fn(params, x_train[rows], y_train[rows])
            for p, g in zip(params, grads):
                p.grad = g
            clip_grad_norm_(params, max_norm=1.0)
            optimizer.step()
            scheduler.step()
        if epoch % 5 == 4:
            loss = loss_fn(params, x_train, y_train)
            print(f"epoch {epoch + 1:2d}  training loss {loss:.4f}")

    accuracy = (forward(params, x_test).argmax(axis=1) == y_test).mean()
    print(f"test accuracy {accuracy:.1%}")
    assert accuracy > 0.95, accuracy


if __name__ == "__main__":
    main()
