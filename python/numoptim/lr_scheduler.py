"""Learning-rate schedulers, as ``torch.optim.lr_scheduler`` 2.13.

Every scheduler of torch is here with torch's name, signature, defaults, validation
messages, warnings and ``state_dict`` layout (the scheduler's ``__dict__`` without the
optimizer, so the attribute names are part of the contract and follow torch's).

Where a schedule has a closed form it is written once as a small pure function of the
step (``step_lr``, ``cosine_annealing_lr``, ...), in the spirit of optax: easy to test
and to use without a scheduler. The scheduler classes only decide which value to write
into ``group["lr"]``. Note that torch's default ``step()`` path is *chainable*: it
updates the current lr multiplicatively (``lr * gamma``) rather than evaluating the
closed form, and the two differ in the last bits (and, for CosineAnnealingLR, in what
happens when something else changes the lr). The classes follow torch's recursive form
so that the values match torch's own trace; the closed forms are what
``step(epoch)`` (deprecated) and ``SequentialLR`` milestones use, as in torch.

A learning rate in a group may be a float or a 0-d ``numpy.ndarray`` (torch's Tensor
lr); an array lr is updated in place (``lr[...] = value``), as torch uses ``fill_``.
"""

from __future__ import annotations

import math
import types
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial, wraps
from typing import Any
from weakref import ref

import numpy as np

from .optimizer import Optimizer

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
    # The closed forms, usable without a scheduler (as optax's schedules).
    "constant_lr",
    "cosine_annealing_lr",
    "exponential_lr",
    "linear_lr",
    "multistep_lr",
    "polynomial_lr",
    "step_lr",
]

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)

_GET_LAST_LR_WARNING = (
    "To get the last learning rate computed by the scheduler, please use `get_last_lr()`."
)

_OVERRIDDEN_STEP_WARNING = (
    "Seems like `optimizer.step()` has been overridden after learning rate scheduler "
    "initialization. Please, make sure to call `optimizer.step()` before "
    "`lr_scheduler.step()`. See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)

_STEP_ORDER_WARNING = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
    "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
    "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
    "will result in PyTorch skipping the first value of the learning rate schedule. "
    "See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)


# --------------------------------------------------------------------------------------
# Pure schedules: the closed form of each scheduler as a function of the step.
# The arithmetic is written in torch's order, so results agree with torch bit for bit.
# --------------------------------------------------------------------------------------


def step_lr(base_lr: float, epoch: int, step_size: int, gamma: float = 0.1) -> float:
    """StepLR's closed form: ``base_lr * gamma ** (epoch // step_size)``.

    Args:
        base_lr: the initial learning rate.
        epoch: the step count (``last_epoch``).
        step_size: the period of the decay.
        gamma: the multiplicative decay factor.

    Returns:
        The learning rate at ``epoch``.
    """
    return base_lr * gamma ** (epoch // step_size)


def multistep_lr(
    base_lr: float, epoch: int, milestones: Iterable[int], gamma: float = 0.1
) -> float:
    """MultiStepLR's closed form: ``base_lr * gamma ** (number of milestones <= epoch)``.

    Args:
        base_lr: the initial learning rate.
        epoch: the step count.
        milestones: the epochs at which the lr is multiplied by ``gamma`` (a repeated
            milestone counts once per repetition).
        gamma: the multiplicative decay factor.

    Returns:
        The learning rate at ``epoch``.
    """
    return base_lr * gamma ** bisect_right(sorted(milestones), epoch)


def constant_lr(base_lr: float, epoch: int, factor: float = 1.0 / 3, total_iters: int = 5) -> float:
    """ConstantLR's closed form: ``base_lr * factor`` before ``total_iters``, then ``base_lr``.

    Args:
        base_lr: the initial learning rate.
        epoch: the step count.
        factor: the factor applied until ``total_iters``.
        total_iters: the number of steps the factor is applied for.

    Returns:
        The learning rate at ``epoch``.
    """
    return base_lr * (factor + (epoch >= total_iters) * (1 - factor))


def linear_lr(
    base_lr: float,
    epoch: int,
    start_factor: float = 1.0 / 3,
    end_factor: float = 1.0,
    total_iters: int = 5,
) -> float:
    """LinearLR's closed form: the factor goes linearly from start to end over ``total_iters``.

    Args:
        base_lr: the initial learning rate.
        epoch: the step count.
        start_factor: the factor at step 0.
        end_factor: the factor from ``total_iters`` on.
        total_iters: the number of steps of the ramp.

    Returns:
        The learning rate at ``epoch``.
    """
    return base_lr * (
        start_factor + (end_factor - start_factor) * min(total_iters, epoch) / total_iters
    )


def exponential_lr(base_lr: float, epoch: int, gamma: float) -> float:
    """ExponentialLR's closed form: ``base_lr * gamma ** epoch``.

    Args:
        base_lr: the initial learning rate.
        epoch: the step count.
        gamma: the multiplicative decay factor per step.

    Returns:
        The learning rate at ``epoch``.
    """
    return base_lr * gamma**epoch


def polynomial_lr(base_lr: float, epoch: int, total_iters: int = 5, power: float = 1.0) -> float:
    """PolynomialLR's closed form: ``base_lr * (1 - min(epoch, total_iters) / total_iters) ** power``.

    Args:
        base_lr: the initial learning rate.
        epoch: the step count.
        total_iters: the number of steps after which the lr is 0.
        power: the power of the polynomial.

    Returns:
        The learning rate at ``epoch``.
    """
    return base_lr * (1.0 - min(total_iters, epoch) / total_iters) ** power


def cosine_annealing_lr(base_lr: float, epoch: float, T_max: float, eta_min: float = 0.0) -> float:
    """The cosine annealing curve ``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T)) / 2``.

    SGDR (Loshchilov & Hutter, https://arxiv.org/abs/1608.03983). It is periodic in
    ``epoch`` with period ``2 * T_max``: past ``T_max`` the lr climbs back up. It is also
    CosineAnnealingWarmRestarts' rule with ``epoch = T_cur`` and ``T_max = T_i``.

    Args:
        base_lr: the initial (maximum) learning rate.
        epoch: the step within the period (may be fractional).
        T_max: half the period: the step at which the lr reaches ``eta_min``.
        eta_min: the minimum learning rate.

    Returns:
        The learning rate at ``epoch``.
    """
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / T_max)) / 2


