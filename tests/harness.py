"""Runs an optimizer configuration on deterministic inputs, with numoptim or with torch.

The inputs come from an integer hash (splitmix64), so they are identical on every
platform and NumPy version and the golden fixtures need store only the results.
The same driver runs numoptim and torch, so both see exactly the same steps.
"""

from __future__ import annotations

import numpy as np

# The tensors of the standard layout: sizes that are not multiples of any vector width,
# spread over two parameter groups (the second with halved lr and other hyperparameters
# where they exist), one of them a view at an odd offset into a bigger buffer.
GROUP_SIZES = [[0, 1, 7, 15], [16, 17, 1023]]
MISALIGNED = (1, 1)  # (group, index): a view starting one element into its buffer
STEPS = 23
NONE_GRAD_STEPS = {3: (0, 2), 10: (1, 0)}  # step -> (group, index) whose grad is None
LARGE_SIZE = 2**20 + 3

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def hashed_values(seed: int, n: int, dtype, scale: float = 1.0) -> np.ndarray:
    """n deterministic values in [-scale, scale) from splitmix64 of (seed, index).

    A complex dtype gets n values whose real and imaginary parts are the 2n hashed
    reals of the same seed, in memory order (re, im, re, ...).
    """
    if np.dtype(dtype).kind == "c":
        real = np.finfo(dtype).dtype
        return hashed_values(seed, 2 * n, real, scale).view(dtype)
    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    unit = (x >> np.uint64(11)).astype(np.float64) / float(2**53)
    return ((unit * 2.0 - 1.0) * scale).astype(dtype)


def second_group_options(kwargs: dict, name: str = "") -> dict:
    """The hyperparameters of the second group: lr halved (kept where every group must
    share it, registry.SHARED_LR), a weight decay changed."""
    from registry import SHARED_LR

    options = {} if name in SHARED_LR else {"lr": float(kwargs.get("lr", 1e-3)) * 0.5}
    if kwargs.get("weight_decay"):
        options["weight_decay"] = float(kwargs["weight_decay"]) * 2
    return options


def initial_values(sizes_by_group, dtype, seed: int = 0):
    return [
        [hashed_values(seed + 1000 * g + i + 1, n, dtype) for i, n in enumerate(sizes)]
        for g, sizes in enumerate(sizes_by_group)
    ]


def gradient(step: int, g: int, i: int, n: int, dtype, seed: int = 0) -> np.ndarray:
    return hashed_values(seed + 10**6 + 7919 * step + 1000 * g + i, n, dtype, scale=2.0)


class NumpyBackend:
    """Builds numoptim parameters and sets their gradients."""

    name = "numoptim"

    def __init__(self):
        import numoptim

        self.lib = numoptim

    def parameter(self, values, misaligned: bool):
        if misaligned:
            buffer = np.empty(values.size + 1, dtype=values.dtype)
            view = buffer[1:]
            view[...] = values
            return self.lib.Parameter(view)
        return self.lib.Parameter(values.copy())

    def set_grad(self, p, grad):
        p.grad = None if grad is None else grad.copy()

    def optimizer(self, name, groups, kwargs):
        return in_train_mode(name, getattr(self.lib, name)(groups, **kwargs))

    def to_numpy(self, p):
        return np.array(p)

    def lr(self, value):
        return value


def in_train_mode(name: str, optimizer):
    """`optimizer`, put in train mode first if it steps only there (Schedule-Free)."""
    from registry import TRAIN_MODE

    if name in TRAIN_MODE:
        optimizer.train()
    return optimizer


def make_optimizer(name: str, *args, **kwargs):
    """numoptim's optimizer `name`, made with these arguments and put in train mode if
    it steps only there."""
    import numoptim

    return in_train_mode(name, getattr(numoptim, name)(*args, **kwargs))


def reference_class(torch, name: str):
    """The reference optimizer class: torch.optim's, or the oracle registry.ORACLES names
    for an optimizer torch.optim lacks (ImportError when that is not installed)."""
    from registry import ORACLES

    if name in ORACLE_ADAPTERS:
        return ORACLE_ADAPTERS[name](torch)
    if name in ORACLES:
        import importlib
        import inspect

        module, attribute = ORACLES[name]
        cls = getattr(importlib.import_module(module), attribute)
        if "maximize" not in inspect.signature(cls.__init__).parameters:
            cls = _with_maximize(cls)
        return cls
    return getattr(torch.optim, name)


