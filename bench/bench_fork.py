"""A forked child's step against its parent's: Adam on one group of 2^20 float32.

    python bench/bench_fork.py [--rounds 9] [--threads 2]

The parent steps first (so that its OpenMP pool exists when it forks), then each round
times 50 steps in the parent and 50 in a fresh child of multiprocessing's fork start
method, alternately. Prints the median ms per step of each and their ratio per round.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
import warnings

import numoptim
import numpy as np

N = 1 << 20
STEPS = 50


def time_steps() -> float:
    """ms per Adam step on a fresh 2^20-element parameter, after one warm-up step."""
    p = numoptim.Parameter(np.linspace(-1, 1, N, dtype=np.float32))
    p.grad = np.cos(np.arange(N, dtype=np.float32))
    optimizer = numoptim.Adam([p], lr=1e-3)
    optimizer.step()
    start = time.perf_counter()
    for _ in range(STEPS):
        optimizer.step()
    return (time.perf_counter() - start) / STEPS * 1e3


def child(queue) -> None:
    queue.put(time_steps())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    numoptim.set_num_threads(args.threads)
    context = multiprocessing.get_context("fork")
    parent_ms, child_ms = [], []
    time_steps()
    for _ in range(args.rounds):
        parent_ms.append(time_steps())
        queue = context.Queue()
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() with threads running: the case measured.
            warnings.simplefilter("ignore", DeprecationWarning)
            process = context.Process(target=child, args=(queue,))
            process.start()
        child_ms.append(queue.get(timeout=120))
        process.join()
    ratios = [c / p for c, p in zip(child_ms, parent_ms)]
    print(
        f"Adam 2^20 float32, {args.threads} threads, {args.rounds} rounds x {STEPS} steps: "
        f"parent {statistics.median(parent_ms):.3f} ms "
        f"[{min(parent_ms):.3f}-{max(parent_ms):.3f}], "
        f"forked child {statistics.median(child_ms):.3f} ms "
        f"[{min(child_ms):.3f}-{max(child_ms):.3f}], "
        f"child/parent median {statistics.median(ratios):.2f} "
        f"[{min(ratios):.2f}-{max(ratios):.2f}]"
    )


if __name__ == "__main__":
    main()
