"""``RowSparseGrad``: a row-sparse gradient, as torch's sparse COO grad of an embedding.

The gradient of an embedding lookup touches only the rows that were looked up. It is
held as the row ``indices`` into the parameter's first dimension and the ``values`` of
those rows; an index may repeat, and repeated rows add up, as torch's ``coalesce()``.
Set it as a parameter's ``grad``; SGD and SparseAdam read and write only the touched
rows, and the dense-only optimizers raise torch's ``RuntimeError``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RowSparseGrad"]


class RowSparseGrad:
    """A gradient that is zero except on some rows of its first dimension.

    It is torch's sparse COO tensor with one sparse dimension (``sparse_dim=1``), the
    layout ``nn.Embedding(sparse=True)`` produces: row ``indices[k]`` of the dense
    gradient receives ``values[k]``. Indices need not be sorted and may repeat; the
    dense gradient is the sum of all entries, so a repeated row counts once per entry,
    as the gradient of a lookup that uses a row twice. Like torch's uncoalesced
    tensor it keeps the entries as given; :meth:`coalesce` sums repeated rows.

    The object is a read-only input to the optimizers: ``indices`` is stored as a
    C-contiguous int64 array and ``values`` as a C-contiguous array (copied only when
    the given arrays are not already so). ``dtype`` is the values' dtype; it must be
    the parameter's, which ``Parameter.grad`` checks together with ``shape``.

    Args:
        indices: 1-D integer array of row indices in ``[0, shape[0])`` (repeats allowed).
        values: array of shape ``(len(indices),) + shape[1:]``: one row per index.
        shape: the dense shape, the parameter's shape (at least one dimension).

    Raises:
        TypeError: ``indices`` is not a 1-D integer array.
        ValueError: ``shape`` is empty or negative, ``values`` has the wrong shape, or
            an index is out of range.

    Example:
        >>> emb = Parameter(np.zeros((1000, 16), np.float32))
        >>> rows = np.array([3, 7, 3])
        >>> emb.grad = RowSparseGrad(rows, np.ones((3, 16), np.float32), emb.shape)
        >>> emb.grad.coalesce().indices
        array([3, 7])
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
        if any(s < 0 for s in shape):
            raise ValueError(f"shape must not have negative dimensions, got {shape}")
        if values.shape != (indices.shape[0],) + shape[1:]:
            raise ValueError(
                f"values must have shape {(indices.shape[0],) + shape[1:]} for "
                f"{indices.shape[0]} rows of a {shape} gradient, got {values.shape}"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= shape[0]):
            raise ValueError(f"row indices must lie in [0, {shape[0]})")
        self.indices = np.ascontiguousarray(indices, dtype=np.int64)
        self.values = np.ascontiguousarray(values)
        self.shape = shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the values."""
        return self.values.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions of the dense gradient."""
        return len(self.shape)

    def coalesce(self) -> RowSparseGrad:
        """The same gradient with sorted, unique rows (repeated rows summed).

        A row's values are added in the order its entries appear, the first copied and
        the others added to it, which is what torch's ``coalesce()`` does, so the sums
        agree with torch bit for bit (including the sign of a zero).
        """
        order = np.argsort(self.indices, kind="stable")
        sorted_rows = self.indices[order]
        first = np.ones(sorted_rows.shape, dtype=bool)
        first[1:] = sorted_rows[1:] != sorted_rows[:-1]
        summed = self.values[order[first]].copy()
        group = np.cumsum(first) - 1
        rest = ~first
        # np.add.at applies repeated targets one after another, in the given order.
        np.add.at(summed, group[rest], self.values[order[rest]])
        return RowSparseGrad(sorted_rows[first], summed, self.shape)

    def to_dense(self) -> np.ndarray:
        """The dense gradient as a new ndarray (repeated rows summed, as torch)."""
        dense = np.zeros(self.shape, dtype=self.values.dtype)
        np.add.at(dense, self.indices, self.values)
        return dense

    def __neg__(self) -> RowSparseGrad:
        return RowSparseGrad(self.indices, -self.values, self.shape)

    def __repr__(self) -> str:
        return (
            f"RowSparseGrad(indices={self.indices!r}, values={self.values!r}, shape={self.shape})"
        )
