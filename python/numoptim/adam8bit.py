"""Adam8bit and AdamW8bit: Adam with block-wise 8-bit state, as bitsandbytes 0.50.

Beyond torch.optim. The names, signatures, defaults, ``param_groups`` and state layout
are bitsandbytes' (``state1``/``state2`` for m and v, ``qmap1``/``qmap2``,
``absmax1``/``absmax2``, an int ``step``), so that a bitsandbytes state dict with its
tensors turned into arrays loads, and the other way round. The native kernel
(cpp/include/numoptim/adam8bit.hpp) dequantizes, updates and requantizes each block of
256 elements in one pass; see there for the rule and where it departs from
bitsandbytes' CPU kernel (nearest-code quantization, as the paper defines it).
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer, lr_value
from .optimizer import ParamsT

__all__ = ["Adam8bit", "AdamW8bit", "create_dynamic_map"]

# Elements per quantization block, as bitsandbytes.
BLOCK_SIZE = 256

# bitsandbytes' state keys that are never cast to the parameter's dtype on load, and
# that its state_dict() nests under _QUANT_STATE_KEY (to hide them from FSDP).
_QUANT_KEYS = frozenset(
    {
        "qmap1",
        "qmap2",
        "max1",
        "max2",
        "new_max1",
        "new_max2",
        "state1",
        "state2",
        "gnorm_vec",
        "absmax1",
        "absmax2",
        "unorm_vec",
    }
)
_QUANT_STATE_KEY = "__bnb_optimizer_quant_state__"


def _linspace(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace in float32: ``start + i * step`` for the first half of the points,
    ``end - (steps - 1 - i) * step`` for the rest, each rounded once (a fused
    multiply-add, as torch's vectorized kernel computes it)."""
    f32 = np.float32
    s, e = f32(start), f32(end)
    step = np.float64((e - s) / f32(steps - 1))
    i = np.arange(steps, dtype=np.float64)
    first = np.float64(s) + step * i
    second = np.float64(e) - step * (steps - 1 - i)
    return np.where(i < steps // 2, first, second).astype(f32)


def create_dynamic_map(signed: bool = True, max_exponent_bits: int = 7, total_bits: int = 8):
    """bitsandbytes' dynamic quantization map: 256 sorted float32 codes in [-1, 1].

    Each power of ten from ``10**-(max_exponent_bits - 1)`` to 1 holds evenly spaced
    codes, more of them for the larger decades (Dettmers, "8-Bit Approximations for
    Parallelism in Deep Learning", 2016). Bit for bit the map of
    ``bitsandbytes.functional.create_dynamic_map`` (tested against it).

    Args:
        signed: codes for both signs (``qmap1``, for m) or for non-negative values only
            (``qmap2``, for v).
        max_exponent_bits, total_bits: as bitsandbytes.

    Returns:
        A float32 array of ``2**total_bits`` codes.
    """
    data: list[float] = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        items = 2 ** (i + non_sign_bits - max_exponent_bits + (0 if signed else 1)) + 1
        boundaries = _linspace(0.1, 1, items)
        means = (boundaries[:-1] + boundaries[1:]) / np.float32(2)
        scale = np.float32(10.0 ** (-(max_exponent_bits - 1) + i))
        data += (scale * means).tolist()
        if signed:
            data += (-scale * means).tolist()
    if additional_items > 0:
        boundaries = _linspace(0.1, 1, additional_items + 1)
        means = (boundaries[:-1] + boundaries[1:]) / np.float32(2)
        scale = np.float32(10.0 ** (-(max_exponent_bits - 1) + max_exponent_bits - 1))
        data += (scale * means).tolist()
        if signed:
            data += (-scale * means).tolist()
    data += [0.0, 1.0]
    if len(data) != 2**total_bits:
        raise ValueError(f"the map has {len(data)} codes instead of {2**total_bits}")
    return np.array(sorted(data), dtype=np.float32)


class _Adam8bitBase(NativeOptimizer):
    """What Adam8bit and AdamW8bit share (bitsandbytes' Optimizer2State for "adam")."""

    _name = "Adam8bit"

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        optim_bits: int = 32,
        args: Any = None,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ) -> None:
        if amsgrad:
            raise ValueError(f"{self._name} does not support amsgrad=True")
        if optim_bits != 32:
            raise ValueError(
                f"{self._name} only supports optim_bits=32 (default value for compatibility)"
            )
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if isinstance(betas, str):  # bitsandbytes accepts "(beta1, beta2)"
            betas = [float(b) for b in betas.replace("(", "").replace(")", "").split(",")]
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "alpha": 0.0,
            "t_alpha": None,
            "t_beta3": None,
        }
        super().__init__(params, defaults)
        if args is None:
            # 8 bits: the class fixes it, whatever optim_bits says (bitsandbytes).
            args = types.SimpleNamespace(
                optim_bits=8, min_8bit_size=min_8bit_size, max_unorm=0.0, skip_zeros=False
            )
        self.args = args
        self.is_paged = is_paged
        self._paged_warned = False
        self._make_maps()

    def _make_maps(self) -> None:
        """The dynamic maps new state takes, and the quantization tables (derived data)."""
        self._qmaps = (create_dynamic_map(signed=True), create_dynamic_map(signed=False))
        self._tables: dict[bytes, np.ndarray] = {}
        self._own_tables = tuple(_core.quantization_table(qmap) for qmap in self._qmaps)

    def __getstate__(self) -> dict[str, Any]:
        # The configuration pickles with the state; the maps and tables are rebuilt.
        return {**super().__getstate__(), "args": self.args, "is_paged": self.is_paged}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.defaults.pop("differentiable", None)  # bitsandbytes' defaults have none
        self.__dict__.setdefault("_paged_warned", False)
        if "_qmaps" not in self.__dict__:  # unpickled (load_state_dict keeps them)
            self._make_maps()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a parameter group, as :meth:`Optimizer.add_param_group`.

        Raises:
            TypeError: as the base class, or a parameter that is not float32, float16 or
                bfloat16 (bitsandbytes' kernels take no float64).
        """
        super().add_param_group(param_group)
        for index, p in enumerate(self.param_groups[-1]["params"]):
            if p.dtype.itemsize not in (2, 4) or p.dtype.kind not in "fV":
                self.param_groups.pop()
                raise TypeError(
                    f"{self._name} supports float32, float16 and bfloat16 parameters, but "
                    f"parameter {index} has dtype {p.dtype}"
                )

    def _table(self, qmap: np.ndarray) -> np.ndarray:
        """The quantization table of a map, built once per distinct map."""
        for own, table in zip(self._qmaps, self._own_tables):
            if qmap is own:  # the common case, with no copy of the map to hash
                return table
        key = np.asarray(qmap).tobytes()
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = _core.quantization_table(qmap)
        return table

    def _new_state(self, p: np.ndarray) -> dict[str, Any]:
        """The state of a parameter's first step, as bitsandbytes' init_state."""
        if self.is_paged and not self._paged_warned:
            warnings.warn(
                "Paged optimizers are not supported on CPU. Falling back to non-paged "
                "optimizer behavior.",
                stacklevel=3,
            )
            self._paged_warned = True
        if self.args.optim_bits == 8 and p.size >= self.args.min_8bit_size:
            blocks = -(-p.size // BLOCK_SIZE)
            return {
                "step": 0,
                "state1": _core.state_zeros(p.shape, np.uint8),
                "qmap1": self._qmaps[0],
                "state2": _core.state_zeros(p.shape, np.uint8),
                "qmap2": self._qmaps[1],
                "absmax1": _core.state_zeros((blocks,), np.float32),
                "absmax2": _core.state_zeros((blocks,), np.float32),
            }
        return {
            "step": 0,
            "state1": _core.state_zeros(p.shape, np.float32),
            "state2": _core.state_zeros(p.shape, np.float32),
        }

    def _tensor(self, index: int, p: np.ndarray, state: dict[str, Any]) -> tuple:
        """The native step's tuple for one parameter; raises on a malformed state."""
        for key in ("step", "state1", "state2"):
            if key not in state:
                raise ValueError(f"the state of parameter {index} has no '{key}'")
        step = state["step"]
        if isinstance(step, np.ndarray):
            step = step.item()
        head = (index, p, p.grad, int(step) + 1, state["state1"], state["state2"])
        if not (isinstance(state["state1"], np.ndarray) and state["state1"].dtype == np.uint8):
            return (*head, None, None, None, None, None, None)
        for key in ("absmax1", "absmax2", "qmap1", "qmap2"):
            if key not in state:
                raise ValueError(f"the 8-bit state of parameter {index} has no '{key}'")
        qmap1, qmap2 = state["qmap1"], state["qmap2"]
        return (*head, state["absmax1"], state["absmax2"], qmap1, qmap2,
                self._table(qmap1), self._table(qmap2))  # fmt: skip

    def _step_group(self, group: dict[str, Any], defer: bool) -> Callable[[], None] | None:
        """Checks a group and writes its step (see NativeOptimizer.step).

        A parameter's first step creates its state; the state enters ``self.state``, and
        every ``step`` count advances, only when the checked step is written.
        """
        new_states: list[tuple[np.ndarray, dict[str, Any]]] = []
        stepped: list[dict[str, Any]] = []
        tensors = []
        for index, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            state = self.state.get(p)
            if not state:
                state = self._new_state(p)
                new_states.append((p, state))
            tensors.append(self._tensor(index, p, state))
            stepped.append(state)
        beta1, beta2 = group["betas"][0], group["betas"][1]
        prepared = _core.adam8bit_step(
            tensors,
            lr_value(group["lr"]),
            float(beta1),
            float(beta2),
            float(group["eps"]),
            float(group["weight_decay"]),
            True,
        )

        def write() -> None:
            for p, state in new_states:
                self.state[p] = state
            prepared()
            for state in stepped:
                state["step"] = int(state["step"]) + 1

        if defer:
            return write
        write()
        return None

    def state_dict(self) -> dict[str, Any]:
        """The state dict in bitsandbytes' layout: the quantization state of each
        parameter nested under ``"__bnb_optimizer_quant_state__"``."""
        state_dict = super().state_dict()
        packed = {}
        for index, param_state in state_dict["state"].items():
            if isinstance(param_state, dict):
                param_state = dict(param_state)
                quant = {k: param_state.pop(k) for k in list(param_state) if k in _QUANT_KEYS}
                if quant:
                    param_state[_QUANT_STATE_KEY] = quant
            packed[index] = param_state
        state_dict["state"] = packed
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state dict of :meth:`state_dict` or of bitsandbytes' (tensors as
        arrays), nested quantization state or not. The quantization state keeps its
        dtypes (uint8 codes, float32 absmax, maps and small tensors' state)."""
        state_dict = dict(state_dict)
        unpacked = {}
        for index, param_state in state_dict["state"].items():
            if isinstance(param_state, dict) and _QUANT_STATE_KEY in param_state:
                param_state = dict(param_state)
                param_state.update(param_state.pop(_QUANT_STATE_KEY))
            unpacked[index] = param_state
        state_dict["state"] = unpacked
        super().load_state_dict(state_dict)

    def _cast_state(self, param, key: Any, value: Any, dtype: Any = None) -> Any:
        if key == "step":
            return int(np.asarray(value).item()) if isinstance(value, np.ndarray) else value
        if key in _QUANT_KEYS and isinstance(value, np.ndarray):
            return np.array(value, order="C", copy=True)
        return super()._cast_state(param, key, value, dtype)


class Adam8bit(_Adam8bitBase):
    """Adam with 8-bit block-wise state, as ``bitsandbytes.optim.Adam8bit`` 0.50.

    m and v take one byte per element (plus a float32 absmax per block of 256) instead
    of four each: 2 bytes of state per element instead of 8. Parameters with fewer than
    ``min_8bit_size`` elements keep float32 state, as bitsandbytes. A ``weight_decay``
    is decoupled (the parameter shrinks by ``1 - lr * weight_decay``), as bitsandbytes'
    kernels apply it for both Adam8bit and AdamW8bit.

    Args:
        params: parameters or parameter groups, as torch.optim.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator (default 1e-8).
        weight_decay: decoupled weight decay (default 0).
        amsgrad: must be False (not supported, as bitsandbytes).
        optim_bits: must be 32 (kept for bitsandbytes' signature; the state is 8-bit).
        args: bitsandbytes' configuration object (``optim_bits``, ``min_8bit_size``);
            None builds it from the other arguments.
        min_8bit_size: parameters with fewer elements keep float32 state (default 4096).
        is_paged: accepted; paging does not apply on the CPU (a warning says so).
    """

    _name = "Adam8bit"


class AdamW8bit(_Adam8bitBase):
    """AdamW with 8-bit block-wise state, as ``bitsandbytes.optim.AdamW8bit`` 0.50.

    :class:`Adam8bit` with ``weight_decay=1e-2`` by default.
    """

    _name = "AdamW8bit"

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        optim_bits: int = 32,
        args: Any = None,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, optim_bits, args, min_8bit_size, is_paged
        )
