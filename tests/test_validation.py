"""Bad inputs: a clear error of the right type, and nothing modified (all-or-nothing)."""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from numoptim import SGD, Adam, AdamW, Parameter


def make(opt_cls, dtype=np.float32, **kwargs):
    good = Parameter(np.linspace(-1, 1, 10).astype(dtype))
    other = Parameter(np.linspace(1, 2, 6).astype(dtype).reshape(2, 3))
    opt = opt_cls([good, other], **kwargs)
    good.grad = np.ones(10, dtype)
    other.grad = np.ones((2, 3), dtype)
    opt.step()  # state exists now, so we can check it is left alone
    good.grad = np.full(10, 0.5, dtype)
    return opt, good, other


def frozen(opt):
    return [
        (np.array(p), {k: np.array(v) for k, v in opt.state[p].items()})
        for g in opt.param_groups
        for p in g["params"]
    ]


def assert_unchanged(opt, before):
    after = frozen(opt)
    for (p0, s0), (p1, s1) in zip(before, after):
        np.testing.assert_array_equal(p0, p1)
        assert s0.keys() == s1.keys()
        for k in s0:
            np.testing.assert_array_equal(s0[k], s1[k])


BAD_GRADS = [
    (
        lambda p: np.ones((3, 2), np.float32),
        ValueError,
        "the grad of parameter 1 has shape (3, 2) but the parameter has shape (2, 3)",
    ),
    (
        lambda p: np.ones((2, 3), np.float64),
        TypeError,
        "the grad of parameter 1 has dtype float64 but the parameter has dtype float32",
    ),
    (
        lambda p: np.ones((3, 2), np.float32).T,
        ValueError,
        "the grad of parameter 1 is not C-contiguous",
    ),
    (
        lambda p: [[1.0, 2.0, 3.0]] * 2,
        TypeError,
        "the grad of parameter 1 must be a numpy.ndarray, got list",
    ),
]


@pytest.mark.parametrize(
    "opt_cls,kwargs", [(SGD, {"lr": 0.1, "momentum": 0.9}), (Adam, {"amsgrad": True}), (AdamW, {})]
)
@pytest.mark.parametrize("bad_grad,exc,message", BAD_GRADS)
def test_bad_grad_raises_and_modifies_nothing(opt_cls, kwargs, bad_grad, exc, message):
    opt, _good, other = make(opt_cls, **kwargs)
    before = frozen(opt)
    # Bypass the Parameter.grad setter's own checks to reach the kernel's.
    other._grad = bad_grad(other)
    with pytest.raises(exc) as info:
        opt.step()
    assert str(info.value).startswith(message)
    assert_unchanged(opt, before)  # the good parameter before it was not updated either


def test_grad_setter_checks_shape_and_dtype():
    p = Parameter(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"assigned grad has data of a different size"):
        p.grad = np.zeros((3, 2), np.float32)
    with pytest.raises(TypeError, match=r"assigned grad has data of a different type"):
        p.grad = np.zeros((2, 3), np.float64)
    with pytest.raises(TypeError, match=r"assigned grad expected to be a numpy.ndarray"):
        p.grad = [[0.0] * 3] * 2
    assert p.grad is None


def test_read_only_parameter_rejected_without_changes():
    opt, _good, other = make(Adam)
    before = frozen(opt)
    other.flags.writeable = False
    with pytest.raises(ValueError, match="^parameter 1 is read-only$"):
        opt.step()
    assert_unchanged(opt, before)


def test_integer_parameter_rejected():
    p = Parameter(np.zeros(3, np.float32))
    p.grad = np.zeros(3, np.float32)
    opt = SGD([p], lr=0.1)
    bad = np.zeros(3, np.int64).view(Parameter)
    bad._grad = np.zeros(3, np.int64)
    opt.param_groups[0]["params"][0] = bad
    with pytest.raises(
        TypeError,
        match="numoptim optimizes float32, float64, float16, bfloat16, complex64 and complex128 "
        "arrays, but parameter 0 has dtype int64",
    ):
        opt.step()


@pytest.mark.parametrize(
    "key,bad,exc,message",
    [
        (
            "exp_avg",
            np.zeros((3, 2), np.float32),
            ValueError,
            "state['exp_avg'] of parameter 1 has shape (3, 2) but the parameter has shape (2, 3)",
        ),
        (
            "exp_avg_sq",
            np.zeros((2, 3), np.float64),
            TypeError,
            "state['exp_avg_sq'] of parameter 1 has dtype float64 but the parameter has dtype float32",
        ),
        (
            "exp_avg",
            np.zeros((3, 2), np.float32).T,
            ValueError,
            "state['exp_avg'] of parameter 1 is not C-contiguous",
        ),
        (
            "step",
            np.array(3.0),
            TypeError,
            "state['step'] of parameter 1 must be a 0-d float32 array",
        ),
        ("step", 3, TypeError, "state['step'] of parameter 1 must be a 0-d float32 array, got int"),
    ],
)
def test_bad_state_rejected_without_changes(key, bad, exc, message):
    opt, _good, other = make(Adam)
    opt.state[other][key] = bad
    before = frozen(opt)
    with pytest.raises(exc) as info:
        opt.step()
    assert str(info.value).startswith(message)
    assert_unchanged(opt, before)


def test_non_contiguous_parameter_is_copied_once_at_construction():
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    p = Parameter(base[:, ::2])  # strided: Parameter makes one contiguous copy
    assert p.flags.c_contiguous and not np.shares_memory(p, base)
    q = Parameter(base)  # contiguous: no copy
    assert np.shares_memory(q, base)


def test_threads_api():
    n = numoptim.get_num_threads()
    try:
        numoptim.set_num_threads(1)
        assert numoptim.get_num_threads() == 1
        with pytest.raises(ValueError, match="Number of threads must be positive, got 0"):
            numoptim.set_num_threads(0)
        with pytest.raises(TypeError):
            numoptim.set_num_threads(1.5)
    finally:
        numoptim.set_num_threads(n)


def test_show_config_reports_level_threads_compiler(capsys):
    numoptim.show_config()
    out = capsys.readouterr().out
    for field in ("numoptim", "simd_level", "num_threads", "openmp", "compiler"):
        assert field in out
    assert numoptim._core.simd_level() in out


@pytest.mark.parametrize(
    "name,option,value",
    [
        ("NAdamW", "caution", True),
        ("NAdamW", "clipping_threshold", 1.0),
        ("LaProp", "caution", True),
        ("Adopt", "caution", True),
        ("Adan", "caution", True),
    ],
)
def test_timm_options_needing_a_reduction_are_refused_before_anything_is_written(
    name, option, value
):
    """timm's Cautious variants and NAdamW's RMS clipping need a per-tensor mean or norm
    before the update, which the one-pass kernels do not compute: set in a later group
    after construction, they are refused at the step, and no group has been written."""
    first, second = numoptim.Parameter(np.ones(3)), numoptim.Parameter(np.ones(2))
    opt = getattr(numoptim, name)([{"params": [first]}, {"params": [second]}], lr=0.1)
    opt.param_groups[1][option] = value
    first.grad, second.grad = np.ones(3), np.ones(2)
    with pytest.raises(TypeError, match=f"{option}.* not supported"):
        opt.step()
    assert opt.state == {} and np.all(first == 1) and np.all(second == 1)
