"""numoptim.save / numoptim.load: round trips, atomic writes, rejecting bad files."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import stat
import struct
import subprocess
import sys
import time

import numoptim
import numpy as np
import pytest
from numoptim import Adam, Parameter, serialization

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(numoptim.__file__)))


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


# Crafted files. The digest only proves a file whole, so a hostile file carries a valid
# one; these helpers compute it as save does, over everything before it.


def write_crafted(path, header, payload=b""):
    """Writes ``header`` (an object, or JSON bytes) and ``payload`` with a valid digest."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = serialization.MAGIC + struct.pack("<Q", len(head)) + head + payload
    path.write_bytes(body + hashlib.sha256(body).digest())


def u8_entry(offset, nbytes, shape=None):
    return {
        "dtype": "|u1",
        "shape": [nbytes] if shape is None else shape,
        "offset": offset,
        "nbytes": nbytes,
    }


def array_node(index):
    return {"array": index, "scalar": False}


def test_crafted_file_helper_matches_save(tmp_path):
    # The helper writes what save writes, so the tests below differ from a valid file only
    # in what they mean to test.
    numoptim.save({"a": np.arange(3, dtype=np.uint8)}, tmp_path / "saved")
    header = {
        "tree": {"dict": [["a", array_node(0)]]},
        "arrays": [u8_entry(0, 3)],
    }
    write_crafted(tmp_path / "crafted", header, bytes([0, 1, 2]))
    assert (tmp_path / "crafted").read_bytes() == (tmp_path / "saved").read_bytes()


def test_arrays_sharing_bytes_rejected_without_allocating(tmp_path):
    # 1024 entries over the same 64 KiB: loading them would take 64 MiB from a file of
    # 163 KiB, and the same trick scales to any ratio. Entries must lie back to back.
    n, size = 1024, 64 * 1024
    header = {
        "tree": [array_node(i) for i in range(n)],
        "arrays": [u8_entry(0, size)] * n,
    }
    path = tmp_path / "bomb"
    write_crafted(path, header, bytes(size))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"array 1: offset 0 is not 65536.*back to back"):
        numoptim.load(path)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ([array_node(0), array_node(0)], "array 0 is referenced more than once"),
        ([], r"arrays \[0\] are never referenced"),
    ],
)
def test_each_array_referenced_exactly_once(tmp_path, tree, message):
    write_crafted(tmp_path / "c", {"tree": tree, "arrays": [u8_entry(0, 8)]}, bytes(8))
    with pytest.raises(ValueError, match=message):
        numoptim.load(tmp_path / "c")


@pytest.mark.parametrize(
    ("entry", "payload", "message"),
    [
        (u8_entry(-8, 8), bytes(8), r"offset -8 is not 0"),
        (u8_entry(4, 8), bytes(12), r"offset 4 is not 0"),
        (
            u8_entry(0, -1, [8]),
            bytes(8),
            r"nbytes -1 does not match shape \[8\] and dtype \|u1 \(8 bytes\)",
        ),
        (u8_entry(0, 8, [-1]), bytes(8), "shape must be a list of at most 64 non-negative"),
        (u8_entry(0, 8, [2]), bytes(8), r"nbytes 8 does not match shape \[2\]"),
        (u8_entry(0, 8, [8.0]), bytes(8), "shape must be"),
        (u8_entry(0, 8, [True] * 8), bytes(8), "shape must be"),
        (u8_entry(0, 8, [1] * 65 + [8]), bytes(8), "shape must be"),
        (u8_entry(0, 8), bytes(16), "8 bytes after the last array belong to no array"),
        (u8_entry(0, 16), bytes(8), "data past the end of the file"),
        (u8_entry("0", 8), bytes(8), r"offset '0' is not 0"),
        ({**u8_entry(0, 8), "dtype": "|O"}, bytes(8), r"dtype '\|O' is not allowed"),
        ({**u8_entry(0, 8), "dtype": "i4,i4"}, bytes(8), r"dtype 'i4,i4' is not allowed"),
        ({**u8_entry(0, 8), "extra": 1}, bytes(8), "exactly dtype, shape, offset, nbytes"),
    ],
    ids=[
        "negative-offset",
        "gap",
        "negative-nbytes",
        "negative-dimension",
        "nbytes-not-shape",
        "float-dimension",
        "bool-dimension",
        "too-many-dimensions",
        "trailing-bytes",
        "past-end",
        "string-offset",
        "object-dtype",
        "structured-dtype",
        "unknown-field",
    ],
)
def test_bad_array_entries_rejected(tmp_path, entry, payload, message):
    write_crafted(tmp_path / "c", {"tree": [array_node(0)], "arrays": [entry]}, payload)
    with pytest.raises(ValueError, match=message):
        numoptim.load(tmp_path / "c")


