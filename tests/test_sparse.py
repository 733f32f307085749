"""Row-sparse gradients: RowSparseGrad, SparseAdam, SGD with sparse grads, torch's errors."""

from __future__ import annotations

import copy

import numoptim
import numpy as np
import pytest
from conftest import assert_close, load_golden
from numoptim import SGD, Adam, AdamW, Parameter, RowSparseGrad, SparseAdam
from sparse_cases import CASES, SHAPES, UNTOUCHED, NumoptimSparse, TorchSparse, initial, run

DTYPES = ["float32", "float64"]
ALL_CASES = [(name, i) for name, cases in CASES.items() for i in range(len(cases))]
CASE_IDS = [f"{name}-{i}" for name, i in ALL_CASES]


@pytest.fixture(scope="module")
def golden():
    return load_golden("golden_sparse.npz")


def compare(opt, params, expected, prefix, dtype):
    """Every parameter and state element against `expected[prefix + key]`."""
    for g, group in enumerate(params):
        for j, p in enumerate(group):
            assert_close(p, expected[f"{prefix}p{g}.{j}"], what=f"{prefix}p{g}.{j}")
    produced = NumoptimSparse().state_arrays(opt)
    stored = {k[len(prefix) :] for k in expected if k.startswith(prefix + "s")}
    assert set(produced) == stored, "state keys differ from torch's"
    for key in stored:
        value, want = produced[key], expected[prefix + key]
        if key.endswith("/step"):
            assert value == want
        else:
            assert_close(value, want, dtype=np.dtype(dtype), what=prefix + key)


# ------------------------------------------------------------------ RowSparseGrad


def test_row_sparse_grad_stores_contiguous_int64():
    values = np.arange(12.0, dtype=np.float32).reshape(3, 4)[:, ::2]  # a strided view
    grad = RowSparseGrad(np.array([2, 0, 2], dtype=np.int32), values, (5, 2))
    assert grad.indices.dtype == np.int64 and grad.indices.flags.c_contiguous
    assert grad.values.flags.c_contiguous and grad.dtype == np.float32
    assert grad.shape == (5, 2) and grad.ndim == 2
    np.testing.assert_array_equal(grad.values, values)


def test_coalesce_and_to_dense_sum_repeated_rows_in_order():
    grad = RowSparseGrad([3, 1, 3, 3], np.array([1e8, 2.0, 1.0, -1e8], np.float32), (4,))
    c = grad.coalesce()
    np.testing.assert_array_equal(c.indices, [1, 3])
    # In order: (1e8 + 1) rounds to 1e8 in float32, minus 1e8 is 0 (not 1).
    np.testing.assert_array_equal(c.values, np.array([2.0, 0.0], np.float32))
    np.testing.assert_array_equal(grad.to_dense(), [0.0, 2.0, 0.0, 0.0])
    empty = RowSparseGrad([], np.zeros((0, 3)), (2, 3)).coalesce()
    assert empty.indices.size == 0 and empty.values.shape == (0, 3)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_coalesce_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(0, 12))
        idx = rng.integers(0, 4, n)
        vals = rng.standard_normal((n, 3)) * 10.0 ** rng.integers(-4, 9, (n, 1))
        vals[rng.random((n, 3)) < 0.1] = -0.0
        vals = vals.astype(dtype)
        ours = RowSparseGrad(idx, vals, (4, 3))
        t = torch.sparse_coo_tensor(
            torch.from_numpy(idx)[None], torch.from_numpy(vals), (4, 3), check_invariants=True
        )
        tc = t.coalesce()
        c = ours.coalesce()
        np.testing.assert_array_equal(c.indices, tc.indices()[0].numpy())
        assert np.array_equal(np.signbit(c.values), np.signbit(tc.values().numpy()))
        np.testing.assert_array_equal(c.values, tc.values().numpy())
        np.testing.assert_array_equal(ours.to_dense(), t.to_dense().numpy())


@pytest.mark.parametrize(
    "args,error,message",
    [
        (([[0, 1]], np.zeros((2, 2)), (3, 2)), TypeError, "indices must be a 1-D integer array"),
        (([0.0, 1.0], np.zeros((2, 2)), (3, 2)), TypeError, "indices must be a 1-D integer"),
        (([True], np.zeros((1, 2)), (3, 2)), TypeError, "indices must be a 1-D integer array"),
        (([0], np.zeros(1), ()), ValueError, "a row-sparse gradient needs a shape"),
        (([0], np.zeros((1, 2)), (-3, 2)), ValueError, "shape must not have negative"),
        (([0, 1], np.zeros((2, 3)), (3, 2)), ValueError, "values must have shape (2, 2)"),
        (([0, 3], np.zeros((2, 2)), (3, 2)), ValueError, "row indices must lie in [0, 3)"),
        (([-1], np.zeros((1, 2)), (3, 2)), ValueError, "row indices must lie in [0, 3)"),
    ],
)
def test_row_sparse_grad_validation(args, error, message):
    with pytest.raises(error) as info:
        RowSparseGrad(*args)
    assert str(info.value).startswith(message)


