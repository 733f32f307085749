"""Schedule-Free SGD, AdamW and RAdam, as the schedulefree package (1.4.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._lerp import lerp
from ._native import NativeOptimizer, add_flags, check_adam_family, check_lr, lr_value, scalar, then
from .optimizer import ParamsT

__all__ = ["AdamWScheduleFree", "RAdamScheduleFree", "SGDScheduleFree"]

_NOT_IN_TRAIN_MODE = (
    "Optimizer was not in train mode when step is called. "
    "Please insert .train() and .eval() calls on the "
    "optimizer. See documentation for details."
)


class _ScheduleFree(NativeOptimizer):
    """What the three share: the train and eval modes, the averaging weights kept in the
    group, and one native call per group (``_core.schedule_free_step``).

    A subclass gives ``_averaging`` (the interpolation coefficient of a group: beta1 or
    momentum) and ``_schedule`` (a group's lr for this step and the rule's options).
    """

    _real_only = True  # as their references (see NativeOptimizer)

    def _averaging(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    def _schedule(self, group: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """The group's lr at this step and the keyword arguments of the native rule
        besides lr, y_lr and ckp1."""
        raise NotImplementedError

    def _move(self, weight: Callable[[float], float], mode: bool) -> None:
        """Moves the parameters of every group not yet in ``mode`` to lerp(p, z,
        weight(beta1)), in place (with master weights, the master, then the parameter
        from it), and sets the groups' ``train_mode``. Parameters without z (never
        stepped) stay where they are."""
        for group in self.param_groups:
            if group["train_mode"] == mode:
                continue
            w = weight(self._averaging(group))
            for p in group["params"]:
                state = self.state.get(p)
                if not state or "z" not in state:
                    continue
                master = state.get("master_param")
                if master is None:
                    lerp(np.asarray(p), state["z"], w, out=np.asarray(p))
                else:
                    lerp(master, state["z"], w, out=master)
                    np.asarray(p)[...] = master
            group["train_mode"] = mode

    def train(self) -> None:
        """Puts the optimizer in train mode: each parameter moves from the averaged
        point x (where it is evaluated) to y = lerp(x, z, 1 - beta1), where gradients
        are taken. Call it before training, as ``model.train()``."""
        self._move(lambda beta1: 1 - beta1, True)

    def eval(self) -> None:
        """Puts the optimizer in eval mode: each parameter moves back from y to the
        averaged point x = lerp(y, z, 1 - 1/beta1). Call it before evaluating or saving
        a checkpoint, as ``model.eval()``."""
        self._move(lambda beta1: 1 - 1 / beta1, False)

    def eval_params(self) -> list[np.ndarray]:
        """The evaluation point x of every parameter, in the order of ``param_groups``,
        as new arrays: what :meth:`eval` would move them to, bit for bit, without moving
        anything (in eval mode, copies of the parameters). Beyond schedulefree, as
        optax's ``schedule_free_eval_params``."""
        out = []
        for group in self.param_groups:
            w = 1 - 1 / self._averaging(group)
            for p in group["params"]:
                state = self.state.get(p)
                if not group["train_mode"] or not state or "z" not in state:
                    out.append(np.array(p))
                    continue
                master = state.get("master_param")
                x = lerp(np.asarray(p) if master is None else master, state["z"], w)
                out.append(x if master is None else x.astype(p.dtype))
        return out

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Performs one optimization step; the optimizer must be in train mode.

        Raises:
            RuntimeError: a group is in eval mode (schedulefree checks only the first
                group and raises a plain Exception, of which this is a subclass).
        """
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(_NOT_IN_TRAIN_MODE)
        return super().step(closure)

    def _step_group(self, group, defer: bool):
        k = group["k"]
        lr, options = self._schedule(group)
        lr_max = max(lr, group["lr_max"])
        weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
        weight_sum = group["weight_sum"] + weight
        ckp1 = weight / weight_sum if weight_sum != 0 else 0
        write = _core.schedule_free_step(
            group["params"],
            self.state,
            lr,
            lr * (self._averaging(group) * (1 - ckp1) - 1),
            ckp1,
            options["beta2"],
            options["bias_correction2"],
            options["eps"],
            scalar(group["weight_decay"]),
            options["adaptive"],
            options["normalize"],
            bool(group.get("master_weights", False)),
            defer,
        )
        # The group's counters move only with its write (a step that raises changes none).
        counters = {"k": k + 1, "scheduled_lr": lr, "lr_max": lr_max, "weight_sum": weight_sum}
        return then(write, lambda: group.update(counters))


def _check_first_beta(betas: Any) -> None:
    # eval() divides by beta1, so 0 is refused here rather than there.
    if betas[0] == 0:
        raise ValueError(
            f"Invalid beta parameter at index 0: {betas[0]} (Schedule-Free needs beta1 > 0)"
        )


def _defaults(lr, betas, eps, r, warmup_steps, weight_lr_power, weight_decay, foreach):
    # schedulefree's group keys, in its order, so that repr and state dicts match.
    defaults: dict[str, Any] = {"lr": lr}
    if betas is not None:
        defaults["betas"] = betas
    if eps is not None:
        defaults["eps"] = eps
    defaults.update(r=r, k=0)
    if warmup_steps is not None:
        defaults["warmup_steps"] = warmup_steps
    defaults.update(train_mode=False, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0)
    defaults.update(weight_lr_power=weight_lr_power, weight_decay=weight_decay, foreach=foreach)
    return defaults


def _warmup(group: dict[str, Any]) -> float:
    k, warmup_steps = group["k"], group["warmup_steps"]
    return (k + 1) / warmup_steps if k < warmup_steps else 1.0


class AdamWScheduleFree(_ScheduleFree):
    """Schedule-Free AdamW (Defazio et al., "The Road Less Scheduled", 2024), as
    ``schedulefree.AdamWScheduleFree``: no learning-rate schedule, an average of the
    iterates instead.

    Same arguments, defaults, group keys (``k``, ``train_mode``, ``weight_sum``,
    ``lr_max``, ``scheduled_lr``, ...) and state (``z``, ``exp_avg_sq``) as
    schedulefree, whose state dicts load here and the other way. With c_k the averaging
    weight (``weight / weight_sum``) and lr the warmed-up learning rate::

        v <- beta2 * v + (1 - beta2) * g * g
        g <- g / (sqrt(v / (1 - beta2^k)) + eps) + weight_decay * y
        y <- lerp(y, z, c_k) + lr * (beta1 * (1 - c_k) - 1) * g
        z <- z - lr * g

    Call :meth:`train` before training and :meth:`eval` before evaluating or saving;
    :meth:`step` in eval mode raises. Unlike schedulefree, the gradients are not
    overwritten (numoptim never modifies its inputs), every group's mode is checked,
    and :meth:`eval_params` gives the evaluation point without moving anything.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 0.0025).
        betas: the interpolation coefficient beta1 (> 0) and the second-moment
            average's beta2 (default (0.9, 0.999)).
        eps: added to the denominator, outside the square root (default 1e-8).
        weight_decay: decay taken at y, added to the normalized gradient (default 0).
        warmup_steps: steps of linear learning-rate warmup (default 0).
        r: power of the step count in the averaging weights (default 0).
        weight_lr_power: power of the largest lr so far in the averaging weights
            (default 2).
        foreach: accepted for compatibility; there is one native path.
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _param_shaped_state = ("z", "exp_avg_sq")

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = True,
        *,
        master_weights: bool = False,
    ) -> None:
        check_adam_family(lr, betas, eps, weight_decay)
        _check_first_beta(betas)
        defaults = _defaults(
            lr, betas, eps, r, warmup_steps, weight_lr_power, weight_decay, foreach
        )
        super().__init__(params, add_flags(defaults, master_weights=master_weights))

    def _averaging(self, group):
        return group["betas"][0]

    def _schedule(self, group):
        beta2 = group["betas"][1]
        options = {
            "beta2": scalar(beta2),
            "bias_correction2": 1 - beta2 ** (group["k"] + 1),
            "eps": scalar(group["eps"]),
            "adaptive": True,
            "normalize": True,
        }
        return lr_value(group["lr"]) * _warmup(group), options


