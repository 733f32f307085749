"""``save`` and ``load``: checkpoint files for state dicts that load no code.

A file is ``MAGIC``, the length of a JSON header, the header, the raw bytes of every
array, and a SHA-256 digest of all that precedes it. The header describes the nested
structure (dicts with any keys, lists, tuples, numbers, strings, None, arrays) and
where each array's bytes lie. Nothing is unpickled, so loading a file cannot run code;
a truncated or altered file fails the digest and raises ``ValueError``.

The digest only proves that the file is whole, not that its writer was honest, so
``load`` also checks the header itself: the arrays lie back to back and fill the data
section exactly, each is referenced once, their shapes agree with their sizes, and the
structure is nested at most ``MAX_DEPTH`` containers deep. Together these bound the
memory that loading a file takes by a small multiple of the file's size.

Arrays of ml_dtypes' bfloat16 are stored under the dtype name "bfloat16", their bytes
little-endian whatever the machine; loading them needs ml_dtypes, as creating them did.

Files are written to a temporary name beside the target and renamed, so a crash never
leaves a half-written checkpoint under the real name, and the next ``save`` to the same
path removes any temporary that a killed writer left behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import socket
import stat
import struct
import sys
from typing import Any

import numpy as np

from .parameter import bfloat16_dtype, is_bfloat16

__all__ = ["load", "save"]

MAGIC = b"NUMOPTIM\x00ckpt\x00v1\n"
_DIGEST = hashlib.sha256().digest_size
_ALLOWED_DTYPES = {"b", "i", "u", "f", "c"}
# The dtype strings of those kinds, as ``dtype.str`` writes them: "<f4", "|b1", "<c16".
_DTYPE_STR = re.compile(r"[<>|=][biufc][0-9]{1,2}")
# bfloat16 has no dtype string of its own: its ``dtype.str`` is "<V2", which NumPy would
# read back as two raw bytes. It is written under this name instead, and only this exact
# string reaches ml_dtypes.
_BFLOAT16 = "bfloat16"

# The deepest nesting of containers (dicts, lists, tuples) that ``save`` writes and
# ``load`` reads. State dicts nest three or four levels; the limit keeps both the
# encoder and the decoder far from Python's recursion limit.
MAX_DEPTH = 64
# In the header each dict adds three JSON levels ({"dict": [[key, value]]}), a tuple two
# and a list one; the header object and a leaf node add one each.
_MAX_JSON_DEPTH = 3 * MAX_DEPTH + 2
# NumPy 2 allows 64 dimensions and NumPy 1 allows 32; a file may claim no more than 64.
_MAX_NDIM = 64
_STRUCTURAL = b'"[]{}'
_NOT_STRUCTURAL = bytes(c for c in range(256) if c not in _STRUCTURAL)

# Temporaries are named ".{target}.numoptim-tmp-{host}-{pid}-{token}", so that a later
# save can tell a dead writer's leftovers from a live writer's file in progress. Long
# target names are cut to 120 bytes so that the temporary's name, with up to 64 bytes
# of host name, stays under the usual 255-byte limit.
_TMP_MARK = ".numoptim-tmp-"
_MAX_TMP_BASE = 120


def _encode(obj: Any, arrays: list[np.ndarray], depth: int = 0) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return {"int": str(obj)}
    if isinstance(obj, float):
        return {"float": repr(obj)} if not math.isfinite(obj) else obj
    if isinstance(obj, (np.ndarray, np.generic)):
        array = np.asarray(obj)
        if array.dtype.kind not in _ALLOWED_DTYPES and not is_bfloat16(array.dtype):
            raise TypeError(f"numoptim.save cannot store arrays of dtype {array.dtype}")
        arrays.append(np.array(array, order="C", copy=True))  # keeps 0-d arrays 0-d
        return {"array": len(arrays) - 1, "scalar": isinstance(obj, np.generic)}
    if isinstance(obj, (dict, tuple, list)) and depth >= MAX_DEPTH:
        # A self-referencing container ends here too, rather than in a RecursionError.
        raise ValueError(
            f"numoptim.save cannot store containers nested more than {MAX_DEPTH} levels deep"
        )
    if isinstance(obj, dict):
        return {
            "dict": [
                [_encode(k, arrays, depth + 1), _encode(v, arrays, depth + 1)]
                for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, arrays, depth + 1) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays, depth + 1) for v in obj]
    raise TypeError(
        f"numoptim.save cannot store objects of type {type(obj).__name__}; it stores dicts, "
        "lists, tuples, numbers, strings, None and NumPy arrays"
    )


def _dtype_name(dtype: np.dtype) -> str:
    """The dtype as a file names it: ``dtype.str`` ("<f4"), or "bfloat16"."""
    return _BFLOAT16 if is_bfloat16(dtype) else dtype.str


def _raw_bytes(array: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous ``array`` as the file stores them, as a uint8 vector.

    Other dtypes carry their byte order in their dtype string; bfloat16's name does not,
    so its bytes are always written little-endian.
    """
    if is_bfloat16(array.dtype):
        array = array.view(np.uint16).astype("<u2", copy=False)
    return array.reshape(-1).view(np.uint8)


