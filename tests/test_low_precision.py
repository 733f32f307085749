"""float16 and bfloat16 parameters through the native optimizers.

torch's semantics (its fused CPU kernels): the state has the parameter's dtype, the
arithmetic is float32, and every stored value is rounded once, to nearest even. So one
low-precision step must equal the float32 rule applied to the same values (the
parameter, gradient and state read as float32) with the results rounded once: that is
checked bit for bit, step after step, for every configuration of every optimizer. Live
parity with torch's fused kernels (Adam, AdamW, SGD, Adagrad) is in the torch-marked
tests at the end.
"""

from __future__ import annotations

import copy

import numoptim
import numpy as np
import pytest
from harness import make_optimizer
from numoptim import Parameter
from registry import ELEMENTWISE, OPTIMIZERS, SPLIT_STEP

ml_dtypes = pytest.importorskip("ml_dtypes")
LOW = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
# A learning rate and accumulator start that both dtypes hold exactly, so that the
# state created on the first step (Rprop's step sizes start at lr) is the same whether
# it is made in the low-precision dtype or in float32.
LR = 2.0**-6


def cases():
    for name in ELEMENTWISE:
        if name in SPLIT_STEP:
            # Prodigy: its second pass reads the moments that its first pass stored in
            # the parameter's dtype (as prodigyopt's), rounded in between, which a
            # float32 run is not (test_prodigy.py checks its low-precision steps).
            continue
        for index, kwargs in enumerate(OPTIMIZERS[name]):
            kwargs = {**kwargs, "lr": LR}
            if kwargs.get("initial_accumulator_value"):
                kwargs["initial_accumulator_value"] = 0.25
            yield pytest.param(name, kwargs, id=f"{name}-{index}")


def values(rng, shape, dtype):
    return rng.standard_normal(shape).astype(np.float32).astype(dtype)


def as_float32(state: dict) -> dict:
    """A state dict with every low-precision array read as float32 (exactly)."""
    out = copy.deepcopy(state)
    for entry in out["state"].values():
        for key, value in entry.items():
            if isinstance(value, np.ndarray) and value.dtype in LOW.values():
                entry[key] = value.astype(np.float32)
    return out


def rounded(array: np.ndarray, dtype) -> np.ndarray:
    return np.asarray(array).astype(dtype).view(np.uint16)


@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize(("name", "kwargs"), list(cases()))
def test_each_step_is_the_float32_rule_rounded_once(name, kwargs, dtype):
    dtype = LOW[dtype]
    rng = np.random.default_rng(1)
    shapes = [(3, 5), (17,), (1,), (0,)]
    params = [Parameter(values(rng, s, dtype)) for s in shapes]
    optimizer = make_optimizer(name, params, **kwargs)
    for step in range(5):
        grads = [values(rng, s, dtype) for s in shapes]
        # The float32 reference, from the same values and state before this step.
        ref_params = [Parameter(np.asarray(p).astype(np.float32)) for p in params]
        reference = make_optimizer(name, ref_params, **kwargs)
        if step > 0:
            reference.load_state_dict(as_float32(optimizer.state_dict()))
        for p, q, g in zip(params, ref_params, grads):
            p.grad, q.grad = g, g.astype(np.float32)
        optimizer.step()
        reference.step()
        for p, q in zip(params, ref_params):
            assert p.dtype == dtype
            np.testing.assert_array_equal(rounded(p, dtype), rounded(q, dtype))
            for key, value in reference.state[q].items():
                ours = optimizer.state[p][key]
                if not isinstance(value, np.ndarray):  # timm's Python numbers, alike
                    assert type(ours) is type(value) and ours == value, key
                elif value.ndim == 0:  # step, mu_product, eta, mu: float32 as for float32
                    assert ours.dtype == np.float32 and ours == value, key
                else:
                    assert ours.dtype == dtype, key
                    np.testing.assert_array_equal(
                        ours.view(np.uint16), rounded(value, dtype), err_msg=key
                    )