def _with_maximize(cls):
    """`cls` with a `maximize` option (lion-pytorch has none): a maximizing group steps
    on the negated gradients, restored afterwards. Negation is exact, so this is the
    rule's maximize bit for bit; such groups carry maximize=True, as numoptim's."""

    class WithMaximize(cls):
        def __init__(self, params, *args, maximize=False, **kwargs):
            super().__init__(params, *args, **kwargs)
            if maximize:
                for group in self.param_groups:
                    group["maximize"] = True

        def step(self, closure=None):
            grads = {
                id(p.grad): p.grad
                for group in self.param_groups
                if group.get("maximize")
                for p in group["params"]
                if p.grad is not None
            }
            for grad in grads.values():
                grad.neg_()
            try:
                return super().step(closure)
            finally:
                for grad in grads.values():
                    grad.neg_()

    WithMaximize.__name__ = WithMaximize.__qualname__ = cls.__name__
    return WithMaximize


def _packed_state_dict(param_groups, state_of):
    """torch's state_dict layout for `param_groups`: parameters numbered in group order
    (a parameter listed again keeps its first number), state from state_of(param)."""
    numbers: dict[int, int] = {}
    groups, state = [], {}
    start = 0
    for group in param_groups:
        params = group["params"]
        numbers.update({id(p): i for i, p in enumerate(params, start) if id(p) not in numbers})
        groups.append(
            {
                **{k: v for k, v in group.items() if k != "params"},
                "params": [numbers[id(p)] for p in params],
            }
        )
        start += len(params)
        for p in params:
            entry = state_of(p)
            if entry:
                state[numbers[id(p)]] = entry
    return {"state": state, "param_groups": groups}


def ademamix_oracle(torch):
    """The reference of numoptim.AdEMAMix: bitsandbytes' AdEMAMix (its 32-bit CPU kernel)
    for float32 parameters; for float64 ones, which bitsandbytes computes in float32,
    its _ReferenceAdEMAMix run with one instance per parameter, so that each parameter
    counts its own steps as bitsandbytes' AdEMAMix does (the reference counts per group,
    which differs once a parameter has skipped a step without a gradient). Both report
    their state under numoptim's keys (bitsandbytes' `state1` is m1 and m2 stacked)."""
    import warnings

    # Importing bitsandbytes warns (torch.jit deprecations) under torch 2.13.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from bitsandbytes.optim import AdEMAMix
        from bitsandbytes.optim.ademamix import _ReferenceAdEMAMix

    def entry(step, m1, m2, nu):
        return {
            "step": torch.tensor(float(step)),
            "exp_avg_fast": m1.clone(),
            "exp_avg_slow": m2.clone(),
            "exp_avg_sq": nu.clone(),
        }

    class Bitsandbytes(AdEMAMix):
        def state_dict(self):
            def state_of(p):
                s = self.state.get(p)
                if not s:
                    return None
                return entry(s["step"], s["state1"][0], s["state1"][1], s["state2"])

            return _packed_state_dict(self.param_groups, state_of)

    class PerParameterReference:
        def __init__(self, params, *args, **kwargs):
            # The whole list first: torch's checks and warnings, and the groups.
            self._whole = _ReferenceAdEMAMix(params, *args, **kwargs)
            self.param_groups = self._whole.param_groups
            self._parts = {}
            for group in self.param_groups:
                for p in group["params"]:
                    self._parts.setdefault(id(p), _ReferenceAdEMAMix([p]))

        def step(self, closure=None):
            for group in self.param_groups:
                options = {k: v for k, v in group.items() if k != "params"}
                for key in ("t_alpha", "t_beta3"):  # bitsandbytes: 0 is off, as None
                    options[key] = options[key] or None
                for p in group["params"]:
                    if p.grad is not None:
                        part = self._parts[id(p)]
                        part.param_groups[0].update(options)
                        part.step()

        @property
        def state(self):
            out = {}
            for group in self.param_groups:
                for p in group["params"]:
                    part = self._parts[id(p)]
                    s = part.state.get(p)
                    if s:
                        m1_m2 = s["m1_m2"]
                        out[p] = entry(part.param_groups[0]["step"], m1_m2[0], m1_m2[1], s["nu"])
            return out

        def state_dict(self):
            state = self.state
            return _packed_state_dict(self.param_groups, lambda p: state.get(p))

    for cls in (Bitsandbytes, PerParameterReference):
        cls.__name__ = cls.__qualname__ = "AdEMAMix"  # for repr
    bitsandbytes = _with_maximize(Bitsandbytes)
    reference = _with_maximize(PerParameterReference)

    class AdEMAMixOracle:
        def __new__(cls, params, *args, **kwargs):
            params = list(params)
            first = params[0]["params"][0] if isinstance(params[0], dict) else params[0]
            chosen = bitsandbytes if first.dtype == torch.float32 else reference
            return chosen(params, *args, **kwargs)

    return AdEMAMixOracle


