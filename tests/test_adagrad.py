"""What the registry does not cover for Adagrad: its eagerly created state, how that
state meets load_state_dict, and row-sparse gradients (against torch and NumPy)."""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from conftest import assert_close
from harness import hashed_values

DTYPES = [np.float32, np.float64]


def make_params(dtype, shapes=((5,), (3, 4))):
    return [
        numoptim.Parameter(hashed_values(i + 1, int(np.prod(s)), dtype).reshape(s))
        for i, s in enumerate(shapes)
    ]


# ----------------------------------------------------------------- eager state


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_is_created_at_construction(dtype):
    params = make_params(dtype)
    opt = numoptim.Adagrad(params, initial_accumulator_value=0.25)
    for p in params:
        state = opt.state[p]
        assert set(state) == {"step", "sum"}
        assert state["step"].dtype == np.float32 and state["step"].shape == ()
        assert state["step"] == 0
        assert state["sum"].dtype == dtype and state["sum"].shape == p.shape
        assert type(state["sum"]) is np.ndarray  # not a Parameter
        assert np.all(state["sum"] == 0.25)
    # Even parameters that never get a gradient appear in the state dict, as in torch.
    assert sorted(opt.state_dict()["state"]) == [0, 1]


def test_group_initial_accumulator_value_is_ignored():
    a, b = make_params(np.float64)
    opt = numoptim.Adagrad(
        [{"params": [a]}, {"params": [b], "initial_accumulator_value": 5.0}],
        initial_accumulator_value=0.5,
    )
    assert np.all(opt.state[b]["sum"] == 0.5)
    assert opt.param_groups[1]["initial_accumulator_value"] == 5.0


def test_added_group_gets_state_at_its_first_step():
    a, b = make_params(np.float64)
    opt = numoptim.Adagrad([a], initial_accumulator_value=0.5)
    opt.add_param_group({"params": [b], "initial_accumulator_value": 3.0})
    assert b not in opt.state  # as torch: add_param_group creates no state
    b.grad = np.ones_like(b)
    opt.step()
    # The constructor's value, not the group's; one step of s <- s + g^2.
    assert_close(opt.state[b]["sum"], np.full(b.shape, 1.5))
    assert opt.state[b]["step"] == 1
    assert opt.state[a]["step"] == 0  # no grad: untouched


def run_steps(opt, params, steps, start=0):
    for step in range(start, start + steps):
        for i, p in enumerate(params):
            p.grad = hashed_values(100 * step + i + 7, p.size, p.dtype, 2.0).reshape(p.shape)
        opt.step()


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_round_trip_continues_identically(dtype):
    kwargs = {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}
    reference = make_params(dtype)
    ref_opt = numoptim.Adagrad(reference, **kwargs)
    run_steps(ref_opt, reference, 7)

    resumed = [numoptim.Parameter(np.array(p)) for p in reference]
    # The fresh optimizer has its own eager state (step 0, sum 0.1); loading replaces it.
    opt = numoptim.Adagrad(resumed, **kwargs)
    opt.load_state_dict(ref_opt.state_dict())
    for p, q in zip(resumed, reference):
        assert opt.state[p]["step"] == 7
        assert opt.state[p]["sum"] is not ref_opt.state[q]["sum"]  # copied
        np.testing.assert_array_equal(opt.state[p]["sum"], ref_opt.state[q]["sum"])
    run_steps(ref_opt, reference, 5, start=7)
    run_steps(opt, resumed, 5, start=7)
    for p, q in zip(resumed, reference):
        np.testing.assert_array_equal(p, q)


def test_loading_a_state_without_a_parameter_creates_it_lazily():
    a, b = make_params(np.float64)
    opt = numoptim.Adagrad([a, b], initial_accumulator_value=0.5)
    state_dict = opt.state_dict()
    del state_dict["state"][1]
    opt.load_state_dict(state_dict)
    assert b not in opt.state
    b.grad = np.ones_like(b)
    opt.step()
    assert_close(opt.state[b]["sum"], np.full(b.shape, 1.5))