LEVELS = ["baseline", "avx2", "avx512"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", list(LOW))
def test_conversions_agree_with_numpy_everywhere(dtype, level):
    # Every 16-bit pattern read as float32, and float32 values rounded to 16 bits: random
    # bit patterns, every representable value, its neighbours and the midpoints between
    # representable values (the ties, which must go to even). At each level (capped at
    # the CPU's; float16 uses F16C from AVX2 up) and in arrays of odd lengths, so that
    # both the 8-wide instructions and the element-wise tails are covered.
    bits = np.arange(65536, dtype=np.uint16)
    exact = bits.view(LOW[dtype]).astype(np.float32)
    read = numoptim._core._from_storage_bits(bits, dtype, level)
    same = (read.view(np.uint32) == exact.view(np.uint32)) | (np.isnan(read) & np.isnan(exact))
    assert same.all()
    finite = exact[np.isfinite(exact)]
    with np.errstate(over="ignore", invalid="ignore"):
        up = np.nextafter(finite, np.float32(np.inf))
        midpoints = ((finite[:-1].astype(np.float64) + np.sort(finite)[1:]) / 2).astype(np.float32)
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.integers(0, 2**32, size=1_000_001, dtype=np.uint64)
            .astype(np.uint32)
            .view(np.float32),
            finite,
            up,
            np.nextafter(finite, np.float32(-np.inf)),
            np.sort(finite)[:-1] / 2 + np.sort(finite)[1:] / 2,
            midpoints,
        ]
    )
    ours = numoptim._core._to_storage_bits(values, dtype, level)
    with np.errstate(over="ignore", invalid="ignore"):
        theirs = values.astype(LOW[dtype]).view(np.uint16)
    nan = np.isnan(values)
    np.testing.assert_array_equal(ours[~nan], theirs[~nan])
    assert np.isnan(ours[nan].view(LOW[dtype]).astype(np.float32)).all()


@pytest.mark.parametrize("level", LEVELS[1:])
@pytest.mark.parametrize("dtype", list(LOW))
def test_conversions_are_bit_identical_at_every_level_nans_included(dtype, level):
    # NaN payloads and quiet bits too: a step must give the same bits at every level.
    bits = np.arange(65536, dtype=np.uint16)
    for n in (65536, 65533):  # with and without a tail shorter than a vector
        np.testing.assert_array_equal(
            numoptim._core._from_storage_bits(bits[:n], dtype, level).view(np.uint32),
            numoptim._core._from_storage_bits(bits[:n], dtype, "baseline").view(np.uint32),
        )
    rng = np.random.default_rng(6)
    payloads = rng.integers(0, 2**23, size=100_003, dtype=np.uint32)
    nans = np.concatenate([0x7F800001 | payloads, 0xFF800001 | payloads]).view(np.float32)
    randoms = rng.integers(0, 2**32, size=100_001, dtype=np.uint64).astype(np.uint32)
    for values in (nans, randoms.view(np.float32)):
        np.testing.assert_array_equal(
            numoptim._core._to_storage_bits(values, dtype, level),
            numoptim._core._to_storage_bits(values, dtype, "baseline"),
        )


def test_mixed_dtypes_in_one_group_step_as_each_alone():
    rng = np.random.default_rng(2)
    dtypes = [np.dtype(np.float32), LOW["bfloat16"], LOW["float16"], np.dtype(np.float64)]
    starts = [values(rng, (9,), d) for d in dtypes]
    grads = [values(rng, (9,), d) for d in dtypes]
    mixed = [Parameter(s.copy()) for s in starts]
    alone = [Parameter(s.copy()) for s in starts]
    together = numoptim.AdamW(mixed, lr=0.01)
    separate = [numoptim.AdamW([p], lr=0.01) for p in alone]
    for _ in range(3):
        for p, q, g in zip(mixed, alone, grads):
            p.grad, q.grad = g, g
        together.step()
        for optimizer in separate:
            optimizer.step()
    for p, q in zip(mixed, alone):
        assert p.dtype == q.dtype
        assert p.tobytes() == q.tobytes()


@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_thread_count_does_not_change_low_precision_results(name, dtype, restore_threads):
    results = []
    for threads in (1, 2):
        numoptim.set_num_threads(threads)
        rng = np.random.default_rng(3)
        p = Parameter(values(rng, (300_001,), LOW[dtype]))
        optimizer = make_optimizer(name, [p], **OPTIMIZERS[name][-1])
        for _ in range(3):
            p.grad = values(rng, p.shape, LOW[dtype])
            optimizer.step()
        state = optimizer.state[p].values()
        results.append((p.tobytes(), [np.asarray(v).tobytes() for v in state]))
    assert results[0] == results[1]