def load_timm_module(name: str):
    """timm's `timm/optim/<name>.py`, imported without running timm's `__init__`.

    timm cannot be installed plainly beside torch 2.13 (it pulls another torch), and its
    `__init__` imports torchvision; installed with `pip install --no-deps timm`, its
    optimizer modules import only torch. Stub `timm` and `timm.optim` packages, whose
    `__path__` points at the installed directories, are registered in sys.modules, and
    the module is imported through them. ImportError when timm is not installed.
    """
    import importlib
    import importlib.machinery
    import importlib.util
    import os
    import sys
    import types

    if "timm.optim" not in sys.modules:
        spec = importlib.util.find_spec("timm")  # locates the package, imports nothing
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("timm is not installed (pip install --no-deps timm)")
        root = next(iter(spec.submodule_search_locations))
        for package, path in (("timm", root), ("timm.optim", os.path.join(root, "optim"))):
            stub = types.ModuleType(package)
            stub.__path__ = [path]
            # A spec, so that importlib.util.find_spec("timm") still finds timm.
            stub.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
            stub.__spec__.submodule_search_locations = [path]
            sys.modules[package] = stub
    return importlib.import_module(f"timm.optim.{name}")


def timm_or_skip(module: str, attribute: str):
    """torch and timm's class `attribute` of timm/optim/<module>.py, for a live test:
    the test is skipped when torch or timm is not installed."""
    import pytest

    torch = pytest.importorskip("torch")
    try:
        return torch, getattr(load_timm_module(module), attribute)
    except ImportError:
        pytest.skip("timm is not installed (pip install --no-deps timm)")


def timm_oracle(module: str, attribute: str):
    """An adapter for ORACLE_ADAPTERS: timm's class, with maximize added if it lacks it."""

    def adapter(torch):
        import inspect

        cls = getattr(load_timm_module(module), attribute)
        if "maximize" not in inspect.signature(cls.__init__).parameters:
            cls = _with_maximize(cls)
        return cls

    return adapter