def _cyclic_scale(epoch: int, total_size: float, step_ratio: float) -> tuple[int, float]:
    """CyclicLR's position in its triangle wave.

    Args:
        epoch: the step count.
        total_size: the length of one cycle (``step_size_up + step_size_down``).
        step_ratio: the fraction of the cycle spent going up.

    Returns:
        ``(cycle, scale)``: the 1-based cycle number, and the height in the triangle in
        [0, 1] (0 at the base lr, 1 at the max lr).
    """
    cycle = math.floor(1 + epoch / total_size)
    x = 1.0 + epoch / total_size - cycle
    if x <= step_ratio:
        return cycle, x / step_ratio
    return cycle, (x - 1) / (step_ratio - 1)


def _anneal_cos(start: float, end: float, pct: float) -> float:
    """Cosine interpolation from ``start`` (pct 0) to ``end`` (pct 1), as OneCycleLR's."""
    cos_out = math.cos(math.pi * pct) + 1
    return end + (start - end) / 2.0 * cos_out


def _anneal_linear(start: float, end: float, pct: float) -> float:
    """Linear interpolation from ``start`` (pct 0) to ``end`` (pct 1), as OneCycleLR's."""
    return (end - start) * pct + start


# --------------------------------------------------------------------------------------
# Helpers shared by the schedulers.
# --------------------------------------------------------------------------------------


def _copy_value(value: Any) -> Any:
    # A 0-d array lr is copied, as torch clones a Tensor lr, so that a list of values
    # handed out never aliases the live lr.
    return value.copy() if isinstance(value, np.ndarray) else value


def _format_param(name: str, optimizer: Optimizer, param: Any) -> list[Any]:
    """One value per parameter group: a list is length-checked, a scalar is repeated."""
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(param)} values, param_groups has "
                f"{len(optimizer.param_groups)}."
            )
    else:
        param = [param] * len(optimizer.param_groups)
    return [_copy_value(p) for p in param]


def _param_groups_val_list(optimizer: Optimizer, key: str) -> list[Any]:
    """``group[key]`` of every group, with array values copied."""
    return [_copy_value(group[key]) for group in optimizer.param_groups]


def _update_param_group_val(param_group: dict[str, Any], key: str, val: Any) -> None:
    """Writes ``val`` into ``param_group[key]``, in place when the entry is an array."""
    current = param_group[key]
    if isinstance(current, np.ndarray):
        current[...] = val
    else:
        param_group[key] = val


def _lambdas_state(lr_lambdas: list[Callable]) -> list[dict[str, Any] | None]:
    # Plain functions and lambdas cannot be saved; a callable object's attributes can.
    return [None if isinstance(fn, types.FunctionType) else fn.__dict__.copy() for fn in lr_lambdas]


