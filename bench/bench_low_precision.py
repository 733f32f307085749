"""Adam on bfloat16 and float16 parameters, and with 8-bit state: numoptim, its peers, the roofline.

    python bench/bench_low_precision.py [--n 16777216] [--rounds 9] [--threads 2]
                                        [--only WORD ...]

Each contestant runs in its own process, the contestants alternating from round to round;
each process reports the median of its timed steps. Printed: per contestant the median
over rounds and the spread, in ms and ns per element, and the median per-round ratio to
the roofline of the same run. The roofline is numoptim's streaming kernel moving the
same bytes as a 16-bit Adam step (p, m, v read and written, g read: 14 B per element)
through float32 arrays of half the length (float32 Adam, and bfloat16 with fp32 master
weights and state, move 28 B per element and are compared with twice that).
torch runs when installed (fused=True, the
same 16-bit tensors, torch.set_num_threads to match).

8-bit state on float32 parameters (p read and written, g read, one byte per element of
each state read and written): Adam8bit 16 B per element (8/7 of the 14 B roofline),
Lion8bit 14 B and AdEMAMix8bit 18 B. Adam8bit is compared with numoptim's float32 Adam,
and each with bitsandbytes' CPU optimizer of the same name when installed.
DeepSpeed's DeepSpeedCPUAdam runs when deepspeed is installed (its op is built on first
use, a few minutes): on float32, and on bfloat16 parameters with its float32 state.
`--only bfloat16 torch` runs the roofline and the contestants whose names hold a word.
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
n, threads, contestant = json.loads(sys.argv[1])
rng = np.random.default_rng(0)

def timed(step, repeat=15):
    for _ in range(3):
        step()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2] * 1e3

if contestant == "roofline":
    import numoptim
    numoptim.set_num_threads(threads)
    arrays = [rng.standard_normal(n // 2).astype(np.float32) for _ in range(4)]
    print(timed(lambda: numoptim._core.bench_stream(arrays)))
elif contestant.endswith("8bit"):  # "numoptim Adam8bit", "bitsandbytes Lion8bit", ...
    library, name = contestant.split()
    if library == "numoptim":
        import numoptim
        numoptim.set_num_threads(threads)
        p = numoptim.Parameter(rng.standard_normal(n).astype(np.float32))
        p.grad = (rng.standard_normal(n) * 1e-2).astype(np.float32)
        optimizer = getattr(numoptim, name)([p], lr=1e-4)
        print(timed(optimizer.step))
    else:
        import torch, bitsandbytes
        torch.set_num_threads(threads)
        p = torch.nn.Parameter(torch.randn(n))
        p.grad = torch.randn(n) * 1e-2
        optimizer = getattr(bitsandbytes.optim, name)([p], lr=1e-4)
        print(timed(optimizer.step, repeat=5))
elif contestant.startswith("deepspeed"):
    import torch
    from deepspeed.ops.adam import DeepSpeedCPUAdam  # builds its op on first use
    torch.set_num_threads(threads)
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[contestant.split()[-1]]
    p = torch.nn.Parameter(torch.randn(n).to(dtype))
    p.grad = (torch.randn(n) * 1e-2).to(dtype)
    optimizer = DeepSpeedCPUAdam([p], lr=1e-4, adamw_mode=False)
    print(timed(optimizer.step))
elif contestant.startswith("numoptim"):
    import ml_dtypes, numoptim
    numoptim.set_num_threads(threads)
    dtype = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16, "float32": np.float32}[
        contestant.split()[1]]
    p = numoptim.Parameter(rng.standard_normal(n).astype(np.float32).astype(dtype))
    p.grad = (rng.standard_normal(n) * 1e-2).astype(np.float32).astype(dtype)
    optimizer = numoptim.Adam([p], lr=1e-4, master_weights=contestant.endswith("master"))
    print(timed(optimizer.step))
else:
    import torch
    torch.set_num_threads(threads)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[contestant.split()[2]]
    p = torch.nn.Parameter(torch.randn(n).to(dtype))
    p.grad = (torch.randn(n) * 1e-2).to(dtype)
    optimizer = torch.optim.Adam([p], lr=1e-4, fused=True)
    with torch.no_grad():
        print(timed(optimizer.step))
"""


