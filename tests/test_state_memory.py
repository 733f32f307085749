"""Optimizer state that numoptim allocates: aligned, huge-page sized when large."""

import numoptim
import numpy as np
import pytest
from numoptim import Parameter

HUGE_PAGE = 2 << 20


def address(a):
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize(
    "name", ["Adam", "SGD", "Adagrad", "RMSprop", "Adam8bit", "Lion8bit", "AdEMAMix8bit"]
)
def test_large_state_starts_on_a_huge_page_and_small_on_a_line(name):
    big = Parameter(np.ones(1 << 22, np.float32))  # 16 MiB: 4 MiB of 8-bit state
    small = Parameter(np.ones(100, np.float32))
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    opt = getattr(numoptim, name)([big, small], lr=1e-3, **kwargs)
    for p in (big, small):
        p.grad = np.ones_like(p)
    opt.step()
    arrays = {
        p: [v for v in opt.state[p].values() if isinstance(v, np.ndarray) and v.ndim > 0]
        for p in (big, small)
    }
    assert arrays[big] and arrays[small]
    for a in arrays[big]:
        if a.nbytes >= HUGE_PAGE:
            assert address(a) % HUGE_PAGE == 0
    assert any(a.nbytes >= HUGE_PAGE for a in arrays[big])
    for a in arrays[small]:
        assert address(a) % 64 == 0 and a.flags.writeable and a.flags.c_contiguous


def test_state_zeros_is_zero_and_owns_its_memory():
    a = numoptim._core.state_zeros((3, HUGE_PAGE // 4 + 1), np.float32)
    assert a.shape == (3, HUGE_PAGE // 4 + 1) and a.dtype == np.float32 and not a.any()
    a[...] = 1.5
    b = a.copy()
    del a  # freed with the array; the copy is NumPy's own
    assert (b == 1.5).all()
    ml_dtypes = pytest.importorskip("ml_dtypes")
    c = numoptim._core.state_zeros((5,), ml_dtypes.bfloat16)
    assert c.dtype == ml_dtypes.bfloat16 and not c.astype(np.float32).any()


@pytest.mark.parametrize("flat", [False, True])
def test_state_keys_are_interned_when_created_and_when_loaded(flat):
    # The native step looks state up by interned str: a key stored as another str object
    # would be compared character by character on every lookup, every step.
    import sys

    from numoptim.utils import flat_parameters

    arrays = [np.ones(5, np.float32), np.ones(3, np.float32)]
    params = flat_parameters(arrays) if flat else [Parameter(a) for a in arrays]
    opt = numoptim.Adam(params, lr=1e-3, amsgrad=True)
    for p in params:
        p.grad = np.ones_like(p)
    opt.step()
    saved = opt.state_dict()
    # Keys as a pickle or a torch conversion makes them: equal strings, other objects.
    saved["state"] = {
        i: {"".join(list(k)): v for k, v in entry.items()} for i, entry in saved["state"].items()
    }
    assert all(k is not sys.intern(k) for entry in saved["state"].values() for k in entry)
    for optimizer in (opt, numoptim.Adam(params, lr=1e-3, amsgrad=True)):
        if optimizer is not opt:
            optimizer.load_state_dict(saved)
        for p in params:
            keys = list(optimizer.state[p])
            assert sorted(keys) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
            assert all(k is sys.intern(k) for k in keys)
