"""Complex parameters: what the registry's parity runs (test_golden, test_live_parity)
do not cover. torch.optim steps a complex parameter as the real pairs of its memory
(torch.view_as_real), so a complex run must be, bit for bit, the run of the same
optimizer on float parameters that hold those pairs, except for RMSprop's weight decay,
which torch adds to the complex gradient before the view (see
test_rmsprop_decays_a_complex_gradient_in_complex_arithmetic); and what torch refuses
(Adafactor, Muon, SparseAdam, fused kernels) numoptim refuses with torch's error, before
anything is written.
"""

from __future__ import annotations

import copy
import math

import numoptim
import numpy as np
import pytest
from conftest import assert_close
from harness import NumpyBackend, hashed_values, run_case
from numoptim import Parameter
from registry import COMPLEX, OPTIMIZERS, steps_complex

REAL = {np.dtype(np.complex64): np.float32, np.dtype(np.complex128): np.float64}


def decays_in_complex_arithmetic(name: str, kwargs: dict) -> bool:
    """Whether the weight decay of a complex parameter is not that of its real pairs:
    torch's RMSprop adds it to the complex gradient before viewing it as reals, and complex
    arithmetic rounds wd * p before the addition, where the real one fuses them (its other
    rules decay before the view too, but unfused for real parameters as well)."""
    return name == "RMSprop" and kwargs.get("weight_decay", 0) != 0


STEPPED = [
    pytest.param(name, i, kwargs, id=f"{name}-{i}")
    for name in COMPLEX
    for i, kwargs in enumerate(OPTIMIZERS[name])
    if steps_complex(name, kwargs)
]


def complex_values(seed: int, shape: tuple[int, ...], dtype) -> np.ndarray:
    return hashed_values(seed, int(np.prod(shape)), dtype).reshape(shape)


def snapshot(opt, params) -> tuple[list[np.ndarray], dict]:
    state = {
        i: {k: np.array(v) for k, v in entries.items() if isinstance(v, np.ndarray)}
        for i, entries in opt.state_dict()["state"].items()
    }
    return [np.array(p) for p in params], state


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("name,index,kwargs", STEPPED)
def test_complex_step_is_the_step_of_its_real_pairs(name, index, kwargs, dtype):
    """Bit for bit: a complex run (state complex) equals the real run on the real pairs
    (state real), one group of complex and real parameters mixed. Where torch decays a
    complex gradient in complex arithmetic, the real run gets that decayed gradient and no
    decay of its own."""
    dtype = np.dtype(dtype)
    real = np.dtype(REAL[dtype])
    complex_decay = decays_in_complex_arithmetic(name, kwargs)
    shapes = [(3, 5), (1,), (0,), (17,)]
    values = [complex_values(i + 1, s, dtype) for i, s in enumerate(shapes)]
    plain = complex_values(99, (6,), real)  # a real parameter of the same group
    complex_params = [Parameter(v.copy()) for v in values] + [Parameter(plain.copy())]
    # The pairs: shape (..., 2), as torch.view_as_real.
    real_params = [Parameter(v.view(real).reshape(*v.shape, 2).copy()) for v in values]
    real_params.append(Parameter(plain.copy()))
    # Adagrad's sum starts at complex(v, v), the real run's at v, v: alike.
    opt_c = getattr(numoptim, name)(complex_params, **kwargs)
    if complex_decay:  # the pairs without the rule's decay; the real parameter with it
        groups = [{"params": real_params[:-1], "weight_decay": 0}, {"params": real_params[-1:]}]
        opt_r = getattr(numoptim, name)(groups, **kwargs)
    else:
        opt_r = getattr(numoptim, name)(real_params, **kwargs)
    for step in range(7):
        for k, (pc, pr) in enumerate(zip(complex_params, real_params)):
            if step == 2 and k == 1:
                pc.grad = pr.grad = None
                continue
            g = complex_values(1000 + 10 * step + k, pc.shape, pc.dtype)
            pc.grad = g
            pr.grad = g.view(real).reshape(pr.shape).copy() if g.dtype.kind == "c" else g.copy()
            if complex_decay and pc.dtype.kind == "c":
                # wd * p rounded, then added (after maximize's negation), as NumPy computes it.
                decay = kwargs["weight_decay"] * np.asarray(pr)
                pr.grad = pr.grad - decay if kwargs.get("maximize") else pr.grad + decay
        opt_c.step()
        opt_r.step()
    for pc, pr in zip(complex_params, real_params):
        assert pc.dtype.kind == "c" or pc.dtype == real
        got = np.ascontiguousarray(pc).view(real).reshape(pr.shape)
        np.testing.assert_array_equal(got, pr, strict=True)
    for pc, pr in zip(complex_params, real_params):
        for key, value in opt_c.state[pc].items():
            expected = opt_r.state[pr][key]
            if value.ndim == 0 or pc.dtype.kind != "c":
                np.testing.assert_array_equal(value, expected, strict=True)
                continue
            assert value.dtype == pc.dtype, key  # complex state, as torch's
            np.testing.assert_array_equal(value.view(real).reshape(expected.shape), expected)


