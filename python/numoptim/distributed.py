"""Data-parallel training over MPI: gradient averaging and a sharded optimizer.

``allreduce_grads`` sums or averages every parameter's gradient across the ranks of an
mpi4py communicator, in a few large MPI calls; ``ZeroRedundancyOptimizer`` is
``torch.distributed.optim.ZeroRedundancyOptimizer`` (ZeRO stage 1, Rajbhandari et al.,
2020): each rank keeps the optimizer state of its share of the parameters only, steps
that share, and broadcasts it, so that every rank ends each step with the same
parameters, bit-identical to one process running the wrapped optimizer.

Run a script that uses them under MPI: ``mpiexec -n 4 python train.py``. mpi4py is an
optional dependency (``pip install "numoptim[mpi]"``, which brings an MPI library from
PyPI); ``import numoptim`` never imports it, only the functions here do.

Every collective here is called by every rank in the same order, and a rank that finds
a problem (a gradient missing on one rank only, a step that raised) tells the others in
one small collective before any data moves: every rank raises, none hangs.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

import numpy as np

from . import _core
from . import optimizer as _optimizer_module
from ._native import NativeOptimizer
from .optimizer import Optimizer, ParamsT
from .parameter import Parameter, is_bfloat16

__all__ = ["ZeroRedundancyOptimizer", "allreduce_grads"]

# Gradients (and parameters, when broadcast) smaller than this are copied into one
# contiguous buffer of this size and moved in one MPI call; larger ones move in place.
BUCKET_BYTES = 4 * 2**20

_INSTALL_HINT = (
    "numoptim.distributed needs mpi4py and an MPI library: "
    'pip install "numoptim[mpi]" (mpi4py and the mpich wheel from PyPI)'
)


def _mpi() -> Any:
    """The ``mpi4py.MPI`` module, imported on first use (never by ``import numoptim``)."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return MPI


def _world(comm: Any) -> Any:
    return _mpi().COMM_WORLD if comm is None else comm


def _dtype_code(dtype: np.dtype) -> int:
    """A number for each gradient dtype that can be reduced (0: one that cannot)."""
    if dtype == np.float32:
        return 1
    if dtype == np.float64:
        return 2
    if dtype == np.float16:
        return 3
    if is_bfloat16(dtype):
        return 4
    return 0


