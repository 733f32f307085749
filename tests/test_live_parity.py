"""Live parity with an installed torch 2.13 on fresh random inputs (skipped without torch).

The seed and the sizes are drawn anew on every run (and printed on failure), so each
run checks inputs the golden fixtures never saw. NUMOPTIM_TEST_SEED=<seed> replays a run.
"""

from __future__ import annotations

import os
import random
import re

import numpy as np
import pytest
from conftest import assert_close, assert_close_or_closer
from harness import (
    NumpyBackend,
    TorchBackend,
    reference_available,
    run_case,
    tensors_to_numpy,
)
from registry import COMPLEX, COMPLEX_DTYPES, OPTIMIZERS, REDUCED_GROUP_KEYS, all_cases

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

CASES = list(all_cases())
IDS = [c[0] for c in CASES]
SEED = int(os.environ.get("NUMOPTIM_TEST_SEED") or random.randrange(1, 2**31))
_rng = random.Random(SEED)
SIZES = [[_rng.randrange(0, 40), _rng.randrange(1, 3000)], [_rng.randrange(1, 70000)]]


def skip_without_reference(name: str) -> None:
    """Skips an optimizer torch.optim lacks when its reference package is absent."""
    if not reference_available(name):
        pytest.skip(f"the reference of {name} is not installed")


# The complex dtypes run every configuration of the optimizers that torch steps them
# with (registry.COMPLEX), with the tolerances of their parts' dtypes.
DTYPE_CASES = [
    pytest.param(case_id, name, kwargs, np.dtype(dtype), id=f"{case_id}-{np.dtype(dtype)}")
    for case_id, name, kwargs in CASES
    for dtype in (np.float32, np.float64, *COMPLEX_DTYPES)
    if np.dtype(dtype).kind != "c" or name in COMPLEX
]
# The dtype of the exact run a lower-precision result is held to.
EXACT = {np.dtype(np.float32): np.float64, np.dtype(np.complex64): np.complex128}


@pytest.mark.parametrize("case_id,name,kwargs,dtype", DTYPE_CASES)
def test_live_parity_on_fresh_inputs(case_id, name, kwargs, dtype):
    skip_without_reference(name)
    context = f"seed={SEED} sizes={SIZES} (NUMOPTIM_TEST_SEED={SEED} replays it)"
    try:
        opt_t, params_t = run_case(
            TorchBackend(), name, kwargs, dtype, sizes_by_group=SIZES, seed=SEED
        )
    except RuntimeError as error:
        # torch refuses the configuration (its fused kernels take no complex
        # parameters): numoptim must refuse it alike, with its message.
        assert dtype.kind == "c", error
        with pytest.raises(RuntimeError) as info:
            run_case(NumpyBackend(), name, kwargs, dtype, sizes_by_group=SIZES, seed=SEED)
        assert str(info.value) == str(error)
        return
    opt_n, params_n = run_case(NumpyBackend(), name, kwargs, dtype, sizes_by_group=SIZES, seed=SEED)
    if dtype in EXACT:
        # float32 is held to torch's float32 result or, element by element, to being no
        # further from the exact (float64) run than torch is: see assert_close_or_closer.
        # The exact run steps the float32 inputs, converted (not inputs made in float64,
        # which differ by a float32 rounding that an ill-conditioned element amplifies).
        opt_x, params_x = run_case(
            TorchBackend(),
            name,
            kwargs,
            EXACT[dtype],
            sizes_by_group=SIZES,
            seed=SEED,
            inputs_dtype=dtype,
        )
        state_x = opt_x.state_dict()["state"]

        def check(ours, theirs, exact, what):
            assert_close_or_closer(ours, theirs, exact.detach().numpy(), what=what)
    else:
        params_x = params_t
        state_x = opt_t.state_dict()["state"]

        def check(ours, theirs, exact, what):
            assert_close(ours, theirs, dtype=dtype, what=what)

    for group_t, group_n, group_x in zip(params_t, params_n, params_x):
        for p_t, p_n, p_x in zip(group_t, group_n, group_x):
            check(p_n, p_t.detach().numpy(), p_x, context)
    state_t = opt_t.state_dict()["state"]
    state_n = opt_n.state_dict()["state"]
    assert state_t.keys() == state_n.keys()
    for i in state_t:
        assert state_t[i].keys() == state_n[i].keys()
        for key, value in state_t[i].items():
            if isinstance(value, torch.Tensor):
                expected = value.detach().numpy()
                if key == "step":
                    assert state_n[i][key].dtype == np.float32 and state_n[i][key] == expected
                else:
                    assert state_n[i][key].dtype == expected.dtype, key
                    check(state_n[i][key], expected, state_x[i][key], f"{key} {context}")
            else:
                # A Python number (timm's AdaBelief step, LaProp's exp_avg_lr_1): the
                # same type and value, computed alike in Python.
                assert type(state_n[i][key]) is type(value), key
                assert state_n[i][key] == value, key