def test_rmsprop_decays_a_complex_gradient_in_complex_arithmetic():
    """torch's RMSprop adds the weight decay to a complex gradient before viewing it as
    reals: complex arithmetic rounds wd * p, then adds, where the real pairs' decay is one
    fused multiply-add. Where the gradient nearly cancels the decay, that rounding is most
    of the decayed gradient, and the division by sqrt(v) + eps carries it into every later
    step (live parity, seed 1272609171: 1.2e-5 from torch after 23 steps). The element
    here is that run's: g + 0.05 p = 1.8962e-6 rounded the complex way, 1.8956e-6 fused."""
    p0 = np.array([-0.7906404 + 0.5j, 0.25 - 1j], np.complex64)
    g0 = np.array([0.039533917 + 0.125j, -0.5 + 2j], np.complex64)
    kwargs = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.05}
    p = Parameter(p0.copy())
    pairs = Parameter(p0.view(np.float32).copy())
    opt, opt_pairs = numoptim.RMSprop([p], **kwargs), numoptim.RMSprop([pairs], **kwargs)
    p.grad, pairs.grad = g0.copy(), g0.view(np.float32).copy()
    opt.step()
    opt_pairs.step()
    decayed = g0.view(np.float32) + np.float32(0.05) * p0.view(np.float32)
    assert decayed[0] == np.float32(1.8961728e-06)
    v = opt.state[p]["square_avg"].view(np.float32)
    np.testing.assert_array_equal(v, np.float32(0.01) * decayed * decayed)
    # The real pairs decay fused: a different value on that element alone.
    v_pairs = opt_pairs.state[pairs]["square_avg"]
    assert v_pairs[0] != v[0] and np.array_equal(v_pairs[1:], v[1:])
    torch = pytest.importorskip("torch")
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    tp.grad = torch.from_numpy(g0.copy())
    topt = torch.optim.RMSprop([tp], **kwargs)
    topt.step()
    np.testing.assert_array_equal(p, tp.detach().numpy())
    np.testing.assert_array_equal(
        v, torch.view_as_real(topt.state[tp]["square_avg"]).numpy().ravel()
    )


