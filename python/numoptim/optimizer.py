"""The ``Optimizer`` base class, with torch.optim's behaviour, messages and layout."""

from __future__ import annotations

import functools
import sys
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from copy import deepcopy
from itertools import chain
from typing import Any

import numpy as np

from . import _core
from ._hooks import RemovableHandle
from .parameter import Parameter, is_bfloat16

# What an optimizer takes as ``params``, as torch.optim.optimizer.ParamsT: arrays
# (Parameters), parameter groups (dicts with a "params" entry), or (name, array) pairs.
ParamsT = Iterable[np.ndarray] | Iterable[dict[str, Any]] | Iterable[tuple[str, np.ndarray]]

__all__ = [
    "Optimizer",
    "ParamsT",
    "register_optimizer_step_post_hook",
    "register_optimizer_step_pre_hook",
    "required",
]


class _RequiredParameter:
    """Marks a hyperparameter that every parameter group must give."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()

_global_optimizer_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
_global_optimizer_post_hooks: OrderedDict[int, Callable] = OrderedDict()


def register_optimizer_step_pre_hook(hook: Callable) -> RemovableHandle:
    """Registers ``hook(optimizer, args, kwargs)`` to run before every optimizer's step.

    Returns:
        A handle whose ``remove()`` unregisters the hook.
    """
    handle = RemovableHandle(_global_optimizer_pre_hooks)
    _global_optimizer_pre_hooks[handle.id] = hook
    return handle


def register_optimizer_step_post_hook(hook: Callable) -> RemovableHandle:
    """Registers ``hook(optimizer, args, kwargs)`` to run after every optimizer's step.

    Returns:
        A handle whose ``remove()`` unregisters the hook.
    """
    handle = RemovableHandle(_global_optimizer_post_hooks)
    _global_optimizer_post_hooks[handle.id] = hook
    return handle


def _typename(obj: Any) -> str:
    cls = type(obj)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _hook_step(step: Callable) -> Callable:
    """Wraps a class's ``step`` so that the global and instance step hooks run around it."""

    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        pre_hooks = self._optimizer_step_pre_hooks
        post_hooks = self._optimizer_step_post_hooks
        if not (
            _global_optimizer_pre_hooks or pre_hooks or post_hooks or _global_optimizer_post_hooks
        ):
            return step(self, *args, **kwargs)
        for hook in chain(_global_optimizer_pre_hooks.values(), pre_hooks.values()):
            result = hook(self, args, kwargs)
            if result is not None:
                if isinstance(result, tuple) and len(result) == 2:
                    args, kwargs = result
                else:
                    raise RuntimeError(
                        f"{step} must return None or a tuple of (new_args, new_kwargs), "
                        f"but got {result}."
                    )
        out = step(self, *args, **kwargs)
        for hook in chain(post_hooks.values(), _global_optimizer_post_hooks.values()):
            hook(self, args, kwargs)
        return out

    wrapper.hooked = True
    return wrapper


