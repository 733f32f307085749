"""Every registry configuration against torch 2.13's results stored as golden fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, load_golden
from harness import LARGE_SIZE, NumpyBackend, run_case, unpack_results
from registry import COMPLEX_DTYPES, COMPLEX_GROUP_SIZES, LARGE, all_cases, complex_cases

_cache: dict[str, dict] = {}


def golden(name: str):
    if name not in _cache:
        _cache[name] = load_golden(f"golden_{name}.npz")
    return _cache[name]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case_id,name,kwargs", list(all_cases()), ids=[c[0] for c in all_cases()])
def test_matches_torch_fixture(case_id, name, kwargs, dtype):
    expected = golden(name)
    index = case_id.rsplit("-", 1)[1]
    prefix = f"{index}/{dtype}/"
    opt, params = run_case(NumpyBackend(), name, kwargs, np.dtype(dtype))
    check_results(opt, params, expected, prefix, dtype)


def check_results(opt, params, expected, prefix, dtype):
    """Every parameter and state entry of `opt` against the fixture's, under `prefix`:
    the same dtypes, the same state keys, `step` exactly."""
    for g, group in enumerate(params):
        for j, p in enumerate(group):
            key = f"{prefix}p{g}.{j}"
            assert p.dtype == expected[key].dtype == np.dtype(dtype)
            assert_close(p, expected[key], what=key)
    state = opt.state_dict()["state"]
    stored = {k[len(prefix) :] for k in expected if k.startswith(prefix + "s")}
    produced = {f"s{i}/{key}" for i, entries in state.items() for key in entries}
    assert produced == stored, "state keys differ from torch's"
    for key in stored:
        i, entry = key[1:].split("/", 1)
        value = state[int(i)][entry]
        expected_value = expected[prefix + key]
        if not isinstance(value, np.ndarray):
            # timm keeps some state in Python numbers (AdaBelief's int step, LaProp's
            # float exp_avg_lr_1), computed alike in Python: the same type and value.
            assert type(value) is type(expected_value.item()), key
            assert value == expected_value.item(), key
        elif entry == "step":
            assert value.dtype == np.float32 and value.shape == ()
            assert value == expected_value
        else:
            assert value.dtype == expected_value.dtype, key  # complex buffers too
            assert_close(value, expected_value, dtype=np.dtype(dtype), what=prefix + key)


@pytest.mark.parametrize("name,index", [(n, i) for n, idx in LARGE.items() for i in idx])
def test_large_tensor_matches_torch_fixture(name, index):
    from registry import OPTIMIZERS

    _, params = run_case(
        NumpyBackend(),
        name,
        OPTIMIZERS[name][index],
        np.float32,
        sizes_by_group=[[LARGE_SIZE]],
        steps=5,
        none_grads={},
    )
    assert_close(params[0][0], golden(name)[f"{index}/large"], what=f"{name}-{index} large")


def golden_complex(name: str, dtype: str) -> dict:
    key = f"complex/{name}/{dtype}"
    if key not in _cache:
        data = golden("complex")
        parts = (data[f"{name}/{dtype}/{part}"] for part in ("values", "reals", "layout"))
        _cache[key] = unpack_results(*parts)
    return _cache[key]


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES)
@pytest.mark.parametrize(
    "case_id,name,kwargs", list(complex_cases()), ids=[c[0] for c in complex_cases()]
)
def test_complex_matches_torch_fixture(case_id, name, kwargs, dtype):
    """Complex parameters, stepped as torch steps them (their real pairs), on the small
    layout of golden_complex.npz; where torch refuses a configuration, numoptim must
    refuse it with torch's message."""
    expected = golden_complex(name, dtype)
    index = case_id.rsplit("-", 1)[1]
    run = lambda: run_case(
        NumpyBackend(), name, kwargs, np.dtype(dtype), sizes_by_group=COMPLEX_GROUP_SIZES
    )
    if f"{index}/error" in expected:
        with pytest.raises(RuntimeError) as info:
            run()
        assert str(info.value) == expected[f"{index}/error"]
        return
    opt, params = run()
    check_results(opt, params, expected, f"{index}/", dtype)