def test_complex_state_is_complex_and_the_step_writes_in_place():
    data = complex_values(1, (4, 3), np.complex64)
    p = Parameter(data)
    assert np.shares_memory(p, data)
    opt = numoptim.Adam([p], lr=0.1, amsgrad=True)
    p.grad = complex_values(2, (4, 3), np.complex64)
    opt.step()
    assert np.shares_memory(p, data) and not np.array_equal(p.imag, np.zeros((4, 3)))
    state = opt.state[p]
    assert state["step"].dtype == np.float32 and state["step"].shape == ()
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert state[key].dtype == np.complex64 and state[key].shape == (4, 3)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_flat_parameters_of_complex_step_as_ordinary_ones(dtype):
    values = [complex_values(i + 1, (n,), dtype) for i, n in enumerate((3, 8, 1))]
    flat = numoptim.utils.flat_parameters(values)
    plain = [Parameter(v.copy()) for v in values]
    opt_flat = numoptim.Adam(flat, lr=0.1)
    opt_plain = numoptim.Adam(plain, lr=0.1)
    for step in range(3):
        for k, (f, q) in enumerate(zip(flat, plain)):
            g = complex_values(50 + 10 * step + k, f.shape, dtype)
            f.grad[...] = g
            q.grad = g.copy()
        opt_flat.step()
        opt_plain.step()
    for f, q in zip(flat, plain):
        np.testing.assert_array_equal(np.asarray(f), np.asarray(q), strict=True)
        np.testing.assert_array_equal(
            opt_flat.state[f]["exp_avg_sq"], opt_plain.state[q]["exp_avg_sq"]
        )
        assert opt_flat.state[f]["exp_avg"].dtype == np.dtype(dtype)


def test_master_weights_leave_complex_parameters_alone():
    """master_weights=True concerns float16/bfloat16 parameters only: a complex one
    steps as without it (as a float32 one does)."""
    runs = []
    for master in (False, True):
        p = Parameter(complex_values(1, (9,), np.complex64))
        opt = numoptim.AdamW([p], lr=0.05, master_weights=master)
        for step in range(3):
            p.grad = complex_values(10 + step, (9,), np.complex64)
            opt.step()
        assert "master_param" not in opt.state[p]
        runs.append(np.array(p))
    np.testing.assert_array_equal(runs[0], runs[1])


# ---------------------------------------------------------------- refusals


def assert_unchanged(before, after):
    params_a, state_a = before
    params_b, state_b = after
    for x, y in zip(params_a, params_b):
        np.testing.assert_array_equal(x, y, strict=True)
    assert state_a.keys() == state_b.keys()
    for i in state_a:
        for k in state_a[i]:
            np.testing.assert_array_equal(state_a[i][k], state_b[i][k], strict=True)


@pytest.mark.parametrize("name", ["Adafactor", "Muon"])
def test_adafactor_and_muon_refuse_complex_at_the_step_with_nothing_written(name):
    real = Parameter(complex_values(1, (4, 6), np.float32))
    z = Parameter(complex_values(2, (3, 5), np.complex64))
    opt = getattr(numoptim, name)([{"params": [real]}, {"params": [z]}], lr=0.01)
    real.grad = complex_values(3, (4, 6), np.float32)
    z.grad = None
    opt.step()  # as torch: a complex parameter without a grad is skipped
    z.grad = complex_values(4, (3, 5), np.complex64)
    before = snapshot(opt, [real, z])
    with pytest.raises(RuntimeError, match=f"^{name} does not support complex parameters$"):
        opt.step()
    assert_unchanged(before, snapshot(opt, [real, z]))


def test_sparse_adam_refuses_complex_parameters_as_torch():
    a = Parameter(np.zeros(3, np.float32))
    z = Parameter(np.zeros(3, np.complex64))
    message = (
        "Complex params at indices [[0, 1], [1, 0]]: SparseAdam does not support complex parameters"
    )
    with pytest.raises(ValueError) as info:
        numoptim.SparseAdam([{"params": [a, z]}, {"params": [z.view(Parameter)]}])
    assert str(info.value) == message


