"""A step is all-or-nothing: bad input anywhere raises and leaves everything as it was.

Also what used to load or step into wrong results: scalar state that is not a number,
a parameter listed twice, parameters and grads that share memory, misaligned arrays and
SparseAdam's unbounded step count.
"""

from __future__ import annotations

import copy

import numoptim
import numpy as np
import pytest
from harness import make_optimizer, reference_available, reference_class
from numoptim import Parameter, RowSparseGrad
from registry import ELEMENTWISE, GROUP_STEP, OPTIMIZERS, TRAIN_MODE

ALL_DENSE = [*ELEMENTWISE, "Adafactor", "Muon"]


def snapshot(optimizer) -> tuple:
    """Every parameter's bytes and a deep copy of the state, to compare after an error."""
    params = [p.tobytes() for g in optimizer.param_groups for p in g["params"]]
    state = {id(p): copy.deepcopy(s) for p, s in optimizer.state.items()}
    return params, state


def same(a, b) -> bool:
    """Equal, arrays byte for byte, through dicts and lists."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def assert_unchanged(optimizer, before: tuple) -> None:
    params, state = before
    assert [p.tobytes() for g in optimizer.param_groups for p in g["params"]] == params
    assert {id(p) for p in optimizer.state} == set(state)
    for p, s in optimizer.state.items():
        assert same(s, state[id(p)])


def make(name: str, *groups, **kwargs):
    kwargs = kwargs or (OPTIMIZERS[name][0] if name in OPTIMIZERS else {"lr": 0.01})
    return make_optimizer(name, [{"params": list(g)} for g in groups], **kwargs)


def dense(shape, dtype=np.float32, seed=0) -> Parameter:
    rng = np.random.default_rng(seed)
    p = Parameter(rng.standard_normal(shape).astype(dtype))
    p.grad = rng.standard_normal(shape).astype(dtype)
    return p


# ------------------------------------------------------------- one bad input, no write


@pytest.mark.parametrize("name", ALL_DENSE)
@pytest.mark.parametrize("bad", ["read_only_param", "strided_grad", "wrong_state_shape"])
def test_error_in_a_later_group_leaves_every_group_untouched(name, bad):
    a, b = dense((4, 6), seed=1), dense((4, 6), seed=2)
    optimizer = make(name, [a], [b])
    optimizer.step()  # state exists from here on
    a.grad, b.grad = dense((4, 6), seed=3).grad, dense((4, 6), seed=4).grad
    if bad == "strided_grad" and name in ("Adafactor", "Muon"):
        pytest.skip("NumPy's arithmetic takes strided gradients")
    if bad == "read_only_param":
        b.flags.writeable = False
    elif bad == "strided_grad":
        # The grad setter rejects it; a grad can still change under the optimizer
        # (here, set behind the setter's back), and the step checks again.
        b._grad = np.ones((4, 12), np.float32)[:, ::2]
    else:
        arrays = [k for k, v in optimizer.state[b].items() if getattr(v, "ndim", 0) > 0]
        if not arrays:
            pytest.skip(f"{name} in this configuration keeps no state arrays")
        optimizer.state[b][arrays[0]] = np.zeros((5,), np.float32)
    before = snapshot(optimizer)
    with pytest.raises((ValueError, TypeError)) as info:
        optimizer.step()
    assert "parameter 0" in str(info.value) or "Param" in str(info.value)
    assert_unchanged(optimizer, before)


def test_sgd_with_dense_and_sparse_grads_checks_the_sparse_one_first():
    dense_param = dense((3, 2), np.float64)
    sparse_param = Parameter(np.zeros((5, 2)))
    grad = RowSparseGrad([1], np.ones((1, 2)), (5, 2))
    sparse_param.grad = grad
    grad.indices = np.array([9], np.int64)  # out of range after construction
    for momentum in (0.0, 0.9):
        optimizer = numoptim.SGD([dense_param, sparse_param], lr=0.1, momentum=momentum)
        before = snapshot(optimizer)
        with pytest.raises(ValueError, match="RowSparseGrad of parameter 1 has row index 9"):
            optimizer.step()
        assert_unchanged(optimizer, before)


def test_sgd_sparse_momentum_buffer_is_checked_before_any_write():
    a = dense((3, 2), np.float64)
    s = Parameter(np.zeros((5, 2)))
    s.grad = RowSparseGrad([1], np.ones((1, 2)), (5, 2))
    optimizer = numoptim.SGD([a, s], lr=0.1, momentum=0.9)
    optimizer.step()
    optimizer.state[s]["momentum_buffer"] = np.zeros((4, 2))
    before = snapshot(optimizer)
    with pytest.raises(ValueError, match=r"momentum_buffer'\] of parameter 1 has shape"):
        optimizer.step()
    assert_unchanged(optimizer, before)


@pytest.mark.parametrize("name", ["Adafactor", "Muon"])
@pytest.mark.parametrize(
    "grad,error",
    [
        (np.ones((4, 6), np.float64), TypeError),
        (np.ones((6, 4), np.float32), ValueError),
        ([[1.0]], TypeError),
        (RowSparseGrad([0], np.ones((1, 6), np.float32), (4, 6)), RuntimeError),
    ],
)
def test_numpy_optimizers_check_every_parameter_first(name, grad, error):
    a, b = dense((4, 6), seed=1), dense((4, 6), seed=2)
    optimizer = make(name, [a, b])
    optimizer.step()
    b._grad = grad  # behind the setter's back, which would refuse most of these
    before = snapshot(optimizer)
    with pytest.raises(error):
        optimizer.step()
    assert_unchanged(optimizer, before)


@pytest.mark.parametrize("name", ["Adafactor", "Muon"])
def test_numpy_optimizers_reject_broken_state_before_any_write(name):
    a, b = dense((4, 6), seed=1), dense((4, 6), seed=2)
    optimizer = make(name, [a], [b])
    optimizer.step()
    key = next(k for k, v in optimizer.state[b].items() if getattr(v, "ndim", 0) > 0)
    optimizer.state[b][key] = np.zeros((3, 3), np.float32)
    before = snapshot(optimizer)
    with pytest.raises(ValueError, match=rf"state\['{key}'\] of parameter 0 has shape"):
        optimizer.step()
    if name == "Adafactor":  # several entries: one missing is an error too
        optimizer.state[b].pop(key)
        before = snapshot(optimizer)
        with pytest.raises(ValueError, match=rf"state\['{key}'\] of parameter 0 is missing"):
            optimizer.step()
    assert_unchanged(optimizer, before)


def test_adafactor_steps_the_others_past_an_empty_parameter():
    empty, full = dense((0, 3)), dense((4, 3))
    optimizer = numoptim.Adafactor([empty, full], lr=0.01)
    reference = numoptim.Adafactor([Parameter(np.array(full))], lr=0.01)
    reference.param_groups[0]["params"][0].grad = full.grad
    optimizer.step()
    reference.step()
    np.testing.assert_array_equal(full, reference.param_groups[0]["params"][0])
    assert float(optimizer.state[empty]["step"]) == 1.0
    assert empty.shape == (0, 3)


def lbfgs_problem():
    a, b = Parameter(np.ones(3)), Parameter(np.ones((2, 2)))

    def closure():
        a.grad, b.grad = 2 * np.array(a), 2 * np.array(b)
        return float((a**2).sum() + (b**2).sum())

    return numoptim.LBFGS([a, b], lr=0.1), a, b, closure


@pytest.mark.parametrize(
    "bad_grad,error",
    [(np.ones(4), ValueError), (np.ones((2, 2), np.float32), TypeError), ("x", TypeError)],
)
def test_lbfgs_checks_grads_before_it_counts_or_moves(bad_grad, error):
    optimizer, _, b, closure = lbfgs_problem()
    optimizer.step(closure)
    before = snapshot(optimizer)

    def bad_closure():
        loss = closure()
        b._grad = bad_grad
        return loss

    with pytest.raises(error, match="grad of parameter 1"):
        optimizer.step(bad_closure)
    assert_unchanged(optimizer, before)


@pytest.mark.parametrize(
    "key,value,error",
    [
        ("d", np.zeros(3), ValueError),
        ("old_dirs", "nope", TypeError),
        ("ro", [], ValueError),
        ("n_iter", None, TypeError),
        ("al", [], ValueError),
    ],
)
def test_lbfgs_rejects_a_broken_state_before_the_closure_runs(key, value, error):
    optimizer, a, _, closure = lbfgs_problem()
    optimizer.step(closure)
    optimizer.step(closure)
    optimizer.state[a][key] = value
    before = snapshot(optimizer)
    calls = []
    with pytest.raises(error, match=key):
        optimizer.step(lambda: calls.append(1) or closure())
    assert calls == []
    assert_unchanged(optimizer, before)


# --------------------------------------------------------- state that loads but is wrong


@pytest.mark.parametrize("name", ["Adam", "NAdam", "ASGD", "Adafactor"])
@pytest.mark.parametrize("value,error", [(None, TypeError), ([1, 2], TypeError), ("7", ValueError)])
def test_non_numeric_scalar_state_is_refused_on_load(name, value, error):
    p = dense((3,))
    optimizer = make(name, [p])
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][0]["step"] = value
    before = snapshot(optimizer)
    with pytest.raises(error):
        optimizer.load_state_dict(saved)
    assert_unchanged(optimizer, before)


# SGD's listings both start from a fresh momentum buffer on the first step, as torch's
# do (its for-loop gathers the state before it updates): checked against torch below.
# Not the optimizers that count steps per group (GROUP_STEP: Adan, Schedule-Free): both
# listings step at the group's one step count, as in timm and schedulefree, which is not
# two steps (test_a_parameter_listed_twice_matches_torch checks Adan against timm).
@pytest.mark.parametrize("name", sorted(set(ELEMENTWISE) - {"SGD"} - GROUP_STEP))
def test_a_parameter_listed_twice_is_stepped_twice_with_one_state(name):
    # torch warns, then updates the parameter once per listing with one shared state.
    p = dense((5,), np.float64)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        twice = make(name, [p, p])
    once = make(name, [Parameter(np.array(p))])
    q = once.param_groups[0]["params"][0]
    for _ in range(3):
        q.grad = p.grad
        twice.step()
        once.step()
        once.step()
    np.testing.assert_array_equal(p, q)
    assert len(twice.state) == len(once.state)  # one state, or none (SGD without momentum)
    for key, value in once.state.get(q, {}).items():
        np.testing.assert_array_equal(twice.state[p][key], value, err_msg=key)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_overlapping_parameters_give_the_same_result_for_every_thread_count(name, restore_threads):
    # Two parameters that are overlapping views of one buffer, large enough to thread.
    def run(threads):
        numoptim.set_num_threads(threads)
        buffer = np.linspace(-1, 1, 300_000)
        a, b = Parameter(buffer[:200_000]), Parameter(buffer[100_000:])
        a.grad, b.grad = np.cos(np.array(a)), np.sin(np.array(b))
        optimizer = make(name, [a, b])
        for _ in range(3):
            optimizer.step()
        return buffer

    np.testing.assert_array_equal(run(1), run(2))


def test_a_grad_overlapping_its_parameter_at_an_offset_is_refused():
    buffer = np.zeros(10)
    p = Parameter(buffer[:8])
    with pytest.raises(ValueError, match="overlaps the parameter's memory at an offset"):
        p.grad = buffer[2:]
    p._grad = buffer[2:]  # behind the setter's back
    optimizer = numoptim.Adam([p])
    with pytest.raises(ValueError, match="grad of parameter 0 overlaps the parameter's memory"):
        optimizer.step()
    assert optimizer.state == {}


def misaligned(n: int, dtype=np.float64) -> np.ndarray:
    raw = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    array = np.frombuffer(raw.data, dtype=dtype, count=n, offset=1)
    array.flags.writeable = True
    return array


def test_misaligned_arrays_are_refused():
    with pytest.raises(ValueError, match="assigned grad is not aligned"):
        Parameter(np.zeros(4)).grad = misaligned(4)
    p = Parameter.__new__(Parameter, misaligned(4))
    assert not p.flags.aligned
    p.grad = np.ones(4)
    with pytest.raises(ValueError, match="parameter 0 is not aligned to its element size"):
        numoptim.SGD([p], lr=0.1).step()


def test_grad_setter_rejects_what_the_step_rejects():
    p = Parameter(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="assigned grad is not C-contiguous"):
        p.grad = np.ones((3, 4)).T


@pytest.mark.parametrize("start", [2**63 - 1, 2**64, 2**200])
def test_sparse_adam_step_count_never_overflows(start):
    p = Parameter(np.zeros((4, 2)))
    p.grad = RowSparseGrad([1], np.ones((1, 2)), (4, 2))
    optimizer = numoptim.SparseAdam([p], lr=0.1)
    optimizer.step()
    optimizer.state[p]["step"] = start
    optimizer.step()
    assert optimizer.state[p]["step"] == start + 1
    # At such a step both bias corrections are 1: a plain Adam update of the row.
    assert np.all(np.isfinite(p))


def test_sparse_adam_step_beyond_a_double_is_a_clear_error():
    p = Parameter(np.zeros((4, 2)))
    p.grad = RowSparseGrad([1], np.ones((1, 2)), (4, 2))
    optimizer = numoptim.SparseAdam([p], lr=0.1)
    optimizer.step()
    optimizer.state[p]["step"] = 2**1100
    before = snapshot(optimizer)
    with pytest.raises(ValueError, match=r"state\['step'\] of parameter 0 is too large"):
        optimizer.step()
    assert_unchanged(optimizer, before)


# Not Schedule-Free: schedulefree divides the gradient in place, so its second listing
# steps on an already normalized gradient (and its foreach path runs op by op over the
# list); numoptim never modifies a gradient, so the two cannot agree here.
@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(set(ELEMENTWISE) - TRAIN_MODE))
def test_a_parameter_listed_twice_matches_torch(name):
    torch = pytest.importorskip("torch")
    if not reference_available(name):
        pytest.skip(f"the reference of {name} is not installed")
    # numoptim's one path has the semantics of torch's for-loop (its default on the CPU);
    # torch's foreach path updates a parameter listed twice differently.
    kwargs = next(
        case
        for case in reversed(OPTIMIZERS[name])
        if "foreach" not in case and not any(isinstance(v, np.ndarray) for v in case.values())
    )
    rng = np.random.default_rng(5)
    start = rng.standard_normal(7)
    grads = [rng.standard_normal(7) for _ in range(3)]
    ours = Parameter(start.copy())
    theirs = torch.nn.Parameter(torch.tensor(start))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optimizer = make_optimizer(name, [ours, ours], **kwargs)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        reference = reference_class(torch, name)([theirs, theirs], **kwargs)
    for g in grads:
        ours.grad = g
        theirs.grad = torch.tensor(g)
        optimizer.step()
        reference.step()
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    for key, value in reference.state[theirs].items():
        np.testing.assert_allclose(
            optimizer.state[ours][key],
            value.numpy() if isinstance(value, torch.Tensor) else value,  # or timm's numbers
            rtol=1e-12,
            atol=1e-12,
            err_msg=key,
        )