def _agree_min_max(comm: Any, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The elementwise minimum and maximum of ``values`` over the ranks, in one call."""
    MPI = _mpi()
    both = np.concatenate([values, -values]).astype(np.int64)
    comm.Allreduce(MPI.IN_PLACE, both, op=MPI.MIN)
    n = len(values)
    return both[:n], -both[n:]


def _raise_together(comm: Any, error: BaseException | None, what: str) -> None:
    """Raises on every rank when ``error`` is set on any: its own error on the rank that
    had it, RuntimeError naming it on the others. One small collective when none did."""
    MPI = _mpi()
    flag = np.array([error is not None], dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MAX)
    if not flag[0]:
        return
    # The error path only: every rank learns what failed where.
    text = None if error is None else f"{type(error).__name__}: {error}"
    reports = comm.allgather(text)
    if error is not None:
        raise error
    failed = "; ".join(f"rank {r}: {t}" for r, t in enumerate(reports) if t is not None)
    raise RuntimeError(f"another rank failed during {what}: {failed}")


def _flat_bytes(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array's memory as a 1-d uint8 view (no copy)."""
    return np.asarray(array).reshape(-1).view(np.uint8)


# ------------------------------------------------------------------ allreduce_grads


def _check_grads(params: list[np.ndarray]) -> tuple[BaseException | None, np.ndarray]:
    """This rank's gradient signature (has grad, size, dtype code per parameter) and the
    first local problem, if any."""
    signature = np.zeros((len(params), 3), dtype=np.int64)
    error: BaseException | None = None
    for index, p in enumerate(params):
        grad = p.grad
        if grad is None:
            continue
        signature[index] = (1, getattr(grad, "size", -1), 0)
        if error is not None:
            continue
        if not isinstance(grad, np.ndarray):
            error = TypeError(
                f"allreduce_grads reduces dense gradients only; parameter {index} has a "
                f"{type(grad).__name__}"
            )
        elif grad.shape != p.shape:
            error = ValueError(
                f"parameter {index} has shape {p.shape} but its gradient has shape {grad.shape}"
            )
        elif _dtype_code(grad.dtype) == 0:
            error = TypeError(
                f"allreduce_grads supports float32, float64, float16 and bfloat16 gradients, "
                f"but parameter {index}'s gradient has dtype {grad.dtype}"
            )
        else:
            signature[index, 2] = _dtype_code(grad.dtype)
    return error, signature


class _Buckets:
    """Sums gradients over the ranks: small ones copied into one buffer per dtype and
    reduced together, large ones in place. 16-bit gradients are reduced in float32
    (MPI has no bfloat16 type), divided there for a mean, and rounded once."""

    def __init__(self, comm: Any, bucket_bytes: int, divisor: int) -> None:
        self.comm = comm
        self.bucket_bytes = bucket_bytes
        self.divisor = divisor
        self.MPI = _mpi()
        self.pending: dict[np.dtype, list[np.ndarray]] = {}
        self.used: dict[np.dtype, int] = {}
        self.buffers: dict[np.dtype, np.ndarray] = {}

    def _reduce(self, buffer: np.ndarray) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        if self.divisor != 1:
            buffer /= self.divisor  # in the buffer's dtype (the gradient's, or float32)

    def add(self, grad: np.ndarray) -> None:
        wide = grad.dtype.itemsize == 2  # float16, bfloat16: reduced in float32
        dtype = np.dtype(np.float32) if wide else grad.dtype
        nbytes = grad.size * dtype.itemsize
        if nbytes >= self.bucket_bytes:
            if not wide and grad.flags.c_contiguous and grad.flags.writeable:
                self._reduce(grad.reshape(-1))
            else:
                work = np.ascontiguousarray(grad, dtype=dtype).reshape(-1)
                self._reduce(work)
                grad[...] = work.reshape(grad.shape)
            return
        if self.used.get(dtype, 0) + nbytes > self.bucket_bytes:
            self.flush(dtype)
        self.pending.setdefault(dtype, []).append(grad)
        self.used[dtype] = self.used.get(dtype, 0) + nbytes

    def flush(self, dtype: np.dtype) -> None:
        grads = self.pending.pop(dtype, [])
        used = self.used.pop(dtype, 0)
        if not grads:
            return
        if dtype not in self.buffers:
            self.buffers[dtype] = np.empty(self.bucket_bytes // dtype.itemsize, dtype=dtype)
        buffer = self.buffers[dtype][: used // dtype.itemsize]
        offset = 0
        for grad in grads:
            buffer[offset : offset + grad.size].reshape(grad.shape)[...] = grad
            offset += grad.size
        self._reduce(buffer)
        offset = 0
        for grad in grads:
            grad[...] = buffer[offset : offset + grad.size].reshape(grad.shape)
            offset += grad.size

    def flush_all(self) -> None:
        for dtype in list(self.pending):
            self.flush(dtype)


def allreduce_grads(
    params: Iterable[np.ndarray] | np.ndarray,
    comm: Any = None,
    op: str = "mean",
    *,
    bucket_bytes: int = BUCKET_BYTES,
) -> None:
    """Sums or averages every parameter's gradient across the ranks, in place.

    Call it on every rank, with the same parameters in the same order (typically
    ``model.parameters()`` after the backward pass on this rank's share of the batch).
    Gradients smaller than ``bucket_bytes`` are copied into one contiguous buffer per
    dtype and reduced with one ``Allreduce`` per full buffer; larger ones are reduced in
    place. Before any data moves, one small collective checks that the ranks agree on
    which parameters have a gradient and on their sizes and dtypes.

    A mean is the sum divided by the number of ranks, in the gradient's dtype. float16
    and bfloat16 gradients are summed and divided in float32 (MPI has no bfloat16),
    then rounded to their dtype once.

    Args:
        params: an array or an iterable of :class:`Parameter` (their ``grad`` is read
            and written; parameters whose grad is None on every rank are skipped).
        comm: an mpi4py communicator (default ``MPI.COMM_WORLD``).
        op: ``"mean"`` (default) or ``"sum"``.
        bucket_bytes: the size of a bucket in bytes (default 4 MiB).

    Raises:
        ValueError: ``op`` is neither ``"mean"`` nor ``"sum"`` (on the calling rank), or
            a gradient's shape is not its parameter's.
        TypeError: a gradient is sparse or of an unsupported dtype.
        RuntimeError: on every rank, when the ranks disagree on the number of
            parameters, on which have a gradient, or on a gradient's size or dtype,
            or when another rank raised one of the errors above.
        ImportError: mpi4py is not installed.
    """
    if op not in ("mean", "sum"):
        raise ValueError(f'op must be "mean" or "sum", got {op!r}')
    comm = _world(comm)
    params = [params] if isinstance(params, np.ndarray) else list(params)
    count_min, count_max = _agree_min_max(comm, np.array([len(params)]))
    if count_min[0] != count_max[0]:
        raise RuntimeError(
            f"allreduce_grads got {len(params)} parameters on this rank, but the ranks "
            f"disagree (between {count_min[0]} and {count_max[0]})"
        )
    error, signature = _check_grads(params)
    lowest, highest = _agree_min_max(
        comm, np.concatenate([[error is not None], signature.reshape(-1)])
    )
    if highest[0]:
        _raise_together(comm, error, "allreduce_grads")
    lowest, highest = lowest[1:].reshape(-1, 3), highest[1:].reshape(-1, 3)
    mixed = np.flatnonzero(lowest[:, 0] != highest[:, 0])
    if mixed.size:
        mine = "None" if signature[mixed[0], 0] == 0 else "a gradient"
        raise RuntimeError(
            f"parameters {mixed.tolist()} have a gradient on some ranks and None on others "
            f"(parameter {mixed[0]} has {mine} on this rank)"
        )
    differ = np.flatnonzero((lowest[:, 1:] != highest[:, 1:]).any(axis=1))
    if differ.size:
        raise RuntimeError(
            f"the ranks' gradients of parameters {differ.tolist()} differ in size or dtype"
        )
    size = comm.Get_size()
    if size == 1:
        return
    buckets = _Buckets(comm, bucket_bytes, size if op == "mean" else 1)
    for p, has_grad in zip(params, signature[:, 0]):
        if has_grad:
            buckets.add(p.grad)
    buckets.flush_all()


# ------------------------------------------------------- ZeroRedundancyOptimizer


def _has_step_hooks(optimizer: Optimizer) -> bool:
    return bool(
        optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or _optimizer_module._global_optimizer_pre_hooks
        or _optimizer_module._global_optimizer_post_hooks
    )


class ZeroRedundancyOptimizer(Optimizer):
    """Shards an optimizer's state across MPI ranks, as torch's ZeroRedundancyOptimizer.

    Every rank constructs it with the same parameters. They are partitioned as torch
    does: per parameter group, largest first, each to the rank with the fewest elements
    so far. Each rank's ``optim`` is an ``optimizer_class`` over its own share only (same
    group hyperparameters), so it holds about 1/ranks of the state. ``step`` steps that
    share, then broadcasts each share from its owner: every rank ends the step with the
    same parameters, bit-identical to one process stepping ``optimizer_class`` over all
    of them with the same gradients (average the gradients first, with
    :func:`allreduce_grads`).

    ``param_groups`` are the full groups; hyperparameters changed there (by an lr
    scheduler) reach the local optimizer at the next step. ``state_dict()`` returns,
    after ``consolidate_state_dict(to)`` on every rank, the plain optimizer's state dict
    on rank ``to``; ``load_state_dict`` takes such a dict on every rank, saved with any
    number of ranks (or by a plain optimizer).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        optimizer_class: the optimizer to shard (``numoptim.Adam``, ...).
        comm: an mpi4py communicator (default ``MPI.COMM_WORLD``).
        **defaults: the keyword arguments of ``optimizer_class`` (``lr=...``).

    Raises:
        RuntimeError: on every rank, when the ranks disagree on the parameters (counts
            or sizes).
        TypeError: ``optimizer_class`` needs every parameter at each step (Prodigy).
        ImportError: mpi4py is not installed.
    """

    def __init__(
        self, params: ParamsT, optimizer_class: type[Optimizer], comm: Any = None, **defaults: Any
    ) -> None:
        if getattr(optimizer_class, "_needs_every_parameter", False):
            raise TypeError(
                f"ZeroRedundancyOptimizer cannot shard {optimizer_class.__name__}: its step "
                "depends on sums over every parameter, and a rank steps its own share only"
            )
        self.comm = _world(comm)
        self.world_size: int = self.comm.Get_size()
        self.rank: int = self.comm.Get_rank()
        self.initialized = False
        self._partition_cache: list[list[list[Parameter]]] | None = None
        self._broadcast_plan: list[tuple[int, list[Parameter], bool]] | None = None
        self._broadcast_buffer: np.ndarray | None = None
        super().__init__(params, defaults)
        self._check_same_params()
        self._optim_defaults = defaults
        self.optim: Optimizer = optimizer_class(self._local_groups(), **defaults)
        self._sync_param_groups(self.optim.param_groups, self.param_groups)
        self._all_state_dicts: list[dict[str, Any]] = []
        self.initialized = True

    # ------------------------------------------------------------ partition

    def _check_same_params(self) -> None:
        sizes = [p.size for g in self.param_groups for p in g["params"]]
        mine = np.array([len(self.param_groups), len(sizes), sum(sizes), max(sizes, default=0)])
        lowest, highest = _agree_min_max(self.comm, mine)
        if (lowest != highest).any():
            raise RuntimeError(
                "ZeroRedundancyOptimizer must be given the same parameters on every rank; "
                f"this rank has {mine[0]} groups, {mine[1]} parameters and {mine[2]} "
                "elements, another rank differs"
            )

    def _partition_parameters(self) -> list[list[list[Parameter]]]:
        """Each rank's parameters, per group: ``[rank][group] -> list``, as torch's
        (largest first, greedily to the rank with the smallest total so far)."""
        if self._partition_cache is None:
            partition: list[list[list[Parameter]]] = [[] for _ in range(self.world_size)]
            sizes = [0] * self.world_size
            for group in self.param_groups:
                per_rank: list[list[Parameter]] = [[] for _ in range(self.world_size)]
                for p in sorted(group["params"], key=lambda t: t.size, reverse=True):
                    rank = sizes.index(min(sizes))
                    per_rank[rank].append(p)
                    sizes[rank] += p.size
                for rank, params in enumerate(per_rank):
                    partition[rank].append(params)
            self._partition_cache = partition
            self._broadcast_plan = None
        return self._partition_cache

    def _local_groups(self) -> list[dict[str, Any]]:
        """This rank's parameter groups: the full groups' hyperparameters, its params."""
        local = []
        for group, params in zip(self.param_groups, self._partition_parameters()[self.rank]):
            local_group = {k: v for k, v in group.items() if k not in ("params", "param_names")}
            local_group["params"] = params
            if "param_names" in group:
                name_of = {id(p): n for p, n in zip(group["params"], group["param_names"])}
                local_group["param_names"] = [name_of[id(p)] for p in params]
            local.append(local_group)
        return local

    @staticmethod
    def _sync_param_groups(source: list[dict[str, Any]], destination: list[dict[str, Any]]) -> None:
        """Copies every group option but ``params`` (and ``param_names``) across."""
        for src, dst in zip(source, destination):
            for key, value in src.items():
                if key not in ("params", "param_names"):
                    dst[key] = value

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a parameter group, as :meth:`Optimizer.add_param_group`, on every rank.

        The earlier groups keep their partition; the new group's parameters are
        partitioned among the ranks and this rank's share joins the local optimizer.
        """
        super().add_param_group(param_group)
        if self.initialized:
            self._partition_cache = None
            self.optim.add_param_group(self._local_groups()[-1])
            self._sync_param_groups(self.optim.param_groups[-1:], self.param_groups[-1:])

    # ------------------------------------------------------------------ step

    def _local_step(self, closure: Callable[[], float] | None) -> tuple[Any, Callable[[], None]]:
        """Runs the closure and checks the local step; returns the loss and the write.

        A native optimizer checks every group before it writes anything: the write is
        held back until every rank's checks passed, so that a failure anywhere leaves
        every parameter and every state as it was. Any other optimizer (or one with step
        hooks) steps here, and only the broadcast is held back.
        """
        optim = self.optim
        native_step = inspect.unwrap(NativeOptimizer.step)
        if (
            isinstance(optim, NativeOptimizer)
            and inspect.unwrap(type(optim).step) is native_step
            and not _has_step_hooks(optim)
        ):
            loss = closure() if closure is not None else None
            optim._before_step(self.param_groups)  # over every rank's parameters
            try:
                writes = [optim._step_group(group, True) for group in optim.param_groups]
            except _core.SparseGradientError:
                raise RuntimeError(optim._sparse_grad_message()) from None

            def write() -> None:
                for group_write in writes:
                    group_write()

            return loss, write
        return optim.step(closure), lambda: None

    def _plan_broadcast(self) -> list[tuple[int, list[Parameter], bool]]:
        """The broadcasts of a step, the same on every rank: ``(owner, params, bucketed)``
        with small parameters of one owner packed (as bytes) up to a bucket's size."""
        if self._broadcast_plan is None:
            plan: list[tuple[int, list[Parameter], bool]] = []
            for owner, groups in enumerate(self._partition_parameters()):
                bucket: list[Parameter] = []
                used = 0
                for p in chain.from_iterable(groups):
                    if p.nbytes >= BUCKET_BYTES or not p.flags.c_contiguous:
                        plan.append((owner, [p], False))
                        continue
                    if used + p.nbytes > BUCKET_BYTES:
                        plan.append((owner, bucket, True))
                        bucket, used = [], 0
                    bucket.append(p)
                    used += p.nbytes
                if bucket:
                    plan.append((owner, bucket, True))
            self._broadcast_plan = plan
        return self._broadcast_plan

    def _broadcast_params(self) -> None:
        """Every parameter from its owner to the other ranks, in place."""
        if self._broadcast_buffer is None:  # kept: a new one each step faults its pages in
            self._broadcast_buffer = np.empty(BUCKET_BYTES, dtype=np.uint8)
        buffer = self._broadcast_buffer
        for owner, params, bucketed in self._plan_broadcast():
            if not bucketed:
                (p,) = params
                if p.flags.c_contiguous:
                    self.comm.Bcast(_flat_bytes(p), root=owner)
                else:
                    work = np.ascontiguousarray(p)
                    self.comm.Bcast(_flat_bytes(work), root=owner)
                    p[...] = work
                continue
            used = sum(p.nbytes for p in params)
            if self.rank == owner:
                offset = 0
                for p in params:
                    buffer[offset : offset + p.nbytes] = _flat_bytes(p)
                    offset += p.nbytes
            self.comm.Bcast(buffer[:used], root=owner)
            if self.rank != owner:
                offset = 0
                for p in params:
                    _flat_bytes(p)[...] = buffer[offset : offset + p.nbytes]
                    offset += p.nbytes

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Steps this rank's share of the parameters, then broadcasts every share.

        Call it on every rank. If the step raises on any rank (a bad gradient), every
        rank raises: that rank its own error, the others RuntimeError("another rank
        failed during step: ..."); with a native optimizer no parameter or state has
        changed on any rank.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss
                (called on every rank).

        Returns:
            The closure's loss, or None.
        """
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        error: BaseException | None = None
        loss = None
        write: Callable[[], None] = lambda: None
        try:
            loss, write = self._local_step(closure)
        except Exception as caught:  # noqa: BLE001 - every rank must hear of it first
            error = caught
        if self.world_size > 1:
            _raise_together(self.comm, error, "step")
        elif error is not None:
            raise error
        write()
        if self.world_size > 1:
            self._broadcast_params()
        self._sync_param_groups(self.optim.param_groups, self.param_groups)
        return loss

    # ------------------------------------------------------------ state dict

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gathers every rank's optimizer state on rank ``to`` (call it on every rank).

        Afterwards :meth:`state_dict` works on rank ``to``.
        """
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        local = copy.deepcopy(self.optim.state_dict())
        gathered = self.comm.gather(local, root=to)
        self._all_state_dicts = gathered if self.rank == to else []

    def state_dict(self) -> dict[str, Any]:
        """The whole optimizer's state dict, as the plain ``optimizer_class`` over the
        same parameters would return it (it loads into one).

        Valid on the rank that last received :meth:`consolidate_state_dict`; the state
        is as of that call.

        Raises:
            RuntimeError: the state has not been consolidated on this rank.
        """
        if len(self._all_state_dicts) == 0:
            raise RuntimeError(
                "Optimizer state has not been consolidated on this rank. "
                f"Please call `consolidate_state_dict(to={self.rank})` on "
                "all ranks beforehand if you meant to save the global state."
            )
        state_dict = super().state_dict()
        index_of = self._index_of()
        for rank, local in enumerate(self._all_state_dicts):
            for local_group, params in zip(
                local["param_groups"], self._partition_parameters()[rank]
            ):
                for local_index, p in zip(local_group["params"], params):
                    if local_index in local["state"]:
                        state_dict["state"][index_of[id(p)]] = local["state"][local_index]
        state_dict["state"] = dict(sorted(state_dict["state"].items()))
        return state_dict

    def _index_of(self) -> dict[int, int]:
        """Each parameter's index in a plain optimizer's state dict, by ``id``."""
        index_of: dict[int, int] = {}
        for i, p in enumerate(chain.from_iterable(g["params"] for g in self.param_groups)):
            index_of.setdefault(id(p), i)
        return index_of

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a whole-optimizer state dict (from :meth:`state_dict` with any number
        of ranks, or from the plain optimizer) on every rank; each keeps its share.

        Raises:
            ValueError: as :meth:`Optimizer.load_state_dict` (group count or sizes
                differ, a state buffer's shape is not its parameter's).
        """
        saved_groups = state_dict["param_groups"]
        if len(self.param_groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(
            len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, saved_groups)
        ):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                "optimizer's group"
            )
        saved_index = dict(
            zip(
                (id(p) for g in self.param_groups for p in g["params"]),
                chain.from_iterable(g["params"] for g in saved_groups),
            )
        )
        local: dict[str, Any] = {"state": {}, "param_groups": []}
        local_index = 0
        for saved_group, params in zip(saved_groups, self._partition_parameters()[self.rank]):
            group = {k: v for k, v in saved_group.items() if k not in ("params", "param_names")}
            group["params"] = list(range(local_index, local_index + len(params)))
            for i, p in zip(group["params"], params):
                if saved_index[id(p)] in state_dict["state"]:
                    local["state"][i] = state_dict["state"][saved_index[id(p)]]
            local["param_groups"].append(group)
            local_index += len(params)
        self.optim.load_state_dict(local)
        defaults = self.defaults  # the base class's load adds "differentiable" to them
        super().load_state_dict({"state": {}, "param_groups": saved_groups})
        self.defaults = defaults
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
