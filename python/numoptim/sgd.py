"""Stochastic gradient descent, optionally with (Nesterov) momentum."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_flags, check_fused_params, check_lr, lr_value, scalar
from .optimizer import ParamsT
from .parameter import Parameter

__all__ = ["SGD"]


class SGD(NativeOptimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    With g the gradient (negated when ``maximize``) plus ``weight_decay * p``::

        b <- g (first step), then momentum * b + (1 - dampening) * g
        g <- g + momentum * b if nesterov else b           (when momentum != 0)
        p <- p - lr * g

    State per parameter: ``momentum_buffer`` (only when momentum != 0).

    Sparse gradients: a parameter's grad may be a :class:`~numoptim.RowSparseGrad`, as
    torch's SGD accepts sparse grads. Without momentum only the touched rows are read
    and written, entry by entry in order as torch's ``param.add_(grad, alpha=-lr)``.
    With momentum every row whose momentum is not zero moves, as in torch; torch keeps
    that momentum as a sparse tensor, numoptim as the dense array it stands for, so the
    state has the same layout for dense and sparse gradients (and torch's
    ``momentum_buffer.to_dense()`` is numoptim's). As in torch, weight decay with a
    sparse gradient raises ``RuntimeError`` ("add(sparse, dense) is not supported..."),
    and so does ``fused=True``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: Nesterov momentum (default False); needs momentum > 0, dampening 0.
        maximize: maximize the objective instead of minimizing it (default False).
        foreach, fused: accepted for torch compatibility; there is one native path.
        differentiable: must be False.
    """

    _param_shaped_state = ("momentum_buffer",)
    # torch's __setstate__ fills these in (see NativeOptimizer._load_defaults).
    _load_defaults = (
        ("nesterov", False),
        ("maximize", False),
        ("foreach", None),
        ("differentiable", False),
        ("fused", False),
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        master_weights: bool = False,
    ) -> None:
        check_lr(lr)
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        check_flags(foreach=foreach, fused=fused, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)

    def _step_group(self, group, defer: bool):
        check_fused_params(group)
        lr, momentum = lr_value(group["lr"]), scalar(group["momentum"])
        weight_decay, maximize = scalar(group["weight_decay"]), bool(group["maximize"])
        fused = bool(group.get("fused"))
        try:
            # Positional, as in Adam: keyword arguments cost about 1 us per call in pybind11.
            # With row-sparse gradients in the group, the dense step comes back unwritten.
            dense = _core.sgd_step(
                group["params"],
                self.state,
                lr,
                momentum,
                scalar(group["dampening"]),
                weight_decay,
                bool(group["nesterov"]),
                maximize,
                not fused and weight_decay == 0,  # allow_sparse
                bool(group.get("master_weights", False)),
                defer,
            )
        except _core.SparseGradientError:
            # torch's errors for what it cannot do with a sparse gradient; raised before
            # anything of the group is written.
            if fused:
                raise RuntimeError("`_fused_sgd` does not support sparse gradients") from None
            raise RuntimeError(
                "add(sparse, dense) is not supported. Use add(dense, sparse) instead."
            ) from None
        if dense is None or not dense.sparse_grads:
            return dense
        positions = list(dense.sparse_grads)
        # Checks every row-sparse gradient (indices, values, layout) before any write.
        rows = _core.sgd_sparse_step(group["params"], positions, lr, maximize, True)
        if momentum == 0:
            sparse = rows
        else:
            params = [group["params"][i] for i in positions]
            for i, p in zip(positions, params):
                self._check_momentum_buffer(p, i)

            def sparse() -> None:
                for p in params:
                    self._sparse_momentum_step(p, group, lr, momentum, maximize)

        def write() -> None:
            dense()
            sparse()

        return write if defer else write()

    def _check_momentum_buffer(self, p: Parameter, index: int) -> None:
        """Checks the momentum buffer a row-sparse step will update, writing nothing."""
        buf = self.state.get(p, {}).get("momentum_buffer")
        if buf is None:
            return
        what = f"state['momentum_buffer'] of parameter {index}"
        if not isinstance(buf, np.ndarray):
            raise TypeError(f"{what} must be a numpy.ndarray, got {type(buf).__name__}")
        if buf.dtype != p.dtype:
            raise TypeError(f"{what} has dtype {buf.dtype} but the parameter has dtype {p.dtype}")
        if buf.shape != p.shape:
            raise ValueError(f"{what} has shape {buf.shape} but the parameter has shape {p.shape}")
        if not buf.flags.writeable:
            raise ValueError(f"{what} is read-only")

    def _sparse_momentum_step(
        self, p: Parameter, group, lr: float, momentum: float, maximize: bool
    ) -> None:
        """SGD with momentum for a RowSparseGrad, in NumPy on the dense momentum buffer.

        The momentum decays on every row, so this is a dense update with the gradient's
        rows summed in (torch's coalesce order); the operations are the native kernel's.
        """
        grad = p.grad.to_dense()
        if maximize:
            np.negative(grad, out=grad)
        state = self.state[p]
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = grad.copy()  # torch: the first buffer is the gradient, undampened
            state["momentum_buffer"] = buf
        else:
            buf *= momentum
            buf += (1.0 - scalar(group["dampening"])) * grad
        update = grad + momentum * buf if group["nesterov"] else buf
        p += (-lr) * update