def tensors_to_numpy(value):
    """A torch state dict (or part of one) with every tensor as a NumPy array (a copy)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().numpy().copy()
    if isinstance(value, dict):
        return {k: tensors_to_numpy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tensors_to_numpy(v) for v in value]
    return value


def prodigy_oracle(torch):
    """prodigyopt's Prodigy, with maximize added, whose state dicts hold every p0 at the
    parameter's size: prodigyopt keeps a 0-d zero as the p0 of an all-zero parameter
    (to save memory), numoptim the zeros (its state buffers are the parameter's size;
    a prodigyopt state dict with a 0-d p0 loads, see test_prodigy.py). The values are
    the same."""
    import prodigyopt

    class Prodigy(_with_maximize(prodigyopt.Prodigy)):
        def state_dict(self):
            saved = super().state_dict()
            for entry in saved["state"].values():
                p0, s = entry.get("p0"), entry.get("s")
                if p0 is not None and s is not None and p0.ndim == 0:
                    entry["p0"] = p0.expand(s.shape).clone()  # s: the parameter's size
            return saved

    return Prodigy


# Optimizers whose oracle needs an adapter: name -> function(torch) giving the class.
ORACLE_ADAPTERS = {
    "AdEMAMix": ademamix_oracle,
    "Adan": timm_oracle("adan", "Adan"),
    "Lamb": timm_oracle("lamb", "Lamb"),
    "Lars": timm_oracle("lars", "Lars"),
    "NAdamW": timm_oracle("nadamw", "NAdamW"),
    "LaProp": timm_oracle("laprop", "LaProp"),
    "AdaBelief": timm_oracle("adabelief", "AdaBelief"),
    "Adopt": timm_oracle("adopt", "Adopt"),
    "Prodigy": prodigy_oracle,
}


def reference_available(name: str) -> bool:
    """Whether the reference of `name` beyond torch.optim (if any) is installed."""
    from registry import ORACLES

    if name not in ORACLES:
        return True
    import importlib.util

    return importlib.util.find_spec(ORACLES[name][0]) is not None


class TorchBackend:
    """The same with torch tensors, for fixtures and live parity."""

    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch

    def parameter(self, values, misaligned: bool):
        return self.torch.nn.Parameter(self.torch.from_numpy(values.copy()))

    def set_grad(self, p, grad):
        p.grad = None if grad is None else self.torch.from_numpy(grad.copy())

    def optimizer(self, name, groups, kwargs):
        kwargs = {k: self.lr(v) if k == "lr" else v for k, v in kwargs.items()}
        return in_train_mode(name, reference_class(self.torch, name)(groups, **kwargs))

    def to_numpy(self, p):
        return p.detach().numpy().copy()

    def lr(self, value):
        if isinstance(value, np.ndarray):
            return self.torch.tensor(
                value.item(),
                dtype=self.torch.float32 if value.dtype == np.float32 else self.torch.float64,
            )
        return value


def run_case(
    backend,
    name: str,
    kwargs: dict,
    dtype,
    sizes_by_group=None,
    steps: int = STEPS,
    none_grads=None,
    seed: int = 0,
    inputs_dtype=None,
):
    """Runs `steps` steps of optimizer `name` and returns (optimizer, params by group).

    `seed` shifts every input; 0 gives the inputs the golden fixtures were made from.
    `inputs_dtype`: the inputs are made in it, then converted to `dtype` (a float64 run
    on a float32 run's inputs, exactly).
    """
    sizes_by_group = sizes_by_group or GROUP_SIZES
    none_grads = NONE_GRAD_STEPS if none_grads is None else none_grads
    made_in = inputs_dtype or dtype
    values = [
        [v.astype(dtype) for v in group] for group in initial_values(sizes_by_group, made_in, seed)
    ]
    params = [
        [backend.parameter(v, (g, i) == MISALIGNED) for i, v in enumerate(group)]
        for g, group in enumerate(values)
    ]
    groups = [{"params": params[0]}]
    if len(params) > 1:
        groups.append({"params": params[1], **second_group_options(kwargs, name)})
    opt = backend.optimizer(name, groups, kwargs)
    for step in range(steps):
        for g, group in enumerate(params):
            for i, p in enumerate(group):
                skip = none_grads.get(step) == (g, i)
                grad = (
                    None if skip else gradient(step, g, i, p.shape[0], made_in, seed).astype(dtype)
                )
                backend.set_grad(p, grad)
        opt.step()
    return opt, params


def pack_results(results: dict[str, np.ndarray | str], dtype) -> dict[str, np.ndarray]:
    """Many small named results (arrays of ``dtype`` or of real dtypes, or error messages)
    as three arrays: each array of a zip archive costs a few hundred bytes of headers,
    more than the small results themselves.

    Returns {"values": the ``dtype`` arrays concatenated, "reals": the others, in
    float64 (exact for float32 and float64), "layout": one "name\\tkind\\tshape" string
    per result in order, where kind is "v", "r" or "e" (an error message in shape's
    place)}. :func:`unpack_results` inverts it.
    """
    values, reals, layout = [], [], []
    for name, result in results.items():
        if isinstance(result, str):
            layout.append(f"{name}\te\t{result}")
            continue
        result = np.asarray(result)
        shape = ",".join(str(d) for d in result.shape)
        if result.dtype == np.dtype(dtype):
            values.append(result.reshape(-1))
            layout.append(f"{name}\tv{result.dtype}\t{shape}")
        else:
            reals.append(result.astype(np.float64).reshape(-1))
            layout.append(f"{name}\tr{result.dtype}\t{shape}")
    return {
        "values": np.concatenate(values) if values else np.zeros(0, dtype),
        "reals": np.concatenate(reals) if reals else np.zeros(0),
        "layout": np.array(layout),
    }


def unpack_results(values, reals, layout) -> dict[str, np.ndarray | str]:
    """The named results of :func:`pack_results`, each in its own dtype and shape."""
    out: dict[str, np.ndarray | str] = {}
    taken = {"v": 0, "r": 0}
    for line in layout.tolist():
        name, kind, rest = line.split("\t", 2)
        if kind == "e":
            out[name] = rest
            continue
        shape = tuple(int(d) for d in rest.split(",") if d)
        size = int(np.prod(shape, dtype=np.int64))
        source = values if kind[0] == "v" else reals
        start = taken[kind[0]]
        out[name] = source[start : start + size].astype(np.dtype(kind[1:])).reshape(shape)
        taken[kind[0]] = start + size
    return out
