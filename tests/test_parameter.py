"""numoptim.Parameter: shares memory, settable grad, identity hash, NumPy behaviour."""

from __future__ import annotations

import copy
import pickle

import numoptim
import numpy as np
import pytest
from numoptim import Parameter


def test_shares_memory_with_contiguous_float_array():
    for dtype in (np.float32, np.float64):
        data = np.arange(6, dtype=dtype).reshape(2, 3)
        p = Parameter(data)
        assert np.shares_memory(p, data) and p.dtype == dtype and p.shape == (2, 3)
        assert isinstance(p, np.ndarray)


def test_dtype_argument_and_conversions():
    assert Parameter([1, 2, 3]).dtype == np.float64
    assert Parameter([1, 2, 3], dtype=np.float32).dtype == np.float32
    # Complex parameters share memory as real ones do (torch.optim steps them).
    data = np.zeros(2, complex)
    assert Parameter(data).dtype == np.complex128
    assert np.shares_memory(Parameter(data), data)
    assert Parameter([1 + 2j], dtype=np.complex64).dtype == np.complex64
    with pytest.raises(
        TypeError,
        match=(
            "Parameter supports float32, float64, float16, bfloat16, complex64 and complex128 "
            f"data, got {np.dtype(np.clongdouble).name}"
        ),
    ):
        Parameter(np.zeros(2, np.clongdouble))


def test_identity_hash_and_elementwise_eq():
    a = Parameter(np.zeros(3))
    b = Parameter(np.zeros(3))
    assert hash(a) != hash(b)
    d = {a: 1, b: 2}
    assert d[a] == 1 and d[b] == 2
    assert (a == b).all()  # == stays NumPy's elementwise comparison


def test_in_place_update_keeps_object_and_arithmetic_gives_plain_array():
    p = Parameter(np.ones(3, np.float32))
    same = p
    p -= 0.5
    assert p is same and isinstance(p, Parameter)
    result = p * 2
    assert type(result) is np.ndarray
    assert Parameter(np.ones(3))[1:].grad is None


def test_grad_round_trips_through_pickle_and_deepcopy():
    p = Parameter(np.arange(3.0))
    p.grad = np.ones(3)
    for q in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p)):
        assert isinstance(q, Parameter)
        np.testing.assert_array_equal(q, p)
        np.testing.assert_array_equal(q.grad, p.grad)
        assert q.grad is not p.grad


def test_repr():
    assert repr(Parameter(np.zeros(2, np.float32))).startswith(
        "Parameter containing:\narray([0., 0.]"
    )


def test_a_subclass_or_a_patched_class_that_redefines_grad_is_read_through_it():
    # The native step reads a Parameter's gradient from its __dict__ while the class
    # keeps numoptim's own `grad` property; a redefinition must still be honoured.
    class Scaled(Parameter):
        @property
        def grad(self):
            return None if self._grad is None else 2 * self._grad

        @grad.setter
        def grad(self, value):
            self._grad = value

    plain, scaled = Parameter(np.zeros(3, np.float32)), Scaled(np.zeros(3, np.float32))
    plain.grad = np.full(3, 2.0, np.float32)
    scaled.grad = np.ones(3, np.float32)
    numoptim.SGD([plain], lr=0.5).step()
    numoptim.SGD([scaled], lr=0.5).step()
    np.testing.assert_array_equal(scaled, plain)

    original = Parameter.grad
    try:
        Parameter.grad = property(lambda self: np.full(3, 4.0, np.float32))
        patched = Parameter(np.zeros(3, np.float32))
        numoptim.SGD([patched], lr=0.5).step()
        np.testing.assert_array_equal(patched, np.full(3, -2.0, np.float32))
    finally:
        Parameter.grad = original
    again = Parameter(np.zeros(3, np.float32))
    again.grad = np.ones(3, np.float32)
    numoptim.SGD([again], lr=0.5).step()
    np.testing.assert_array_equal(again, np.full(3, -0.5, np.float32))