def _patch_track_step_called(optimizer: Optimizer) -> None:
    """Wraps the instance's ``optimizer.step`` so that it records that it ran.

    The wrapper sets ``optimizer._opt_called``, which the scheduler reads to warn when
    ``scheduler.step()`` runs before ``optimizer.step()``. It holds the optimizer weakly
    and is marked ``_wrapped_by_lr_sched`` so that it is installed only once.
    """
    if hasattr(optimizer.step, "_wrapped_by_lr_sched"):
        return
    opt_ref = ref(optimizer)
    func = optimizer.step.__func__

    @wraps(func)
    def wrapper(*args, **kwargs):
        opt = opt_ref()
        opt._opt_called = True
        return func.__get__(opt, opt.__class__)(*args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    optimizer.step = wrapper


class _enable_get_lr_call:
    """Marks the scheduler as inside ``step()``, so that ``get_lr()`` does not warn."""

    def __init__(self, scheduler: LRScheduler) -> None:
        self.scheduler = scheduler

    def __enter__(self) -> None:
        self.scheduler._get_lr_called_within_step = True

    def __exit__(self, *exc: object) -> None:
        self.scheduler._get_lr_called_within_step = False


class _initial_mode:
    """Marks the scheduler as running the initial step made by its constructor."""

    def __init__(self, scheduler: LRScheduler) -> None:
        self.scheduler = scheduler

    def __enter__(self) -> None:
        self.scheduler._is_initial = True

    def __exit__(self, *exc: object) -> None:
        self.scheduler._is_initial = False


def _warn_get_lr_called_within_step(scheduler: LRScheduler) -> None:
    if not scheduler._get_lr_called_within_step:
        warnings.warn(_GET_LAST_LR_WARNING, UserWarning, stacklevel=3)


# --------------------------------------------------------------------------------------
# The base class.
# --------------------------------------------------------------------------------------


class LRScheduler:
    """Base class of the learning-rate schedulers, as ``torch.optim.lr_scheduler.LRScheduler``.

    A subclass implements ``get_lr()``, which returns the new lr of every group at
    ``self.last_epoch`` (already advanced), and optionally ``_get_closed_form_lr()``,
    used by the deprecated ``step(epoch)``.

    The constructor records ``initial_lr`` in every group (when ``last_epoch == -1``),
    sets ``base_lrs`` from it, wraps the optimizer's ``step`` to detect a wrong call
    order, and makes the initial step, after which ``last_epoch == 0``.

    Args:
        optimizer: the wrapped :class:`numoptim.Optimizer`.
        last_epoch: the index of the last epoch, to resume a schedule (default -1:
            start from the beginning). Resuming needs ``initial_lr`` in every group.

    Raises:
        TypeError: ``optimizer`` is not an Optimizer.
        KeyError: resuming (``last_epoch != -1``) and a group has no ``initial_lr``.
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", _copy_value(group["lr"]))
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when "
                        "resuming scheduler with last_epoch >= 0.\n"
                        "This typically happens when:\n"
                        "1. You're trying to resume training from a checkpoint but haven't "
                        "properly loaded the optimizer state\n"
                        "2. You're using last_epoch >= 0 for a fresh training run "
                        "(not recommended)"
                    )
        self.base_lrs: list[Any] = _param_groups_val_list(optimizer, "initial_lr")
        self.last_epoch = last_epoch

        # See https://github.com/pytorch/pytorch/issues/20124: the scheduler must be
        # stepped after the optimizer, which the wrapper lets step() check.
        _patch_track_step_called(self.optimizer)
        self._initial_step()

    def _initial_step(self) -> None:
        """Makes the step that puts the schedule at epoch 0 (the constructor calls it)."""
        self._step_count = 0
        with _initial_mode(self):
            self.step()

    def state_dict(self) -> dict[str, Any]:
        """Returns the scheduler's state: every attribute except the optimizer."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state returned by :meth:`state_dict` (torch's included)."""
        self.__dict__.update(state_dict)

    def get_last_lr(self) -> list[Any]:
        """Returns the lr of every group computed by the last ``step()``."""
        return self._last_lr

    def get_lr(self) -> list[Any]:
        """Computes the lr of every group at ``last_epoch`` (called by ``step()``).

        Calling it outside ``step()`` warns; use :meth:`get_last_lr` instead.
        """
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advances the schedule by one step and writes the new lr into every group.

        Args:
            epoch: deprecated; when given, jumps to this epoch and uses the closed form
                where the scheduler has one (with the ``EPOCH_DEPRECATION_WARNING``).
        """
        if self._step_count == 1:
            if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
                warnings.warn(_OVERRIDDEN_STEP_WARNING, UserWarning, stacklevel=2)
            elif not getattr(self.optimizer, "_opt_called", False):
                warnings.warn(_STEP_ORDER_WARNING, UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        with _enable_get_lr_call(self):
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                if hasattr(self, "_get_closed_form_lr"):
                    values = self._get_closed_form_lr()
                else:
                    values = self.get_lr()
        groups = self.optimizer.param_groups
        if len(values) != len(groups):
            raise ValueError(f"expected {len(groups)} learning rates, got {len(values)}")
        for group, lr in zip(groups, values):
            _update_param_group_val(group, "lr", lr)
        self._last_lr = _param_groups_val_list(self.optimizer, "lr")


class _LRScheduler(LRScheduler):
    """Deprecated alias of :class:`LRScheduler`, kept for backward compatibility."""


# --------------------------------------------------------------------------------------
# Multiplier schedulers.
# --------------------------------------------------------------------------------------


class _LambdaSchedulerMixin:
    """state_dict for the schedulers that hold one ``lr_lambda`` per group."""

    lr_lambdas: list[Callable[[int], float]]

    def state_dict(self) -> dict[str, Any]:
        """Returns the state; ``lr_lambdas`` holds None for a plain function or lambda,
        and a copy of ``__dict__`` for a callable object."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = _lambdas_state(self.lr_lambdas)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state; a callable object's saved attributes are restored into it."""
        lr_lambdas = state_dict.pop("lr_lambdas")
        self.__dict__.update(state_dict)
        state_dict["lr_lambdas"] = lr_lambdas  # leave the caller's dict as it was
        for fn, saved in zip(self.lr_lambdas, lr_lambdas):
            if saved is not None:
                fn.__dict__.update(saved)


def _lambda_list(optimizer: Optimizer, lr_lambda: Any) -> list[Callable[[int], float]]:
    if not isinstance(lr_lambda, (list, tuple)):
        return [lr_lambda] * len(optimizer.param_groups)
    if len(lr_lambda) != len(optimizer.param_groups):
        raise ValueError(
            f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}"
        )
    return list(lr_lambda)