@pytest.mark.parametrize(
    "name",
    ["Lion", "AdamWScheduleFree", "SGDScheduleFree", "RAdamScheduleFree", "AdEMAMix", "Adan"],
)
def test_the_optimizers_beyond_torch_refuse_complex_parameters_when_added(name):
    # Their references do not step complex parameters as real pairs (lion-pytorch cannot
    # step them at all): refused when added, before anything changes.
    z = Parameter(np.zeros(3, np.complex64))
    a = Parameter(np.zeros(3, np.float32))
    pattern = f"^{name} does not support complex parameters, but parameter 1 has dtype complex64"
    with pytest.raises(TypeError, match=pattern):
        getattr(numoptim, name)([a, z])
    opt = getattr(numoptim, name)([a])
    with pytest.raises(TypeError, match="parameter 0 has dtype complex64"):
        opt.add_param_group({"params": [z]})
    assert len(opt.param_groups) == 1


def test_8bit_refuses_complex_parameters_when_added():
    z = Parameter(np.zeros(3, np.complex64))
    a = Parameter(np.zeros(3, np.float32))
    for name in ("Adam8bit", "AdamW8bit", "Lion8bit", "AdEMAMix8bit"):
        with pytest.raises(TypeError, match="parameter 1 has dtype complex64"):
            getattr(numoptim, name)([a, z])


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad"])
def test_fused_refuses_complex_with_torchs_error_and_nothing_written(name):
    a = Parameter(complex_values(1, (5,), np.float64))
    z = Parameter(complex_values(2, (5,), np.complex128))
    opt = getattr(numoptim, name)([{"params": [a]}, {"params": [z]}], lr=0.1, fused=True)
    a.grad = complex_values(3, (5,), np.float64)
    z.grad = complex_values(4, (5,), np.complex128)
    before = snapshot(opt, [a, z])
    with pytest.raises(RuntimeError) as info:
        opt.step()
    assert str(info.value) == (
        "`fused=True` requires all the params to be floating point Tensors of supported "
        "devices: ['mps', 'cuda', 'xpu', 'hpu', 'cpu', 'mtia', 'privateuseone'] but "
        "torch.complex128 and cpu"
    )
    assert_unchanged(before, snapshot(opt, [a, z]))


@pytest.mark.parametrize("name", COMPLEX)
def test_grad_of_another_dtype_raises_before_anything_is_written(name):
    kwargs = OPTIMIZERS[name][0]
    a = Parameter(complex_values(1, (5,), np.complex64))
    z = Parameter(complex_values(2, (4,), np.complex64))
    opt = getattr(numoptim, name)([{"params": [a]}, {"params": [z]}], **kwargs)
    a.grad = complex_values(3, (5,), np.complex64)
    z.grad = complex_values(4, (4,), np.complex64)
    opt.step()
    before = snapshot(opt, [a, z])
    # Assigning checks the dtype; so does the step, for a grad set behind the setter.
    for wrong in (np.complex128, np.float32):
        with pytest.raises(TypeError, match="assigned grad has data of a different type"):
            z.grad = np.zeros(4, wrong)
    z._grad = np.zeros(8, np.float32).reshape(4, 2)[:, 0].copy()
    with pytest.raises(TypeError, match="the grad of parameter 0 has dtype float32 but the "):
        opt.step()
    z._grad = np.zeros(4, np.complex128)
    with pytest.raises(
        TypeError, match="has dtype complex128 but the parameter has dtype complex64"
    ):
        opt.step()
    assert_unchanged(before, snapshot(opt, [a, z]))


def test_state_of_the_wrong_dtype_raises_before_anything_is_written():
    a = Parameter(complex_values(1, (5,), np.complex64))
    opt = numoptim.RMSprop([a], lr=0.01)
    a.grad = complex_values(2, (5,), np.complex64)
    opt.step()
    opt.state[a]["square_avg"] = np.zeros(5, np.float32)
    before = np.array(a)
    with pytest.raises(TypeError, match="has dtype float32 but the parameter has dtype complex64"):
        opt.step()
    np.testing.assert_array_equal(a, before)


# ---------------------------------------------------------------- state dicts