def _is_int(value: Any) -> bool:
    # JSON true and false decode to bool, which is an int subclass but never a valid
    # offset, size, dimension or index.
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    # Error messages quote what the file holds, but a crafted file's values may be huge.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Decoder:
    """Turns a header's tree back into objects, using each array exactly once."""

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays
        self.used = [False] * len(arrays)

    def decode(self, node: Any, depth: int = 0) -> Any:
        if node is None or isinstance(node, (bool, str, float, int)):
            return node
        if isinstance(node, list):
            self._check_depth(depth)
            return [self.decode(v, depth + 1) for v in node]
        if not isinstance(node, dict):
            raise TypeError(f"unknown node of type {type(node).__name__} in checkpoint")
        if set(node) == {"array", "scalar"}:
            return self._array(node["array"], node["scalar"])
        if len(node) != 1:
            raise ValueError(f"unknown node with keys {sorted(node)[:5]} in checkpoint")
        ((kind, value),) = node.items()
        if kind in ("int", "float"):
            if not isinstance(value, str):
                raise ValueError(f"{kind} node holds {type(value).__name__}, not a string")
            return int(value) if kind == "int" else float(value)
        if kind in ("dict", "tuple"):
            self._check_depth(depth)
            if not isinstance(value, list):
                raise ValueError(f"{kind} node holds {type(value).__name__}, not a list")
        if kind == "dict":
            result = {}
            for pair in value:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ValueError("dict node holds an item that is not a [key, value] pair")
                key = self.decode(pair[0], depth + 1)
                item = self.decode(pair[1], depth + 1)
                try:
                    result[key] = item
                except TypeError as e:
                    raise ValueError(f"dict key of type {type(key).__name__}: {e}") from e
            return result
        if kind == "tuple":
            return tuple(self.decode(v, depth + 1) for v in value)
        raise ValueError(f"unknown node {kind[:40]!r} in checkpoint")

    @staticmethod
    def _check_depth(depth: int) -> None:
        # The same limit as the writer's, so that a file loads exactly when it could have
        # been written.
        if depth >= MAX_DEPTH:
            raise ValueError(f"containers are nested more than {MAX_DEPTH} levels deep")

    def _array(self, index: Any, scalar: Any) -> Any:
        if not _is_int(index) or not 0 <= index < len(self.arrays):
            raise ValueError(
                f"array index {_show(index)} is out of range: the file has "
                f"{len(self.arrays)} arrays"
            )
        if self.used[index]:
            # Sharing would let a small file expand into many references; the writer
            # stores every array once, so a repeat means the file was crafted.
            raise ValueError(f"array {index} is referenced more than once")
        self.used[index] = True
        array = self.arrays[index]
        if not isinstance(scalar, bool):
            raise TypeError(f"array {index}: 'scalar' is {type(scalar).__name__}, not a bool")
        if scalar and array.ndim != 0:
            raise ValueError(f"array {index} is marked scalar but has shape {array.shape}")
        return array[()] if scalar else array

    def check_all_used(self) -> None:
        unused = [i for i, used in enumerate(self.used) if not used]
        if unused:
            raise ValueError(f"arrays {unused[:10]} are never referenced")


def _check_json_depth(header: bytes) -> None:
    """Raises ValueError if the JSON text nests deeper than ``_MAX_JSON_DEPTH``.

    ``json.loads`` recurses once per level, so a header of a million brackets raises
    RecursionError, and under a raised recursion limit can overflow the C stack and kill
    the interpreter. This linear scan runs before it. Escaped backslashes and quotes are
    removed first, so that every remaining quote opens or closes a string; brackets
    inside strings do not count. Where the text is not valid JSON the count may differ
    from the parser's, but only after the point where the parser stops with an error.
    """
    text = header.replace(b"\\\\", b"").replace(b'\\"', b"")
    depth = 0
    in_string = False
    for char in text.translate(None, _NOT_STRUCTURAL):
        if char == 0x22:  # "
            in_string = not in_string
        elif in_string:
            continue
        elif char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > _MAX_JSON_DEPTH:
                raise ValueError(
                    f"the header is nested more than {_MAX_JSON_DEPTH} levels deep "
                    f"(numoptim writes at most {MAX_DEPTH} levels of containers)"
                )
        else:
            depth -= 1


