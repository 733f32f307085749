"""``save`` and ``load``: checkpoint files for state dicts that load no code.

A file is ``MAGIC``, the length of a JSON header, the header, the raw bytes of every
array, and a SHA-256 digest of all that precedes it. The header describes the nested
structure (dicts with any keys, lists, tuples, numbers, strings, None, arrays) and
where each array's bytes lie. Nothing is unpickled, so loading a file cannot run code;
a truncated or altered file fails the digest and raises ``ValueError``. Files are
written to a temporary name beside the target and renamed, so a crash never leaves a
half-written checkpoint under the real name.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
from typing import Any

import numpy as np

__all__ = ["load", "save"]

MAGIC = b"NUMOPTIM\x00ckpt\x00v1\n"
_DIGEST = hashlib.sha256().digest_size
_ALLOWED_DTYPES = {"b", "i", "u", "f", "c"}


def _encode(obj: Any, arrays: list[np.ndarray]) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return {"int": str(obj)}
    if isinstance(obj, float):
        return {"float": repr(obj)} if not math.isfinite(obj) else obj
    if isinstance(obj, (np.ndarray, np.generic)):
        array = np.asarray(obj)
        if array.dtype.kind not in _ALLOWED_DTYPES:
            raise TypeError(f"numoptim.save cannot store arrays of dtype {array.dtype}")
        arrays.append(np.array(array, order="C", copy=True))  # keeps 0-d arrays 0-d
        return {"array": len(arrays) - 1, "scalar": isinstance(obj, np.generic)}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    raise TypeError(
        f"numoptim.save cannot store objects of type {type(obj).__name__}; it stores dicts, "
        "lists, tuples, numbers, strings, None and NumPy arrays"
    )


def _decode(node: Any, arrays: list[np.ndarray]) -> Any:
    if node is None or isinstance(node, (bool, str, float, int)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    (kind, value), *_rest = node.items()
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "array":
        array = arrays[value]
        return array[()] if node.get("scalar") else array
    if kind == "dict":
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value}
    if kind == "tuple":
        return tuple(_decode(v, arrays) for v in value)
    raise ValueError(f"unknown node {kind!r} in checkpoint")


def save(obj: Any, path: str | os.PathLike) -> None:
    """Writes ``obj`` (typically a state dict) to ``path`` atomically.

    Args:
        obj: nested dicts, lists and tuples of NumPy arrays, numbers, strings and None.
        path: the file to write; it is replaced only once the new file is complete.

    Raises:
        TypeError: ``obj`` holds something that cannot be stored without pickle.
    """
    arrays: list[np.ndarray] = []
    tree = _encode(obj, arrays)
    entries, offset = [], 0
    for array in arrays:
        entries.append(
            {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "offset": offset,
                "nbytes": array.nbytes,
            }
        )
        offset += array.nbytes
    header = json.dumps({"tree": tree, "arrays": entries}, allow_nan=False).encode()
    digest = hashlib.sha256()
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".numoptim-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in (MAGIC, struct.pack("<Q", len(header)), header):
                f.write(chunk)
                digest.update(chunk)
            for array in arrays:
                data = memoryview(array.reshape(-1).view(np.uint8)) if array.size else b""
                f.write(data)
                digest.update(data)
            f.write(digest.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Any:
    """Reads an object written by :func:`save`.

    Raises:
        ValueError: the file is not a numoptim checkpoint, or is truncated or altered.
    """
    with open(path, "rb") as f:
        data = f.read()
    name = os.fspath(path)
    if not data.startswith(MAGIC):
        raise ValueError(f"{name} is not a numoptim checkpoint (bad magic bytes)")
    if len(data) < len(MAGIC) + 8 + _DIGEST:
        raise ValueError(f"{name} is truncated")
    body, stored = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != stored:
        raise ValueError(f"{name} is truncated or corrupted: its SHA-256 digest does not match")
    (header_len,) = struct.unpack_from("<Q", body, len(MAGIC))
    start = len(MAGIC) + 8
    try:
        header = json.loads(body[start : start + header_len])
        payload = start + header_len
        arrays = []
        for entry in header["arrays"]:
            dtype = np.dtype(entry["dtype"])
            if dtype.kind not in _ALLOWED_DTYPES:
                raise ValueError(f"dtype {dtype} is not allowed")
            begin = payload + entry["offset"]
            if begin + entry["nbytes"] > len(body):
                raise ValueError("array data past the end of the file")
            raw = np.frombuffer(body, dtype=np.uint8, count=entry["nbytes"], offset=begin)
            arrays.append(raw.view(dtype).reshape(entry["shape"]).copy())
        return _decode(header["tree"], arrays)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"{name} is not a valid numoptim checkpoint: {e}") from e
