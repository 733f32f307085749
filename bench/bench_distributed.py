"""numoptim.distributed on ResNet-50's 161 parameter shapes (float32, 25,557,032 elements).

Usage::

    PYTHONPATH=python python bench/bench_distributed.py            # launches 1, 2, 4 ranks
    PYTHONPATH=python python bench/bench_distributed.py --ranks 1 2 --repeats 9
    mpiexec -n 4 python bench/bench_distributed.py --worker         # one size, one JSON line

Reports, per number of ranks:

  state    the ZeroRedundancyOptimizer(Adam) state bytes of the most loaded rank, against
           the target total/ranks + the largest parameter's state (PASS/MISS).
  allreduce  allreduce_grads(mean) over the 161 gradients against one raw comm.Allreduce
           of the same bytes in one buffer (medians), target within 1.2x.
  step     ZeroRedundancyOptimizer(Adam).step() (local step + broadcast) against a plain
           Adam step over all parameters in the same process (medians).

With more ranks than cores the ranks share cores (mpiexec oversubscribes): the times
then measure contention as much as MPI, and the 4-rank figures on a 2-core machine are
only indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_step import RESNET50_SHAPES


def _state_bytes(optimizer) -> int:
    return sum(
        v.nbytes for s in optimizer.state.values() for v in s.values() if isinstance(v, np.ndarray)
    )


def _median_time(fn, comm, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        comm.Barrier()
        start = time.perf_counter()
        fn()
        comm.Barrier()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(repeats: int) -> None:
    import numoptim
    from mpi4py import MPI
    from numoptim.distributed import ZeroRedundancyOptimizer, allreduce_grads

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(0)
    params = [
        numoptim.Parameter(rng.standard_normal(s).astype(np.float32)) for s in RESNET50_SHAPES
    ]
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)

    total_bytes = sum(p.nbytes for p in params)
    raw = np.ones(total_bytes // 4, dtype=np.float32)
    t_raw = _median_time(lambda: comm.Allreduce(MPI.IN_PLACE, raw, op=MPI.SUM), comm, repeats)
    t_grads = _median_time(lambda: allreduce_grads(params, comm), comm, repeats)

    zero = ZeroRedundancyOptimizer(params, numoptim.Adam, comm, lr=1e-3)
    zero.step()  # state allocated
    t_zero = _median_time(zero.step, comm, repeats)
    state = comm.allgather(_state_bytes(zero.optim))
    del zero

    plain = numoptim.Adam(params, lr=1e-3)
    plain.step()
    t_plain = _median_time(plain.step, comm, repeats)
    total_state = _state_bytes(plain)
    largest = max(total_state_of(p, plain) for p in params)
    if comm.Get_rank() == 0:
        print(
            json.dumps(
                {
                    "ranks": comm.Get_size(),
                    "state_max": max(state),
                    "state_target": total_state / comm.Get_size() + largest,
                    "total_state": total_state,
                    "allreduce_grads": t_grads,
                    "raw_allreduce": t_raw,
                    "zero_step": t_zero,
                    "adam_step": t_plain,
                }
            )
        )


def total_state_of(p, optimizer) -> int:
    return sum(v.nbytes for v in optimizer.state[p].values() if isinstance(v, np.ndarray))


def _mpiexec() -> str:
    local = Path(sys.executable).parent / "mpiexec"
    if local.exists():
        return str(local)
    import shutil

    found = shutil.which("mpiexec")
    if found is None:
        raise SystemExit("no mpiexec found: pip install mpich")
    return found


def driver(ranks: list[int], repeats: int) -> None:
    rows = []
    for n in ranks:
        out = subprocess.run(
            [_mpiexec(), "-n", str(n), sys.executable, __file__, "--worker", "--repeats",
             str(repeats)],
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    mib = 2**20
    print(f"ResNet-50 shapes, float32, Adam; medians of {repeats} repeats; {os.cpu_count()} cores")
    print("\n(1) optimizer state bytes per rank (most loaded rank) vs total/ranks + largest param")
    print(f"{'ranks':>5} {'state MiB':>10} {'target MiB':>11} {'total MiB':>10}  result")
    for r in rows:
        ok = "PASS" if r["state_max"] <= r["state_target"] else "MISS"
        print(
            f"{r['ranks']:>5} {r['state_max'] / mib:>10.1f} {r['state_target'] / mib:>11.1f} "
            f"{r['total_state'] / mib:>10.1f}  {ok}"
        )
    print("\n(2) allreduce_grads(mean) vs one raw Allreduce of the same bytes (target <= 1.2x)")
    print(f"{'ranks':>5} {'grads ms':>9} {'raw ms':>8} {'ratio':>6}  result")
    for r in rows:
        if r["ranks"] == 1:
            print(f"{1:>5} {r['allreduce_grads'] * 1e3:>9.2f} {r['raw_allreduce'] * 1e3:>8.2f}"
                  f" {'-':>6}  (one rank: no communication)")  # fmt: skip
            continue
        ratio = r["allreduce_grads"] / r["raw_allreduce"]
        ok = "PASS" if ratio <= 1.2 else "MISS"
        print(
            f"{r['ranks']:>5} {r['allreduce_grads'] * 1e3:>9.2f} {r['raw_allreduce'] * 1e3:>8.2f} "
            f"{ratio:>6.2f}  {ok}"
        )
    print("\n(3) ZeroRedundancyOptimizer(Adam).step() vs plain Adam.step() (all parameters)")
    print(f"{'ranks':>5} {'ZeRO ms':>8} {'Adam ms':>8} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['ranks']:>5} {r['zero_step'] * 1e3:>8.2f} {r['adam_step'] * 1e3:>8.2f} "
            f"{r['zero_step'] / r['adam_step']:>6.2f}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="run one size under mpiexec")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.repeats)
    else:
        driver(args.ranks, args.repeats)


if __name__ == "__main__":
    main()