def _read_arrays(entries: Any, data: memoryview) -> list[np.ndarray]:
    """Copies out each array that ``entries`` describes, checking that they tile ``data``.

    Each array must start where the previous one ended, the first at 0, and the last
    must end at the end of ``data``. So no two arrays share bytes, and the arrays
    together take exactly as much memory as the data section of the file.
    """
    if not isinstance(entries, list):
        raise TypeError(f"'arrays' is {type(entries).__name__}, not a list")
    arrays = []
    offset = 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "offset", "nbytes"}:
            raise ValueError(f"array {i}: entry must have exactly dtype, shape, offset, nbytes")
        # Only the strings the writer produces reach np.dtype, which parses many more.
        name = entry["dtype"]
        if not isinstance(name, str) or not (_DTYPE_STR.fullmatch(name) or name == _BFLOAT16):
            raise ValueError(f"array {i}: dtype {_show(name)} is not allowed")
        if name == _BFLOAT16:
            dtype = bfloat16_dtype("loading a checkpoint that holds bfloat16 arrays")
        else:
            dtype = np.dtype(name)
        shape = entry["shape"]
        if (
            not isinstance(shape, list)
            or len(shape) > _MAX_NDIM
            or not all(_is_int(n) and 0 <= n <= sys.maxsize for n in shape)
        ):
            raise ValueError(
                f"array {i}: shape must be a list of at most {_MAX_NDIM} non-negative integers"
            )
        nbytes = entry["nbytes"]
        expected = math.prod(shape) * dtype.itemsize
        if not _is_int(nbytes) or nbytes != expected:
            raise ValueError(
                f"array {i}: nbytes {_show(nbytes)} does not match shape {shape} and dtype "
                f"{_dtype_name(dtype)} ({expected} bytes)"
            )
        if not _is_int(entry["offset"]) or entry["offset"] != offset:
            where = f"where array {i - 1} ends" if i else "the start of the data"
            raise ValueError(
                f"array {i}: offset {_show(entry['offset'])} is not {offset}, {where} "
                "(arrays must lie back to back, without overlaps or gaps)"
            )
        if offset + nbytes > len(data):
            raise ValueError(f"array {i}: data past the end of the file")
        raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=offset)
        if name == _BFLOAT16:
            # The little-endian bits, in this machine's order (a copy), seen as bfloat16.
            arrays.append(raw.view("<u2").reshape(shape).astype(np.uint16).view(dtype))
        else:
            arrays.append(raw.view(dtype).reshape(shape).copy())
        offset += nbytes
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} bytes after the last array belong to no array")
    return arrays


def _temp_host() -> str:
    # The host goes into temporary names so that on a file system shared between
    # machines, a save never takes another machine's live writer for a dead one.
    # Dashes separate the name's fields, so the host name may hold none, and a host
    # name may hold any byte but "/".
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "_"


def _pid_alive(pid: int) -> bool:
    if os.name != "posix" or pid <= 0:
        return True  # Without kill(pid, 0), assume alive: a leftover is better than a loss.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists but belongs to another user.
    return True