@pytest.mark.parametrize("index", [1, -1, True, "0"])
def test_array_index_out_of_range_rejected(tmp_path, index):
    header = {"tree": [array_node(0), array_node(index)], "arrays": [u8_entry(0, 8)]}
    write_crafted(tmp_path / "c", header, bytes(8))
    with pytest.raises(ValueError, match=r"array index .* is out of range: the file has 1 arr"):
        numoptim.load(tmp_path / "c")


def test_header_length_past_end_rejected(tmp_path):
    body = serialization.MAGIC + struct.pack("<Q", 1 << 40) + b"{}"
    (tmp_path / "c").write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(ValueError, match="header length 1099511627776 runs past the end"):
        numoptim.load(tmp_path / "c")


def test_deeply_nested_header_rejected(tmp_path):
    n = 100_000
    header = b'{"tree": ' + b"[" * n + b"]" * n + b', "arrays": []}'
    write_crafted(tmp_path / "c", header)
    with pytest.raises(ValueError, match="nested more than 194 levels deep"):
        numoptim.load(tmp_path / "c")


def test_deeply_nested_header_cannot_crash_the_interpreter(tmp_path):
    # With a raised recursion limit, json.loads recursing through a million brackets
    # overflows the C stack and the process dies with SIGSEGV; the depth is checked first.
    n = 1_000_000
    write_crafted(tmp_path / "c", b'{"tree": ' + b"[" * n + b"]" * n + b', "arrays": []}')
    script = (
        "import sys, numoptim\n"
        "sys.setrecursionlimit(10**7)\n"
        "try:\n"
        "    numoptim.load(sys.argv[1])\n"
        "except ValueError as e:\n"
        "    print('ValueError:', e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "c")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PACKAGE_ROOT},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ValueError:" in result.stdout and "nested more than" in result.stdout


def nested(kind, depth):
    obj = np.arange(2.0)
    for _ in range(depth):
        obj = {"list": lambda o: [o], "tuple": lambda o: (o,), "dict": lambda o: {"k": o}}[kind](
            obj
        )
    return obj


@pytest.mark.parametrize("kind", ["list", "tuple", "dict"])
def test_nesting_limit_is_the_same_for_save_and_load(tmp_path, kind):
    limit = serialization.MAX_DEPTH
    assert limit == 64
    numoptim.save(nested(kind, limit), tmp_path / "ok")
    back = numoptim.load(tmp_path / "ok")
    for _ in range(limit):
        back = back["k"] if kind == "dict" else back[0]
    np.testing.assert_array_equal(back, np.arange(2.0))
    with pytest.raises(ValueError, match="nested more than 64 levels deep"):
        numoptim.save(nested(kind, limit + 1), tmp_path / "deep")
    assert not (tmp_path / "deep").exists()
    # A crafted file one level deeper than save writes is refused as well.
    tree = {"array": 0, "scalar": False}
    for _ in range(limit + 1):
        tree = [tree]
    write_crafted(tmp_path / "c", {"tree": tree, "arrays": [u8_entry(0, 1)]}, b"\0")
    with pytest.raises(ValueError, match="nested more than 64 levels deep"):
        numoptim.load(tmp_path / "c")


def test_self_referencing_object_rejected(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested more than 64 levels deep"):
        numoptim.save(loop, tmp_path / "c")


def test_brackets_quotes_and_backslashes_in_strings_are_not_nesting(tmp_path):
    # The depth scan must skip strings, including ones with escaped quotes and
    # backslashes, or it would refuse valid files (or, worse, miss brackets).
    tricky = ['\\"' + "[" * 300, "\\" * 3 + '"{' * 300, "\\", '"', "[]{}" * 100]
    obj = {key: key[::-1] for key in tricky}
    numoptim.save(obj, tmp_path / "c")
    assert numoptim.load(tmp_path / "c") == obj


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o002, 0o664)])
def test_new_file_gets_permissions_of_open(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        numoptim.save({"v": 1}, tmp_path / "c")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == expected


@pytest.mark.parametrize("mode", [0o640, 0o666, 0o600])
def test_replaced_file_keeps_its_permissions(tmp_path, mode):
    path = tmp_path / "c"
    numoptim.save({"v": 1}, path)
    os.chmod(path, mode)
    old = os.umask(0o022)
    try:
        numoptim.save({"v": 2}, path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert numoptim.load(path) == {"v": 2}


STALLED_SAVE = """
import os, sys, time
import numpy as np
import numoptim

def stall(fd):
    print("stalled", flush=True)
    time.sleep(60)

os.fsync = stall
numoptim.save({"w": np.zeros(1 << 16)}, sys.argv[1])
"""


def test_killed_save_leaves_no_temporary_behind(tmp_path):
    path = tmp_path / "ckpt"
    numoptim.save({"v": 1}, path)
    with subprocess.Popen(
        [sys.executable, "-c", STALLED_SAVE, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": PACKAGE_ROOT},
    ) as writer:
        try:
            # The writer has written its whole temporary and stalls before the rename.
            assert writer.stdout.readline() == "stalled\n"
            (temp,) = set(os.listdir(tmp_path)) - {"ckpt"}
            assert os.path.getsize(tmp_path / temp) > 1 << 19
            # A save meanwhile must not delete a live writer's temporary.
            numoptim.save({"v": 2}, path)
            assert sorted(os.listdir(tmp_path)) == sorted(["ckpt", temp])
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
    assert sorted(os.listdir(tmp_path)) == sorted(["ckpt", temp])  # left by the kill
    numoptim.save({"v": 3}, path)
    assert os.listdir(tmp_path) == ["ckpt"]
    assert numoptim.load(path) == {"v": 3}


def test_file_then_rename_then_directory_are_synced(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync", "dir" if stat.S_ISDIR(info.st_mode) else "file", info.st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst), os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    numoptim.save({"v": 1}, tmp_path / "c")
    file_inode = os.stat(tmp_path / "c").st_ino
    assert events == [
        ("fsync", "file", file_inode),
        ("replace", "c", file_inode),
        ("fsync", "dir", os.stat(tmp_path).st_ino),
    ]


def test_symlink_target_is_replaced_and_link_kept(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "links").mkdir()
    real = tmp_path / "data" / "real.ckpt"
    link = tmp_path / "links" / "ckpt"
    numoptim.save({"v": 1}, real)
    os.chmod(real, 0o640)
    os.symlink(os.path.join("..", "data", "real.ckpt"), link)
    numoptim.save({"v": 2}, link)
    assert os.path.islink(link)
    assert os.readlink(link) == os.path.join("..", "data", "real.ckpt")
    assert numoptim.load(real) == {"v": 2} and numoptim.load(link) == {"v": 2}
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    # The temporary was made beside the real file, so both directories are clean.
    assert os.listdir(tmp_path / "data") == ["real.ckpt"]
    assert os.listdir(tmp_path / "links") == ["ckpt"]


def test_dangling_symlink_target_is_created(tmp_path):
    link = tmp_path / "ckpt"
    os.symlink("new.ckpt", link)
    numoptim.save({"v": 1}, link)
    assert os.path.islink(link) and numoptim.load(tmp_path / "new.ckpt") == {"v": 1}


@pytest.mark.parametrize("name", ["c" * 255, "\u00e9" * 127])
def test_longest_target_names_still_get_a_temporary(tmp_path, name):
    # A temporary's name adds to the target's, so the target's part is cut to fit.
    numoptim.save({"v": 1}, tmp_path / name)
    numoptim.save({"v": 2}, tmp_path / name)
    assert os.listdir(tmp_path) == [name] and numoptim.load(tmp_path / name) == {"v": 2}