# The 8-bit optimizers: bytes per element on float32 parameters.
EIGHT_BIT = {"Adam8bit": 16, "Lion8bit": 14, "AdEMAMix8bit": 18}


def run(contestant: str, n: int, threads: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([n, threads, contestant])],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])  # the last line: DeepSpeed logs too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1 << 24)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--only", nargs="+", metavar="WORD", help="run only the contestants naming one of these"
    )
    args = parser.parse_args()
    contestants = [
        "roofline",
        "numoptim bfloat16",
        "numoptim float16",
        "numoptim float32",
        "numoptim bfloat16 master",
        *(f"numoptim {name}" for name in EIGHT_BIT),
    ]
    try:
        import torch  # noqa: F401

        contestants += ["torch fused bfloat16", "torch fused float16"]
        import bitsandbytes  # noqa: F401

        contestants += [f"bitsandbytes {name}" for name in EIGHT_BIT]
    except ImportError:
        pass
    try:
        import deepspeed  # noqa: F401

        contestants += ["deepspeed cpu_adam float32", "deepspeed cpu_adam bfloat16"]
    except ImportError:
        pass
    if args.only:
        contestants = ["roofline"] + [c for c in contestants[1:] if any(w in c for w in args.only)]
    times: dict[str, list[float]] = {c: [] for c in contestants}
    for r in range(args.rounds):
        order = contestants if r % 2 == 0 else contestants[::-1]
        for contestant in order:
            times[contestant].append(run(contestant, args.n, args.threads))
    print(f"Adam, n = {args.n}, {args.threads} threads, {args.rounds} rounds (median [min-max])")
    for contestant, t in times.items():
        # float32 Adam, and bfloat16 with fp32 master weights and state, move 28 B per
        # element: twice the roofline's bytes.
        scale = 2.0 if contestant.endswith(("float32", "master")) else 1.0
        # DeepSpeed's bfloat16 step: bf16 p and g, fp32 m and v (22 B per element).
        scale = 22 / 14 if contestant == "deepspeed cpu_adam bfloat16" else scale
        name = contestant.split()[-1]
        scale = EIGHT_BIT[name] / 14 if name in EIGHT_BIT else scale
        ratio = statistics.median(x / (scale * r) for x, r in zip(t, times["roofline"]))
        print(
            f"{contestant:22} {statistics.median(t):8.2f} ms [{min(t):.2f}-{max(t):.2f}] "
            f"{statistics.median(t) * 1e6 / args.n:6.3f} ns/elem  x{ratio:.2f} of roofline"
        )
    for dtype in ("bfloat16", "float16"):
        ours, theirs = times.get(f"numoptim {dtype}"), times.get(f"torch fused {dtype}")
        if ours and theirs:
            ratio = statistics.median(a / b for a, b in zip(ours, theirs))
            verdict = "PASS" if ratio <= 1.0 else "MISS"
            print(
                f"numoptim / torch fused, {dtype}: x{ratio:.2f} (median per round; "
                f"target <= 1.00) {verdict}"
            )
    fp32 = times.get("numoptim float32")
    for contestant in ("numoptim Adam8bit", "bitsandbytes Adam8bit"):
        if contestant in times and fp32:
            ratio = statistics.median(a / b for a, b in zip(times[contestant], fp32))
            print(f"{contestant} / numoptim float32 Adam: x{ratio:.2f} (median per round)")
    for name in EIGHT_BIT:
        ours, theirs = times.get(f"numoptim {name}"), times.get(f"bitsandbytes {name}")
        if ours and theirs:
            ratio = statistics.median(b / a for a, b in zip(ours, theirs))
            print(f"numoptim {name} is x{ratio:.1f} faster than bitsandbytes {name}")


if __name__ == "__main__":
    main()