def _remove_stale_temps(directory: str, prefix: str) -> None:
    """Removes the temporaries of earlier saves to the same target whose writer is dead.

    ``prefix`` names the target and this host, so only the pid and token follow it. A
    temporary of a live process (another thread, or another program saving to the same
    path) is left alone: its writer will rename or remove it.
    """
    try:
        names = [e.name for e in os.scandir(directory) if e.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        fields = name[len(prefix) :].split("-")
        if len(fields) != 2 or not fields[0].isdigit():
            continue
        if not _pid_alive(int(fields[0])):
            # Cleaning up is best effort; another save may have removed it first.
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def _create_temp(directory: str, prefix: str, mode: int) -> tuple[int, str]:
    # O_EXCL with a random token never opens another writer's file, even from another
    # thread of this process.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f"{prefix}{os.getpid()}-{os.urandom(4).hex()}")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def _fsync_directory(directory: str) -> None:
    """Makes the rename durable: without this a power loss can undo it."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Directories cannot be opened on this platform (Windows), or read.
    try:
        os.fsync(fd)
    except OSError as e:
        # Some file systems do not sync directories; any other error (EIO) means the
        # rename may not survive a crash, which the caller should hear about.
        if e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Writes ``obj`` (typically a state dict) to ``path`` atomically.

    The file is written to a temporary beside the target, flushed to disk, renamed over
    the target, and the directory is flushed too, so that after a crash ``path`` holds
    either the old checkpoint or the new one. A temporary left by a killed save is
    removed by the next save to the same path.

    A new file gets the permissions that ``open(path, "wb")`` would give it (0o666 less
    the umask); a replaced file keeps its permissions. If ``path`` is a symbolic link,
    the file it points to is replaced (the temporary is made in that file's directory)
    and the link stays a link, as with ``open(path, "wb")``; a dangling link's target
    is created.

    Args:
        obj: nested dicts, lists and tuples of NumPy arrays (of boolean, integer, float,
            complex or bfloat16 dtype), numbers, strings and None, at most ``MAX_DEPTH``
            containers deep.
        path: the file to write; it is replaced only once the new file is complete.

    Raises:
        TypeError: ``obj`` holds something that cannot be stored without pickle.
        ValueError: ``obj`` is nested more than ``MAX_DEPTH`` containers deep.
    """
    arrays: list[np.ndarray] = []
    tree = _encode(obj, arrays)
    entries, offset = [], 0
    for array in arrays:
        entries.append(
            {
                "dtype": _dtype_name(array.dtype),
                "shape": list(array.shape),
                "offset": offset,
                "nbytes": array.nbytes,
            }
        )
        offset += array.nbytes
    header = json.dumps({"tree": tree, "arrays": entries}, allow_nan=False).encode()
    digest = hashlib.sha256()
    # Renaming over a symbolic link would replace the link itself with a regular file;
    # resolving it first replaces the file it points to, in that file's directory, since
    # a rename cannot cross file systems.
    target = os.path.realpath(os.fspath(path))
    directory, base = os.path.split(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    # The cut is in bytes, as the limit on names is; a character cut in half is kept as
    # the bytes it was, which is still a valid name on POSIX.
    short = os.fsdecode(os.fsencode(base)[:_MAX_TMP_BASE])
    prefix = f".{short}{_TMP_MARK}{_temp_host()}-"
    _remove_stale_temps(directory, prefix)
    # Creating with 0o666 lets the umask act as it does for open(); a replaced file's
    # mode is applied before any data is written, and is never widened by creation.
    fd, tmp = _create_temp(directory, prefix, 0o666 if mode is None else mode & 0o777)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            for chunk in (MAGIC, struct.pack("<Q", len(header)), header):
                f.write(chunk)
                digest.update(chunk)
            for array in arrays:
                data = memoryview(_raw_bytes(array)) if array.size else b""
                f.write(data)
                digest.update(data)
            f.write(digest.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def load(path: str | os.PathLike) -> Any:
    """Reads an object written by :func:`save`.

    Loading takes memory proportional to the file's size: the file, one copy of its
    arrays, and the decoded header.

    Args:
        path: a file written by :func:`save`.

    Returns:
        The saved object, with every array a fresh, writable copy.

    Raises:
        ValueError: the file is not a numoptim checkpoint, is truncated or altered, or
            its header is malformed (overlapping, missing or extra array bytes, sizes that
            disagree with shapes, negative offsets, nesting deeper than ``MAX_DEPTH``).
        ImportError: the file holds bfloat16 arrays and ml_dtypes is not installed.
    """
    with open(path, "rb") as f:
        data = f.read()
    name = os.fspath(path)
    if not data.startswith(MAGIC):
        raise ValueError(f"{name} is not a numoptim checkpoint (bad magic bytes)")
    if len(data) < len(MAGIC) + 8 + _DIGEST:
        raise ValueError(f"{name} is truncated")
    # A view, not a slice: slicing bytes would copy the whole file once more.
    body, stored = memoryview(data)[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != stored:
        raise ValueError(f"{name} is truncated or corrupted: its SHA-256 digest does not match")
    (header_len,) = struct.unpack_from("<Q", body, len(MAGIC))
    start = len(MAGIC) + 8
    try:
        if header_len > len(body) - start:
            raise ValueError(f"header length {header_len} runs past the end of the file")
        header_bytes = bytes(body[start : start + header_len])
        _check_json_depth(header_bytes)
        # Decoding to str first stops json.loads from guessing UTF-16 or UTF-32.
        header = json.loads(header_bytes.decode("utf-8"))
        if not isinstance(header, dict) or set(header) != {"tree", "arrays"}:
            raise ValueError("the header must be an object with exactly 'tree' and 'arrays'")
        arrays = _read_arrays(header["arrays"], body[start + header_len :])
        decoder = _Decoder(arrays)
        obj = decoder.decode(header["tree"])
        decoder.check_all_used()
        return obj
    except RecursionError as e:
        # The depth limits above keep well inside the default recursion limit; this
        # covers a caller that is itself nearly out of stack.
        raise ValueError(f"{name} is nested too deeply to load here: {e}") from e
    except (KeyError, TypeError, ValueError) as e:
        # A part of the header of the wrong type raises TypeError; to the caller every
        # malformed file is the same error.
        raise ValueError(f"{name} is not a valid numoptim checkpoint: {e}") from e