def _float32_scalar(key: Any, value: Any) -> np.ndarray:
    """A loaded scalar state entry (``step``, ...) as float32, as torch's tensors.

    Anything that is not a number is refused with torch's errors (TypeError, or
    ValueError for a string), not turned into NaN.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        # A bfloat16 step (torch keeps a loaded step's dtype, so its state dicts can hold
        # one) is a number too, and converts to float32 exactly.
        if value.dtype.kind not in "biuf" and not is_bfloat16(value.dtype):
            raise TypeError(f"state[{key!r}] must be numeric, got an array of dtype {value.dtype}")
        return np.array(value, dtype=np.float32)
    if isinstance(value, (str, bytes)):
        raise ValueError(f"could not convert string to float: {value!r}")  # noqa: TRY004 (torch)
    return np.array(float(value), dtype=np.float32)  # TypeError for None, lists, ...


class _State(defaultdict):
    """``Optimizer.state``: a ``defaultdict(dict)`` that also keeps the native steps' plans.

    A plan is a parameter group's checked arrays, kept from one step to the next while
    nothing they were found in or checked against changes (``numoptim._core.PlanCache``;
    cpp/src/step_plan.hpp): the step over many small tensors then looks nothing up.
    Printed, pickled and copied as a plain ``defaultdict`` (without the plans).
    """

    __slots__ = ("_native_plans",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._native_plans = _core.PlanCache()

    def __repr__(self) -> str:
        return "defaultdict" + super().__repr__()[len(type(self).__name__) :]

    def __reduce__(self) -> tuple[Any, ...]:
        return defaultdict, (self.default_factory,), None, None, iter(self.items())


class Optimizer:
    """Base class of all optimizers, as ``torch.optim.Optimizer``.

    A subclass builds ``defaults`` (hyperparameter name to default value) and calls
    ``super().__init__(params, defaults)``; its ``step(closure=None)`` loops over
    ``self.param_groups`` and updates each parameter in place from ``param.grad``,
    keeping per-parameter state in ``self.state[param]``.

    Args:
        params: an iterable of :class:`Parameter`, of ``(name, Parameter)`` pairs, or of
            dicts defining parameter groups (each with a ``"params"`` entry and
            optionally its own hyperparameters).
        defaults: the default hyperparameters of every group.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._optimizer_step_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_state_dict_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_state_dict_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._optimizer_load_state_dict_post_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._patch_step_function()

        if isinstance(params, np.ndarray):
            # torch's words exactly ("Tensors", not "Parameters"): torch's own tests and
            # user code match this message by regex.
            raise TypeError(
                "params argument given to the optimizer should be an iterable of "
                "Tensors or dicts, but got " + _typename(params)
            )
        self.state: defaultdict[Parameter, dict[str, Any]] = _State(dict)
        self.param_groups: list[dict[str, Any]] = []

        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def _patch_step_function(self) -> None:
        cls = self.__class__
        if not getattr(cls.step, "hooked", False):
            cls.step = _hook_step(cls.step)

    def __getstate__(self) -> dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if type(self.state) is not _State:  # a pickle's plain defaultdict, or a loaded state
            self.state = _State(dict, self.state)
        for name in (
            "_optimizer_step_pre_hooks",
            "_optimizer_step_post_hooks",
            "_optimizer_state_dict_pre_hooks",
            "_optimizer_state_dict_post_hooks",
            "_optimizer_load_state_dict_pre_hooks",
            "_optimizer_load_state_dict_post_hooks",
        ):
            self.__dict__.setdefault(name, OrderedDict())
        self._patch_step_function()
        self.defaults.setdefault("differentiable", False)

    def __repr__(self) -> str:
        text = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    value = group[key]
                    if isinstance(value, np.ndarray) and value.ndim == 0:
                        value = value.item()  # a 0-d array lr prints as torch's 0-d tensor
                    text += f"    {key}: {value}\n"
        return text + ")"

    # ----------------------------------------------------------------- hooks

    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """Registers ``hook(optimizer, args, kwargs) -> None | (args, kwargs)`` before step."""
        handle = RemovableHandle(self._optimizer_step_pre_hooks)
        self._optimizer_step_pre_hooks[handle.id] = hook
        return handle

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """Registers ``hook(optimizer, args, kwargs)`` to run after step."""
        handle = RemovableHandle(self._optimizer_step_post_hooks)
        self._optimizer_step_post_hooks[handle.id] = hook
        return handle

    @staticmethod
    def _register(hooks: OrderedDict, hook: Callable, prepend: bool) -> RemovableHandle:
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_state_dict_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """Registers ``hook(optimizer)`` to run before :meth:`state_dict`."""
        return self._register(self._optimizer_state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """Registers ``hook(optimizer, state_dict) -> state_dict | None`` after :meth:`state_dict`."""
        return self._register(self._optimizer_state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """Registers ``hook(optimizer, state_dict) -> state_dict | None`` before loading."""
        return self._register(self._optimizer_load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """Registers ``hook(optimizer)`` to run after :meth:`load_state_dict`."""
        return self._register(self._optimizer_load_state_dict_post_hooks, hook, prepend)

    # ------------------------------------------------------------ state dict

    def state_dict(self) -> dict[str, Any]:
        """Returns the state as ``{"state": {index: {...}}, "param_groups": [...]}``.

        Parameters are replaced by their index in the order they appear across groups;
        the state values are the live arrays (not copies), as in torch.
        """
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        index_of: dict[int, int] = {}
        start = 0

        def pack_group(group: dict[str, Any]) -> dict[str, Any]:
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index_of.setdefault(id(p), i)
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {
            (index_of[id(k)] if isinstance(k, np.ndarray) else k): v for k, v in self.state.items()
        }
        state_dict = {"state": packed_state, "param_groups": param_groups}
        for hook in self._optimizer_state_dict_post_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    # The per-parameter state entries that must have the parameter's shape; checked on
    # load so that a bad state dict fails there rather than at the next step.
    _param_shaped_state: tuple[str, ...] = ()
    # Besides `step`, the per-parameter state kept as 0-d float32 whatever the parameter's
    # dtype (NAdam's mu_product, ASGD's eta and mu); restored so on load. (torch casts
    # these to the parameter's dtype on load; the native kernels need float32.)
    _float32_scalar_state: tuple[str, ...] = ()

    def _cast_state(self, param: Parameter, key: Any, value: Any, dtype: Any = None) -> Any:
        """Copies a loaded state value for ``param``: arrays in the parameter's dtype.

        ``dtype`` overrides that dtype: float32 for a 16-bit parameter with master weights.
        """
        if key == "step" or key in self._float32_scalar_state:
            return _float32_scalar(key, value)
        if isinstance(value, np.ndarray):
            cast = np.array(value, dtype=dtype or param.dtype, order="C", copy=True)
            if key in self._param_shaped_state and cast.shape != param.shape:
                raise ValueError(
                    f"loaded state dict has a '{key}' of shape {cast.shape} for a parameter "
                    f"of shape {param.shape}"
                )
            return cast
        if isinstance(value, np.generic):
            return value
        if isinstance(value, dict):
            # Interned keys: the native step looks its state up by interned str, and a
            # loaded key (another str object) would be compared character by character.
            return {
                sys.intern(k) if type(k) is str else k: self._cast_state(param, k, v, dtype)
                for k, v in value.items()
            }
        if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
            return type(value)(self._cast_state(param, None, v, dtype) for v in value)
        return value

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state from :meth:`state_dict` (or from torch's, with arrays for tensors).

        Saved hyperparameters replace the current ones; state arrays are copied and cast
        to their parameter's dtype. Everything is checked before anything is changed.

        Raises:
            ValueError: the group count or a group's size differs, or a state buffer's
                shape does not match its parameter.
        """
        state_dict = state_dict.copy()
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                "optimizer's group"
            )
        id_map = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in groups),
            )
        )
        # A 16-bit parameter with master weights keeps its state (and master) in float32.
        master = {k for g in saved_groups if g.get("master_weights") for k in g["params"]}
        state: defaultdict[Any, dict[str, Any]] = _State(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                float32 = k in master and param.dtype.itemsize == 2
                state[param] = self._cast_state(param, None, v, np.float32 if float32 else None)
            else:
                state[k] = v

        def update_group(group: dict[str, Any], new_group: dict[str, Any]) -> dict[str, Any]:
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            return new_group

        param_groups = [update_group(g, ng) for g, ng in zip(groups, saved_groups)]
        self.__setstate__({"state": state, "param_groups": param_groups})
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    # ---------------------------------------------------------------- groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets every parameter's gradient: to None, or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad[...] = 0

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Performs one optimization step; returns ``closure()`` when given."""
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a parameter group, filling hyperparameters it leaves out from ``defaults``.

        Raises:
            TypeError: ``param_group`` is not a dict, its params are a set, or a param is
                not a :class:`Parameter`.
            ValueError: a required hyperparameter is missing, named and unnamed params
                are mixed, or a param is already in another group.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, np.ndarray):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            param_group["params"] = list(params)

        tensors, names = [], []
        for param in param_group["params"]:
            if isinstance(param, tuple):
                names.append(param[0])
                tensors.append(param[1])
            else:
                tensors.append(param)
        param_group["params"] = tensors
        if names:
            if len(names) != len(tensors):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are missing"
                )
            param_group["param_names"] = names

        for param in tensors:
            if not isinstance(param, Parameter):
                raise TypeError(
                    "optimizer can only optimize Parameters, but one of the params is "
                    + _typename(param)
                )

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    "parameter group didn't specify a value of required optimization "
                    f"parameter {name}"
                )
            param_group.setdefault(name, default)

        ids = {id(p) for p in tensors}
        if len(ids) != len(tensors):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, "
                "this will cause an error; see github.com/pytorch/pytorch/issues/40967 for "
                "more information",
                stacklevel=3,
            )

        existing: set[int] = set()
        for group in self.param_groups:
            existing.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        if not existing.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")

        self.param_groups.append(param_group)
