"""``RowSparseGrad``: a row-sparse gradient, as torch's sparse COO grad of an embedding.

The gradient of an embedding lookup touches only the rows that were looked up. It is
held as the row ``indices`` into the parameter's first dimension and the ``values`` of
those rows; an index may repeat, and repeated rows add up, as torch's ``coalesce()``.
Set it as a parameter's ``grad``; SGD, Adagrad and SparseAdam read and write only the
touched rows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RowSparseGrad"]


class RowSparseGrad:
    """Rows ``indices`` of a gradient of shape ``shape`` hold ``values``; the rest is zero.

    Args:
        indices: 1-D integer array of row indices into ``shape[0]`` (repeats allowed).
        values: array of shape ``(len(indices),) + shape[1:]``.
        shape: the dense shape, the parameter's shape.

    Example:
        >>> emb = Parameter(np.zeros((1000, 16), np.float32))
        >>> rows = np.array([3, 7, 3])
        >>> emb.grad = RowSparseGrad(rows, np.ones((3, 16), np.float32), emb.shape)
    """

    __slots__ = ("indices", "shape", "values")

    def __init__(self, indices, values, shape) -> None:
        indices = np.asarray(indices)
        values = np.asarray(values)
        shape = tuple(int(s) for s in shape)
        if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
            raise TypeError("indices must be a 1-D integer array")
        if len(shape) < 1:
            raise ValueError("a row-sparse gradient needs a shape with at least one dimension")
        if values.shape != (indices.shape[0],) + shape[1:]:
            raise ValueError(
                f"values must have shape {(indices.shape[0],) + shape[1:]} for "
                f"{indices.shape[0]} rows of a {shape} gradient, got {values.shape}"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= shape[0]):
            raise ValueError(f"row indices must lie in [0, {shape[0]})")
        self.indices = indices.astype(np.int64, copy=False)
        self.values = values
        self.shape = shape

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def coalesce(self) -> RowSparseGrad:
        """The same gradient with sorted, unique rows (repeated rows summed)."""
        rows, inverse = np.unique(self.indices, return_inverse=True)
        summed = np.zeros((rows.size,) + self.shape[1:], dtype=self.values.dtype)
        np.add.at(summed, inverse.reshape(-1), self.values)
        return RowSparseGrad(rows, summed, self.shape)

    def to_dense(self) -> np.ndarray:
        """The dense gradient as an ndarray."""
        dense = np.zeros(self.shape, dtype=self.values.dtype)
        np.add.at(dense, self.indices, self.values)
        return dense

    def __neg__(self) -> RowSparseGrad:
        return RowSparseGrad(self.indices, -self.values, self.shape)

    def __repr__(self) -> str:
        return (
            f"RowSparseGrad(indices={self.indices!r}, values={self.values!r}, shape={self.shape})"
        )