def test_parameter_checks_sparse_grad_dtype_and_shape():
    p = Parameter(np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="different type"):
        p.grad = RowSparseGrad([0], np.zeros((1, 2), np.float64), (3, 2))
    with pytest.raises(ValueError, match="different size"):
        p.grad = RowSparseGrad([0], np.zeros((1, 2), np.float32), (4, 2))


# ------------------------------------------------------------------ golden and live parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,index", ALL_CASES, ids=CASE_IDS)
def test_matches_torch_fixture(golden, name, index, dtype):
    opt, params = run(NumoptimSparse(), name, CASES[name][index], np.dtype(dtype))
    compare(opt, params, golden, f"{name}-{index}/{dtype}/", dtype)


@pytest.mark.torch
@pytest.mark.parametrize("name,index", ALL_CASES, ids=CASE_IDS)
def test_matches_torch_live(name, index, dtype="float64"):
    # float64 only: torch's sparse ops are slow on small tensors, and the fixtures
    # cover float32 (and float64) from the same torch.
    pytest.importorskip("torch")
    torch_backend = TorchSparse()
    kwargs = CASES[name][index]
    t_opt, t_params = run(torch_backend, name, kwargs, np.dtype(dtype))
    expected = {}
    for g, group in enumerate(t_params):
        for j, p in enumerate(group):
            expected[f"p{g}.{j}"] = torch_backend.to_numpy(p)
    expected.update(torch_backend.state_arrays(t_opt))
    opt, params = run(NumoptimSparse(), name, kwargs, np.dtype(dtype))
    compare(opt, params, expected, "", dtype)


@pytest.mark.parametrize("name,index", ALL_CASES, ids=CASE_IDS)
def test_untouched_rows_stay_bit_identical(name, index):
    opt, params = run(NumoptimSparse(), name, CASES[name][index], np.float32)
    for (g, i), rows in UNTOUCHED.items():
        p = params[g][i]
        before = initial(SHAPES[g][i], g, i, np.float32)
        assert np.array_equal(p[rows], before[rows]), (g, i)
        for key, value in opt.state[p].items():
            if isinstance(value, np.ndarray) and value.shape == p.shape:
                assert not np.any(value[rows]), key


# ------------------------------------------------------------------ SparseAdam