class LambdaLR(_LambdaSchedulerMixin, LRScheduler):
    """Sets each group's lr to ``initial_lr * lr_lambda(epoch)``.

    Args:
        optimizer: the wrapped optimizer.
        lr_lambda: a function of the epoch giving a multiplicative factor, or a list of
            such functions, one per parameter group.
        last_epoch: the index of the last epoch (default -1).

    Raises:
        ValueError: a list of lambdas does not have one per group.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _lambda_list(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns ``base_lr * lr_lambda(last_epoch)`` for every group."""
        _warn_get_lr_called_within_step(self)
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaSchedulerMixin, LRScheduler):
    """Multiplies each group's lr by ``lr_lambda(epoch)`` at every step (not at init).

    Args:
        optimizer: the wrapped optimizer.
        lr_lambda: a function of the epoch giving a multiplicative factor, or a list of
            such functions, one per parameter group.
        last_epoch: the index of the last epoch (default -1).

    Raises:
        ValueError: a list of lambdas does not have one per group.
        TypeError: a lambda is not callable.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _lambda_list(optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns ``lr * lr_lambda(last_epoch)`` for every group (the lr itself at init)."""
        _warn_get_lr_called_within_step(self)
        if self._is_initial:
            return _param_groups_val_list(self.optimizer, "lr")
        return [
            group["lr"] * fn(self.last_epoch)
            for fn, group in zip(self.lr_lambdas, self.optimizer.param_groups)
        ]


class StepLR(LRScheduler):
    """Multiplies the lr by ``gamma`` every ``step_size`` epochs.

    Args:
        optimizer: the wrapped optimizer.
        step_size: the period of the decay, in epochs.
        gamma: the multiplicative factor (default 0.1).
        last_epoch: the index of the last epoch (default -1).
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns ``lr * gamma`` at a multiple of ``step_size``, else the lr unchanged."""
        _warn_get_lr_called_within_step(self)
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _param_groups_val_list(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [step_lr(b, self.last_epoch, self.step_size, self.gamma) for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiplies the lr by ``gamma`` at each milestone (once per repetition of it).

    Args:
        optimizer: the wrapped optimizer.
        milestones: the epochs at which to decay (need not be sorted).
        gamma: the multiplicative factor (default 0.1).
        last_epoch: the index of the last epoch (default -1).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns ``lr * gamma ** count`` at a milestone, else the lr unchanged."""
        _warn_get_lr_called_within_step(self)
        if self.last_epoch not in self.milestones:
            return _param_groups_val_list(self.optimizer, "lr")
        return [
            group["lr"] * self.gamma ** self.milestones[self.last_epoch]
            for group in self.optimizer.param_groups
        ]

    def _get_closed_form_lr(self) -> list[Any]:
        milestones = list(self.milestones.elements())
        return [multistep_lr(b, self.last_epoch, milestones, self.gamma) for b in self.base_lrs]


class ConstantLR(LRScheduler):
    """Multiplies the lr by ``factor`` until ``total_iters`` steps have been made.

    Args:
        optimizer: the wrapped optimizer.
        factor: the factor, in [0, 1] (default 1/3).
        total_iters: the number of steps with the factor applied (default 5).
        last_epoch: the index of the last epoch (default -1).

    Raises:
        ValueError: ``factor`` is outside [0, 1].
    """

    def __init__(
        self,
        optimizer: Optimizer,
        factor: float = 1.0 / 3,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns ``lr * factor`` at epoch 0, ``lr / factor`` at ``total_iters``, else ``lr``."""
        _warn_get_lr_called_within_step(self)
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in groups]
        if self.last_epoch != self.total_iters:
            return _param_groups_val_list(self.optimizer, "lr")
        return [group["lr"] * (1.0 / self.factor) for group in groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            constant_lr(b, self.last_epoch, self.factor, self.total_iters) for b in self.base_lrs
        ]


class LinearLR(LRScheduler):
    """Ramps the lr factor linearly from ``start_factor`` to ``end_factor``.

    Args:
        optimizer: the wrapped optimizer.
        start_factor: the factor at epoch 0, in (0, 1] (default 1/3).
        end_factor: the factor from ``total_iters`` on, in [0, 1] (default 1.0).
        total_iters: the length of the ramp in steps (default 5).
        last_epoch: the index of the last epoch (default -1).

    Raises:
        ValueError: a factor is out of its range.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or "
                "equal to 1."
            )
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns the lr times the ratio of this step's factor to the previous step's."""
        _warn_get_lr_called_within_step(self)
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _param_groups_val_list(self.optimizer, "lr")
        delta = self.end_factor - self.start_factor
        ratio = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_epoch - 1) * delta)
        return [group["lr"] * ratio for group in groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            linear_lr(b, self.last_epoch, self.start_factor, self.end_factor, self.total_iters)
            for b in self.base_lrs
        ]