@pytest.mark.parametrize("name,index,kwargs", STEPPED[:: max(1, len(STEPPED) // 24)])
def test_state_dict_round_trip_through_save_and_load(name, index, kwargs, tmp_path):
    opt, _ = run_case(NumpyBackend(), name, kwargs, np.complex128, steps=4)
    path = tmp_path / "state.ckpt"
    numoptim.save(opt.state_dict(), path)
    loaded = numoptim.load(path)
    clone = copy.deepcopy(opt)
    clone.load_state_dict(loaded)
    for i, entries in opt.state_dict()["state"].items():
        for key, value in entries.items():
            got = clone.state_dict()["state"][i][key]
            np.testing.assert_array_equal(got, value, strict=True)
            if isinstance(value, np.ndarray) and value.ndim:
                assert got.dtype == np.complex128


# ---------------------------------------------------------------- LBFGS


def _lbfgs_run(params, closure_for, **kwargs):
    opt = numoptim.LBFGS(params, **kwargs)
    losses = [opt.step(closure_for(params)) for _ in range(3)]
    return losses, opt


def _least_squares_closure(A, b, real):
    """A closure computing |A x - b|^2 / 2 over the reals x of the parameters."""

    def closure_for(params):
        def closure():
            x = np.concatenate([np.ascontiguousarray(p).view(real).reshape(-1) for p in params])
            r = A @ x - b
            g = A.T @ r
            offset = 0
            for p in params:
                n = 2 * p.size if p.dtype.kind == "c" else p.size
                chunk = g[offset : offset + n].astype(real)
                p.grad = (
                    chunk.view(p.dtype).reshape(p.shape)
                    if p.dtype.kind == "c"
                    else (chunk.reshape(p.shape))
                )
                offset += n
            return float(0.5 * r @ r)

        return closure

    return closure_for


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_steps_complex_parameters_as_their_real_pairs(dtype, line_search_fn):
    """torch's LBFGS flattens a complex parameter as view_as_real: the run is, bit for
    bit, that of float parameters holding the pairs (state vectors real)."""
    dtype = np.dtype(dtype)
    real = REAL[dtype]
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 14))
    b = rng.standard_normal(30)
    z0 = complex_values(1, (2, 3), dtype)
    w0 = complex_values(2, (2,), real)
    closure_for = _least_squares_closure(A, b, real)
    complex_params = [Parameter(z0.copy()), Parameter(w0.copy())]
    real_params = [Parameter(z0.view(real).copy()), Parameter(w0.copy())]
    kwargs = {"lr": 0.5, "history_size": 4, "max_iter": 6, "line_search_fn": line_search_fn}
    losses_c, opt_c = _lbfgs_run(complex_params, closure_for, **kwargs)
    losses_r, opt_r = _lbfgs_run(real_params, closure_for, **kwargs)
    assert losses_c == losses_r
    np.testing.assert_array_equal(
        np.ascontiguousarray(complex_params[0]).view(real), real_params[0]
    )
    np.testing.assert_array_equal(complex_params[1], real_params[1])
    state = opt_c.state[complex_params[0]]
    assert state["d"].dtype == real and state["d"].shape == (14,)
    np.testing.assert_array_equal(state["d"], opt_r.state[real_params[0]]["d"])


def test_lbfgs_matches_torch_on_complex_parameters():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    M = rng.standard_normal((8, 5)) + 1j * rng.standard_normal((8, 5))
    y = rng.standard_normal(8) + 1j * rng.standard_normal(8)
    z0 = complex_values(3, (5,), np.complex128)
    p = Parameter(z0.copy())
    tp = torch.nn.Parameter(torch.from_numpy(z0.copy()))

    def closure():
        r = M @ p - y
        # d/d(conj z) of |r|^2 / 2, torch's convention for the gradient of a real loss.
        p.grad = np.ascontiguousarray(M.conj().T @ r)
        return float(0.5 * np.vdot(r, r).real)

    def torch_closure():
        tp.grad = None
        loss = 0.5 * (torch.from_numpy(M) @ tp - torch.from_numpy(y)).abs().pow(2).sum()
        loss.backward()
        return loss

    kwargs = {"lr": 0.5, "max_iter": 8, "history_size": 5, "line_search_fn": "strong_wolfe"}
    opt = numoptim.LBFGS([p], **kwargs)
    topt = torch.optim.LBFGS([tp], **kwargs)
    for _ in range(2):
        opt.step(closure)
        topt.step(torch_closure)
    # Whole trajectories: a last-bit difference grows along them (see test_lbfgs.py).
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- utils


def test_utils_norms_of_complex_gradients_are_of_their_magnitudes():
    z = complex_values(1, (7,), np.complex64)
    w = complex_values(2, (5,), np.float64)
    magnitudes = np.abs(z)
    for p in (2.0, 1.0, 3.0, 0.0, np.inf, -np.inf):
        got = numoptim.utils.get_total_norm([z, w], p)
        expected = numoptim.utils.get_total_norm([magnitudes, w], p)
        assert got.dtype == expected.dtype == np.float64
        np.testing.assert_array_equal(got, expected)
    assert numoptim.utils.get_total_norm([z]).dtype == np.float32


def _exact_norm(magnitudes: np.ndarray, p: float) -> float:
    a = np.asarray(magnitudes, dtype=np.float64)
    if p == np.inf:
        return float(a.max())
    if p == -np.inf:
        return float(a.min())
    if p == 0:
        return float(np.count_nonzero(a))
    return math.fsum(a**p) ** (1 / p)


def test_utils_match_torch_on_complex_gradients():
    torch = pytest.importorskip("torch")
    from torch.nn import utils as tu

    for dtype in (np.complex64, np.complex128):
        grads = [complex_values(i + 1, (n,), dtype) for i, n in enumerate((7, 1, 300))]
        grads.append(complex_values(9, (4,), np.float32))
        rtol = 1e-6 if dtype == np.complex64 else 1e-12
        for p in (2.0, 1.0, 3.0, 0.0, np.inf, -np.inf):
            got = numoptim.utils.get_total_norm(grads, p)
            # The exact result: magnitudes (np.abs is correctly rounded hypot) summed
            # exactly, each tensor's norm rounded to its dtype, as torch defines it.
            dtype_of_norms = np.result_type(*(np.finfo(g.dtype).dtype for g in grads))
            norms = [np.finfo(g.dtype).dtype.type(_exact_norm(np.abs(g), p)) for g in grads]
            exact = _exact_norm(np.array(norms, dtype=np.float64), p)
            assert got.dtype == dtype_of_norms
            np.testing.assert_allclose(float(got), exact, rtol=rtol, err_msg=f"p={p}")
            if p == 0:
                # torch 2.13's order-0 norm of a complex CPU tensor counts its nonzero
                # real parts (its kernels cast complex to real, with a warning), where a
                # short one counts nonzero values. numoptim counts nonzero values, the
                # order-0 norm of the magnitudes that every other order follows.
                continue
            expected = tu.get_total_norm([torch.from_numpy(g) for g in grads], p).numpy()
            assert got.dtype == expected.dtype
            # torch sums the powers in its dtype (|z|^3 of complex128 drifts by 1.5e-10
            # here): ours must be within the tolerance of torch plus torch's own error.
            torch_error = abs(float(expected) - exact) / exact
            assert abs(float(got) - float(expected)) <= (rtol + torch_error) * exact, p
        params = [Parameter(np.zeros_like(g)) for g in grads]
        tparams = [
            torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype)) for g in grads
        ]
        for q, tq, g in zip(params, tparams, grads):
            q.grad = g.copy()
            tq.grad = torch.from_numpy(g.copy())
        total = numoptim.utils.clip_grad_norm_(params, 0.5)
        ttotal = tu.clip_grad_norm_(tparams, 0.5)
        assert_close(total, ttotal.numpy())
        for q, tq in zip(params, tparams):
            assert_close(q.grad, tq.grad.numpy())
        vector = numoptim.utils.parameters_to_vector(params)
        assert vector.dtype == tu.parameters_to_vector(tparams).detach().numpy().dtype