@pytest.mark.parametrize("dtype", list(LOW))
def test_nan_and_infinity_survive_rounding(dtype):
    p = Parameter(np.array([np.nan, np.inf, -np.inf, 1.0], dtype=LOW[dtype]))
    p.grad = np.zeros(4, LOW[dtype])
    numoptim.SGD([p], lr=0.1).step()
    out = np.asarray(p).astype(np.float32)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf and out[3] == 1.0


# --------------------------------------------------------------- torch's fused kernels

# torch 2.13's fused CPU kernels as measured (per step, from the same state, 20 steps of
# 100,003 elements): Adam and AdamW agree bit for bit but for 0 to 1 elements in 2
# million (at most 4 ulps, next to zero), where torch's vectorized loop fuses a
# multiply-add. Its fused Adagrad rounds differently in about 0.5% of the elements, and
# its fused SGD leaves float16/bfloat16 parameters unchanged past the first few
# elements (the vectorized part), so for those two the reference is the float32 rule
# rounded once (test_each_step_is_the_float32_rule_rounded_once above).
TORCH_FUSED = {
    "Adam": [{}, {"amsgrad": True, "weight_decay": 0.1}, {"maximize": True}],
    "AdamW": [{}, {"amsgrad": True}],
}


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place of two 16-bit float arrays' bit patterns."""

    def ordered(bits):
        bits = bits.view(np.int16).astype(np.int32)
        return np.where(bits < 0, -32768 - bits, bits)  # sign-magnitude to a number line

    return np.abs(ordered(a) - ordered(b))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize(("name", "kwargs"), [(n, k) for n, ks in TORCH_FUSED.items() for k in ks])
def test_each_step_matches_torch_fused(name, kwargs, dtype):
    torch = pytest.importorskip("torch")
    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]

    def to_torch(array):
        return torch.from_numpy(np.ascontiguousarray(array).view(np.int16).copy()).view(torch_dtype)

    rng = np.random.default_rng(4)
    n = 20_011
    ours = Parameter(values(rng, (n,), LOW[dtype]))
    optimizer = make_optimizer(name, [ours], lr=0.01, **kwargs)
    differ = far = 0
    for step in range(10):
        # torch steps from numoptim's parameter and state, so that each step is
        # compared on its own (differences would otherwise compound).
        theirs = torch.nn.Parameter(to_torch(ours))
        reference = getattr(torch.optim, name)([theirs], lr=0.01, fused=True, **kwargs)
        if step:
            reference.state[theirs] = {
                k: torch.tensor(v) if v.ndim == 0 else to_torch(v)
                for k, v in optimizer.state[ours].items()
            }
        grad = values(rng, (n,), LOW[dtype])
        ours.grad, theirs.grad = grad, to_torch(grad)
        optimizer.step()
        reference.step()
        distance = ulps(np.asarray(ours), theirs.detach().view(torch.int16).numpy())
        differ += int((distance > 0).sum())
        far += int((distance > 1).sum())
    assert differ <= 1e-4 * 10 * n, differ  # measured: 0 or 1 of 200,110
    assert far <= 1e-5 * 10 * n, far


# ------------------------------------------------------------ fp32 master weights


