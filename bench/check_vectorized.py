"""Reports, for every update rule compiled into numoptim._core, whether its loop is SIMD.

Usage::

    python bench/check_vectorized.py [path/to/_core*.so]

Disassembles the module (objdump) and, for each instantiation
``numoptim::update_<isa><Rule<T>, ...>``, counts packed floating-point arithmetic
(``vmulps``, ``mulpd``...) and scalar (``vmulss``, ``mulsd``...). A loop the compiler
did not vectorize has no packed arithmetic at all; a vectorized one also has scalar
arithmetic (its tails, and the set-up of its constants). A rule whose loop is unswitched
into several versions can be vectorized in some and not in others, which this count
cannot tell: ``-fopt-info-vec`` can (see bench/README.md).
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

ARITH = r"(?:add|sub|mul|div|sqrt|min|max)"
PACKED = re.compile(rf"\bv?{ARITH}p[sd]\b")
SCALAR = re.compile(rf"\bv?{ARITH}s[sd]\b")
HEADER = re.compile(r"^[0-9a-f]+ <(.*)>:$")
NAME = re.compile(
    r"numoptim::update_(avx512|avx2|baseline)<numoptim::([A-Za-z0-9_]+)<(float|double|numoptim::bfloat16|numoptim::float16)>"
)
# float16 steps through the float32 rule: numoptim::Widened<numoptim::Adam<float>, numoptim::float16>.
WIDENED = re.compile(
    r"numoptim::update_(avx512|avx2|baseline)<numoptim::Widened<numoptim::([A-Za-z0-9_]+)<float>, (numoptim::float16)>"
)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    paths = sys.argv[1:] or glob.glob(os.path.join(here, "..", "python", "numoptim", "_core*.so"))
    if not paths:
        print("no _core*.so found: build first (./dev/build.sh) or pass its path")
        return 2
    dump = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", paths[0]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    counts: dict[tuple[str, str, str], list[int]] = {}
    current = None
    for line in dump.splitlines():
        header = HEADER.match(line)
        if header:
            name = WIDENED.search(header.group(1)) or NAME.search(header.group(1))
            current = (name.group(2), name.group(3), name.group(1)) if name else None
            if current:
                counts.setdefault(current, [0, 0])
            continue
        if current:
            counts[current][0] += len(PACKED.findall(line))
            counts[current][1] += len(SCALAR.findall(line))
    if not counts:
        print("no numoptim::update_* functions found (stripped build?)")
        return 2
    print(f"{'rule':<14} {'dtype':<7} {'isa':<9} {'packed':>7} {'scalar':>7}  verdict")
    bad = 0
    for (rule, dtype, isa), (packed, scalar) in sorted(counts.items()):
        # Every level, baseline (SSE2) included, has packed float and double arithmetic.
        ok = packed > 0
        bad += not ok
        verdict = "vectorized" if ok else "NOT VECTORIZED"
        print(f"{rule:<14} {dtype:<7} {isa:<9} {packed:>7} {scalar:>7}  {verdict}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
