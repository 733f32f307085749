"""float16 and bfloat16 in the Python layer: Parameter, save/load, state dicts, NumPy optimizers.

The native step of these dtypes is not exercised here: nothing here calls the step of a
native optimizer (SGD, Adam), whose state is built by hand instead. bfloat16 is ``ml_dtypes.bfloat16``; its tests skip where
ml_dtypes is not installed (it is in the test extra), except those that hide it on
purpose to check the message a user without it gets.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys

import numoptim
import numpy as np
import pytest
from numoptim import LBFGS, SGD, Adafactor, Adam, Muon, Parameter, serialization

LOW_PRECISION = ["float16", "bfloat16"]


def dtype_of(name: str) -> np.dtype:
    """The dtype called ``name``, skipping the test when bfloat16 has no ml_dtypes."""
    if name == "bfloat16":
        return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    return np.dtype(name)


def from_bits(bits, dtype: np.dtype) -> np.ndarray:
    """An array of a 16-bit float dtype holding exactly the given bit patterns."""
    return np.array(bits, dtype=np.uint16).view(dtype)


def bits(array: np.ndarray) -> list[int]:
    return np.ascontiguousarray(array).view(np.uint16).reshape(-1).tolist()


def exactly(message: str) -> str:
    """A ``pytest.raises`` pattern that matches the whole message and nothing else."""
    return "^" + re.escape(message) + "$"


@pytest.fixture
def without_ml_dtypes(monkeypatch):
    """Makes ``import ml_dtypes`` fail, as for a user who has not installed it."""
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)


# Edge cases of both formats: zeros of both signs, the smallest subnormal, the largest
# finite value, infinities and NaNs with payloads (a quiet and a signaling one), which a
# round trip through float32 arithmetic would not keep.
SPECIAL_BITS = [0x0000, 0x8000, 0x0001, 0x3C00, 0x7BFF, 0x7F7F, 0x7C00, 0xFF80, 0x7FC1, 0x7D01]


# ------------------------------------------------------------------- Parameter


@pytest.mark.parametrize("name", LOW_PRECISION)
def test_parameter_shares_memory_with_a_contiguous_low_precision_array(name):
    dtype = dtype_of(name)
    data = from_bits(np.arange(6).reshape(2, 3) + 0x3F00, dtype)
    p = Parameter(data)
    assert type(p) is Parameter and p.dtype == dtype and p.shape == (2, 3)
    assert np.shares_memory(p, data)
    assert np.shares_memory(Parameter(data, dtype=name), data)
    p[0, 0] = 2
    assert bits(data)[0] == bits(np.array(2, dtype))[0]


@pytest.mark.parametrize("name", LOW_PRECISION)
def test_parameter_copies_a_strided_low_precision_array_once(name):
    dtype = dtype_of(name)
    data = from_bits(np.arange(8) + 0x3F00, dtype)[::2]
    p = Parameter(data)
    assert p.flags.c_contiguous and not np.shares_memory(p, data)
    assert bits(p) == [0x3F00, 0x3F02, 0x3F04, 0x3F06]


def test_parameter_dtype_argument_names_the_low_precision_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    for dtype in ("bfloat16", ml_dtypes.bfloat16, bf16):
        p = Parameter([1.0, 2.5, -3.0], dtype=dtype)
        assert p.dtype == bf16 and bits(p) == [0x3F80, 0x4020, 0xC040]
    for dtype in ("float16", np.float16):
        p = Parameter([1.0, 2.5, -3.0], dtype=dtype)
        assert p.dtype == np.float16 and bits(p) == [0x3C00, 0x4100, 0xC200]
    # Integers become the dtype asked for, not float64.
    assert Parameter([1, 2], dtype="bfloat16").dtype == bf16
    assert Parameter(np.array([1, 2], np.int64), dtype=np.float16).dtype == np.float16


def test_parameter_conversion_to_bfloat16_rounds_to_nearest_even():
    pytest.importorskip("ml_dtypes")
    # 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even 1; 1 + 3 * 2^-8
    # lies halfway between 1 + 2^-7 and 1 + 2^-6 and goes to the even 1 + 2^-6; just above
    # a halfway point goes up.
    data = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20], np.float32)
    p = Parameter(data, dtype="bfloat16")
    assert bits(p) == [0x3F80, 0x3F82, 0x3F81]


def test_parameter_bfloat16_by_name_without_ml_dtypes_says_what_to_install(without_ml_dtypes):
    with pytest.raises(
        ImportError,
        match=exactly(
            "Parameter(dtype='bfloat16') needs the optional package ml_dtypes "
            "(pip install ml_dtypes)"
        ),
    ):
        Parameter([1.0, 2.0], dtype="bfloat16")
    # float16 is NumPy's own and needs nothing more.
    assert Parameter(np.ones(2, np.float16)).dtype == np.float16


@pytest.mark.parametrize(
    ("data", "dtype", "got"),
    [
        (np.zeros(2, np.clongdouble), None, np.dtype(np.clongdouble).name),
        (np.zeros(2), np.int32, "int32"),
        (np.zeros(2, np.longdouble), None, np.dtype(np.longdouble).name),
    ],
)
def test_parameter_other_dtypes_rejected_naming_the_six_supported(data, dtype, got):
    supported = "float32, float64, float16, bfloat16, complex64 and complex128"
    with pytest.raises(
        TypeError,
        match=exactly(f"Parameter supports {supported} data, got {got}"),
    ):
        Parameter(data, dtype=dtype)


def test_parameter_other_ml_dtypes_types_rejected():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(
        TypeError,
        match=exactly(
            "Parameter supports float32, float64, float16, bfloat16, complex64 and complex128 "
            "data, got float8_e4m3fn"
        ),
    ):
        Parameter(np.zeros(2, ml_dtypes.float8_e4m3fn))


@pytest.mark.parametrize("name", LOW_PRECISION)
def test_grad_must_have_the_parameter_low_precision_dtype(name):
    dtype = dtype_of(name)
    p = Parameter(np.zeros(3, dtype))
    for wrong in (np.float32, np.float64, np.float16 if name == "bfloat16" else np.float32):
        with pytest.raises(
            TypeError,
            match=exactly(
                f"assigned grad has data of a different type: {np.dtype(wrong)} "
                f"(the parameter is {name})"
            ),
        ):
            p.grad = np.zeros(3, wrong)
        assert p.grad is None
    grad = from_bits([0x3F80, 0x0001, 0x8000], dtype)
    p.grad = grad
    assert p.grad is grad


@pytest.mark.parametrize("name", LOW_PRECISION)
def test_low_precision_parameter_pickles_and_deepcopies_bit_exactly(name):
    import copy
    import pickle

    dtype = dtype_of(name)
    p = Parameter(from_bits(SPECIAL_BITS, dtype))
    p.grad = from_bits(SPECIAL_BITS[::-1], dtype)
    for q in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p)):
        assert type(q) is Parameter and q.dtype == dtype and q.grad.dtype == dtype
        assert bits(q) == SPECIAL_BITS and bits(q.grad) == SPECIAL_BITS[::-1]
        assert not np.shares_memory(q, p)


# --------------------------------------------------------------- save and load


def header_of(path) -> dict:
    """The JSON header of a checkpoint file."""
    data = path.read_bytes()
    start = len(serialization.MAGIC) + 8
    (length,) = struct.unpack_from("<Q", data, len(serialization.MAGIC))
    return json.loads(data[start : start + length])


def write_crafted(path, header, payload=b""):
    """Writes ``header`` and ``payload`` as save would, with a valid digest."""
    head = json.dumps(header).encode()
    body = serialization.MAGIC + struct.pack("<Q", len(head)) + head + payload
    path.write_bytes(body + hashlib.sha256(body).digest())


def test_save_load_bfloat16_bit_exactly(tmp_path):
    bf16 = dtype_of("bfloat16")
    values = from_bits(SPECIAL_BITS, bf16)
    obj = {
        "vector": values,
        "matrix": values.reshape(2, 5),
        "strided": values[::3],
        "empty": np.zeros((0, 4), bf16),
        "zero_d": values[3:4].reshape(()),
        "scalar": values[5],
    }
    path = tmp_path / "ckpt"
    numoptim.save(obj, path)
    assert [entry["dtype"] for entry in header_of(path)["arrays"]] == ["bfloat16"] * 6
    back = numoptim.load(path)
    for key in ("vector", "matrix", "strided", "empty", "zero_d"):
        got, want = back[key], obj[key]
        assert type(got) is np.ndarray and got.dtype == bf16 and got.shape == want.shape
        assert bits(got) == bits(want) and got.flags.writeable and got.flags.c_contiguous
    assert type(back["scalar"]) is type(obj["scalar"]) and bits(np.asarray(back["scalar"])) == [
        SPECIAL_BITS[5]
    ]


def test_bfloat16_bytes_are_little_endian_in_the_file(tmp_path):
    bf16 = dtype_of("bfloat16")
    numoptim.save([from_bits([0x3F80, 0x1234], bf16)], tmp_path / "saved")
    # The crafted file holds what save writes: the name "bfloat16" and the bits low byte
    # first, so a file written on one machine reads the same on another.
    header = {
        "tree": [{"array": 0, "scalar": False}],
        "arrays": [{"dtype": "bfloat16", "shape": [2], "offset": 0, "nbytes": 4}],
    }
    write_crafted(tmp_path / "crafted", header, bytes([0x80, 0x3F, 0x34, 0x12]))
    assert (tmp_path / "crafted").read_bytes() == (tmp_path / "saved").read_bytes()


def test_save_load_float16_bit_exactly(tmp_path):
    values = from_bits(SPECIAL_BITS, np.dtype(np.float16))
    path = tmp_path / "ckpt"
    numoptim.save({"a": values, "s": values[2]}, path)
    assert [entry["dtype"] for entry in header_of(path)["arrays"]] == [np.dtype(np.float16).str] * 2
    back = numoptim.load(path)
    assert back["a"].dtype == np.float16 and bits(back["a"]) == SPECIAL_BITS
    assert type(back["s"]) is np.float16 and bits(np.asarray(back["s"])) == [SPECIAL_BITS[2]]


def test_load_bfloat16_without_ml_dtypes_says_what_to_install(tmp_path, monkeypatch):
    bf16 = dtype_of("bfloat16")
    numoptim.save({"a": np.ones(3, bf16)}, tmp_path / "ckpt")
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(
        ImportError,
        match=exactly(
            "loading a checkpoint that holds bfloat16 arrays needs the optional package "
            "ml_dtypes (pip install ml_dtypes)"
        ),
    ):
        numoptim.load(tmp_path / "ckpt")


def test_save_still_refuses_other_ml_dtypes_types(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    path = tmp_path / "ckpt"
    with pytest.raises(
        TypeError, match=exactly("numoptim.save cannot store arrays of dtype float8_e4m3fn")
    ):
        numoptim.save({"a": np.zeros(2, ml_dtypes.float8_e4m3fn)}, path)
    assert not path.exists()


@pytest.mark.parametrize(
    ("dtype", "nbytes", "message"),
    [
        # bfloat16's own dtype string reads back as two raw bytes, so it is refused.
        ("<V2", 4, r"array 0: dtype '<V2' is not allowed"),
        ("|V2", 4, r"array 0: dtype '\|V2' is not allowed"),
        ("BFLOAT16", 4, r"array 0: dtype 'BFLOAT16' is not allowed"),
        ("bfloat16 ", 4, r"array 0: dtype 'bfloat16 ' is not allowed"),
        ("float8_e4m3fn", 4, r"array 0: dtype 'float8_e4m3fn' is not allowed"),
        (
            "bfloat16",
            8,
            r"array 0: nbytes 8 does not match shape \[2\] and dtype bfloat16 \(4 bytes\)",
        ),
    ],
    ids=["void-little", "void-any", "upper-case", "trailing-space", "float8", "bf16-nbytes"],
)
def test_crafted_low_precision_entries_rejected(tmp_path, dtype, nbytes, message):
    # The exact-name checks come before ml_dtypes is imported; the size check after it.
    if dtype == "bfloat16":
        dtype_of("bfloat16")
    header = {
        "tree": [{"array": 0, "scalar": False}],
        "arrays": [{"dtype": dtype, "shape": [2], "offset": 0, "nbytes": nbytes}],
    }
    write_crafted(tmp_path / "c", header, bytes(nbytes))
    with pytest.raises(ValueError, match=message):
        numoptim.load(tmp_path / "c")


# ------------------------------------------------------------------ state dicts


def hand_built_state(name: str, dtype: np.dtype, n: int) -> dict:
    """A state as SGD (momentum) or Adam keeps it, built without stepping."""
    values = from_bits((np.arange(n) * 0x0F1D + 0x3000) & 0xFFFF, dtype)
    if name == "SGD":
        return {"momentum_buffer": values}
    return {
        "step": np.array(3, np.float32),
        "exp_avg": values,
        "exp_avg_sq": np.abs(values[::-1]).copy(),
    }


def assert_same_state(got: dict, want: dict) -> None:
    """Same keys, and arrays of the same dtype, shape and bits."""
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert got[key].tobytes() == value.tobytes(), key


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("name", LOW_PRECISION)
def test_low_precision_state_round_trips_through_state_dict_and_checkpoint(
    tmp_path, name, optimizer
):
    dtype = dtype_of(name)
    make = {"SGD": lambda ps: SGD(ps, lr=0.1, momentum=0.9), "Adam": lambda ps: Adam(ps)}[optimizer]
    params = [Parameter(np.zeros(n, dtype)) for n in (5, 3)]
    opt = make(params)
    for n, p in zip((5, 3), params):
        opt.state[p] = hand_built_state(optimizer, dtype, n)
    want = [dict(opt.state[p]) for p in params]

    targets = []
    numoptim.save(opt.state_dict(), tmp_path / "ckpt")
    for state_dict in (opt.state_dict(), numoptim.load(tmp_path / "ckpt")):
        fresh = [Parameter(np.zeros(n, dtype)) for n in (5, 3)]
        other = make(fresh)
        other.load_state_dict(state_dict)
        for p, state in zip(fresh, want):
            assert_same_state(other.state[p], state)
            # Loading copies: the new optimizer's buffers are its own.
            for key, value in other.state[p].items():
                assert not np.shares_memory(value, state[key])
        targets.append(other)
    assert targets[0].state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_float32_state_loaded_into_bfloat16_parameters_rounds_to_nearest_even():
    bf16 = dtype_of("bfloat16")
    p = Parameter(np.zeros(4, bf16))
    opt = Adam([p])
    ties = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8)], np.float32)
    state_dict = {
        "state": {
            0: {
                # A step saved by torch after loading into bfloat16 parameters is bfloat16.
                "step": from_bits(0x4040, bf16).reshape(()),
                "exp_avg": ties,
                "exp_avg_sq": ties.astype(np.float64),
            }
        },
        "param_groups": opt.state_dict()["param_groups"],
    }
    opt.load_state_dict(state_dict)
    state = opt.state[p]
    assert state["step"].dtype == np.float32 and state["step"].shape == () and state["step"] == 3
    for key in ("exp_avg", "exp_avg_sq"):
        assert state[key].dtype == bf16
        assert bits(state[key]) == [0x3F80, 0x3F82, 0x3F81, 0xBF80]


def test_bfloat16_state_loaded_into_float32_parameters_is_exact():
    bf16 = dtype_of("bfloat16")
    p = Parameter(np.zeros(len(SPECIAL_BITS), np.float32))
    opt = SGD([p], lr=0.1, momentum=0.9)
    buffer = from_bits(SPECIAL_BITS, bf16)
    state_dict = opt.state_dict()
    state_dict["state"] = {0: {"momentum_buffer": buffer}}
    opt.load_state_dict(state_dict)
    got = opt.state[p]["momentum_buffer"]
    # bfloat16 is the upper half of a float32: widening appends 16 zero bits.
    assert got.dtype == np.float32
    assert got.view(np.uint32).tolist() == [b << 16 for b in SPECIAL_BITS]


# ------------------------------------------------- Adafactor, Muon and LBFGS


def refusal(optimizer: str, index: int, dtype: str, shape: tuple[int, ...]) -> str:
    return exactly(
        f"{optimizer} supports float32, float64, complex64 and complex128 parameters, but "
        f"parameter {index} is "
        f"an array of dtype {dtype} and shape {shape}"
    )


NUMPY_OPTIMIZERS = {
    "Adafactor": lambda params: Adafactor(params, lr=0.1),
    "Muon": lambda params: Muon(params, lr=0.1),
    "LBFGS": lambda params: LBFGS(params, lr=0.1),
}


@pytest.mark.parametrize("optimizer", sorted(NUMPY_OPTIMIZERS))
@pytest.mark.parametrize("name", LOW_PRECISION)
def test_numpy_optimizers_refuse_low_precision_parameters_when_built(optimizer, name):
    dtype = dtype_of(name)
    good = Parameter(np.ones((2, 3), np.float32))
    bad = Parameter(np.ones((3, 2), dtype))
    with pytest.raises(TypeError, match=refusal(optimizer, 1, name, (3, 2))):
        NUMPY_OPTIMIZERS[optimizer]([good, bad])


@pytest.mark.parametrize("optimizer", sorted(NUMPY_OPTIMIZERS))
@pytest.mark.parametrize("name", LOW_PRECISION)
def test_numpy_optimizers_refuse_a_low_precision_group_added_later(optimizer, name):
    dtype = dtype_of(name)
    opt = NUMPY_OPTIMIZERS[optimizer]([Parameter(np.ones((2, 3), np.float32))])
    groups_before = [dict(group) for group in opt.param_groups]
    with pytest.raises(TypeError, match=refusal(optimizer, 0, name, (4, 4))):
        opt.add_param_group({"params": [Parameter(np.ones((4, 4), dtype))]})
    # The refused group is not left half-added.
    assert opt.param_groups == groups_before


@pytest.mark.parametrize("optimizer", ["Adafactor", "Muon"])
@pytest.mark.parametrize("name", LOW_PRECISION)
def test_adafactor_and_muon_refuse_low_precision_at_step_before_writing(optimizer, name):
    dtype = dtype_of(name)
    good = Parameter(np.ones((2, 3), np.float32))
    other = Parameter(np.ones((3, 2), np.float32))
    opt = NUMPY_OPTIMIZERS[optimizer]([good, other])
    # A low-precision parameter slipped into a group after construction (as a loaded
    # pickle could hold) is refused by the step, after the float32 one was checked and
    # before it was updated.
    bad = Parameter(np.ones((3, 2), dtype))
    bad.grad = np.ones((3, 2), dtype)
    good.grad = np.ones((2, 3), np.float32)
    opt.param_groups[0]["params"][1] = bad
    with pytest.raises(TypeError, match=refusal(optimizer, 1, name, (3, 2))):
        opt.step()
    assert bits(bad) == [bits(np.array(1, dtype))[0]] * 6
    np.testing.assert_array_equal(good, np.ones((2, 3), np.float32))
    assert len(opt.state) == 0


@pytest.mark.parametrize("name", LOW_PRECISION)
def test_lbfgs_refuses_low_precision_at_step_before_calling_the_closure(name):
    dtype = dtype_of(name)
    good = Parameter(np.ones(3, np.float32))
    opt = LBFGS([good], lr=0.1)
    bad = Parameter(np.ones(2, dtype))
    opt.param_groups[0]["params"].append(bad)
    calls = []

    def closure():
        calls.append(1)
        good.grad = np.ones(3, np.float32)
        bad.grad = np.ones(2, dtype)
        return 1.0

    # A parameter without a grad is still written by L-BFGS, so it is refused too.
    with pytest.raises(TypeError, match=refusal("LBFGS", 1, name, (2,))):
        opt.step(closure)
    assert calls == [] and len(opt.state) == 0
    np.testing.assert_array_equal(good, np.ones(3, np.float32))
