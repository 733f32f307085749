"""The step time of two builds of numoptim, each in its own processes, alternated.

    python bench/compare_trees.py OLD_PYTHONPATH NEW_PYTHONPATH [--rounds 11]

Each round runs every workload once per tree (a fresh interpreter each, the order of
the trees alternating from round to round) and records the median time per step of
that process. Prints, per workload, the median over rounds of each tree, their spread
(min-max) and the median of the per-round ratios new/old. Made for changes that must
cost nothing on the normal path, such as checking every group before writing any.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# name -> (optimizer, group sizes: a list of groups, each a list of tensor sizes, steps)
WORKLOADS = {
    "Adam 1 x 10 (us)": ("Adam", [[10]], 20000),
    "SGD 1 x 10 (us)": ("SGD", [[10]], 20000),
    "Adam 500 x 256, 1 group (us)": ("Adam", [[256] * 500], 500),
    "Adam 500 x 256, 2 groups (us)": ("Adam", [[256] * 250, [256] * 250], 500),
    "Adam 2^20, 1 group (us)": ("Adam", [[1 << 20]], 200),
}

CHILD = r"""
import json, sys, time
import numpy as np
import numoptim
name, groups, steps = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
params = [[numoptim.Parameter(rng.standard_normal(n).astype(np.float32)) for n in g]
          for g in groups]
for g in params:
    for p in g:
        p.grad = rng.standard_normal(p.size).astype(np.float32)
optimizer = getattr(numoptim, name)([{"params": g} for g in params], lr=1e-3)
for _ in range(max(10, steps // 10)):
    optimizer.step()
samples = []
for _ in range(9):
    start = time.perf_counter()
    for _ in range(steps // 9 + 1):
        optimizer.step()
    samples.append((time.perf_counter() - start) / (steps // 9 + 1) * 1e6)
print(sorted(samples)[len(samples) // 2])
"""


def measure(pythonpath: str, workload) -> float:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(workload)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    times = {name: {"old": [], "new": []} for name in WORKLOADS}
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for name, workload in WORKLOADS.items():
            for tree in order:
                times[name][tree].append(measure(getattr(args, tree), workload))
    print(f"{'workload':34} {'old':>22} {'new':>22} {'new/old':>18}")
    for name, t in times.items():
        ratios = [n / o for n, o in zip(t["new"], t["old"])]
        cell = {k: f"{statistics.median(v):.2f} [{min(v):.2f}-{max(v):.2f}]" for k, v in t.items()}
        print(
            f"{name:34} {cell['old']:>22} {cell['new']:>22} "
            f"{statistics.median(ratios):.3f} [{min(ratios):.2f}-{max(ratios):.2f}]"
        )


if __name__ == "__main__":
    main()
