"""Gradients from the tools NumPy users have: DLPack, buffer-protocol and __array__
objects (JAX, torch), and HIPS autograd differentiating with respect to Parameters."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numoptim
import numpy as np
import pytest
from numoptim import Parameter

NUMPY_2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


class DLPackOnly:
    """An array that offers nothing but DLPack, as a JAX or torch array on the CPU does."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class ArrayOnly:
    """An object with ``__array__`` only; ``copies`` makes it one that can only copy."""

    def __init__(self, array, copies=False):
        self._array, self._copies = array, copies

    def __array__(self, dtype=None, copy=None):
        if self._copies:
            if copy is False:
                raise ValueError("this object can only give a copy")
            return self._array.copy()
        return self._array


def test_dlpack_grad_is_stored_as_a_view_without_a_copy():
    source = np.arange(6, dtype=np.float32).reshape(2, 3)
    p = Parameter(np.zeros((2, 3), np.float32))
    p.grad = DLPackOnly(source)
    assert type(p.grad) is np.ndarray and np.shares_memory(p.grad, source)
    np.testing.assert_array_equal(p.grad, source)


def test_buffer_protocol_grad_is_stored_as_a_view_without_a_copy():
    source = np.arange(4, dtype=np.float64)
    p = Parameter(np.zeros(4))
    p.grad = memoryview(source)
    assert type(p.grad) is np.ndarray and np.shares_memory(p.grad, source)


@pytest.mark.skipif(not NUMPY_2, reason="NumPy 1 cannot promise that __array__ makes no copy")
def test_array_protocol_grad_without_a_copy_is_taken():
    source = np.arange(4, dtype=np.float32)
    p = Parameter(np.zeros(4, np.float32))
    p.grad = ArrayOnly(source)
    assert np.shares_memory(p.grad, source)


def test_an_object_that_can_only_copy_is_refused_with_the_types_named():
    p = Parameter(np.zeros(4, np.float32))
    for grad in (ArrayOnly(np.ones(4, np.float32), copies=True), [0.0, 1.0, 2.0, 3.0]):
        with pytest.raises(TypeError, match="an array NumPy can view without a copy"):
            p.grad = grad
        assert p.grad is None


@pytest.mark.parametrize(
    "make",
    [DLPackOnly, memoryview] + ([ArrayOnly] if NUMPY_2 else []),
    ids=["dlpack", "buffer"] + (["array"] if NUMPY_2 else []),
)
def test_foreign_grads_of_another_dtype_or_shape_are_refused_not_converted(make):
    p = Parameter(np.zeros(4, np.float32))
    p.grad = np.ones(4, np.float32)
    before = p.grad
    with pytest.raises(TypeError, match=r"different type: float64 \(the parameter is float32\)"):
        p.grad = make(np.ones(4, np.float64))
    with pytest.raises(ValueError, match=r"different size: \(5,\) \(the parameter is \(4,\)\)"):
        p.grad = make(np.ones(5, np.float32))
    assert p.grad is before


def test_a_read_only_foreign_grad_steps_every_native_optimizer():
    # JAX hands out read-only memory; the step only reads gradients.
    for name in ("SGD", "Adam", "AdamW", "Adagrad", "RMSprop"):
        source = np.linspace(-1, 1, 8, dtype=np.float32)
        source.flags.writeable = False
        p, q = Parameter(np.ones(8, np.float32)), Parameter(np.ones(8, np.float32))
        p.grad = DLPackOnly(source)
        q.grad = source.copy()
        getattr(numoptim, name)([p], lr=0.1).step()
        getattr(numoptim, name)([q], lr=0.1).step()
        np.testing.assert_array_equal(p, q, err_msg=name)


JAX_RUN = """
import jax
import jax.numpy as jnp
import numpy as np
import numoptim
w = numoptim.Parameter(np.linspace(-1, 1, 5, dtype=np.float32))
w.grad = jax.grad(lambda v: jnp.sum(v**2))(jnp.asarray(w))
assert type(w.grad) is np.ndarray
np.testing.assert_array_equal(w.grad, 2 * np.linspace(-1, 1, 5, dtype=np.float32))
expected = w - np.float32(0.1) * w.grad
numoptim.SGD([w], lr=0.1).step()
np.testing.assert_array_equal(w, expected)
try:
    w.grad = jnp.ones(5, jnp.float64 if jax.config.jax_enable_x64 else jnp.float16)
except TypeError as error:
    print(error)
"""


def test_jax_gradients_step_an_optimizer():
    pytest.importorskip("jax")
    # In a fresh interpreter: JAX starts threads when imported, and a test process that
    # has imported it warns at every later fork() (tests/test_process.py forks).
    out = subprocess.run(
        [sys.executable, "-c", JAX_RUN], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout
        == "assigned grad has data of a different type: float16 (the parameter is float32)\n"
    )


@pytest.mark.torch
def test_torch_cpu_tensors_are_taken_without_a_copy():
    torch = pytest.importorskip("torch")
    source = torch.arange(4, dtype=torch.float32)
    p = Parameter(np.zeros(4, np.float32))
    p.grad = source
    source[0] = 7.0
    assert p.grad[0] == 7.0


AUTOGRAD_RUN = """
import numpy as np
{imports}
import autograd.numpy as anp
w = numoptim.Parameter(np.array([1.0, -2.0, 3.0]))
b = numoptim.Parameter(np.array(0.5))
grads = autograd.grad(lambda ps: anp.sum(ps[0] ** 2) + 3 * ps[1])([w, b])
assert all(type(g) is np.ndarray for g in grads), [type(g) for g in grads]
w.grad, b.grad = grads
numoptim.SGD([w, b], lr=0.25).step()
print(w.tolist(), float(b))
"""


@pytest.mark.parametrize(
    "imports",
    ["import autograd\nimport numoptim", "import numoptim\nimport autograd"],
    ids=["autograd-first", "numoptim-first"],
)
def test_autograd_differentiates_with_respect_to_parameters(imports):
    pytest.importorskip("autograd")
    # A fresh interpreter per import order: registration happens at import time.
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(AUTOGRAD_RUN.format(imports=imports))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[0.5,", "-1.0,", "1.5]", "-0.25"]


FAKE_AUTOGRAD = """
import sys, types
sys.modules["autograd"] = types.ModuleType("autograd")
import numpy as np, numoptim
print(numoptim.Parameter(np.zeros(2)).shape)
"""


def test_a_module_named_autograd_that_is_not_hips_autograd_changes_nothing():
    out = subprocess.run(
        [sys.executable, "-c", FAKE_AUTOGRAD],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "(2,)\n"
