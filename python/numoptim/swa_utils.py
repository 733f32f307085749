"""Stochastic Weight Averaging and EMA for NumPy arrays, as ``torch.optim.swa_utils``.

* :class:`AveragedModel` keeps a running average of a "model", which here is a list
  of arrays (e.g. :class:`numoptim.Parameter`) or a dict ``name -> array``. The
  default is the SWA mean (Izmailov et al., https://arxiv.org/abs/1803.05407); the
  ``get_*_avg_fn`` helpers give SWA or EMA updates with torch's numerics.
* :class:`SWALR` anneals each group's lr to a fixed ``swa_lr`` (cos or linear).

``torch.optim.swa_utils.update_bn`` has no NumPy counterpart: it finds the BatchNorm
*modules* of a ``torch.nn.Module``, resets their running statistics and runs forward
passes in training mode, and NumPy has no modules to find. What it computes is simple,
though, and :func:`bn_statistics` gives it for a callable that returns the activations
entering the normalization layer(s): the average over batches of each batch's
per-channel mean and unbiased variance (torch's cumulative average with
``momentum=None``). Store the result in your model's running statistics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .lr_scheduler import LRScheduler, _format_param
from .optimizer import Optimizer

__all__ = [
    "SWALR",
    "AveragedModel",
    "bn_statistics",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
]


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start <- lerp(start, end, weight)`` in place, with torch's two-sided formula.

    torch evaluates ``start + w * (end - start)`` for ``|w| < 0.5`` and
    ``end - (end - start) * (1 - w)`` otherwise (exact at both ends), with the weight
    in the arrays' precision and a fused multiply-add. For float32 the fused result is
    reproduced by evaluating the product and sum in float64 (the product of two
    float32 values is exact there); float64 has no such wider type in NumPy, so it
    differs from torch by at most an ulp.
    """
    w = np.asarray(weight, dtype=start.dtype)[()]
    diff = end - start
    wide = np.float64 if start.dtype.itemsize < 8 and start.dtype.kind == "f" else start.dtype
    if abs(w) < 0.5:
        result = start.astype(wide) + w.astype(wide) * diff.astype(wide)
    else:
        result = end.astype(wide) - diff.astype(wide) * (1 - w).astype(wide)
    start[...] = result


def _is_inexact(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.inexact)


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(
            f"Invalid decay value {decay} provided. Please provide a value in [0,1] range."
        )


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """An exponential moving average over lists of arrays: ``ema <- lerp(ema, p, 1 - decay)``.

    Args:
        decay: the EMA decay, in [0, 1] (default 0.999).

    Returns:
        ``ema_update(ema_list, current_list, num_averaged)``, updating ``ema_list`` in
        place.

    Raises:
        ValueError: ``decay`` is outside [0, 1].
    """
    _check_decay(decay)

    def ema_update(ema_param_list, current_param_list, _) -> None:
        if _is_inexact(ema_param_list[0]):
            for p_ema, p_model in zip(ema_param_list, current_param_list):
                _lerp_(p_ema, p_model, 1 - decay)
        else:
            for p_ema, p_model in zip(ema_param_list, current_param_list):
                p_ema[...] = p_ema * decay + p_model * (1 - decay)

    return ema_update


def get_swa_multi_avg_fn() -> Callable:
    """The SWA running mean over lists of arrays: ``avg <- lerp(avg, p, 1 / (n + 1))``.

    When ``num_averaged`` is an array (AveragedModel's ``n_averaged``), the weight is
    rounded to float32, as torch's (computed from a Tensor in the default dtype).

    Returns:
        ``swa_update(averaged_list, current_list, num_averaged)``, updating
        ``averaged_list`` in place.
    """

    def swa_update(averaged_param_list, current_param_list, num_averaged) -> None:
        weight = 1 / (int(num_averaged) + 1)
        if isinstance(num_averaged, np.ndarray):
            # torch computes 1 / (n + 1) from its n_averaged Tensor, in the default
            # float32, so the weight is rounded to float32; done here too for parity.
            weight = float(np.float32(weight))
        if _is_inexact(averaged_param_list[0]):
            for p_avg, p_model in zip(averaged_param_list, current_param_list):
                _lerp_(p_avg, p_model, weight)
        else:
            for p_avg, p_model in zip(averaged_param_list, current_param_list):
                p_avg[...] = p_avg + (p_model - p_avg) * weight

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable:
    """An exponential moving average of one array: ``decay * ema + (1 - decay) * p``.

    Args:
        decay: the EMA decay, in [0, 1] (default 0.999).

    Returns:
        ``ema_update(ema, current, num_averaged)``, returning the new average.

    Raises:
        ValueError: ``decay`` is outside [0, 1].
    """
    _check_decay(decay)

    def ema_update(ema_param, current_param, num_averaged):
        return decay * ema_param + (1 - decay) * current_param

    return ema_update