def test_clip_grad_value_refuses_complex_gradients_before_clipping_any():
    a = Parameter(np.zeros(3, np.float32))
    z = Parameter(np.zeros(3, np.complex64))
    a.grad = np.array([5.0, -5.0, 0.5], np.float32)
    z.grad = np.full(3, 5 + 5j, np.complex64)
    with pytest.raises(NotImplementedError, match="^clamp is not supported for complex types$"):
        numoptim.utils.clip_grad_value_([a, z], 1.0)
    np.testing.assert_array_equal(a.grad, [5.0, -5.0, 0.5])


# ---------------------------------------------------------------- row-sparse gradients


def _sparse_grads(step: int, dtype, rows: int = 6, width: int = 3):
    """A RowSparseGrad with a repeated row, and its row indices and values."""
    indices = np.array([(step + 1) % rows, 0, (step + 1) % rows, rows - 1], dtype=np.int64)
    values = complex_values(500 + step, (4, width), dtype)
    return numoptim.RowSparseGrad(indices, values, (rows, width)), indices, values


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_sparse_sgd_steps_complex_rows_as_their_real_pairs(dtype):
    real = REAL[np.dtype(dtype)]
    start = complex_values(7, (6, 3), dtype)
    z = Parameter(start.copy())
    r = Parameter(start.view(real).copy())  # (6, 6): the pairs of each row
    opt_z = numoptim.SGD([z], lr=0.1, maximize=True)
    opt_r = numoptim.SGD([r], lr=0.1, maximize=True)
    for step in range(4):
        z.grad, indices, values = _sparse_grads(step, dtype)
        r.grad = numoptim.RowSparseGrad(indices, values.view(real), (6, 6))
        opt_z.step()
        opt_r.step()
        np.testing.assert_array_equal(np.asarray(z).view(real), r)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", {"lr": 0.1}),
        ("SGD", {"lr": 0.05, "maximize": True}),
        ("Adagrad", {"lr": 0.1}),
        ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.2}),
        ("Adagrad", {"lr": 0.1, "maximize": True}),
    ],
)
def test_sparse_complex_gradients_step_as_torch(name, kwargs, dtype):
    """torch 2.13 steps a sparse complex gradient in SGD and Adagrad; so does numoptim,
    beside a dense complex parameter of the same group. (torch's sparse Adagrad works in
    complex arithmetic, grad * grad and a complex sqrt, not on the real pairs as its dense
    path does; numoptim's row-sparse Adagrad follows it.)"""
    torch = pytest.importorskip("torch")
    start = complex_values(7, (6, 3), dtype)
    dense_start = complex_values(8, (5,), dtype)
    ours = [Parameter(start.copy()), Parameter(dense_start.copy())]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in (start, dense_start)]
    opt = getattr(numoptim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    for step in range(5):
        ours[0].grad, indices, values = _sparse_grads(step, dtype)
        dense = complex_values(600 + step, (5,), dtype)
        ours[1].grad = dense.copy()
        theirs[0].grad = torch.sparse_coo_tensor(
            torch.from_numpy(indices)[None],
            torch.from_numpy(values.copy()),
            (6, 3),
            check_invariants=True,
        )
        theirs[1].grad = torch.from_numpy(dense.copy())
        opt.step()
        with torch.sparse.check_sparse_tensor_invariants():  # as the other sparse tests
            ref.step()
    for p, t in zip(ours, theirs):
        assert_close(p, t.detach().numpy(), what=name)
    if name == "Adagrad":
        for p, t in zip(ours, theirs):
            assert_close(opt.state[p]["sum"], ref.state[t]["sum"].numpy(), what="sum")