def test_loaded_sum_of_wrong_shape_is_rejected():
    a, b = make_params(np.float64)
    opt = numoptim.Adagrad([a, b])
    state_dict = opt.state_dict()
    state_dict["state"][1] = {"step": np.array(0.0, np.float32), "sum": np.zeros(3)}
    with pytest.raises(ValueError, match="'sum' of shape"):
        opt.load_state_dict(state_dict)


def test_foreach_and_fused_are_accepted():
    for flags in ({"foreach": True}, {"foreach": False}, {"fused": True}, {"fused": False}):
        opt = numoptim.Adagrad(make_params(np.float32), **flags)
        assert all(opt.param_groups[0][k] == v for k, v in flags.items())


# ----------------------------------------------------------------- sparse grads


def reference_sparse_step(p, total, step, grad_rows, grad_values, lr, lr_decay, eps, maximize):
    """torch's sparse Adagrad, written out with a dense scatter of the coalesced grad."""
    rows, inverse = np.unique(grad_rows, return_inverse=True)
    values = np.zeros((rows.size,) + p.shape[1:], p.dtype)
    np.add.at(values, inverse.reshape(-1), grad_values)
    if maximize:
        values = -values
    clr = lr / (1 + (step - 1) * lr_decay)
    total[rows] += values * values
    p[rows] -= clr * (values / (np.sqrt(total[rows]) + eps))


def sparse_inputs(step, n_rows, row_shape, dtype):
    count = 1 + step % 5
    rows = (hashed_values(500 + step, count, np.float64) * 0.5 + 0.5) * n_rows
    rows = rows.astype(np.int64)
    if count > 2:
        rows[2] = rows[0]  # a repeated row, summed by coalesce
    values = hashed_values(900 + step, count * int(np.prod(row_shape)), dtype, 2.0)
    return rows, values.reshape((count,) + row_shape)


SPARSE_CASES = [
    {"lr": 0.1},
    {"lr": 0.1, "lr_decay": 0.2, "initial_accumulator_value": 0.3, "maximize": True},
    {"lr": 0.05, "eps": 1e-3},
]