def get_swa_avg_fn() -> Callable:
    """The SWA running mean of one array: ``avg + (p - avg) / (n + 1)``.

    Returns:
        ``swa_update(averaged, current, num_averaged)``, returning the new average.
    """

    def swa_update(averaged_param, current_param, num_averaged):
        return averaged_param + (current_param - averaged_param) / (int(num_averaged) + 1)

    return swa_update


class AveragedModel:
    """A running average (SWA by default, or EMA) of a set of NumPy arrays.

    The "model" is a list (or tuple) of arrays, e.g. the :class:`numoptim.Parameter`
    objects an optimizer updates, or a dict ``name -> array``. The average starts as
    a copy of the model at the first :meth:`update_parameters` call and is updated in
    place afterwards, with:

    * ``multi_avg_fn(averaged_list, current_list, n_averaged)`` if given (in place),
    * else ``avg_fn(averaged, current, n_averaged)`` per array if given (returns the
      new value),
    * else the SWA mean ``avg + (p - avg) / (n + 1)``, as torch on the CPU.

    Args:
        model: a list/tuple of arrays or a dict of arrays (copied, not aliased).
        device: accepted for torch compatibility; must be None or ``"cpu"``.
        avg_fn: a per-array averaging function.
        multi_avg_fn: a list-wise, in-place averaging function.
        use_buffers: accepted for torch compatibility. NumPy arrays have no
            parameter/buffer distinction: every array is averaged either way.

    Attributes:
        module: the averaged arrays, with the model's structure (list or dict).
        n_averaged: a 0-d int64 array, the number of models averaged so far.

    Raises:
        AssertionError: both ``avg_fn`` and ``multi_avg_fn`` are given (as torch).
        TypeError: ``model`` is not a list, tuple or dict of arrays.
        ValueError: a device other than the CPU is asked for.
    """

    def __init__(
        self,
        model: Any,
        device: Any = None,
        avg_fn: Callable | None = None,
        multi_avg_fn: Callable | None = None,
        use_buffers: bool = False,
    ) -> None:
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        if device is not None and str(device) != "cpu":
            raise ValueError(f"numoptim arrays live on the CPU; got device={device!r}")
        self._names = self._structure(model)
        arrays = [np.array(a, copy=True) for a in self._arrays(model)]
        self.module = dict(zip(self._names, arrays)) if self._names is not None else arrays
        self.n_averaged = np.array(0, dtype=np.int64)
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    @staticmethod
    def _structure(model: Any) -> list[str] | None:
        if isinstance(model, Mapping):
            return list(model.keys())
        if isinstance(model, (list, tuple)):
            return None
        raise TypeError(
            "AveragedModel expects a list or tuple of arrays or a dict of arrays, but got "
            f"{type(model).__name__}"
        )

    def _arrays(self, model: Any) -> list[np.ndarray]:
        if isinstance(model, Mapping):
            return [np.asarray(v) for v in model.values()]
        return [np.asarray(v) for v in model]

    def parameters(self) -> list[np.ndarray]:
        """Returns the averaged arrays, in the model's order."""
        return list(self.module.values()) if self._names is not None else list(self.module)

    def update_parameters(self, model: Any) -> None:
        """Folds the current values of ``model`` (same structure) into the average.

        Raises:
            ValueError: ``model`` has other names, another length or other shapes.
        """
        if self._names is not None and (
            not isinstance(model, Mapping) or list(model.keys()) != self._names
        ):
            raise ValueError("the model's names differ from the averaged model's")
        current = self._arrays(model)
        averaged = self.parameters()
        if len(current) != len(averaged) or any(
            c.shape != a.shape for c, a in zip(current, averaged)
        ):
            raise ValueError("the model's arrays differ in number or shape from the average")

        if self.n_averaged == 0:
            for p_avg, p_model in zip(averaged, current):
                p_avg[...] = p_model
        else:
            if self.multi_avg_fn is not None:
                self.multi_avg_fn(averaged, current, self.n_averaged)
            elif self.avg_fn is not None:
                for p_avg, p_model in zip(averaged, current):
                    p_avg[...] = self.avg_fn(p_avg, p_model, self.n_averaged)
            else:
                swa = get_swa_avg_fn()
                for p_avg, p_model in zip(averaged, current):
                    p_avg[...] = swa(p_avg, p_model, self.n_averaged)
        self.n_averaged += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        """Returns ``{"n_averaged": ..., "module.<name or index>": array}`` (live arrays)."""
        keys = self._names if self._names is not None else range(len(self.module))
        state = {f"module.{k}": a for k, a in zip(keys, self.parameters())}
        state["n_averaged"] = self.n_averaged
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copies a :meth:`state_dict` into the average (keys and shapes must match)."""
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            raise KeyError(f"expected the keys {sorted(expected)}, got {sorted(state_dict)}")
        for key, target in self.state_dict().items():
            value = np.asarray(state_dict[key])
            if value.shape != target.shape:
                raise ValueError(f"{key}: shape {value.shape} != {target.shape}")
            target[...] = value


def bn_statistics(
    loader: Iterable[Any], features: Callable[[Any], Any]
) -> tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]]:
    """Running statistics for batch normalization, as ``update_bn`` leaves them in torch.

    For each batch, ``features(batch)`` returns the activations entering a batch-norm
    layer, an array of shape ``(N, C, ...)`` (channels on axis 1, as torch's
    BatchNorm), or a list of such arrays, one per layer. As in torch's ``update_bn``, a batch that
    is a list or tuple is replaced by its first element. The result is what torch
    stores with ``momentum=None``: the average over batches of the per-channel batch
    mean and of the unbiased batch variance.

    Args:
        loader: an iterable of batches.
        features: maps a batch to the activations (array) or a list of them.

    Returns:
        ``(running_mean, running_var)``, or a list of such pairs when ``features``
        returns a list.

    Raises:
        ValueError: the loader is empty.
    """
    sums: list[list[np.ndarray]] | None = None
    count = 0
    single = True
    for batch in loader:
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        acts = features(batch)
        single = isinstance(acts, np.ndarray)
        acts = [acts] if single else list(acts)
        stats = []
        for a in acts:
            a = np.asarray(a, dtype=np.float64)
            axes = (0,) + tuple(range(2, a.ndim))
            n = math.prod(a.shape[i] for i in axes)
            stats.append([a.mean(axis=axes), a.var(axis=axes, ddof=1 if n > 1 else 0)])
        if sums is None:
            sums = stats
        else:
            for total, s in zip(sums, stats):
                total[0] += s[0]
                total[1] += s[1]
        count += 1
    if sums is None:
        raise ValueError("bn_statistics needs at least one batch")
    result = [(m / count, v / count) for m, v in sums]
    return result[0] if single else result


class SWALR(LRScheduler):
    """Anneals each group's lr to ``swa_lr`` over ``anneal_epochs``, then holds it.

    With ``t = clamp(step / anneal_epochs, 0, 1)`` and ``alpha = f(t)`` (``cos``:
    ``(1 - cos(pi t)) / 2``, ``linear``: ``t``), the lr is
    ``swa_lr * alpha + lr_0 * (1 - alpha)``, where ``lr_0`` (the lr when annealing
    started) is recovered from the current lr at each step, as torch does.

    Args:
        optimizer: the wrapped optimizer.
        swa_lr: the SWA learning rate, or one per group.
        anneal_epochs: the number of annealing steps, an int >= 0 (default 10).
        anneal_strategy: ``'cos'`` (default) or ``'linear'``.
        last_epoch: the index of the last epoch (default -1).

    Raises:
        ValueError: an unknown strategy or a negative/non-int ``anneal_epochs``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        swa_lr: float | list[float],
        anneal_epochs: int = 10,
        anneal_strategy: str = "cos",
        last_epoch: int = -1,
    ) -> None:
        swa_lrs = _format_param("swa_lr", optimizer, swa_lr)
        for group_swa_lr, group in zip(swa_lrs, optimizer.param_groups):
            group["swa_lr"] = group_swa_lr
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self._set_anneal_func(anneal_strategy)
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self) -> list[Any]:
        """Returns the annealed lr of every group at this step."""
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, "
                "please use `get_last_lr()`.",
                UserWarning,
                stacklevel=2,
            )
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        prev_lrs = [
            self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha)
            for group in self.optimizer.param_groups
        ]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [
            group["swa_lr"] * alpha + lr * (1 - alpha)
            for group, lr in zip(self.optimizer.param_groups, prev_lrs)
        ]

    def _set_anneal_func(self, anneal_strategy: str) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def state_dict(self) -> dict[str, Any]:
        """Returns the state, without the annealing function (rebuilt on load)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state from :meth:`state_dict`."""
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)