@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize(("name", "kwargs"), list(cases()))
def test_master_weights_keep_the_float32_run_exactly(name, kwargs, dtype):
    # A 16-bit run with master weights and a float32 run fed the same (upcast) gradients
    # have bit-identical float32 weights and state; the 16-bit parameter is always its
    # master rounded once.
    dtype = LOW[dtype]
    rng = np.random.default_rng(6)
    shapes = [(3, 5), (17,), (0,)]
    starts = [values(rng, s, dtype) for s in shapes]
    params = [Parameter(v.copy()) for v in starts]
    reference_params = [Parameter(v.astype(np.float32)) for v in starts]
    optimizer = make_optimizer(name, params, master_weights=True, **kwargs)
    reference = make_optimizer(name, reference_params, **kwargs)
    for _ in range(4):
        for p, q in zip(params, reference_params):
            g = values(rng, p.shape, dtype)
            p.grad, q.grad = g, g.astype(np.float32)
        optimizer.step()
        reference.step()
        for p, q in zip(params, reference_params):
            state = optimizer.state[p]
            assert state["master_param"].dtype == np.float32
            assert state["master_param"].tobytes() == q.tobytes()
            np.testing.assert_array_equal(p.view(np.uint16), rounded(q, dtype))
            for key, value in reference.state.get(q, {}).items():
                if not isinstance(value, np.ndarray):  # timm's Python numbers, alike
                    assert type(state[key]) is type(value) and state[key] == value, key
                    continue
                assert state[key].dtype == value.dtype, key
                assert state[key].tobytes() == value.tobytes(), key


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_master_weights_on_threads_keep_the_float32_run(name, restore_threads):
    # Large enough to split into chunks between threads: each chunk finds its place in
    # the 16-bit arrays from its place in the master.
    numoptim.set_num_threads(2)
    rng = np.random.default_rng(8)
    start = values(rng, (300_001,), LOW["bfloat16"])
    p, q = Parameter(start.copy()), Parameter(start.astype(np.float32))
    kwargs = OPTIMIZERS[name][-1]
    optimizer = make_optimizer(name, [p], master_weights=True, **kwargs)
    reference = make_optimizer(name, [q], **kwargs)
    for _ in range(3):
        g = values(rng, p.shape, LOW["bfloat16"])
        p.grad, q.grad = g, g.astype(np.float32)
        optimizer.step()
        reference.step()
    assert optimizer.state[p]["master_param"].tobytes() == q.tobytes()
    np.testing.assert_array_equal(p.view(np.uint16), rounded(q, LOW["bfloat16"]))


def test_master_weights_appear_in_the_groups_only_when_asked_for():
    p = Parameter(np.zeros(3, LOW["bfloat16"]))
    plain = numoptim.Adam([p])
    assert "master_weights" not in plain.param_groups[0]
    assert "master_weights" not in repr(plain)
    with_master = numoptim.Adam([p], master_weights=True)
    assert with_master.param_groups[0]["master_weights"] is True
    assert "master_weights: True" in repr(with_master)
    # float32 and float64 parameters have no master copy to keep.
    q = Parameter(np.zeros(3, np.float32))
    q.grad = np.ones(3, np.float32)
    optimizer = numoptim.AdamW([q], master_weights=True)
    optimizer.step()
    assert "master_param" not in optimizer.state[q]


@pytest.mark.parametrize("dtype", list(LOW))
def test_master_weights_resume_bit_exactly(dtype, tmp_path):
    dtype = LOW[dtype]
    rng = np.random.default_rng(7)
    start = values(rng, (33,), dtype)
    grads = [values(rng, (33,), dtype) for _ in range(6)]

    def run(p, optimizer, steps):
        for g in steps:
            p.grad = g
            optimizer.step()

    straight = Parameter(start.copy())
    run(straight, numoptim.NAdam([straight], lr=0.01, master_weights=True), grads)
    first = Parameter(start.copy())
    optimizer = numoptim.NAdam([first], lr=0.01, master_weights=True)
    run(first, optimizer, grads[:3])
    numoptim.save(optimizer.state_dict(), tmp_path / "opt.ckpt")
    resumed = Parameter(np.array(first))
    again = numoptim.NAdam([resumed], lr=0.01)
    again.load_state_dict(numoptim.load(tmp_path / "opt.ckpt"))
    assert again.param_groups[0]["master_weights"] is True
    assert again.state[resumed]["master_param"].dtype == np.float32
    assert again.state[resumed]["exp_avg"].dtype == np.float32
    run(resumed, again, grads[3:])
    assert resumed.tobytes() == straight.tobytes()


def test_master_weights_state_of_another_dtype_is_refused_before_any_write():
    a, b = Parameter(np.ones(4, LOW["bfloat16"])), Parameter(np.ones(4, LOW["bfloat16"]))
    optimizer = numoptim.Adam([{"params": [a]}, {"params": [b]}], master_weights=True)
    a.grad = b.grad = np.ones(4, LOW["bfloat16"])
    optimizer.step()
    optimizer.state[b]["master_param"] = np.ones(4, LOW["bfloat16"])
    before = (a.tobytes(), optimizer.state[a]["master_param"].tobytes())
    with pytest.raises(TypeError, match=r"master_param'\] of parameter 0 has dtype bfloat16"):
        optimizer.step()
    assert (a.tobytes(), optimizer.state[a]["master_param"].tobytes()) == before