def test_sparse_adam_defaults_and_repr():
    p = Parameter(np.zeros((3, 2)))
    opt = SparseAdam([p])
    assert opt.defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "maximize": False}
    assert repr(opt) == (
        "SparseAdam (\nParameter Group 0\n    betas: (0.9, 0.999)\n    eps: 1e-08\n"
        "    lr: 0.001\n    maximize: False\n)"
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lr": 0.0}, "Invalid learning rate: 0.0"),
        ({"lr": -1e-3}, "Invalid learning rate: -0.001"),
        ({"lr": np.array([0.1, 0.2])}, "Tensor lr must be 1-element"),
        ({"eps": 0.0}, "Invalid epsilon value: 0.0"),
        ({"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    ],
)
def test_sparse_adam_validation(kwargs, message):
    with pytest.raises(ValueError) as info:
        SparseAdam([Parameter(np.zeros(3))], **kwargs)
    assert str(info.value) == message


def test_sparse_adam_rejects_dense_grad_before_writing():
    a, b = Parameter(np.ones((3, 2))), Parameter(np.ones((3, 2)))
    a.grad = RowSparseGrad([1], np.ones((1, 2)), (3, 2))
    b.grad = np.ones((3, 2))
    opt = SparseAdam([a, b])
    with pytest.raises(RuntimeError) as info:
        opt.step()
    assert str(info.value) == (
        "SparseAdam does not support dense gradients, please consider Adam instead"
    )
    assert np.all(a == 1) and len(opt.state) == 0


def test_sparse_adam_step_counts_empty_grads():
    p = Parameter(np.ones((4, 2), np.float32))
    opt = SparseAdam([p], lr=0.1)
    p.grad = RowSparseGrad([], np.zeros((0, 2), np.float32), p.shape)
    opt.step()
    assert opt.state[p]["step"] == 1 and type(opt.state[p]["step"]) is int
    assert np.all(p == 1)
    p.grad = None
    opt.step()
    assert opt.state[p]["step"] == 1


def test_sparse_adam_state_dict_round_trip_resumes_bit_identically():
    backend = NumoptimSparse()
    kwargs = CASES["SparseAdam"][1]
    opt, params = run(backend, "SparseAdam", kwargs, np.float32, steps=10)
    state_dict = copy.deepcopy(opt.state_dict())
    for entries in state_dict["state"].values():
        assert type(entries["step"]) is int  # torch's layout: a Python int
    # A second optimizer over copies of the parameters, loaded from the state dict.
    copies = [[backend.parameter(np.array(p)) for p in group] for group in params]
    resumed = SparseAdam([{"params": copies[0]}, {"params": copies[1]}], **kwargs)
    resumed.load_state_dict(state_dict)
    assert resumed.param_groups[1]["lr"] == opt.param_groups[1]["lr"]
    for entries in resumed.state_dict()["state"].values():
        assert type(entries["step"]) is int
    run(backend, "SparseAdam", kwargs, np.float32, start=10, opt=opt, params=params)
    run(backend, "SparseAdam", kwargs, np.float32, start=10, opt=resumed, params=copies)
    for group, copied in zip(params, copies):
        for p, q in zip(group, copied):
            assert np.array_equal(p, q)
    theirs = resumed.state_dict()["state"]
    for index, entries in opt.state_dict()["state"].items():
        for key, value in entries.items():
            assert np.array_equal(value, theirs[index][key]), (index, key)


@pytest.mark.torch
def test_sparse_adam_loads_torch_state_dict():
    torch = pytest.importorskip("torch")
    kwargs = CASES["SparseAdam"][0]
    t_opt, t_params = run(TorchSparse(), "SparseAdam", kwargs, np.float64, steps=8)
    sd = t_opt.state_dict()
    converted = {
        "state": {
            i: {k: v.numpy().copy() if isinstance(v, torch.Tensor) else v for k, v in e.items()}
            for i, e in sd["state"].items()
        },
        "param_groups": sd["param_groups"],
    }
    params = [[Parameter(p.detach().numpy().copy()) for p in g] for g in t_params]
    opt = SparseAdam([{"params": params[0]}, {"params": params[1]}], **kwargs)
    opt.load_state_dict(converted)
    run(TorchSparse(), "SparseAdam", kwargs, np.float64, start=8, opt=t_opt, params=t_params)
    run(NumoptimSparse(), "SparseAdam", kwargs, np.float64, start=8, opt=opt, params=params)
    for group, t_group in zip(params, t_params):
        for p, t in zip(group, t_group):
            assert_close(p, t.detach().numpy())


# ------------------------------------------------------------------ SGD


def test_sgd_sparse_grad_applies_entries_in_order():
    # torch adds an uncoalesced gradient entry by entry: 1 - 1 - 1e-8 - 1e-8 = -2e-8.
    p = Parameter(np.array([1.0, 5.0], np.float32))
    p.grad = RowSparseGrad([0, 0, 0], np.array([1.0, 1e-8, 1e-8], np.float32), p.shape)
    SGD([p], lr=1.0).step()
    assert p[0] == np.float32(1.0) - np.float32(1.0) - np.float32(1e-8) - np.float32(1e-8)
    assert p[1] == 5.0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"weight_decay": 0.1},
            "add(sparse, dense) is not supported. Use add(dense, sparse) instead.",
        ),
        ({"weight_decay": 0.1, "momentum": 0.9}, "add(sparse, dense) is not supported."),
        ({"fused": True}, "`_fused_sgd` does not support sparse gradients"),
    ],
)
def test_sgd_sparse_grad_errors_before_writing(kwargs, message):
    dense, sparse = Parameter(np.ones(3)), Parameter(np.ones(3))
    dense.grad = np.ones(3)
    sparse.grad = RowSparseGrad([1], np.ones(1), (3,))
    opt = SGD([dense, sparse], lr=0.1, **kwargs)
    with pytest.raises(RuntimeError) as info:
        opt.step()
    assert str(info.value).startswith(message)
    assert np.all(dense == 1) and np.all(sparse == 1) and len(opt.state) == 0


@pytest.mark.torch
@pytest.mark.parametrize("kwargs", [{"weight_decay": 0.1}, {"fused": True}])
def test_sgd_sparse_grad_errors_match_torch(kwargs):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    p.grad = torch.sparse_coo_tensor(
        torch.tensor([[1]]), torch.ones(1, dtype=torch.float64), (3,), check_invariants=True
    )
    with pytest.raises(RuntimeError) as expected:
        torch.optim.SGD([p], lr=0.1, **kwargs).step()
    ours = Parameter(np.ones(3))
    ours.grad = RowSparseGrad([1], np.ones(1), (3,))
    with pytest.raises(RuntimeError) as info:
        SGD([ours], lr=0.1, **kwargs).step()
    assert str(info.value) == str(expected.value)


