"""Type stubs for numoptim's native module (private; use the numoptim package)."""

from typing import Any

__version__: str

class SparseGradientError(TypeError): ...

def adadelta_step(
    params: Any, state: dict, lr: float, rho: float, eps: float, weight_decay: float, maximize: bool
) -> None: ...
def adagrad_step(
    params: Any,
    state: dict,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    initial_accumulator_value: float,
    maximize: bool,
) -> None: ...
def adam_step(
    params: Any,
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
def adamax_step(
    params: Any,
    state: dict,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None: ...
def asgd_step(
    params: Any,
    state: dict,
    lr: float,
    lambd: float,
    alpha: float,
    t0: float,
    weight_decay: float,
    maximize: bool,
) -> None: ...
def bench_stream(arrays: list) -> None: ...
def compiler() -> str: ...
def cpu_simd_level() -> str: ...
def get_num_threads() -> int: ...
def nadam_step(
    params: Any,
    state: dict,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    momentum_decay: float,
    maximize: bool,
    decoupled: bool,
) -> None: ...
def openmp_version() -> int: ...
def radam_step(
    params: Any,
    state: dict,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    decoupled: bool,
) -> None: ...
def rmsprop_step(
    params: Any,
    state: dict,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None: ...
def rprop_step(
    params: Any,
    state: dict,
    lr: float,
    etaminus: float,
    etaplus: float,
    step_size_min: float,
    step_size_max: float,
    maximize: bool,
) -> None: ...
def set_num_threads(n: int) -> None: ...
def sgd_sparse_step(params: Any, lr: float, maximize: bool) -> None: ...
def sgd_step(
    params: Any,
    state: dict,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    allow_sparse: bool = True,
) -> list[int]: ...
def simd_level() -> str: ...
def sparse_adam_step(
    params: Any, state: dict, lr: float, beta1: float, beta2: float, eps: float, maximize: bool
) -> None: ...
