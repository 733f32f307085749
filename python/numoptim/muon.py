"""Muon: momentum orthogonalized by a Newton-Schulz iteration, for 2-D parameters."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._checks import Float32Or64Only, check_step_inputs
from ._lerp import lerp
from ._native import lr_value
from .optimizer import Optimizer, ParamsT

__all__ = ["Muon"]

EPS = 1e-7
DEFAULT_A = 3.4445
DEFAULT_B = -4.7750
DEFAULT_C = 2.0315
DEFAULT_NS_STEPS = 5

_NS_DTYPES = ("float32", "bfloat16", "param")


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Muon(ns_dtype='bfloat16') needs the optional package ml_dtypes (pip install ml_dtypes)"
        ) from error
    return ml_dtypes.bfloat16


def _round_bf16(x: np.ndarray, bf16) -> np.ndarray:
    """x (float32) rounded to the nearest bfloat16, kept as float32 for BLAS."""
    return np.asarray(x, dtype=np.float32).astype(bf16).astype(np.float32)


def _zeropower_via_newtonschulz(
    grad: np.ndarray, ns_coefficients, ns_steps: int, eps: float, ns_dtype: str
) -> np.ndarray:
    """An approximately orthogonal matrix U S' V^T from G = U S V^T (S' ~ 1).

    The quintic iteration X <- a X + (b A + c A^2) X with A = X X^T, started from
    G / ||G||_F and run on the wide orientation (transposed when rows > columns).

    ``ns_dtype`` chooses the arithmetic: "float32" (or "param", the gradient's own
    dtype) runs it in that precision with NumPy's BLAS; "bfloat16" emulates torch's
    bfloat16 run, rounding every stored intermediate to bfloat16 while products
    accumulate in float32, as torch's CPU bfloat16 matmul does.
    """
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if grad.ndim != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if len(ns_coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = ns_coefficients
    transpose = grad.shape[0] > grad.shape[1]
    if ns_dtype == "bfloat16":
        bf16 = _bfloat16()
        # float64 goes to bfloat16 through float32, as torch's conversion does.
        x = _round_bf16(grad.astype(np.float32), bf16)
        if transpose:
            x = np.ascontiguousarray(x.T)
        norm = _round_bf16(np.sqrt(np.dot(x.reshape(-1), x.reshape(-1))), bf16)
        norm = max(norm, _round_bf16(np.float32(eps), bf16))
        x = _round_bf16(x / norm, bf16)
        fa, fb, fc = np.float32(a), np.float32(b), np.float32(c)
        for _ in range(ns_steps):
            gram = _round_bf16(x @ x.T, bf16)
            gram_update = _round_bf16(fb * gram + fc * (gram @ gram), bf16)
            x = _round_bf16(fa * x + gram_update @ x, bf16)
    else:
        dtype = np.dtype(np.float32 if ns_dtype == "float32" else grad.dtype)
        x = grad.astype(dtype)
        if transpose:
            x = np.ascontiguousarray(x.T)
        flat = x.reshape(-1)
        x /= max(np.sqrt(np.dot(flat, flat)), dtype.type(eps))
        fa, fb, fc = (dtype.type(v) for v in (a, b, c))
        for _ in range(ns_steps):
            gram = x @ x.T
            gram_update = fb * gram + fc * (gram @ gram)
            x = fa * x + gram_update @ x
    return x.T if transpose else x


def _adjust_lr(lr: float, adjust_lr_fn: str | None, param_shape) -> float:
    """lr scaled so that the orthogonalized update has a shape-independent RMS."""
    rows, cols = param_shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        adjusted_ratio = math.sqrt(max(1, rows / cols))
    elif adjust_lr_fn == "match_rms_adamw":
        adjusted_ratio = 0.2 * math.sqrt(max(rows, cols))
    else:
        adjusted_ratio = 1.0
    return lr * adjusted_ratio


class Muon(Float32Or64Only, Optimizer):
    """Muon (Jordan et al., 2024), as ``torch.optim.Muon``, for 2-D parameters only.

    With g the gradient and mu the momentum::

        B <- mu * B + (1 - mu) * g              (torch's lerp; its docstring says mu*B + g)
        U = lerp(g, B, mu) if nesterov else B
        O = NewtonSchulz(U)                      (ns_steps quintic iterations)
        p <- p * (1 - lr * weight_decay)         (the unadjusted lr)
        p <- p - adjust(lr, shape) * O

    where adjust is ``lr * sqrt(max(1, rows / cols))`` for ``adjust_lr_fn`` None or
    "original" (Keller Jordan's) and ``0.2 * lr * sqrt(max(rows, cols))`` for
    "match_rms_adamw" (Moonshot's). State per parameter: ``momentum_buffer`` (zeros at
    the start); no ``step``. There is no ``maximize``.

    **Precision of the Newton-Schulz iteration.** torch runs it in bfloat16. numoptim
    runs it in float32 with NumPy's BLAS by default (``ns_dtype="float32"``), which is
    faster on CPUs and more accurate; ``ns_dtype="param"`` uses the parameter's dtype,
    and ``ns_dtype="bfloat16"`` emulates torch's bfloat16 arithmetic with ml_dtypes
    (an optional dependency) to follow torch closely. Measured against torch 2.13 over
    20 steps (parameters of shapes (1, 9) to (33, 20), lr 0.01 to 0.02, five option
    sets), the largest difference of any parameter element, relative to ``max(1, |p|)``:

    - ``"bfloat16"``: 1.2e-4, with the median element bit-identical (a bfloat16
      rounding boundary is crossed differently where float32 sums accumulate in
      another order than torch's);
    - ``"float32"``: 2.1e-3, median 2.5e-4 (the bfloat16 rounding torch does, up to
      0.4% of each update element, is absent);
    - against torch's own iteration run in the parameter's dtype instead of bfloat16,
      ``"param"`` agrees to 2.4e-7 (float32) and 6.7e-16 (float64).

    ``ns_dtype`` is a numoptim addition: it is not a group hyperparameter, so groups,
    ``__repr__`` and ``state_dict`` stay exactly torch's.

    Parameters must be float32 or float64: float16 and bfloat16 ones, which torch steps,
    raise TypeError when added and at each step. A complex one raises torch's
    ``RuntimeError("Muon does not support complex parameters")`` at the step, once it
    has a gradient, before anything is written.

    Args:
        params: 2-D float32 or float64 parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        weight_decay: decoupled weight decay (default 0.1).
        momentum: momentum factor (default 0.95).
        nesterov: use Nesterov momentum (default True).
        ns_coefficients: (a, b, c) of the quintic iteration (default (3.4445, -4.775, 2.0315)).
        eps: floor of the Frobenius norm that normalizes the input (default 1e-7).
        ns_steps: number of Newton-Schulz iterations, below 100 (default 5).
        adjust_lr_fn: None, "original" or "match_rms_adamw" (default None).
        ns_dtype: "float32" (default), "param" or "bfloat16" (numoptim only, keyword).

    Raises:
        ValueError: an invalid hyperparameter, or a parameter that is not 2-D.
        TypeError: a parameter that is not float32 or float64 (complex ones: see above).
    """

    _name = "Muon"

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (DEFAULT_A, DEFAULT_B, DEFAULT_C),
        eps: float = EPS,
        ns_steps: int = DEFAULT_NS_STEPS,
        adjust_lr_fn: str | None = None,
        *,
        ns_dtype: str = "float32",
    ) -> None:
        if isinstance(lr, np.ndarray) and lr.size != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"momentum should be >= 0 but is: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
        if adjust_lr_fn is not None and adjust_lr_fn not in ["original", "match_rms_adamw"]:
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        if ns_dtype not in _NS_DTYPES:
            raise ValueError(f"ns_dtype must be one of {_NS_DTYPES}, but got {ns_dtype!r}")
        if ns_dtype == "bfloat16":
            _bfloat16()
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_coefficients": ns_coefficients,
            "eps": eps,
            "ns_steps": ns_steps,
            "adjust_lr_fn": adjust_lr_fn,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(
                        "Muon only supports 2D parameters whereas we found a parameter with "
                        f"size: {_torch_size(p.shape)}"
                    )
        self.ns_dtype = ns_dtype

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["ns_dtype"] = self.ns_dtype
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        ns_dtype = state.pop("ns_dtype", getattr(self, "ns_dtype", "float32"))
        super().__setstate__(state)
        self.ns_dtype = ns_dtype

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Performs one optimization step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if isinstance(grad, np.ndarray) and grad.ndim != 2:
                    raise ValueError("Param gradient must be a 2D matrix")
        check_step_inputs(self, "Muon", lambda p: {"momentum_buffer": (p.shape, p.dtype)})
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = lr_value(group["lr"])
        weight_decay = group["weight_decay"]
        momentum = group["momentum"]
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = np.zeros_like(grad)
            buf = state["momentum_buffer"]
            lerp(buf, grad, 1 - momentum, out=buf)
            update = lerp(grad, buf, momentum) if group["nesterov"] else buf
            update = _zeropower_via_newtonschulz(
                update, group["ns_coefficients"], group["ns_steps"], group["eps"], self.ns_dtype
            )
            adjusted_lr = _adjust_lr(lr, group["adjust_lr_fn"], p.shape)
            dtype = p.dtype.type
            p *= dtype(1 - lr * weight_decay)
            p += update.astype(p.dtype, copy=False) * dtype(-adjusted_lr)


def _torch_size(shape: tuple[int, ...]) -> str:
    """A shape as torch prints a Size: ``torch.Size([3])``."""
    return f"torch.Size([{', '.join(str(n) for n in shape)}])"
