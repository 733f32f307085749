"""Type stubs for numoptim's native module (private; use the numoptim package)."""

from collections.abc import Iterable
from typing import Any

__version__: str

def sgd_step(
    params: Iterable[Any],
    state: dict,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None: ...
def adam_step(
    params: Iterable[Any],
    state: dict,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
) -> None: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...
def cpu_simd_level() -> str: ...
def openmp_version() -> int: ...
def compiler() -> str: ...
def bench_stream(arrays: list[Any]) -> None:
    """Roofline kernel for bench/: sums the float32 arrays and writes the sum in place
    to all but the last (4 * (2 * len(arrays) - 1) bytes per element)."""
