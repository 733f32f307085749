"""numoptim.save / numoptim.load: round trips, atomic writes, rejecting bad files."""

from __future__ import annotations

import math
import os

import numoptim
import numpy as np
import pytest
from numoptim import Adam, Parameter


def trained_state_dict():
    w = Parameter(np.linspace(-1, 1, 7).astype(np.float32))
    b = Parameter(np.zeros(3))
    opt = Adam([{"params": [w]}, {"params": [b], "lr": np.array(0.5)}], amsgrad=True)
    for _ in range(3):
        w.grad = np.ones(7, np.float32)
        b.grad = np.full(3, -2.0)
        opt.step()
    return opt.state_dict()


def test_round_trip_preserves_structure_types_and_bits(tmp_path):
    obj = {
        "sd": trained_state_dict(),
        "misc": [None, True, False, 3, -(2**70), 1.5, math.inf, -math.inf, "text", (1, (2.5, "x"))],
        "nan": math.nan,
        "scalar": np.float32(2.5),
        "empty": np.zeros((0, 3), np.float64),
        "ints": np.arange(5, dtype=np.int64),
    }
    path = tmp_path / "ckpt.numoptim"
    numoptim.save(obj, path)
    back = numoptim.load(path)
    sd, sd_back = obj["sd"], back["sd"]
    assert sd_back["param_groups"] == [
        {k: v for k, v in g.items()} for g in sd_back["param_groups"]
    ]
    assert [sorted(g) for g in sd_back["param_groups"]] == [sorted(g) for g in sd["param_groups"]]
    assert sd_back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert isinstance(sd_back["param_groups"][0]["betas"], tuple)
    lr = sd_back["param_groups"][1]["lr"]
    assert isinstance(lr, np.ndarray) and lr.shape == () and lr == 0.5
    assert sorted(sd_back["state"]) == [0, 1]
    for i in (0, 1):
        for key, value in sd["state"][i].items():
            got = sd_back["state"][i][key]
            assert got.dtype == value.dtype and got.shape == value.shape
            np.testing.assert_array_equal(got, value)
    assert back["misc"][:4] == [None, True, False, 3]
    assert back["misc"][4] == -(2**70) and back["misc"][6:] == [
        math.inf,
        -math.inf,
        "text",
        (1, (2.5, "x")),
    ]
    assert math.isnan(back["nan"])
    assert isinstance(back["scalar"], np.float32) and back["scalar"] == 2.5
    assert back["empty"].shape == (0, 3) and back["ints"].dtype == np.int64


def test_load_into_optimizer_continues_identically(tmp_path):
    w = Parameter(np.linspace(-1, 1, 9).astype(np.float32))
    opt = Adam([w], lr=0.1)
    for _ in range(2):
        w.grad = np.ones(9, np.float32)
        opt.step()
    numoptim.save(opt.state_dict(), tmp_path / "a")
    w2 = Parameter(np.array(w))
    opt2 = Adam([w2], lr=0.3)
    opt2.load_state_dict(numoptim.load(tmp_path / "a"))
    assert opt2.param_groups[0]["lr"] == 0.1
    for o, p in ((opt, w), (opt2, w2)):
        p.grad = np.full(9, 0.25, np.float32)
        o.step()
    np.testing.assert_array_equal(w, w2)


def test_truncated_file_rejected(tmp_path):
    path = tmp_path / "ckpt"
    numoptim.save(trained_state_dict(), path)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 40, 10):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated|not a numoptim checkpoint"):
            numoptim.load(path)


def test_altered_file_rejected(tmp_path):
    path = tmp_path / "ckpt"
    numoptim.save(trained_state_dict(), path)
    data = bytearray(path.read_bytes())
    for position in (30, len(data) // 2, len(data) - 40):
        altered = bytearray(data)
        altered[position] ^= 0x01
        path.write_bytes(bytes(altered))
        with pytest.raises(ValueError, match="corrupted|not a numoptim checkpoint"):
            numoptim.load(path)


def test_not_a_checkpoint_rejected(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="is not a numoptim checkpoint"):
        numoptim.load(path)


def test_unsupported_objects_rejected_and_nothing_written(tmp_path):
    path = tmp_path / "ckpt"
    with pytest.raises(TypeError, match="numoptim.save cannot store objects of type function"):
        numoptim.save({"f": lambda: 1}, path)
    with pytest.raises(TypeError, match="cannot store arrays of dtype object"):
        numoptim.save({"a": np.array([None])}, path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind


def test_save_replaces_atomically(tmp_path):
    path = tmp_path / "ckpt"
    numoptim.save({"v": 1}, path)
    numoptim.save({"v": 2}, path)
    assert numoptim.load(path) == {"v": 2}
    assert os.listdir(tmp_path) == ["ckpt"]


def test_loading_runs_no_code(tmp_path):
    # The format has no pickle: a file is data only. A state dict with a custom class
    # cannot even be written.
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(TypeError):
        numoptim.save({"x": Evil()}, tmp_path / "c")
