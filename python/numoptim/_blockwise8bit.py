"""The machinery of bitsandbytes' 8-bit optimizers: its dynamic maps, its state layout and
state dict, its configuration arguments.

The names, group keys and state keys are bitsandbytes 0.50's (``state1``/``state2``,
``qmap1``/``qmap2``, ``absmax1``/``absmax2``, an int ``step``), so that a bitsandbytes
state dict with its tensors turned into arrays loads, and the other way round. The native
kernels (cpp/include/numoptim/blockwise8bit.hpp and one header per rule) dequantize,
update and requantize each block of 256 elements in one pass.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer
from .optimizer import ParamsT

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


class Blockwise8bitOptimizer(NativeOptimizer):
    """What bitsandbytes' 8-bit optimizers share (its Optimizer1State and Optimizer2State).

    A subclass validates its arguments, passes its group defaults, and says how its state
    is laid out: ``_stacked`` streams in ``state1`` (AdEMAMix stacks m1 and m2 in a
    ``(2, *shape)`` array, with an absmax1 of ``(2, blocks)``) and a ``state2`` when
    ``_has_state2``; its ``_native_step`` runs the native step of a group.
    """

    _name = ""
    _stacked = 1
    _has_state2 = True

    def __init__(
        self,
        params: ParamsT,
        defaults: dict[str, Any],
        args: Any = None,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ) -> None:
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
        stacked = (self._stacked,) if self._stacked > 1 else ()
        shape = (*stacked, *p.shape)
        if self.args.optim_bits == 8 and p.size >= self.args.min_8bit_size:
            blocks = -(-p.size // BLOCK_SIZE)
            state: dict[str, Any] = {
                "step": 0,
                "state1": _core.state_zeros(shape, np.uint8),
                "qmap1": self._qmaps[0],
            }
            if self._has_state2:
                state["state2"] = _core.state_zeros(p.shape, np.uint8)
                state["qmap2"] = self._qmaps[1]
            state["absmax1"] = _core.state_zeros((*stacked, blocks), np.float32)
            if self._has_state2:
                state["absmax2"] = _core.state_zeros((blocks,), np.float32)
            return state
        state = {"step": 0, "state1": _core.state_zeros(shape, np.float32)}
        if self._has_state2:
            state["state2"] = _core.state_zeros(p.shape, np.float32)
        return state

    def _tensor(self, index: int, p: np.ndarray, state: dict[str, Any]) -> tuple:
        """The native step's tuple for one parameter; raises on a malformed state."""
        streams = ("1", "2") if self._has_state2 else ("1",)
        for key in ("step", *("state" + s for s in streams)):
            if key not in state:
                raise ValueError(f"the state of parameter {index} has no '{key}'")
        step = state["step"]
        if isinstance(step, np.ndarray):
            step = step.item()
        head = (index, p, p.grad, int(step) + 1, state["state1"], state.get("state2"))
        if not (isinstance(state["state1"], np.ndarray) and state["state1"].dtype == np.uint8):
            return (*head, None, None, None, None, None, None)
        for key in ("absmax", "qmap"):
            for s in streams:
                if key + s not in state:
                    raise ValueError(f"the 8-bit state of parameter {index} has no '{key + s}'")
        qmap1, qmap2 = state["qmap1"], state.get("qmap2")
        return (*head, state["absmax1"], state.get("absmax2"), qmap1, qmap2, self._table(qmap1),
                None if qmap2 is None else self._table(qmap2))  # fmt: skip

    def _native_step(self, group: dict[str, Any], tensors: list[tuple]) -> Callable[[], None]:
        """The checked native step of a group's tensors, not yet written."""
        raise NotImplementedError

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
        prepared = self._native_step(group, tensors)

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


def check_arguments(lr: Any, eps: float, betas: Any, weight_decay: float) -> Any:
    """bitsandbytes' checks of its optimizers' arguments, in its order and words.

    Returns the betas, parsed from bitsandbytes' string form ``"(beta1, beta2)"`` when a
    string is given.
    """
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if isinstance(betas, str):
        betas = [float(b) for b in betas.replace("(", "").replace(")", "").split(",")]
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    return betas
