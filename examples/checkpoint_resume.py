"""Checkpoint a whole run and resume it bit for bit.

Everything that decides what the run does next goes into one file through
``numoptim.save``: the parameters, the optimizer's and the scheduler's state dicts and
the random generator that draws the mini-batches. A run resumed from that file into
freshly built objects continues exactly as the uninterrupted run does, bit for bit.
``numoptim.load`` runs no code from the file (no pickle), so a checkpoint from elsewhere
is safe to open.

    python examples/checkpoint_resume.py
"""

import os
import tempfile

import numoptim
import numpy as np
from numoptim.lr_scheduler import StepLR
from numpy.random import Generator

DATA = np.random.default_rng(42).normal(size=(256, 8)).astype(np.float32)
TARGET = DATA @ np.linspace(-1, 1, 8, dtype=np.float32) + 0.5


Run = tuple[list[numoptim.Parameter], numoptim.AdamW, StepLR, Generator]


def build() -> Run:
    """The model, optimizer, scheduler and batch sampler of a fresh run."""
    w = numoptim.Parameter(np.zeros(8, np.float32))
    b = numoptim.Parameter(np.zeros((), np.float32))
    optimizer = numoptim.AdamW([w, b], lr=0.05, weight_decay=1e-3)
    scheduler = StepLR(optimizer, step_size=20, gamma=0.5)
    return [w, b], optimizer, scheduler, np.random.default_rng(0)


def train(run: Run, steps: int) -> None:
    params, optimizer, scheduler, rng = run
    w, b = params
    for _ in range(steps):
        rows = rng.choice(len(DATA), size=32, replace=False)
        x, y = DATA[rows], TARGET[rows]
        error = x @ w + b - y
        w.grad = 2 * x.T @ error / len(rows)
        b.grad = np.asarray(2 * error.mean(), np.float32)
        optimizer.step()
        scheduler.step()


def checkpoint(path: str, run: Run) -> None:
    params, optimizer, scheduler, rng = run
    numoptim.save(
        {
            "params": [np.array(p) for p in params],
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng.bit_generator.state,
        },
        path,
    )


def resume(path: str) -> Run:
    params, optimizer, scheduler, rng = build()
    saved = numoptim.load(path)
    for p, value in zip(params, saved["params"]):
        p[...] = value  # in place: the optimizer holds these very arrays
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    rng.bit_generator.state = saved["rng"]
    return params, optimizer, scheduler, rng


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "run.ckpt")

        # The reference: 100 steps without a break, saving a checkpoint at step 40.
        run = build()
        train(run, steps=40)
        checkpoint(path, run)
        train(run, steps=60)
        straight = run[0]

        # A new process would start here: everything rebuilt, then loaded.
        resumed = resume(path)
        train(resumed, steps=60)

    for a, b in zip(straight, resumed[0]):
        assert np.array_equal(a, b) and a.tobytes() == b.tobytes()
    print("resumed run equals the uninterrupted one bit for bit:", np.array(straight[0]))
    print("lr after 100 steps:", resumed[2].get_last_lr())


if __name__ == "__main__":
    main()