@pytest.mark.parametrize("case_id,name,kwargs", CASES, ids=IDS)
def test_repr_and_state_dict_groups_match_torch(case_id, name, kwargs):
    skip_without_reference(name)
    opt_t, _ = run_case(TorchBackend(), name, kwargs, np.float32, steps=2)
    opt_n, _ = run_case(NumpyBackend(), name, kwargs, np.float32, steps=2)
    # Group values that sum over float32 parameters (Prodigy's d estimate) are compared
    # to a tolerance: the reference sums in float32 (torch's sdot), numoptim in double.
    reduced = REDUCED_GROUP_KEYS.get(name, ())

    def masked(text: str) -> str:
        for key in reduced:
            text = re.sub(rf"^(    {key}: ).*$", r"\1<reduced>", text, flags=re.MULTILINE)
        return text

    assert masked(repr(opt_n)) == masked(repr(opt_t))
    groups_t = opt_t.state_dict()["param_groups"]
    groups_n = opt_n.state_dict()["param_groups"]
    for g_t, g_n in zip(groups_t, groups_n):
        assert list(g_n) == list(g_t)  # same keys in the same order
        for key, value in g_t.items():
            if key in reduced:
                np.testing.assert_allclose(float(g_n[key]), float(value), rtol=1e-3, err_msg=key)
            elif isinstance(value, torch.Tensor):
                assert float(g_n[key]) == value.item()
            else:
                assert g_n[key] == value, key


def step_both_alike(opt_t, params_t, opt_n, params_n, dtype):
    """One more step of both, on the same gradients; every parameter within tolerance."""
    for group_t, group_n in zip(params_t, params_n):
        for p_t, p_n in zip(group_t, group_n):
            grad = np.linspace(-1, 1, p_n.size) * (1 - 0.5j if dtype.kind == "c" else 1)
            p_t.grad = torch.from_numpy(grad.copy())
            p_n.grad = grad.copy()
    opt_t.step()
    opt_n.step()
    for group_t, group_n in zip(params_t, params_n):
        for p_t, p_n in zip(group_t, group_n):
            assert_close(p_n, p_t.detach().numpy())


STATE_DICT_CASES = [
    pytest.param(name, np.dtype(dtype), id=f"{name}-{np.dtype(dtype)}")
    for name in sorted(OPTIMIZERS)
    for dtype in (np.float64, np.complex128)
    if dtype is np.float64 or name in COMPLEX
]


@pytest.mark.parametrize("name,dtype", STATE_DICT_CASES)
def test_torch_state_dict_loads_into_numoptim(name, dtype):
    """A torch state dict with its tensors turned into arrays loads and continues alike
    (complex state as complex arrays)."""
    skip_without_reference(name)
    kwargs = OPTIMIZERS[name][0]
    opt_t, params_t = run_case(TorchBackend(), name, kwargs, dtype, steps=3, none_grads={})
    opt_n, params_n = run_case(NumpyBackend(), name, kwargs, dtype, steps=0)

    for group_t, group_n in zip(params_t, params_n):
        for p_t, p_n in zip(group_t, group_n):
            p_n[...] = p_t.detach().numpy()
    opt_n.load_state_dict(tensors_to_numpy(opt_t.state_dict()))
    step_both_alike(opt_t, params_t, opt_n, params_n, dtype)


@pytest.mark.parametrize("case_id,name,kwargs", [c[:3] for c in CASES if c[1] in COMPLEX][::7])
def test_numoptim_complex_state_dict_loads_into_torch(case_id, name, kwargs):
    """And the other way: numoptim's complex state, as tensors, continues in torch alike."""
    if kwargs.get("fused"):
        pytest.skip("torch's fused kernels take no complex parameters")
    dtype = np.dtype(np.complex128)
    opt_n, params_n = run_case(NumpyBackend(), name, kwargs, dtype, steps=3, none_grads={})
    opt_t, params_t = run_case(TorchBackend(), name, kwargs, dtype, steps=0)

    def to_torch(value):
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value.copy())
        if isinstance(value, dict):
            return {k: to_torch(v) for k, v in value.items()}
        if isinstance(value, list):
            return [to_torch(v) for v in value]
        return value

    with torch.no_grad():
        for group_t, group_n in zip(params_t, params_n):
            for p_t, p_n in zip(group_t, group_n):
                p_t.copy_(torch.from_numpy(np.array(p_n)))
    state = opt_n.state_dict()
    lr_arrays = [g for g in state["param_groups"] if isinstance(g["lr"], np.ndarray)]
    if lr_arrays:
        pytest.skip("an array lr loads as an array, not as torch's tensor")
    opt_t.load_state_dict(to_torch(state))
    step_both_alike(opt_t, params_t, opt_n, params_n, dtype)
    for entries in opt_t.state_dict()["state"].values():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor) and value.ndim:
                assert value.dtype == torch.complex128, key
