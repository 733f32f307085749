"""``Parameter``: a NumPy array that an optimizer updates in place."""

from __future__ import annotations

import copy
import operator
import sys
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from . import _core
from .sparse import RowSparseGrad

__all__ = ["Parameter"]

# The dtypes a Parameter may hold, as its error message names them.
SUPPORTED_DTYPES = "float32, float64, float16, bfloat16, complex64 and complex128"
_FLOAT_DTYPES = (
    np.dtype(np.float32),
    np.dtype(np.float64),
    np.dtype(np.float16),
    np.dtype(np.complex64),
    np.dtype(np.complex128),
)


def bfloat16_dtype(purpose: str) -> np.dtype:
    """ml_dtypes' bfloat16 dtype, importing the optional package on first use.

    ml_dtypes is imported here rather than with numoptim, so that users who never touch
    bfloat16 neither need it nor pay for importing it.

    Args:
        purpose: what needs bfloat16, for the error message ("Parameter(dtype='bfloat16')").

    Raises:
        ImportError: ml_dtypes is not installed.
    """
    try:
        import ml_dtypes
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs the optional package ml_dtypes (pip install ml_dtypes)"
        ) from error
    return np.dtype(ml_dtypes.bfloat16)


def is_bfloat16(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is ml_dtypes' bfloat16, without importing ml_dtypes.

    An array of that dtype can only exist once ml_dtypes has been imported, so when it is
    not in ``sys.modules`` the answer is no. The name is compared first because other
    packages register their own dtypes called bfloat16, which are not this one.
    """
    if dtype.kind != "V" or dtype.name != "bfloat16":
        return False
    ml_dtypes = sys.modules.get("ml_dtypes")
    return ml_dtypes is not None and dtype == np.dtype(ml_dtypes.bfloat16)


def is_supported_dtype(dtype: np.dtype) -> bool:
    """Whether a Parameter may hold ``dtype``: float32, float64, float16, bfloat16,
    complex64 or complex128."""
    return dtype in _FLOAT_DTYPES or is_bfloat16(dtype)


def _zero_copy_array(grad) -> np.ndarray | None:
    """``grad`` as an ndarray over its own memory, or None if NumPy cannot view it so.

    Tried in order: DLPack (JAX and torch arrays on the CPU), the buffer protocol, and
    ``__array__`` with ``copy=False`` (NumPy 2; NumPy 1 cannot promise that no copy is
    made, so it is not used there). A DLPack export that fails (an array on another
    device, or of a dtype NumPy's DLPack import lacks, such as bfloat16) falls through
    to the others.
    """
    if hasattr(grad, "__dlpack__"):
        try:
            return np.from_dlpack(grad)
        except (BufferError, TypeError, ValueError, RuntimeError):
            pass
    try:
        return np.asarray(memoryview(grad))
    except (TypeError, ValueError):
        pass
    if hasattr(grad, "__array__") and np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        try:
            return np.asarray(grad, copy=False)
        except ValueError:  # the object can only give a copy
            pass
    return None


def _set_grad(self: Parameter, grad) -> None:
    if grad is not None and not isinstance(grad, (np.ndarray, RowSparseGrad)):
        # A JAX or torch array, a memoryview...: viewed without a copy, and then checked
        # like any array (a dtype or shape that differs is an error, never converted).
        view = _zero_copy_array(grad)
        if view is None:
            raise TypeError(
                f"assigned grad expected to be a numpy.ndarray, an array NumPy can view "
                f"without a copy (DLPack, buffer protocol, __array__), a RowSparseGrad or "
                f"None but got {type(grad).__name__}"
            )
        grad = view
    if isinstance(grad, np.ndarray):
        # dtype, shape, layout and overlap, with the native step's messages; natively,
        # since this runs once per parameter per step in every training loop.
        _core.check_assigned_grad(self, grad)
    elif grad is not None:  # a RowSparseGrad
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
    self._grad = grad


def register_with_autograd() -> None:
    """Lets HIPS autograd differentiate with respect to Parameters, once it is imported.

    autograd looks an argument's type up in its own tables, which know ``np.ndarray``
    but not its subclasses: ``autograd.grad(f)(param)`` would raise "Can't differentiate
    w.r.t. type Parameter". Parameter is entered there as an array (its gradients come
    back as plain ndarrays). Called when numoptim is imported and when a Parameter is
    made, so that either import order works; autograd itself is never imported here.
    """
    global _autograd_registered
    if _autograd_registered or "autograd" not in sys.modules:
        return
    try:
        from autograd.numpy.numpy_boxes import ArrayBox
        from autograd.numpy.numpy_vspaces import ArrayVSpace
    except ImportError:  # another package of that name, or a broken install: not ours to fix
        return
    ArrayBox.register(Parameter)
    ArrayVSpace.register(Parameter)
    _autograd_registered = True


_autograd_registered = False


_P = TypeVar("_P", bound="Parameter")


class Parameter(np.ndarray):
    """A float array that optimizers update in place, with a settable ``grad``.

    ``Parameter(data)`` shares memory with ``data`` when it is already a C-contiguous
    array of a supported dtype and of the requested dtype (no copy); anything else (a
    list, a strided view, another dtype) is copied once into a new contiguous array. The
    object hashes by identity, so it can key ``optimizer.state`` as a torch tensor does,
    while ``==`` stays NumPy's elementwise comparison.

    The supported dtypes are float32, float64, float16, ``ml_dtypes.bfloat16``,
    complex64 and complex128. bfloat16 needs the optional package ml_dtypes (``pip
    install ml_dtypes``), which numoptim imports only when bfloat16 is asked for by name.
    As in torch.optim, a complex parameter is stepped as the real pairs of its memory
    (``torch.view_as_real``), with its state in its complex dtype.

    Args:
        data: array_like holding the initial values.
        dtype: float32, float64, float16, bfloat16 (``ml_dtypes.bfloat16`` or the string
            ``"bfloat16"``), complex64 or complex128; by default that of ``data`` (float64
            for Python numbers).

    Raises:
        TypeError: the data (or ``dtype``) is of another dtype.
        ImportError: ``dtype="bfloat16"`` without ml_dtypes installed.

    Example:
        >>> w = Parameter(np.zeros((2, 2), dtype=np.float32))
        >>> w.grad = np.ones_like(w)
    """

    __hash__ = object.__hash__

    # A TypeVar, not typing.Self: Python 3.10 has no Self, and typing_extensions is not a
    # dependency.
    def __new__(cls: type[_P], data: Any, dtype: Any = None) -> _P:  # noqa: PYI019
        if isinstance(dtype, str) and dtype == "bfloat16":
            # NumPy knows the name only once ml_dtypes has been imported.
            dtype = bfloat16_dtype("Parameter(dtype='bfloat16')")
        array = np.asarray(data, dtype=dtype)
        if array.dtype.kind in "biu" and dtype is None:
            array = array.astype(np.float64)
        if not is_supported_dtype(array.dtype):
            got = str(array.dtype)
            if got == "bfloat16":
                # Another package's bfloat16 (an older TensorFlow's, say) has other bits.
                got += " of another package than ml_dtypes"
            raise TypeError(f"Parameter supports {SUPPORTED_DTYPES} data, got {got}")
        array = np.require(array, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        param = array.view(cls)
        param._grad = None
        if not _autograd_registered:
            register_with_autograd()
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

    if TYPE_CHECKING:
        # What a type checker sees; at run time, the property below (an attrgetter,
        # which the native step reads once per parameter: faster than a function).
        @property
        def grad(self) -> np.ndarray | RowSparseGrad | None:
            """The gradient: None, an array of the parameter's shape and dtype, or a
            RowSparseGrad."""

        @grad.setter
        def grad(self, grad: Any) -> None: ...

    else:
        grad = property(
            operator.attrgetter("_grad"),
            _set_grad,
            doc=(
                "The gradient: None, an array of the parameter's shape and dtype, or a "
                "RowSparseGrad. Any array NumPy can view without a copy (a JAX or torch "
                "CPU array, a memoryview) is stored as that ndarray view."
            ),
        )
