"""Type stubs for numoptim's native module (private; use the numoptim package)."""

from typing import Any

__version__: str

class SparseGradientError(TypeError): ...

class PreparedStep:
    """A checked step of one parameter group; calling it writes it."""

    sparse_grads: list[int]
    def __call__(self) -> None: ...

class PlanCache:
    """The checked parameter groups of an optimizer's state, kept between steps."""

    hits: int
    def __init__(self) -> None: ...
    def __len__(self) -> int: ...

def _to_storage_bits(values: Any, dtype: str, isa: str = "baseline") -> Any: ...
def _from_storage_bits(bits: Any, dtype: str, isa: str = "baseline") -> Any: ...
def _quantize(values: Any, table: Any) -> Any: ...
def quantization_table(code: Any) -> Any: ...
def norm_reductions(arrays: list[Any], p: float) -> Any: ...
def scale_arrays(arrays: list[Any], coefficient: float) -> None: ...
def check_assigned_grad(param: Any, grad: Any) -> None: ...
def state_zeros(shape: tuple[int, ...], dtype: Any) -> Any: ...
def adam8bit_step(
    tensors: list[tuple[Any, ...]],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    defer: bool,
) -> PreparedStep | None: ...
def lion8bit_step(
    tensors: list[tuple[Any, ...]],
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    defer: bool,
) -> PreparedStep | None: ...
def ademamix8bit_step(
    tensors: list[tuple[Any, ...]],
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    t_alpha: float,
    t_beta3: float,
    eps: float,
    weight_decay: float,
    defer: bool,
) -> PreparedStep | None: ...
def adadelta_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def adagrad_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    initial_accumulator_value: float,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def adam_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def adamax_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def ademamix_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    alpha: float,
    t_alpha: float,
    t_beta3: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def adan_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    step: float,
    no_prox: bool,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def nadamw_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    wd_scale: float,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def laprop_step(
    params: Any,
    state: dict[Any, Any],
    beta1: float,
    beta2: float,
    eps: float,
    momentum_scale: float,
    neg_step_size: float,
    decay_scale: float,
    decay: bool,
    tensor_scales: bool,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def adabelief_step(
    params: Any,
    state: dict[Any, Any],
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decay_factor: float,
    neg_step_size: float,
    bias_correction2_sqrt: float,
    update_kind: int,
    amsgrad: bool,
    decoupled: bool,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def adopt_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    wd_scale: float,
    clip_exp: float,
    clip: bool,
    decoupled: bool,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def lamb_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    beta3: float,
    bias_correction1: float,
    bias_correction2: float,
    eps: float,
    weight_decay: float,
    decay: float,
    clip: float,
    decoupled: bool,
    adapt: bool,
    trust_clip: bool,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def lars_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    trust_coeff: float,
    eps: float,
    nesterov: bool,
    trust_clip: bool,
    adapt: bool,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def prodigy_moments(
    params: Any,
    state: dict[Any, Any],
    beta1: float,
    beta2: float,
    beta3: float,
    weight_m: float,
    weight_v: float,
    weight_s: float,
    weight_decay: float,
    l2: bool,
    active: bool,
    maximize: bool,
    master_weights: bool,
    out: Any,
    defer: bool,
) -> PreparedStep | None: ...
def prodigy_step(
    params: Any,
    state: dict[Any, Any],
    dlr: float,
    d: float,
    eps: float,
    weight_decay: float,
    l2: bool,
    decoupled: bool,
    momentum: bool,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def lion_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def schedule_free_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    y_lr: float,
    ckp1: float,
    beta2: float,
    bias_correction2: float,
    eps: float,
    weight_decay: float,
    adaptive: bool,
    normalize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def asgd_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    lambd: float,
    alpha: float,
    t0: float,
    weight_decay: float,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def bench_stream(arrays: list[Any], read_only: bool = False) -> None: ...
def compiler() -> str: ...
def cpu_simd_level() -> str: ...
def get_num_threads() -> int: ...
def nadam_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    momentum_decay: float,
    maximize: bool,
    decoupled: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def openmp_version() -> int: ...
def radam_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    decoupled: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def rmsprop_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def rprop_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    etaminus: float,
    etaplus: float,
    step_size_min: float,
    step_size_max: float,
    maximize: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def set_num_threads(n: int) -> None: ...
def sgd_sparse_step(
    params: Any, positions: list[int], lr: float, maximize: bool, defer: bool
) -> PreparedStep | None: ...
def sgd_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    allow_sparse: bool,
    master_weights: bool,
    defer: bool,
) -> PreparedStep | None: ...
def simd_level() -> str: ...
def sparse_adam_step(
    params: Any,
    state: dict[Any, Any],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    maximize: bool,
    defer: bool,
) -> PreparedStep | None: ...