class ExponentialLR(LRScheduler):
    """Multiplies the lr by ``gamma`` at every step.

    Args:
        optimizer: the wrapped optimizer.
        gamma: the multiplicative factor per step.
        last_epoch: the index of the last epoch (default -1).
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns ``lr * gamma`` (the lr itself at init, so resuming does not skip a step)."""
        _warn_get_lr_called_within_step(self)
        if self._is_initial:
            return _param_groups_val_list(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [exponential_lr(b, self.last_epoch, self.gamma) for b in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Decays the lr polynomially to 0 over ``total_iters`` steps.

    Args:
        optimizer: the wrapped optimizer.
        total_iters: the number of steps to reach 0 (default 5).
        power: the power of the polynomial (default 1.0).
        last_epoch: the index of the last epoch (default -1).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_iters: int = 5,
        power: float = 1.0,
        last_epoch: int = -1,
    ) -> None:
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns the lr times the ratio of this step's decay to the previous step's."""
        _warn_get_lr_called_within_step(self)
        if self._is_initial or self.last_epoch > self.total_iters:
            return _param_groups_val_list(self.optimizer, "lr")
        decay_factor = (
            (1.0 - self.last_epoch / self.total_iters)
            / (1.0 - (self.last_epoch - 1) / self.total_iters)
        ) ** self.power
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            polynomial_lr(b, self.last_epoch, self.total_iters, self.power) for b in self.base_lrs
        ]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial lr to ``eta_min`` over ``T_max`` steps (SGDR,
    https://arxiv.org/abs/1608.03983, without restarts).

    As torch's, the schedule is periodic: past ``T_max`` the lr climbs back towards the
    initial lr over the next ``T_max`` steps, and so on. The update is torch's recursive
    one (the new lr from the current lr), so that values match torch's trace.

    Args:
        optimizer: the wrapped optimizer.
        T_max: the number of steps of a half period.
        eta_min: the minimum learning rate (default 0.0).
        last_epoch: the index of the last epoch (default -1).
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns the next lr of the (recursive) cosine schedule."""
        _warn_get_lr_called_within_step(self)
        groups = self.optimizer.param_groups
        e, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return _param_groups_val_list(self.optimizer, "lr")
        if self._step_count == 1 and e > 0:
            # The first step after resuming: the closed form (torch multiplies e * pi).
            return [
                eta_min + (base - eta_min) * (1 + math.cos(e * math.pi / T)) / 2
                for base in self.base_lrs
            ]
        if (e - 1 - T) % (2 * T) == 0:
            # Leaving the minimum: the ratio form would divide by 1 + cos(pi) = 0.
            return [
                group["lr"] + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                for base, group in zip(self.base_lrs, groups)
            ]
        ratio = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [
            cosine_annealing_lr(b, self.last_epoch, self.T_max, self.eta_min) for b in self.base_lrs
        ]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing with warm restarts (SGDR, https://arxiv.org/abs/1608.03983).

    The lr follows ``cosine_annealing_lr(base_lr, T_cur, T_i, eta_min)``, where
    ``T_cur`` counts the steps since the last restart and ``T_i`` is the length of the
    current period; a restart happens when ``T_cur`` reaches ``T_i``, after which
    ``T_i`` is multiplied by ``T_mult``. ``step(epoch)`` accepts a fractional epoch
    (e.g. ``epoch + batch / iters``), without a deprecation warning, as torch's.

    Args:
        optimizer: the wrapped optimizer.
        T_0: the length of the first period, a positive int.
        T_mult: the factor by which the period grows after a restart, an int >= 1
            (default 1).
        eta_min: the minimum learning rate (default 0.0).
        last_epoch: the index of the last epoch (default -1).

    Raises:
        ValueError: ``T_0``, ``T_mult`` or ``eta_min`` is invalid.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(  # noqa: TRY004 (torch's type)
                f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"
            )
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        """Returns the cosine lr at ``T_cur`` within the current period ``T_i``."""
        _warn_get_lr_called_within_step(self)
        return [cosine_annealing_lr(b, self.T_cur, self.T_i, self.eta_min) for b in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advances by one step, or jumps to ``epoch`` (which may be fractional).

        Args:
            epoch: the (possibly fractional) epoch to jump to; None to advance by one.

        Raises:
            ValueError: ``epoch`` is negative.
        """
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    # The number of completed periods n solves
                    # T_0 * (T_mult**n - 1) / (T_mult - 1) <= epoch.
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** (n)
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        with _enable_get_lr_call(self):
            values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            _update_param_group_val(group, "lr", lr)
        self._last_lr = _param_groups_val_list(self.optimizer, "lr")


# --------------------------------------------------------------------------------------
# Cyclical schedulers, which may also cycle the momentum.
# --------------------------------------------------------------------------------------


def _init_momentum_cycling(
    optimizer: Optimizer, max_momentum: Any, base_momentum: Any, last_epoch: int
) -> tuple[bool, list[Any], list[Any]]:
    """Checks that the optimizer has a momentum (or Adam's beta1) and starts it at max.

    Returns:
        ``(use_beta1, max_momentums, base_momentums)``.
    """
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(
            "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
        )
    use_beta1 = "betas" in optimizer.defaults
    max_momentums = _format_param("max_momentum", optimizer, max_momentum)
    base_momentums = _format_param("base_momentum", optimizer, base_momentum)
    if last_epoch == -1:
        for m_momentum, b_momentum, group in zip(
            max_momentums, base_momentums, optimizer.param_groups
        ):
            _set_momentum(group, m_momentum, use_beta1)
            group["max_momentum"] = m_momentum
            group["base_momentum"] = b_momentum
    return use_beta1, max_momentums, base_momentums


def _set_momentum(group: dict[str, Any], momentum: Any, use_beta1: bool) -> None:
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


class CyclicLR(LRScheduler):
    """Cyclical learning rate (Smith, https://arxiv.org/abs/1506.01186), stepped per batch.

    The lr goes between ``base_lr`` and ``max_lr`` along a triangle wave of length
    ``step_size_up + step_size_down``, whose amplitude is scaled by ``scale_fn`` of the
    cycle number (``scale_mode='cycle'``) or of the step (``'iterations'``). With
    ``cycle_momentum`` the momentum (or Adam's ``betas[0]``) moves inversely between
    ``max_momentum`` and ``base_momentum``. Policies: ``triangular`` (constant
    amplitude), ``triangular2`` (halved every cycle), ``exp_range`` (``gamma**step``).

    Args:
        optimizer: the wrapped optimizer.
        base_lr: the lower lr, or one per group; it replaces the group's lr at init.
        max_lr: the upper lr, or one per group.
        step_size_up: steps in the increasing half (default 2000).
        step_size_down: steps in the decreasing half (default: ``step_size_up``).
        mode: ``'triangular'``, ``'triangular2'`` or ``'exp_range'``; ignored when
            ``scale_fn`` is given.
        gamma: the ``exp_range`` base (default 1.0).
        scale_fn: a custom amplitude function of one argument, in [0, 1].
        scale_mode: ``'cycle'`` or ``'iterations'``: the argument of a custom
            ``scale_fn``.
        cycle_momentum: whether to cycle the momentum (default True).
        base_momentum: the lower momentum, or one per group (default 0.8).
        max_momentum: the upper momentum, or one per group (default 0.9).
        last_epoch: the index of the last batch (default -1).

    Raises:
        TypeError: ``optimizer`` is not an Optimizer.
        ValueError: an invalid mode without ``scale_fn``, per-group lists of the wrong
            length, or ``cycle_momentum`` with an optimizer without momentum or betas.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr: float | list[float],
        max_lr: float | list[float],
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float = 0.8,
        max_momentum: float = 0.9,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

        base_lrs = _format_param("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                _update_param_group_val(group, "lr", lr)

        self.max_lrs = _format_param("max_lr", optimizer, max_lr)
        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size

        if mode not in ["triangular", "triangular2", "exp_range"] and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            use_beta1, max_momentums, base_momentums = _init_momentum_cycling(
                optimizer, max_momentum, base_momentum, last_epoch
            )
            # Attribute order is torch's, so that state_dict keys come in torch's order.
            self.use_beta1 = use_beta1
            self.base_momentums = base_momentums
            self.max_momentums = max_momentums
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        if self._scale_fn_custom is not None:
            return
        if self.mode == "triangular":
            self._scale_fn_ref = self._triangular_scale_fn
            self.scale_mode = "cycle"
        elif self.mode == "triangular2":
            self._scale_fn_ref = self._triangular2_scale_fn
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self._scale_fn_ref = partial(self._exp_range_scale_fn, self.gamma)
            self.scale_mode = "iterations"

    def scale_fn(self, x: float) -> float:
        """The amplitude scale at ``x`` (a cycle number or a step, per ``scale_mode``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        return self._scale_fn_ref(x)

    @staticmethod
    def _triangular_scale_fn(x: float) -> float:
        return 1.0

    @staticmethod
    def _triangular2_scale_fn(x: float) -> float:
        return 1 / (2.0 ** (x - 1))

    @staticmethod
    def _exp_range_scale_fn(gamma: float, x: float) -> float:
        return gamma**x

    def get_lr(self) -> list[Any]:
        """Returns the lr of every group; also writes the cycled momentum into the groups."""
        _warn_get_lr_called_within_step(self)
        cycle, scale_factor = _cyclic_scale(self.last_epoch, self.total_size, self.step_ratio)
        x = cycle if self.scale_mode == "cycle" else self.last_epoch
        # scale_fn is called once per group and value, as torch does, so that a stateful
        # callable object sees the same calls.
        lrs = [
            base_lr + (max_lr - base_lr) * scale_factor * self.scale_fn(x)
            for base_lr, max_lr in zip(self.base_lrs, self.max_lrs)
        ]
        if self.cycle_momentum:
            momentums = [
                max_m - (max_m - base_m) * scale_factor * self.scale_fn(x)
                for base_m, max_m in zip(self.base_momentums, self.max_momentums)
            ]
            for group, momentum in zip(self.optimizer.param_groups, momentums):
                _set_momentum(group, momentum, self.use_beta1)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        """Returns the state; a custom ``scale_fn`` is saved only if it is a callable
        object (its ``__dict__``), not a function or lambda."""
        state = super().state_dict()
        state.pop("_scale_fn_ref", None)
        fn = state.pop("_scale_fn_custom")
        state["_scale_fn_custom"] = None
        if fn is not None and not isinstance(fn, types.FunctionType):
            state["_scale_fn_custom"] = fn.__dict__.copy()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state; a saved callable object's attributes are restored into it."""
        fn = state_dict.pop("_scale_fn_custom")
        super().load_state_dict(state_dict)
        if fn is not None:
            self._scale_fn_custom.__dict__.update(fn)
        self._init_scale_fn()


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, https://arxiv.org/abs/1708.07120), stepped per batch.

    The lr anneals from ``max_lr / div_factor`` up to ``max_lr`` over the first
    ``pct_start`` of ``total_steps``, then down to ``initial_lr / final_div_factor``.
    With ``three_phase`` it goes back to the initial lr first (symmetrically) and then
    to the minimum. The momentum (or Adam's ``betas[0]``) moves inversely. Stepping
    more than ``total_steps`` times raises ``ValueError``.

    Args:
        optimizer: the wrapped optimizer.
        max_lr: the peak lr, or one per group.
        total_steps: the length of the cycle; or give ``epochs`` and ``steps_per_epoch``.
        epochs: the number of epochs (with ``steps_per_epoch``).
        steps_per_epoch: the number of steps per epoch (with ``epochs``).
        pct_start: the fraction of the cycle spent increasing the lr (default 0.3).
        anneal_strategy: ``'cos'`` (default) or ``'linear'``.
        cycle_momentum: whether to cycle the momentum (default True).
        base_momentum: the lower momentum, or one per group (default 0.85).
        max_momentum: the upper momentum, or one per group (default 0.95).
        div_factor: ``initial_lr = max_lr / div_factor`` (default 25).
        final_div_factor: ``min_lr = initial_lr / final_div_factor`` (default 1e4).
        three_phase: use the three-phase schedule (default False).
        last_epoch: the index of the last batch (default -1).

    Raises:
        TypeError: ``optimizer`` is not an Optimizer.
        ValueError: invalid lengths, ``pct_start``, ``anneal_strategy``, or
            ``cycle_momentum`` with an optimizer without momentum or betas.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(
                    f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
                )
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")

        up_end = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                _phase(up_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(
                    float(2 * pct_start * self.total_steps) - 2,
                    "max_lr",
                    "initial_lr",
                    "base_momentum",
                    "max_momentum",
                ),
                _phase(
                    self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"
                ),
            ]
        else:
            self._schedule_phases = [
                _phase(up_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]

        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self._anneal_func_type = anneal_strategy

        max_lrs = _format_param("max_lr", self.optimizer, max_lr)
        if last_epoch == -1:
            for group, group_max_lr in zip(self.optimizer.param_groups, max_lrs):
                group["initial_lr"] = group_max_lr / div_factor
                group["max_lr"] = group_max_lr
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if self.cycle_momentum:
            self.use_beta1, _, _ = _init_momentum_cycling(
                optimizer, max_momentum, base_momentum, last_epoch
            )
        super().__init__(optimizer, last_epoch)

    def _anneal_func(self, *args: Any, **kwargs: Any) -> float:
        if hasattr(self, "_anneal_func_type"):
            if self._anneal_func_type == "cos":
                return self._annealing_cos(*args, **kwargs)
            if self._anneal_func_type == "linear":
                return self._annealing_linear(*args, **kwargs)
            raise ValueError(f"Unknown _anneal_func_type: {self._anneal_func_type}")
        # A torch before 2.4 kept the function itself, as ``anneal_func``, and no
        # ``_anneal_func_type``: a scheduler restored from it without running
        # ``__init__`` (unpickled, or its state set on a bare object) uses that function,
        # as torch does. Loaded into a constructed scheduler, whose own strategy is set,
        # the old entry is ignored, as in torch.
        return self.anneal_func(*args, **kwargs)

    # torch 2.13's names, which an older torch's ``anneal_func`` refers to.
    _annealing_cos = staticmethod(_anneal_cos)
    _annealing_linear = staticmethod(_anneal_linear)

    def get_lr(self) -> list[Any]:
        """Returns the lr of every group; also writes the cycled momentum into the groups.

        Raises:
            ValueError: the scheduler has been stepped more than ``total_steps`` times.
        """
        _warn_get_lr_called_within_step(self)
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(
                f"Tried to step {step_num} times. The specified number of total steps is "
                f"{self.total_steps}"
            )
        lrs = []
        last_phase = len(self._schedule_phases) - 1
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step_num <= end_step or i == last_phase:
                    pct = (step_num - start_step) / (end_step - start_step)
                    lrs.append(
                        self._anneal_func(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    )
                    if self.cycle_momentum:
                        momentum = self._anneal_func(
                            group[phase["start_momentum"]], group[phase["end_momentum"]], pct
                        )
                        _set_momentum(group, momentum, self.use_beta1)
                    break
                start_step = phase["end_step"]
        return lrs


def _phase(
    end_step: float, start_lr: str, end_lr: str, start_momentum: str, end_momentum: str
) -> dict[str, Any]:
    """One phase of OneCycleLR: where it ends and which group keys it goes between."""
    return {
        "end_step": end_step,
        "start_lr": start_lr,
        "end_lr": end_lr,
        "start_momentum": start_momentum,
        "end_momentum": end_momentum,
    }


# --------------------------------------------------------------------------------------
# Compositions.
# --------------------------------------------------------------------------------------


def _check_children(owner: str, optimizer: Optimizer, schedulers: Sequence[Any]) -> None:
    for index, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{owner} at index {index} should have `optimizer` as its attribute.")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(  # noqa: TRY004 (torch's type)
                f"{owner} does not support `ReduceLROnPlateau` scheduler as it "
                "requires additional kwargs to be specified when calling `step`, "
                f"but got one at index {index} in the given schedulers sequence."
            )
        if optimizer is not scheduler.optimizer:
            raise ValueError(
                f"{owner} expects all schedulers to belong to the same optimizer, but "
                f"got scheduler {scheduler.__class__.__name__} at index {index} has "
                f"{scheduler.optimizer}, which is different from "
                f"{optimizer.__class__.__name__}."
            )


def _nested_state_dict(scheduler: Any) -> dict[str, Any]:
    state = {k: v for k, v in scheduler.__dict__.items() if k not in ("optimizer", "_schedulers")}
    state["_schedulers"] = [s.state_dict() for s in scheduler._schedulers]
    return state


def _load_nested_state_dict(scheduler: Any, state_dict: dict[str, Any]) -> None:
    children = state_dict.pop("_schedulers")
    scheduler.__dict__.update(state_dict)
    state_dict["_schedulers"] = children  # leave the caller's dict as it was
    for child, child_state in zip(scheduler._schedulers, children):
        child.load_state_dict(child_state)


class SequentialLR(LRScheduler):
    """Runs a list of schedulers one after the other, switching at the milestones.

    At a milestone the next scheduler starts from its epoch 0 (its closed form at 0).

    Args:
        optimizer: the wrapped optimizer (the one every child wraps).
        schedulers: the schedulers, in order.
        milestones: the epochs at which to switch; one fewer than ``schedulers``.
        last_epoch: the index of the last epoch (default -1).

    Raises:
        ValueError: no schedulers, a ReduceLROnPlateau child, children of another
            optimizer, or a wrong number of milestones.
        TypeError: a child has no ``optimizer``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedulers: list[LRScheduler],
        milestones: list[int],
        last_epoch: int = -1,
    ) -> None:
        owner = self.__class__.__name__
        if len(schedulers) < 1:
            raise ValueError(f"{owner} expects at least one scheduler, but got no scheduler.")
        _check_children(owner, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more "
                f"than the number of milestone points, but got number of schedulers "
                f"{len(schedulers)} and the number of milestones to be equal to "
                f"{len(milestones)}"
            )
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer

        # Each child made its own initial step on construction: put the lrs back, undo
        # those steps, and make the initial step of the child that runs at epoch 0.
        for group in self.optimizer.param_groups:
            _update_param_group_val(group, "lr", group["initial_lr"])
        self.recursive_undo()
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = schedulers[idx].get_last_lr()

    def recursive_undo(self, sched: Any = None) -> None:
        """Decrements ``last_epoch`` of every (nested) child, undoing its initial step."""
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self.recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def step(self) -> None:
        """Steps the active child, starting the next one at its milestone."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """Returns the state, with the children's states nested under ``_schedulers``."""
        return _nested_state_dict(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state from :meth:`state_dict`, children included."""
        _load_nested_state_dict(self, state_dict)


class ChainedScheduler(LRScheduler):
    """Steps several schedulers together, so that their multiplicative effects compose.

    Args:
        schedulers: the schedulers to chain (all on one optimizer).
        optimizer: the wrapped optimizer (default: the first scheduler's).

    Raises:
        ValueError: no schedulers, a ReduceLROnPlateau child, or children of another
            optimizer.
        TypeError: a child has no ``optimizer``.
    """

    def __init__(
        self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None
    ) -> None:
        owner = self.__class__.__name__
        if len(schedulers) < 1:
            raise ValueError(
                f"{owner} expects at least one scheduler to be chained, but got no scheduler."
            )
        optimizer = optimizer or schedulers[0].optimizer
        _check_children(owner, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = _param_groups_val_list(self._schedulers[-1].optimizer, "lr")

    def step(self) -> None:
        """Steps every child in order."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _param_groups_val_list(self._schedulers[-1].optimizer, "lr")

    def state_dict(self) -> dict[str, Any]:
        """Returns the state, with the children's states nested under ``_schedulers``."""
        return _nested_state_dict(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state from :meth:`state_dict`, children included."""
        _load_nested_state_dict(self, state_dict)


# --------------------------------------------------------------------------------------
# Metric-driven.
# --------------------------------------------------------------------------------------


class ReduceLROnPlateau(LRScheduler):
    """Reduces the lr by ``factor`` when a metric has stopped improving for ``patience`` steps.

    Unlike the other schedulers it does not write ``initial_lr`` nor keep ``base_lrs``,
    and ``last_epoch`` starts at 0. ``step(metrics)`` takes the monitored value.

    Args:
        optimizer: the wrapped optimizer.
        mode: ``'min'`` (lower is better, default) or ``'max'``.
        factor: the reduction factor, < 1 (default 0.1).
        patience: the number of bad steps tolerated before reducing (default 10).
        threshold: the minimum change that counts as an improvement (default 1e-4).
        threshold_mode: ``'rel'`` (relative to the best, default) or ``'abs'``.
        cooldown: steps to wait after a reduction before counting bad steps (default 0).
        min_lr: the lower bound of the lr, or one per group (default 0).
        eps: reductions smaller than this are skipped (default 1e-8).

    Raises:
        ValueError: ``factor >= 1``, an unknown mode, or a ``min_lr`` list of the wrong
            length.
        TypeError: ``optimizer`` is not an Optimizer.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: list[float] | float = 0,
        eps: float = 1e-8,
    ) -> None:
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        self.factor = factor
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(
                    f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}"
                )
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)

        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _param_groups_val_list(self.optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: Any, epoch: int | None = None) -> None:
        """Records the metric of one step and reduces the lr if it has plateaued.

        Args:
            metrics: the monitored value (anything ``float()`` accepts).
            epoch: deprecated; the epoch number to record.
        """
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch

        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1

        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during the cooldown do not count

        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

        self._last_lr = _param_groups_val_list(self.optimizer, "lr")

    def _reduce_lr(self, epoch: int) -> None:
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    "The number of param groups in the `optimizer` "
                    f"({len(self.optimizer.param_groups)}) differs "
                    "from when `ReduceLROnPlateau` was initialized "
                    f"({len(self.min_lrs)}), usually due to a new "
                    "param group being added to the optimizer. Please "
                    "modify the `min_lrs` field to match the length "
                    "of the `optimizer` param groups."
                )
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for i, group in enumerate(self.optimizer.param_groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                _update_param_group_val(group, "lr", new_lr)

    @property
    def in_cooldown(self) -> bool:
        """Whether the scheduler is in its cooldown period after a reduction."""
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in {"min", "max"}:
            raise ValueError("mode " + mode + " is unknown!")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError("threshold mode " + threshold_mode + " is unknown!")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state from :meth:`state_dict`."""
        self.__dict__.update(state_dict)
        self._init_is_better(
            mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode
        )
