"""The generic battery, run over every optimizer configuration in the registry."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap

import numoptim
import numpy as np
import pytest
from harness import (
    NONE_GRAD_STEPS,
    NumpyBackend,
    gradient,
    initial_values,
    make_optimizer,
    run_case,
)
from numoptim import Parameter
from registry import ELEMENTWISE, INVALID, OPTIMIZERS, all_cases, steps_complex

CASES = list(all_cases())
IDS = [c[0] for c in CASES]
ELEMENTWISE_CASES = [c for c in CASES if c[1] in ELEMENTWISE]


def snapshot(opt):
    """Every parameter and state array of an optimizer, copied, in a comparable form."""
    params = [np.array(p) for g in opt.param_groups for p in g["params"]]
    state = {
        i: {k: np.array(v) for k, v in entries.items() if isinstance(v, np.ndarray)}
        for i, entries in opt.state_dict()["state"].items()
    }
    return params, state


def assert_identical(a, b):
    params_a, state_a = a
    params_b, state_b = b
    assert len(params_a) == len(params_b)
    for x, y in zip(params_a, params_b):
        np.testing.assert_array_equal(x, y, strict=True)
    assert state_a.keys() == state_b.keys()
    for i in state_a:
        assert state_a[i].keys() == state_b[i].keys()
        for k in state_a[i]:
            np.testing.assert_array_equal(state_a[i][k], state_b[i][k], strict=True)


@pytest.mark.parametrize(
    "name,kwargs,exc,message", INVALID, ids=[f"{n}-{m[:30]}" for n, _, _, m in INVALID]
)
def test_invalid_hyperparameters(name, kwargs, exc, message):
    w = Parameter(np.zeros((2, 2), np.float32))
    with pytest.raises(exc) as info:
        make_optimizer(name, [w], **kwargs)
    assert str(info.value).startswith(message)


# Resume runs every configuration in float32 and, where torch steps complex parameters
# (registry.COMPLEX), in complex64 too: complex state saved, loaded and continued.
RESUME_CASES = [
    pytest.param(*case, np.dtype(dtype), id=f"{case[0]}-{np.dtype(dtype)}")
    for case in CASES
    for dtype in (np.float32, np.complex64)
    if np.dtype(dtype).kind != "c" or steps_complex(case[1], case[2])
]


@pytest.mark.parametrize("case_id,name,kwargs,dtype", RESUME_CASES)
def test_resume_from_checkpoint_is_bit_identical(case_id, name, kwargs, dtype, tmp_path):
    backend = NumpyBackend()
    full, _ = run_case(backend, name, kwargs, dtype, steps=12)
    first, _ = run_case(backend, name, kwargs, dtype, steps=5)
    path = tmp_path / "opt.ckpt"
    numoptim.save(first.state_dict(), path)
    # A new optimizer over copies of the parameters, fed the checkpoint.
    resumed, params = run_case(backend, name, kwargs, dtype, steps=0)
    for g_new, g_old in zip(resumed.param_groups, first.param_groups):
        for p_new, p_old in zip(g_new["params"], g_old["params"]):
            p_new[...] = p_old
    loaded = numoptim.load(path)
    saved = first.state_dict()["state"]
    for i, entries in loaded["state"].items():  # complex state comes back complex
        for key, value in entries.items():
            assert np.asarray(value).dtype == np.asarray(saved[i][key]).dtype, key
    resumed.load_state_dict(loaded)
    assert repr(resumed) == repr(first)
    for step in range(5, 12):
        for g, group in enumerate(params):
            for i, p in enumerate(group):
                skip = NONE_GRAD_STEPS.get(step) == (g, i)
                p.grad = None if skip else gradient(step, g, i, p.shape[0], dtype)
        resumed.step()
    assert_identical(snapshot(resumed), snapshot(full))


@pytest.mark.parametrize("case_id,name,kwargs", CASES, ids=IDS)
def test_pickle_and_deepcopy_preserve_everything(case_id, name, kwargs):
    opt, _ = run_case(NumpyBackend(), name, kwargs, np.float64, steps=4)
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert type(clone) is type(opt)
        assert repr(clone) == repr(opt)
        assert_identical(snapshot(clone), snapshot(opt))


# float32 for every configuration; complex64 (as many reals, in half the elements) for
# those of the optimizers that step complex parameters.
THREAD_CASES = [
    pytest.param(*case, np.dtype(np.float32), [[200_003, 5], [70_001]], id=case[0])
    for case in ELEMENTWISE_CASES
] + [
    pytest.param(*case, np.dtype(np.complex64), [[100_001, 3], [35_001]], id=f"{case[0]}-complex64")
    for case in ELEMENTWISE_CASES
    if steps_complex(case[1], case[2])
]


@pytest.mark.parametrize("case_id,name,kwargs,dtype,sizes", THREAD_CASES)
def test_thread_count_does_not_change_results(case_id, name, kwargs, dtype, sizes, restore_threads):
    # Sizes above the parallel threshold, odd, and odd in reals for complex64 too.
    results = []
    for threads in (1, 2):
        numoptim.set_num_threads(threads)
        opt, _ = run_case(NumpyBackend(), name, kwargs, dtype, sizes_by_group=sizes, steps=4)
        results.append(snapshot(opt))
    assert_identical(results[0], results[1])


_DISPATCH_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import ml_dtypes
    import numpy as np
    sys.path[:0] = json.loads(sys.argv[1])
    from harness import NONE_GRAD_STEPS, NumpyBackend, gradient, initial_values, run_case
    from registry import ELEMENTWISE, OPTIMIZERS, steps_complex
    import numoptim
    digest = hashlib.sha256()
    for name in ELEMENTWISE:
        for kwargs in OPTIMIZERS[name]:
            complex_dtypes = (np.complex64, np.complex128) if steps_complex(name, kwargs) else ()
            for dtype in (np.float32, np.float64, np.float16, ml_dtypes.bfloat16, *complex_dtypes):
                opt, params = run_case(NumpyBackend(), name, kwargs, dtype,
                                       sizes_by_group=[[0, 1, 7, 15, 16, 17, 33, 1023]], steps=6)
                for p in params[0]:
                    digest.update(np.ascontiguousarray(p).tobytes())
    print(json.dumps({"level": numoptim._core.simd_level(), "digest": digest.hexdigest()}))
    """
)