class RAdamScheduleFree(_ScheduleFree):
    """Schedule-Free RAdam, as ``schedulefree.RAdamScheduleFree``: AdamWScheduleFree's
    rule with RAdam's rectification in place of warmup.

    While the rectification term is undefined (rho_t <= 4: the first 4 steps for
    beta2 = 0.999), the step is a plain SGD step at lr, or, with ``silent_sgd_phase``
    (the default), no move at all (lr is 0 then, and so are the averaging weights).
    Afterwards lr is scaled by the rectification term. Arguments, group keys and state
    as :class:`AdamWScheduleFree`, without ``warmup_steps`` and with
    ``silent_sgd_phase`` (default True).
    """

    _param_shaped_state = ("z", "exp_avg_sq")

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = True,
        silent_sgd_phase: bool = True,
        *,
        master_weights: bool = False,
    ) -> None:
        check_adam_family(lr, betas, eps, weight_decay)
        _check_first_beta(betas)
        defaults = _defaults(lr, betas, eps, r, None, weight_lr_power, weight_decay, foreach)
        defaults["silent_sgd_phase"] = silent_sgd_phase
        super().__init__(params, add_flags(defaults, master_weights=master_weights))

    def _averaging(self, group):
        return group["betas"][0]

    def _schedule(self, group):
        beta2 = group["betas"][1]
        step = group["k"] + 1
        beta2_t = beta2**step
        bias_correction2 = 1 - beta2_t
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2_t / bias_correction2
        if rho_t > 4.0:
            rect = (
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            ) ** 0.5
        else:
            rect = float(not group["silent_sgd_phase"])
        options = {
            "beta2": scalar(beta2),
            "bias_correction2": bias_correction2,
            "eps": scalar(group["eps"]),
            "adaptive": True,
            "normalize": rho_t > 4.0,
        }
        return lr_value(group["lr"]) * rect, options


class SGDScheduleFree(_ScheduleFree):
    """Schedule-Free SGD, as ``schedulefree.SGDScheduleFree``::

        g <- g + weight_decay * y
        y <- lerp(y, z, c_k) + lr * (momentum * (1 - c_k) - 1) * g
        z <- z - lr * g

    State: ``z``. Group keys, modes and :meth:`eval_params` as
    :class:`AdamWScheduleFree`, with ``momentum`` (in (0, 1), default 0.9) in place of
    beta1 and lr 1.0 by default.
    """

    _param_shaped_state = ("z",)

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2,
        foreach: bool | None = True,
        *,
        master_weights: bool = False,
    ) -> None:
        # schedulefree's checks, in its order and words.
        check_lr(lr)
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if momentum <= 0 or momentum >= 1:
            raise ValueError(f"Momentum must be between 0 and 1 exclusive: {momentum}")
        defaults = {"lr": lr, "momentum": momentum}
        defaults.update(
            _defaults(lr, None, None, r, warmup_steps, weight_lr_power, weight_decay, foreach)
        )
        super().__init__(params, add_flags(defaults, master_weights=master_weights))

    def _averaging(self, group):
        return group["momentum"]

    def _schedule(self, group):
        options = {
            "beta2": 0.0,
            "bias_correction2": 1.0,
            "eps": 0.0,
            "adaptive": False,
            "normalize": False,
        }
        return lr_value(group["lr"]) * _warmup(group), options
