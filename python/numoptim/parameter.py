"""``Parameter``: a NumPy array that an optimizer updates in place."""

from __future__ import annotations

import copy
import operator

import numpy as np

from .sparse import RowSparseGrad

__all__ = ["Parameter"]


def _set_grad(self: Parameter, grad) -> None:
    if grad is not None:
        if not isinstance(grad, (np.ndarray, RowSparseGrad)):
            raise TypeError(
                f"assigned grad expected to be a numpy.ndarray, a RowSparseGrad or None "
                f"but got {type(grad).__name__}"
            )
        if grad.dtype != self.dtype:
            raise TypeError(
                f"assigned grad has data of a different type: {grad.dtype} "
                f"(the parameter is {self.dtype})"
            )
        if grad.shape != self.shape:
            raise ValueError(
                f"assigned grad has data of a different size: {grad.shape} "
                f"(the parameter is {self.shape})"
            )
        if isinstance(grad, np.ndarray):
            _check_dense_grad(self, grad)
    self._grad = grad


def _check_dense_grad(param: np.ndarray, grad: np.ndarray) -> None:
    """What the native step would reject in a dense grad, rejected when it is assigned.

    The messages are the step's (cpp/src/group_buffers.cpp), for "the assigned grad".
    """
    flags = grad.flags
    if not flags.c_contiguous:
        raise ValueError(
            "the assigned grad is not C-contiguous: numoptim updates arrays in place and "
            "needs contiguous memory (use np.ascontiguousarray)"
        )
    if not flags.aligned:
        raise ValueError(
            "the assigned grad is not aligned to its element size (use "
            "np.require(a, requirements='A'))"
        )
    # The step reads grad[k] as it writes param[k]: a grad that overlaps its parameter
    # at an offset would be read after part of it was overwritten.
    grad_at = grad.__array_interface__["data"][0]
    param_at = param.__array_interface__["data"][0]
    if (
        grad_at != param_at
        and grad_at < param_at + param.nbytes
        and param_at < grad_at + grad.nbytes
    ):
        raise ValueError("the assigned grad overlaps the parameter's memory at an offset")


class Parameter(np.ndarray):
    """A float array that optimizers update in place, with a settable ``grad``.

    ``Parameter(data)`` shares memory with ``data`` when it is already a C-contiguous
    float32 or float64 array of the requested dtype (no copy); anything else (a list, a
    strided view, another dtype) is copied once into a new contiguous array. The object
    hashes by identity, so it can key ``optimizer.state`` as a torch tensor does, while
    ``==`` stays NumPy's elementwise comparison.

    Args:
        data: array_like holding the initial values.
        dtype: float32 or float64; by default that of ``data`` (float64 for Python numbers).

    Example:
        >>> w = Parameter(np.zeros((2, 2), dtype=np.float32))
        >>> w.grad = np.ones_like(w)
    """

    __hash__ = object.__hash__

    def __new__(cls, data, dtype=None):
        array = np.asarray(data, dtype=dtype)
        if array.dtype.kind in "biu" and dtype is None:
            array = array.astype(np.float64)
        if array.dtype not in (np.float32, np.float64):
            raise TypeError(f"Parameter supports float32 and float64 data, got {array.dtype}")
        array = np.require(array, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        param = array.view(cls)
        param._grad = None
        return param

    def __array_finalize__(self, obj) -> None:
        # Views and results of arithmetic on a Parameter do not inherit its gradient.
        self._grad = None

    def __array_wrap__(self, array, context=None, return_scalar=False):
        # Arithmetic on a Parameter gives a plain array, as torch gives a plain Tensor;
        # an in-place update (`w -= x`) keeps the Parameter itself.
        if array is self:
            return self
        result = super().__array_wrap__(array, context, return_scalar)
        if isinstance(result, Parameter):
            return result.view(np.ndarray)
        return result

    def __reduce__(self):
        reconstruct, args, state = super().__reduce__()
        return reconstruct, args, (state, self._grad)

    def __setstate__(self, state) -> None:
        array_state, grad = state
        super().__setstate__(array_state)
        self._grad = grad

    def __deepcopy__(self, memo):
        copied = Parameter(np.array(self, copy=True))
        memo[id(self)] = copied
        copied._grad = copy.deepcopy(self._grad, memo)
        return copied

    def __repr__(self) -> str:
        return "Parameter containing:\n" + repr(self.view(np.ndarray))

    grad = property(
        operator.attrgetter("_grad"),
        _set_grad,
        doc="The gradient: None, an array of the parameter's shape and dtype, or a RowSparseGrad.",
    )
