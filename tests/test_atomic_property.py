"""Property: one bad input anywhere, in any group, raises the right error and writes nothing.

Hypothesis draws the optimizer, the groups (sizes, dtypes, shapes that are not
multiples of a vector width), the thread count and one bad input (a parameter, a
gradient or a state entry of any group); the step must raise an error of the type that
input deserves and leave every parameter and every state entry byte for byte as it was.
"""

from __future__ import annotations

import ml_dtypes
import numoptim
import numpy as np
import pytest
from harness import make_optimizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numoptim import Parameter, RowSparseGrad
from registry import ELEMENTWISE
from test_atomic_step import assert_unchanged, snapshot

# Each kind of bad input and the error it deserves.
BAD_INPUTS = {
    "read_only_param": ValueError,
    "grad_dtype": TypeError,
    "grad_shape": ValueError,
    "grad_not_array": TypeError,
    "grad_strided": ValueError,
    "grad_misaligned": ValueError,
    "grad_overlaps_param": ValueError,
    "grad_row_sparse": RuntimeError,
    "state_buffer_shape": ValueError,
    "state_buffer_dtype": TypeError,
    "state_scalar_shape": TypeError,
    "state_not_dict": TypeError,
}


def misaligned_like(array: np.ndarray) -> np.ndarray:
    raw = np.zeros(array.nbytes + 1, np.uint8)
    out = np.frombuffer(raw.data, dtype=array.dtype, count=array.size, offset=1)
    out = out.reshape(array.shape)
    out.flags.writeable = True
    return out


def spoil(optimizer, p: Parameter, kind: str) -> None:
    """Puts the bad input `kind` into parameter `p` or its state (behind any setter)."""
    state = optimizer.state[p]
    if kind == "read_only_param":
        p.flags.writeable = False
    elif kind == "grad_dtype":
        p._grad = p.grad.astype(np.float64 if p.dtype == np.float32 else np.float32)
    elif kind == "grad_shape":
        p._grad = np.zeros(p.size + 1, p.dtype)
    elif kind == "grad_not_array":
        p._grad = p.grad.tolist()
    elif kind == "grad_strided":
        p._grad = np.repeat(p.grad, 2, axis=-1)[..., ::2]
    elif kind == "grad_misaligned":
        p._grad = misaligned_like(p.grad)
    elif kind == "grad_overlaps_param":
        buffer = np.zeros(p.size + 1, p.dtype)
        p.grad = None
        p._grad = buffer[1:].reshape(p.shape)
        # The parameter itself moves into the start of the same buffer.
        buffer[: p.size] = p.reshape(-1)
        raise _Replace(buffer[: p.size].reshape(p.shape))
    elif kind == "grad_row_sparse":
        p._grad = RowSparseGrad([0], np.zeros((1,) + p.shape[1:], p.dtype), p.shape)
    elif kind == "state_buffer_shape":
        key = next(k for k, v in state.items() if getattr(v, "ndim", 0) > 0)
        state[key] = np.zeros(p.size + 1, p.dtype)
    elif kind == "state_buffer_dtype":
        key = next(k for k, v in state.items() if getattr(v, "ndim", 0) > 0)
        state[key] = state[key].astype(np.float64 if p.dtype == np.float32 else np.float32)
    elif kind == "state_scalar_shape":
        state["step"] = np.zeros(2, np.float32)
    elif kind == "state_not_dict":
        optimizer.state[p] = list(state.items())


class _Replace(Exception):
    """The bad input needs a new parameter array in the group (overlap with its grad)."""

    def __init__(self, array):
        super().__init__()
        self.array = array


# NumPy's arithmetic takes strided, misaligned and overlapping arrays, so the optimizers
# stepping in NumPy have nothing to refuse there.
NUMPY_STEPPED = ("Adafactor", "Muon")
NOT_BAD_FOR_NUMPY = {"grad_strided", "grad_misaligned", "grad_overlaps_param", "state_scalar_shape"}

shapes = st.lists(st.integers(1, 19), min_size=2, max_size=2).map(tuple)


@st.composite
def scenarios(draw):
    name = draw(st.sampled_from([*ELEMENTWISE, *NUMPY_STEPPED]))
    # The NumPy-stepped optimizers take float32 and float64 only (float16 and bfloat16
    # are refused with a TypeError when the optimizer is made).
    dtypes = [np.float32, np.float64]
    if name not in NUMPY_STEPPED:
        dtypes += [np.float16, ml_dtypes.bfloat16]
    groups = draw(
        st.lists(
            st.lists(st.tuples(shapes, st.sampled_from(dtypes)), min_size=1, max_size=3),
            min_size=1,
            max_size=3,
        )
    )
    kinds = set(BAD_INPUTS) - (NOT_BAD_FOR_NUMPY if name in NUMPY_STEPPED else set())
    kind = draw(st.sampled_from(sorted(kinds)))
    group = draw(st.integers(0, len(groups) - 1))
    index = draw(st.integers(0, len(groups[group]) - 1))
    threads = draw(st.sampled_from([1, 2]))
    seed = draw(st.integers(0, 2**32 - 1))
    return name, groups, kind, group, index, threads, seed


@settings(
    max_examples=400,
    derandomize=True,  # the same examples on every run: CI must not turn red by chance
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
def test_one_bad_input_anywhere_writes_nothing(scenario, restore_threads):
    name, groups, kind, bad_group, bad_index, threads, seed = scenario
    numoptim.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    params = [
        [Parameter(rng.standard_normal(shape).astype(dtype)) for shape, dtype in group]
        for group in groups
    ]
    kwargs = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    optimizer = make_optimizer(name, [{"params": g} for g in params], lr=0.01, **kwargs)
    for group in params:
        for p in group:
            p.grad = rng.standard_normal(p.shape).astype(p.dtype)
    optimizer.step()  # every parameter has state from here on
    p = params[bad_group][bad_index]
    if kind.startswith("state") and not any(
        getattr(v, "ndim", 0) > 0 for v in optimizer.state[p].values()
    ):
        kind = "read_only_param"  # no state arrays to spoil (none in this configuration)
    if kind == "state_scalar_shape" and "step" not in optimizer.state[p]:
        kind = "grad_dtype"
    if kind in ("grad_overlaps_param", "grad_strided") and p.size < 2:
        # One element cannot overlap itself at an offset, and NumPy calls a one-element
        # array contiguous whatever its strides.
        kind = "grad_shape"
    if kind == "grad_row_sparse" and name in ("SGD", "Adagrad"):
        kind = "grad_shape"  # these two take row-sparse gradients
    try:
        spoil(optimizer, p, kind)
    except _Replace as replace:
        new = Parameter(replace.array)
        new._grad = p._grad
        optimizer.state[new] = optimizer.state.pop(p)
        optimizer.param_groups[bad_group]["params"][bad_index] = new
    before = snapshot(optimizer)
    with pytest.raises(BAD_INPUTS[kind]):
        optimizer.step()
    assert_unchanged(optimizer, before)
