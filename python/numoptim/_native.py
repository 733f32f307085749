"""What the optimizers with a native update rule share: flag checks and the step loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from .optimizer import Optimizer


def check_lr(lr: Any) -> None:
    """Validates ``lr`` (a float or a 1-element array) with torch's messages."""
    if isinstance(lr, np.ndarray) and lr.size != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")


def check_adam_family(lr: Any, betas: Any, eps: Any, weight_decay: Any) -> None:
    """The checks Adam, AdamW, Adamax, NAdam and RAdam share, in torch's order and words."""
    check_lr(lr)
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    check_betas_and_decay(betas, weight_decay)


def check_betas_and_decay(betas: Any, weight_decay: Any) -> None:
    """Both betas in [0, 1), then weight_decay >= 0, with torch's messages."""
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def check_flags(*, foreach=None, fused=None, capturable=False, differentiable=False) -> None:
    """Rejects the torch flags that have no meaning for NumPy arrays.

    ``foreach`` and ``fused`` are accepted and change nothing: numoptim has one native
    multi-tensor path. ``capturable`` (CUDA graphs) and ``differentiable`` (autograd
    through the step) cannot be honoured, so asking for them is an error.
    """
    if capturable:
        raise ValueError(
            "capturable=True is not supported: numoptim runs on NumPy arrays on the CPU, "
            "where there is no graph capture"
        )
    if differentiable:
        raise ValueError(
            "differentiable=True is not supported: numoptim updates NumPy arrays in place "
            "and records no autograd graph"
        )
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


# The devices torch's fused optimizers name in their error for a parameter they cannot step.
_FUSED_DEVICES = "['mps', 'cuda', 'xpu', 'hpu', 'cpu', 'mtia', 'privateuseone']"


def check_fused_params(group: dict[str, Any]) -> None:
    """torch's error for a complex parameter (with a gradient) in a ``fused=True`` group.

    torch's fused kernels step real floating point tensors only, and its fused SGD,
    Adam, AdamW and Adagrad raise at the step; numoptim has one native path, which
    could step them, but follows torch, before anything is written.
    """
    if not group.get("fused"):
        return
    for p in group["params"]:
        if p.grad is not None and p.dtype.kind == "c":
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of "
                f"supported devices: {_FUSED_DEVICES} but torch.{p.dtype} and cpu"
            )


# A hyperparameter as a Python float. `float` itself rather than a function that calls
# it: it runs several times per step.
scalar = float


def lr_value(lr: Any) -> float:
    """The learning rate as a float: a number, or a 0-d or 1-element array.

    NumPy 2 refuses ``float()`` of a 1-element array that has dimensions, where torch's
    ``float()`` takes any 1-element tensor.
    """
    return lr if type(lr) is float else float(np.asarray(lr).reshape(()))


def add_flags(defaults: dict[str, Any], **flags: bool) -> dict[str, Any]:
    """``defaults`` with each flag beyond the reference's (``maximize``,
    ``master_weights``) added only when True, so that the default repr and state dict
    stay the reference's."""
    defaults.update((key, True) for key, value in flags.items() if value)
    return defaults


def then(write: Callable[[], None] | None, count: Callable[[], None]) -> Callable[[], None] | None:
    """A native step's result, with ``count`` (advancing the group's own counters) run
    after its write: at once when the step was written (``write`` is None), else inside
    the returned deferred write, so that a step that raises advances nothing."""
    if write is None:
        count()
        return None

    def write_and_count() -> None:
        write()
        count()

    return write_and_count


class NativeOptimizer(Optimizer):
    """An optimizer whose ``step`` runs one native call per parameter group.

    A native step given a :class:`~numoptim.RowSparseGrad` where its rule needs dense
    gradients raises ``_core.SparseGradientError`` before writing anything; ``step``
    turns that into torch's ``RuntimeError`` (see :meth:`_sparse_grad_message`). The
    check costs nothing on the dense path, so no optimizer loops over its parameters.
    Subclasses call ``_core`` with positional arguments, in the binding's order:
    pybind11 matches keyword arguments by name on every call, about 1 us per step.
    """

    # torch's message when a parameter has a sparse gradient; None gives
    # "<Name> does not support sparse gradients" with the numoptim class's name.
    _sparse_grad_error: str | None = None

    # The group options that torch's ``__setstate__`` of this optimizer fills in when a
    # loaded state dict (from an older torch) lacks them, in its order and with its
    # values, which need not be the constructor's. Only these: the base class adds
    # ``differentiable`` to ``defaults``, and copying every default would give the
    # groups keys torch's do not have (SparseAdam's ``differentiable``).
    _load_defaults: tuple[tuple[str, Any], ...] = ()

    # Whether complex parameters are refused. torch.optim's optimizers step them as the
    # real pairs of their memory (numoptim's native path does the same); the references
    # of the optimizers beyond torch.optim do not (lion-pytorch cannot at all:
    # torch.sign has no complex version), so those refuse them when they are added.
    _real_only: bool = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a parameter group, as :meth:`Optimizer.add_param_group`.

        Raises:
            TypeError: as the base class, or a complex parameter for an optimizer beyond
                torch.optim; the group is refused before anything is modified.
        """
        super().add_param_group(param_group)
        if not self._real_only:
            return
        for index, p in enumerate(self.param_groups[-1]["params"]):
            if p.dtype.kind == "c":
                self.param_groups.pop()
                raise TypeError(
                    f"{type(self).__name__} does not support complex parameters, but "
                    f"parameter {index} has dtype {p.dtype}"
                )

    def _sparse_grad_message(self) -> str:
        if self._sparse_grad_error is not None:
            return self._sparse_grad_error
        # A user's subclass reports the numoptim optimizer it extends, as torch does.
        name = next(
            (c.__name__ for c in type(self).__mro__ if c.__module__.startswith("numoptim.")),
            type(self).__name__,
        )
        return f"{name} does not support sparse gradients"

    def _step_group(self, group: dict[str, Any], defer: bool) -> Callable[[], None] | None:
        """Checks a group and writes its step.

        With ``defer``, the group is only checked, and the write is returned as a
        callable (a ``_core.PreparedStep``) instead; otherwise returns None.
        """
        raise NotImplementedError

    def _before_step(self, groups: list[dict[str, Any]]) -> None:
        """What a step needs from all its parameters before any group is checked
        (Lamb's global gradient norm); nothing by default. ``groups`` are the groups
        the step spans: a ZeroRedundancyOptimizer passes every rank's, in full."""

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Performs one optimization step.

        Every parameter group is checked (parameters, gradients, state) before any is
        written: a bad input anywhere raises and leaves everything as it was.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            loss = closure()
        groups = self.param_groups
        self._before_step(groups)
        try:
            if len(groups) == 1:
                # One native call checks the whole group, then writes it.
                self._step_group(groups[0], False)
            else:
                writes = [self._step_group(group, True) for group in groups]
                for write in writes:
                    write()
        except _core.SparseGradientError:
            raise RuntimeError(self._sparse_grad_message()) from None
        return loss

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._load_defaults:
                group.setdefault(key, value)