def test_every_dispatch_level_gives_bit_identical_results():
    levels = ["baseline", "avx2", "avx512"]
    best = numoptim._core.cpu_simd_level()
    available = levels[: levels.index(best) + 1]
    tests_dir = os.path.dirname(__file__)
    results = {}
    for level in available:
        env = dict(os.environ, NUMOPTIM_DISPATCH=level)
        out = subprocess.run(
            [sys.executable, "-c", _DISPATCH_SCRIPT, json.dumps([tests_dir] + sys.path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout)
        assert result["level"] == level  # the override really took effect
        results[level] = result["digest"]
    assert len(set(results.values())) == 1, results
    assert len(available) >= 2 or best == "baseline"


@pytest.mark.parametrize(
    "name", [n for n in ELEMENTWISE if any("maximize" in k for k in OPTIMIZERS[n])]
)
def test_maximize_equals_minimizing_the_negated_gradient(name):
    kwargs = next(k for k in OPTIMIZERS[name] if k.get("maximize") is False)
    results = []
    for maximize, sign in ((True, 1.0), (False, -1.0)):
        p = [Parameter(v.copy()) for v in initial_values([[7, 16]], np.float64)[0]]
        opt = make_optimizer(name, p, **{**kwargs, "maximize": maximize})
        for step in range(5):
            for i, x in enumerate(p):
                x.grad = sign * gradient(step, 0, i, x.shape[0], np.float64)
            opt.step()
        results.append(p)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_sentinels_around_misaligned_params_stay_untouched(name):
    """Every length below twice the widest vector, at several offsets, as highway tests."""
    kwargs = OPTIMIZERS[name][-1]
    for offset in range(4):
        for n in range(40):
            buffer = np.full(n + offset + 8, 7.25, np.float32)
            view = buffer[offset : offset + n]
            view[...] = np.linspace(-1, 1, n, dtype=np.float32)
            p = Parameter(view)
            assert n == 0 or np.shares_memory(p, buffer)
            opt = make_optimizer(name, [p], **kwargs)
            for _ in range(3):
                p.grad = np.linspace(1, -1, n, dtype=np.float32)
                opt.step()
            assert np.all(buffer[:offset] == 7.25) and np.all(buffer[offset + n :] == 7.25)
            assert n == 0 or not np.array_equal(view, np.linspace(-1, 1, n, dtype=np.float32))
