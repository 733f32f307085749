"""Per-tensor and per-step overhead: many small tensors, flat storage, one tiny tensor.

    PYTHONPATH=python python bench/bench_small.py [--rounds 5] [--threads 1]

The cases (Adam, float32), each in its own process, alternating from round to round;
each process reports the median of its timed steps:

  flat roofline     numoptim's streaming kernel over one array per operand of 500 x 256
                    elements: the bytes a flat step moves, in one pass
  flat              500 Parameters of 256 elements from numoptim.utils.flat_parameters
                    (views into one buffer, gradients views into a second), gradients
                    written in place
  ordinary          500 separate Parameters, the same gradient arrays every step
  fresh grads       500 separate Parameters given new gradient arrays before every step,
                    as backpropagation makes them: the step alone, and the 500
                    assignments `p.grad = g` alone
  10 elements       one Parameter of 10 elements: the fixed cost of a step

Printed: the median over rounds with its spread, and the median per-round ratio of
flat to the flat roofline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import numoptim
from numoptim.utils import flat_parameters

case, threads = json.loads(sys.argv[1])
numoptim.set_num_threads(threads)
rng = np.random.default_rng(0)
shapes = [(256,)] * 500

def median_of(step, samples=200, inner=10, before=None):
    for _ in range(20):
        if before: before()
        step()
    times = []
    for _ in range(samples):
        total = 0.0
        for _ in range(inner):
            if before: before()
            start = time.perf_counter()
            step()
            total += time.perf_counter() - start
        times.append(total / inner)
    return sorted(times)[len(times) // 2]

grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
if case == "flat roofline":
    arrays = [np.ones(500 * 256, np.float32) for _ in range(4)]
    result = median_of(lambda: numoptim._core.bench_stream(arrays))
elif case == "flat":
    params = flat_parameters([rng.standard_normal(s).astype(np.float32) for s in shapes])
    for p, g in zip(params, grads):
        p.grad[...] = g
    result = median_of(numoptim.Adam(params, lr=1e-3).step)
elif case in ("ordinary", "fresh grads: step", "fresh grads: assignments"):
    params = [numoptim.Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = g
    optimizer = numoptim.Adam(params, lr=1e-3)
    if case == "ordinary":
        result = median_of(optimizer.step)
    else:
        # New arrays every step, made outside the timing; a pool of 8 sets stands in for
        # the fresh allocations of a backward pass (they are not in cache either).
        pool = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(8)]
        turn = [0]
        def assign():
            for p, g in zip(params, pool[turn[0] % 8]):
                p.grad = g
            turn[0] += 1
        if case == "fresh grads: step":
            result = median_of(optimizer.step, samples=100, inner=4, before=assign)
        else:
            result = median_of(assign, samples=100, inner=4)
else:
    p = numoptim.Parameter(np.ones(10, np.float32))
    p.grad = np.ones(10, np.float32)
    result = median_of(numoptim.Adam([p], lr=1e-3).step, inner=100)
print(json.dumps(result))
"""

CASES = [
    "flat roofline",
    "flat",
    "ordinary",
    "fresh grads: step",
    "fresh grads: assignments",
    "10 elements",
]


def run(case: str, threads: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([case, threads])],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {c: [] for c in CASES}
    for r in range(args.rounds):
        for case in CASES if r % 2 == 0 else CASES[::-1]:
            times[case].append(run(case, args.threads))
    print(f"Adam, float32, {args.threads} thread(s), {args.rounds} rounds (median [min-max])")
    for case, t in times.items():
        print(
            f"  {case:26} {statistics.median(t) * 1e6:9.2f} us "
            f"[{min(t) * 1e6:.2f}-{max(t) * 1e6:.2f}]"
        )
    ratio = statistics.median(f / r for f, r in zip(times["flat"], times["flat roofline"]))
    print(f"  flat / flat roofline: x{ratio:.2f} (median per round; target <= 1.5)")


if __name__ == "__main__":
    main()