def test_sgd_momentum_mixes_sparse_and_dense_grads_of_one_parameter():
    # Dense momentum for a sparse gradient: the same buffer serves both kinds of steps.
    p, q = Parameter(np.zeros((3, 2))), Parameter(np.zeros((3, 2)))
    opt_p = SGD([p], lr=0.1, momentum=0.9)
    opt_q = SGD([q], lr=0.1, momentum=0.9)
    for step in range(4):
        values = np.full((2, 2), step + 1.0)
        if step % 2:
            p.grad = RowSparseGrad([0, 2], values, p.shape)
        else:
            p.grad = RowSparseGrad([0, 2], values, p.shape).to_dense()
        q.grad = RowSparseGrad([0, 2], values, q.shape).to_dense()
        opt_p.step()
        opt_q.step()
    assert np.array_equal(p, q)
    assert np.array_equal(opt_p.state[p]["momentum_buffer"], opt_q.state[q]["momentum_buffer"])


# ------------------------------------------------------------------ errors of dense optimizers


@pytest.mark.parametrize(
    "cls,message",
    [
        (Adam, "Adam does not support sparse gradients, please consider SparseAdam instead"),
        (AdamW, "Adam does not support sparse gradients, please consider SparseAdam instead"),
    ],
)
def test_dense_optimizers_reject_sparse_grads(cls, message):
    p = Parameter(np.ones((3, 2), np.float32))
    dense = Parameter(np.ones(2, np.float32))
    dense.grad = np.ones(2, np.float32)
    p.grad = RowSparseGrad([0], np.ones((1, 2), np.float32), p.shape)
    opt = cls([dense, p])
    with pytest.raises(RuntimeError) as info:
        opt.step()
    assert str(info.value) == message
    assert np.all(dense == 1) and len(opt.state) == 0


@pytest.mark.torch
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_dense_optimizer_messages_match_torch(name):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.ones(3, 2))
    p.grad = torch.sparse_coo_tensor(
        torch.tensor([[0]]), torch.ones(1, 2), (3, 2), check_invariants=True
    )
    with pytest.raises(RuntimeError) as expected:
        getattr(torch.optim, name)([p]).step()
    ours = Parameter(np.ones((3, 2), np.float32))
    ours.grad = RowSparseGrad([0], np.ones((1, 2), np.float32), ours.shape)
    with pytest.raises(RuntimeError) as info:
        getattr(numoptim, name)([ours]).step()
    assert str(info.value) == str(expected.value)


def test_default_sparse_grad_message_names_the_numoptim_class():
    class Custom(SGD):
        _sparse_grad_error = None

    class MyAdam(Adam):
        pass

    assert Custom([Parameter(np.zeros(1))])._sparse_grad_message() == (
        "SGD does not support sparse gradients"
    )
    assert MyAdam([Parameter(np.zeros(1))])._sparse_grad_message().startswith("Adam does not")


# ------------------------------------------------------------------ native checks and threads


def test_native_checks_a_tampered_sparse_grad():
    p = Parameter(np.zeros((3, 2)))
    grad = RowSparseGrad([0], np.ones((1, 2)), (3, 2))
    p.grad = grad
    grad.indices = np.array([7], np.int64)  # out of range after construction
    with pytest.raises(ValueError, match="row index 7 out of range"):
        SparseAdam([p]).step()
    with pytest.raises(ValueError, match="row index 7 out of range"):
        SGD([p], lr=0.1).step()
    grad.indices = np.array([0], np.int32)
    with pytest.raises(TypeError, match="int64 indices"):
        SparseAdam([p]).step()
    assert np.all(p == 0)


@pytest.mark.parametrize("name", ["SparseAdam", "SGD"])
def test_threads_give_bit_identical_results(name, restore_threads):
    # Enough rows to cross the parallel threshold, with repeated rows.
    rng = np.random.default_rng(1)
    shape = (3000, 33)
    rows = rng.integers(0, shape[0], 4000)
    values = rng.standard_normal((rows.size, shape[1])).astype(np.float32)
    results = []
    for threads in (1, 2):
        numoptim.set_num_threads(threads)
        p = Parameter(np.ones(shape, np.float32))
        opt = getattr(numoptim, name)([p], lr=0.01)
        for _ in range(3):
            p.grad = RowSparseGrad(rows, values, shape)
            opt.step()
        results.append(np.array(p))
    assert np.array_equal(results[0], results[1])


def test_sparse_adam_group_with_duplicate_parameter():
    p = Parameter(np.ones((3, 2)))
    q = Parameter(np.ones((3, 2)))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        opt = SparseAdam([p, p], lr=0.1)
    opt_q = SparseAdam([q], lr=0.1)
    p.grad = RowSparseGrad([1], np.ones((1, 2)), (3, 2))
    q.grad = p.grad
    opt.step()
    opt_q.step()
    opt_q.step()  # torch: the parameter is stepped twice, with step 1 then step 2
    assert opt.state[p]["step"] == 2
    assert np.array_equal(p, q)