@pytest.mark.parametrize("kwargs", SPARSE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_matches_numpy_reference(kwargs, dtype):
    shape = (20, 3)
    emb = numoptim.Parameter(hashed_values(1, 60, dtype).reshape(shape))
    expected = np.array(emb)
    total = np.full(shape, kwargs.get("initial_accumulator_value", 0.0), dtype)
    opt = numoptim.Adagrad([emb], **kwargs)
    untouched = np.ones(shape[0], bool)
    for step in range(1, 13):
        rows, values = sparse_inputs(step, shape[0], shape[1:], dtype)
        untouched[rows] = False
        emb.grad = numoptim.RowSparseGrad(rows, values, shape)
        opt.step()
        reference_sparse_step(
            expected,
            total,
            step,
            rows,
            values,
            kwargs["lr"],
            kwargs.get("lr_decay", 0.0),
            kwargs.get("eps", 1e-10),
            kwargs.get("maximize", False),
        )
    assert_close(emb, expected)
    assert_close(opt.state[emb]["sum"], total)
    assert opt.state[emb]["step"] == 12
    # Rows that no gradient touched are exactly as they were.
    initial = hashed_values(1, 60, dtype).reshape(shape)
    np.testing.assert_array_equal(np.asarray(emb)[untouched], initial[untouched])


def test_sparse_grad_with_weight_decay_raises_and_changes_nothing():
    emb, dense = make_params(np.float64, shapes=((6, 2), (4,)))
    before = [np.array(emb), np.array(dense)]
    opt = numoptim.Adagrad([dense, emb], weight_decay=0.1)
    dense.grad = np.ones_like(dense)
    emb.grad = numoptim.RowSparseGrad([1], np.ones((1, 2)), emb.shape)
    with pytest.raises(RuntimeError, match="weight_decay option is not compatible with sparse"):
        opt.step()
    np.testing.assert_array_equal(emb, before[0])
    np.testing.assert_array_equal(dense, before[1])
    assert opt.state[dense]["step"] == 0 and opt.state[emb]["step"] == 0


def test_empty_sparse_grad_only_counts_the_step():
    (emb,) = make_params(np.float32, shapes=((4, 3),))
    before = np.array(emb)
    opt = numoptim.Adagrad([emb])
    emb.grad = numoptim.RowSparseGrad(
        np.zeros(0, np.int64), np.zeros((0, 3), np.float32), emb.shape
    )
    opt.step()
    np.testing.assert_array_equal(emb, before)
    assert opt.state[emb]["step"] == 1


@pytest.mark.torch
@pytest.mark.parametrize("kwargs", SPARSE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_and_dense_mixed_match_torch(kwargs, dtype):
    """One group with a row-sparse embedding between two dense parameters, and a second
    group, against torch.optim.Adagrad with sparse COO gradients."""
    torch = pytest.importorskip("torch")
    emb_shape, dense_shapes = (30, 4), [(7,), (2, 5)]
    values = [
        hashed_values(i + 1, int(np.prod(s)), dtype).reshape(s)
        for i, s in enumerate([dense_shapes[0], emb_shape, dense_shapes[1]])
    ]
    ours = [numoptim.Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    opt = numoptim.Adagrad([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.02}], **kwargs)
    topt = torch.optim.Adagrad(
        [{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.02}], **kwargs
    )
    for step in range(1, 16):
        for i, (p, t) in enumerate(zip(ours, theirs)):
            if i == 1:
                rows, vals = sparse_inputs(step, emb_shape[0], emb_shape[1:], dtype)
                p.grad = numoptim.RowSparseGrad(rows, vals, emb_shape)
                t.grad = torch.sparse_coo_tensor(
                    torch.from_numpy(rows[None, :]),
                    torch.from_numpy(vals),
                    emb_shape,
                    check_invariants=True,
                )
            elif step % 4 == 3:
                p.grad, t.grad = None, None
            else:
                g = hashed_values(700 + 10 * step + i, p.size, dtype, 2.0).reshape(p.shape)
                p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
        opt.step()
        # Opting in to torch's sparse invariant checks silences its warning about them.
        with torch.sparse.check_sparse_tensor_invariants():
            topt.step()
    for p, t in zip(ours, theirs):
        assert_close(p, t.detach().numpy())
        assert_close(opt.state[p]["sum"], topt.state[t]["sum"].numpy())
        assert opt.state[p]["step"] == topt.state[t]["step"].item()


# ----------------------------------------------------------------- live torch state


@pytest.mark.torch
def test_torch_state_dict_loads_and_continues_identically():
    """A torch Adagrad state dict, its tensors turned into arrays, loads and continues."""
    torch = pytest.importorskip("torch")
    kwargs = {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}
    ours = make_params(np.float64)
    theirs = [torch.nn.Parameter(torch.from_numpy(np.array(p))) for p in ours]
    topt = torch.optim.Adagrad(theirs, **kwargs)
    for step in range(4):
        for i, t in enumerate(theirs):
            g = hashed_values(100 * step + i + 7, t.numel(), np.float64, 2.0)
            t.grad = torch.from_numpy(g.reshape(t.shape))
        topt.step()
    for p, t in zip(ours, theirs):
        p[...] = t.detach().numpy()
    saved = topt.state_dict()
    state_dict = {
        "state": {
            k: {n: v.numpy().copy() for n, v in s.items()} for k, s in saved["state"].items()
        },
        "param_groups": saved["param_groups"],
    }
    opt = numoptim.Adagrad(ours, **kwargs)
    opt.load_state_dict(state_dict)
    run_steps(opt, ours, 3, start=4)
    for step in range(4, 7):
        for i, t in enumerate(theirs):
            g = hashed_values(100 * step + i + 7, t.numel(), np.float64, 2.0)
            t.grad = torch.from_numpy(g.reshape(t.shape))
        topt.step()
    for p, t in zip(ours, theirs):
        assert_close(p, t.detach().numpy())
