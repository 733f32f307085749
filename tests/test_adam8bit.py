"""Adam8bit and AdamW8bit: bitsandbytes' 8-bit block-wise Adam.

The kernel is checked bit for bit against a NumPy model of the rule (the fused
multiply-adds in extended precision, nearest-code quantization by search), for every
parameter dtype, sizes around the block and chunk boundaries, and both state kinds.
bitsandbytes itself is checked in test_adam8bit_bitsandbytes (when it is installed).
"""

import json
import os
import subprocess
import sys
import textwrap

import numoptim
import numpy as np
import pytest
from numoptim import Adam8bit, AdamW8bit, Parameter, _core
from numoptim.adam8bit import create_dynamic_map

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
    ml_dtypes = None

MAPS = (create_dynamic_map(signed=True), create_dynamic_map(signed=False))
TABLES = tuple(_core.quantization_table(code) for code in MAPS)
DTYPES = [np.float32, np.float16] + ([ml_dtypes.bfloat16] if ml_dtypes else [])


# ------------------------------------------------------------------ the NumPy model


def nearest(code, x):
    """The index of the code nearest to each x (ties to the lower index), by search."""
    x = np.asarray(x, np.float32)
    hi = np.clip(np.searchsorted(code, x, side="left"), 1, 255)
    below = x.astype(np.float64) - code[hi - 1]
    above = code[hi].astype(np.float64) - x
    return np.where(above < below, hi, hi - 1).astype(np.uint8)


def quantize_blocks(x, code):
    """Block-wise quantization of float32 x: (codes, absmax per block of 256)."""
    n = x.size
    blocks = -(-n // 256)
    padded = np.zeros(blocks * 256, np.float32)
    padded[:n] = x
    absmax = np.abs(padded.reshape(blocks, 256)).max(axis=1)
    with np.errstate(divide="ignore"):
        inverse = np.where(absmax > 0, np.float32(1) / absmax, np.float32(0)).astype(np.float32)
    normalized = np.clip(padded.reshape(blocks, 256) * inverse[:, None], -1, 1)
    return nearest(code, normalized.reshape(-1)[:n]), absmax


def fma(a, b, c):
    """a * b + c rounded once to float32 (the product of two floats is exact in long double)."""
    wide = np.longdouble
    return (wide(a) * wide(b) + wide(c)).astype(np.float32)


def model_step(p, g, state, lr, betas, eps, weight_decay, moments=False):
    """One step of bitsandbytes' 8-bit Adam (its CPU kernel's operation order) in NumPy.

    Returns the new parameter and state (and, with ``moments``, the float32 m and v
    before quantization); the inputs are left alone.
    """
    f32 = np.float32
    beta1, beta2 = betas
    step = state["step"] + 1
    g32 = g.astype(f32).reshape(-1)
    quantized = state["state1"].dtype == np.uint8
    if quantized:
        blocks = np.arange(p.size) // 256
        m = MAPS[0][state["state1"].reshape(-1)] * state["absmax1"][blocks]
        v = MAPS[1][state["state2"].reshape(-1)] * state["absmax2"][blocks]
    else:
        m, v = state["state1"].reshape(-1), state["state2"].reshape(-1)
    m = fma(g32, f32(1 - beta1), m * f32(beta1))
    v = fma(f32(1 - beta2) * g32, g32, v * f32(beta2))
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = np.sqrt(v) / f32(np.sqrt(bias_correction2)) + f32(eps)
    decay = f32(1 - lr * weight_decay) if weight_decay > 0 else f32(1)
    new_p = p.astype(f32).reshape(-1) * decay + (f32(-lr / bias_correction1) * m) / denom
    new_state = {"step": step}
    if quantized:
        new_state["state1"], new_state["absmax1"] = quantize_blocks(m, MAPS[0])
        new_state["state2"], new_state["absmax2"] = quantize_blocks(v, MAPS[1])
        new_state["state1"] = new_state["state1"].reshape(p.shape)
        new_state["state2"] = new_state["state2"].reshape(p.shape)
    else:
        new_state["state1"], new_state["state2"] = m.reshape(p.shape), v.reshape(p.shape)
    new_p = new_p.astype(p.dtype).reshape(p.shape)
    return (new_p, new_state, m, v) if moments else (new_p, new_state)


def gradients(rng, shape, dtype, steps):
    # Gradients over several orders of magnitude, with exact zeros: blocks of very
    # different absmax, values near zero (where the dynamic map is finest).
    out = []
    for _ in range(steps):
        g = rng.standard_normal(shape).astype(np.float32) * np.float32(10.0 ** rng.integers(-4, 1))
        g[rng.random(shape) < 0.05] = 0
        out.append(g.astype(dtype))
    return out


CASES = [
    (Adam8bit, {}),
    (Adam8bit, {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    (AdamW8bit, {}),
    (AdamW8bit, {"lr": 3e-3, "weight_decay": 0.5, "min_8bit_size": 16}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("cls,kwargs", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_each_step_matches_the_numpy_model_bit_for_bit(cls, kwargs, dtype):
    rng = np.random.default_rng(7)
    # 8-bit state (>= min_8bit_size, odd tails, more than one chunk of 8192) and float32
    # state (small tensors), in one group.
    shapes = [(4096 + 77,), (40, 257), (8192 * 2 + 256 * 3 + 1,), (1,), (100,), (4095,)]
    params = [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    opt = cls(params, **kwargs)
    group = opt.param_groups[0]
    grads = [gradients(rng, s, dtype, 8) for s in shapes]
    models = []
    for p in params:
        models.append({"p": np.array(p), "state": None})
    for step in range(8):
        for p, model, g in zip(params, models, grads):
            p.grad = g[step]
            if model["state"] is None:
                model["state"] = {k: np.copy(v) for k, v in opt._new_state(p).items()}
                model["state"]["step"] = 0
            model["p"], model["state"] = model_step(
                model["p"], g[step], model["state"], group["lr"], group["betas"],
                group["eps"], group["weight_decay"],
            )  # fmt: skip
        opt.step()
        for i, (p, model) in enumerate(zip(params, models)):
            state = opt.state[p]
            assert state["step"] == step + 1
            np.testing.assert_array_equal(
                np.asarray(p).view(np.uint8), model["p"].view(np.uint8), err_msg=f"p{i}"
            )
            for key, value in model["state"].items():
                if key != "step":
                    np.testing.assert_array_equal(state[key], value, err_msg=f"{key} of p{i}")


def test_state_layout_is_bitsandbytes():
    big, small = Parameter(np.ones(5000, np.float32)), Parameter(np.ones(10, np.float32))
    opt = Adam8bit([big, small])
    for p in (big, small):
        p.grad = np.ones_like(p)
    opt.step()
    s = opt.state[big]
    assert set(s) == {"step", "state1", "state2", "qmap1", "qmap2", "absmax1", "absmax2"}
    assert s["step"] == 1 and type(s["step"]) is int
    assert s["state1"].dtype == s["state2"].dtype == np.uint8 and s["state1"].shape == (5000,)
    assert s["absmax1"].dtype == np.float32 and s["absmax1"].shape == (20,)
    np.testing.assert_array_equal(s["qmap1"], MAPS[0])
    np.testing.assert_array_equal(s["qmap2"], MAPS[1])
    assert set(opt.state[small]) == {"step", "state1", "state2"}
    assert opt.state[small]["state1"].dtype == np.float32
    # About 2 bytes of state per element instead of 8.
    state_bytes = sum(s[k].nbytes for k in ("state1", "state2", "absmax1", "absmax2"))
    assert state_bytes / big.size < 2.04
    group = opt.param_groups[0]
    assert {k: v for k, v in group.items() if k != "params"} == {
        "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "alpha": 0.0,
        "t_alpha": None, "t_beta3": None,
    }  # fmt: skip
    assert opt.defaults == {k: v for k, v in group.items() if k != "params"}
    assert AdamW8bit([big]).defaults["weight_decay"] == 1e-2


def test_optim_bits_32_in_args_keeps_float32_state():
    import types

    p = Parameter(np.ones(5000, np.float32))
    args = types.SimpleNamespace(optim_bits=32, min_8bit_size=4096, max_unorm=0.0, skip_zeros=False)
    opt = Adam8bit([p], args=args)
    p.grad = np.ones_like(p)
    opt.step()
    assert opt.state[p]["state1"].dtype == np.float32


# ------------------------------------------------------------------ quantization


def test_quantizer_picks_the_nearest_code_everywhere():
    rng = np.random.default_rng(0)
    for code, table in zip(MAPS, TABLES):
        midpoints = (code[:-1].astype(np.float64) + code[1:]) / 2
        around = [code, midpoints.astype(np.float32)]
        for direction in (-np.inf, np.inf):
            step = midpoints.astype(np.float32)
            for _ in range(3):
                step = np.nextafter(step, np.float32(direction))
                around.append(step)
        # Every bfloat16 in [-1, 1] (all exponents, the top mantissa bits), random floats
        # (uniform and over 30 binades), the codes, the midpoints and their neighbours.
        bf16 = (np.arange(1 << 16, dtype=np.uint32) << 16).view(np.float32)
        values = np.concatenate(
            [
                bf16[np.abs(bf16) <= 1],
                rng.uniform(-1, 1, 1 << 20).astype(np.float32),
                (np.sign(rng.standard_normal(1 << 18)) * 2.0 ** rng.uniform(-30, 0, 1 << 18)),
                *around,
                [0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30],
            ]
        ).astype(np.float32)
        np.testing.assert_array_equal(_core._quantize(values, table), nearest(code, values))


def test_quantizer_clamps_out_of_range_values():
    table = TABLES[0]
    values = np.array([1.0000001, 3.0, np.inf, -1.5, -np.inf], np.float32)
    np.testing.assert_array_equal(_core._quantize(values, table), [255, 255, 255, 0, 0])


def test_unsupported_map_is_refused():
    with pytest.raises(ValueError, match="unsupported quantization map"):
        _core.quantization_table(MAPS[0][::-1].copy())
    with pytest.raises(ValueError, match="256 elements|elements, expected 256"):
        _core.quantization_table(np.zeros(10, np.float32))


def test_dynamic_maps_match_bitsandbytes_fixture():
    # The two maps as bitsandbytes 0.50 builds them (tests/fixtures/make_bnb_fixtures.py).
    from conftest import load_golden

    golden = load_golden("bnb_dynamic_maps.npz")
    np.testing.assert_array_equal(MAPS[0].view(np.uint32), golden["signed"].view(np.uint32))
    np.testing.assert_array_equal(MAPS[1].view(np.uint32), golden["unsigned"].view(np.uint32))


# ------------------------------------------------------------------ robustness


def run(cls, params, grads, **kwargs):
    opt = cls(params, **kwargs)
    for g_step in grads:
        for p, g in zip(params, g_step):
            p.grad = g
        opt.step()
    return opt


def test_thread_counts_give_identical_results(restore_threads):
    rng = np.random.default_rng(1)
    shapes = [(300_001,), (70_000,), (17,)]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    results = []
    for threads in (1, 2, 3):
        numoptim.set_num_threads(threads)
        params = [Parameter(x.copy()) for x in start]
        opt = run(AdamW8bit, params, grads)
        results.append([np.array(p) for p in params] + [opt.state[params[0]]["state1"].copy()])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


_DISPATCH_SCRIPT = textwrap.dedent(
    """
    import hashlib, json
    import numpy as np
    import numoptim
    rng = np.random.default_rng(3)
    digest = hashlib.sha256()
    for name, kwargs in CASES:
        for dtype in ("float32", "float16"):
            params = [numoptim.Parameter(rng.standard_normal(n).astype(dtype))
                      for n in (0, 1, 7, 255, 4096, 4097, 20_000)]
            opt = getattr(numoptim, name)(params, **kwargs)
            for _ in range(5):
                for p in params:
                    p.grad = rng.standard_normal(p.shape).astype(dtype)
                opt.step()
            for p in params:
                digest.update(np.asarray(p).tobytes())
                for key in ("state1", "state2", "absmax1", "absmax2"):
                    if key in opt.state[p]:
                        digest.update(opt.state[p][key].tobytes())
    print(json.dumps({"level": numoptim._core.simd_level(), "digest": digest.hexdigest()}))
    """
)


def dispatch_script(cases):
    """The script that steps `cases` ((name, kwargs) pairs) and prints its digest."""
    return f"CASES = {cases!r}\n" + _DISPATCH_SCRIPT


def test_every_dispatch_level_gives_bit_identical_results():
    assert_same_digest_at_every_level(dispatch_script([("AdamW8bit", {"lr": 1e-2})]))


def assert_same_digest_at_every_level(script):
    """Runs `script` (it prints the SIMD level and a digest of its results as JSON) at each
    level the CPU has; every level must print the same digest."""
    levels = ["baseline", "avx2", "avx512"]
    best = _core.cpu_simd_level()
    results = {}
    for level in levels[: levels.index(best) + 1]:
        env = dict(os.environ, NUMOPTIM_DISPATCH=level)
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        result = json.loads(out.stdout)
        assert result["level"] == level
        results[level] = result["digest"]
    assert len(set(results.values())) == 1, results


def test_nan_gradient_makes_the_parameter_nan_as_bitsandbytes():
    p = Parameter(np.ones(5000, np.float32))
    opt = Adam8bit([p])
    g = np.ones(5000, np.float32)
    g[3] = np.nan
    p.grad = g
    opt.step()
    assert np.isnan(p[3]) and np.isfinite(np.delete(np.asarray(p), 3)).all()
    assert np.isnan(opt.state[p]["absmax1"][0]) and np.isfinite(opt.state[p]["absmax1"][1:]).all()


def test_zero_gradients_leave_zero_state_and_parameters():
    p = Parameter(np.linspace(-1, 1, 5000, dtype=np.float32))
    before = np.array(p)
    opt = Adam8bit([p])
    p.grad = np.zeros_like(p)
    opt.step()
    np.testing.assert_array_equal(p, before)
    assert (opt.state[p]["absmax1"] == 0).all() and (opt.state[p]["absmax2"] == 0).all()


# ------------------------------------------------------------------ errors


def test_constructor_errors_are_bitsandbytes():
    p = [Parameter(np.ones(3, np.float32))]
    for kwargs, message in [
        ({"lr": -1.0}, "Invalid learning rate: -1.0"),
        ({"eps": -1.0}, "Invalid epsilon value: -1.0"),
        ({"betas": (1.0, 0.9)}, "Invalid beta parameter at index 0: 1.0"),
        ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
        ({"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
        ({"amsgrad": True}, "Adam8bit does not support amsgrad=True"),
        ({"optim_bits": 8}, r"Adam8bit only supports optim_bits=32 \(default value"),
    ]:
        with pytest.raises(ValueError, match=message):
            Adam8bit(p, **kwargs)
    with pytest.raises(ValueError, match="AdamW8bit does not support amsgrad=True"):
        AdamW8bit(p, amsgrad=True)
    with pytest.raises(TypeError, match="parameter 0 has dtype float64"):
        Adam8bit([Parameter(np.ones(3))])


def test_is_paged_warns_that_cpu_does_not_page():
    p = Parameter(np.ones(3, np.float32))
    opt = Adam8bit([p], is_paged=True)
    p.grad = np.ones_like(p)
    with pytest.warns(UserWarning, match="Paged optimizers are not supported on CPU"):
        opt.step()


def test_a_bad_group_leaves_every_group_unwritten():
    rng = np.random.default_rng(2)
    good = Parameter(rng.standard_normal(5000).astype(np.float32))
    bad = Parameter(rng.standard_normal(5000).astype(np.float32))
    opt = Adam8bit([{"params": [good]}, {"params": [bad]}])
    for p in (good, bad):
        p.grad = np.ones_like(p)
    opt.step()
    before = [np.array(good), np.array(bad)]
    states = {id(p): {k: np.copy(v) for k, v in opt.state[p].items()} for p in (good, bad)}
    opt.state[bad]["absmax2"] = np.zeros(3, np.float32)  # a block count that does not fit
    with pytest.raises(ValueError, match="absmax2 of parameter 0 has 3 elements, expected 20"):
        opt.step()
    opt.state[bad]["absmax2"] = states[id(bad)]["absmax2"].astype(np.float64)
    with pytest.raises(TypeError, match="absmax2 of parameter 0 must have dtype float32"):
        opt.step()
    opt.state[bad]["absmax2"] = states[id(bad)]["absmax2"].copy()
    opt.state[bad]["state1"] = states[id(bad)]["state1"].view(np.int8)
    with pytest.raises(TypeError, match="state1 of parameter 0 must have dtype float32"):
        opt.step()
    opt.state[bad]["state1"] = states[id(bad)]["state1"].copy()
    del opt.state[bad]["qmap2"]
    with pytest.raises(ValueError, match="state of parameter 0 has no 'qmap2'"):
        opt.step()
    opt.state[bad]["qmap2"] = MAPS[1]
    np.testing.assert_array_equal(good, before[0])
    np.testing.assert_array_equal(bad, before[1])
    for p in (good, bad):
        for key, value in states[id(p)].items():
            np.testing.assert_array_equal(opt.state[p][key], value)
    # A new parameter's state is not created by a step that fails.
    fresh = Parameter(np.ones(5000, np.float32))
    opt.add_param_group({"params": [fresh]})
    fresh.grad = np.ones_like(fresh)
    opt.state[bad]["absmax2"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError):
        opt.step()
    assert fresh not in opt.state or not opt.state[fresh]


# ------------------------------------------------------------------ checkpoints


# The three 8-bit optimizers: their kwargs here and their state streams.
CHECKPOINT_CASES = [
    (AdamW8bit, {"lr": 1e-3}, ("state1", "state2")),
    (numoptim.Lion8bit, {"lr": 1e-2}, ("state1",)),
    (numoptim.AdEMAMix8bit, {"lr": 1e-2, "t_alpha": 4}, ("state1", "state2")),
]


@pytest.mark.parametrize(
    "cls,kwargs,streams", CHECKPOINT_CASES, ids=[c[0].__name__ for c in CHECKPOINT_CASES]
)
def test_state_dict_is_nested_as_bitsandbytes_and_resume_is_bit_exact(
    cls, kwargs, streams, tmp_path
):
    rng = np.random.default_rng(4)
    start = [rng.standard_normal(s).astype(np.float32) for s in (6000, 33)]
    grads = [[rng.standard_normal(x.shape).astype(np.float32) for x in start] for _ in range(6)]

    straight = [Parameter(x.copy()) for x in start]
    run(cls, straight, grads, **kwargs)

    first = [Parameter(x.copy()) for x in start]
    opt = run(cls, first, grads[:3], **kwargs)
    sd = opt.state_dict()
    quant = sd["state"][0]["__bnb_optimizer_quant_state__"]
    numbers = {name[-1] for name in streams}
    assert set(quant) == {f"{key}{k}" for k in numbers for key in ("state", "qmap", "absmax")}
    assert set(sd["state"][0]) == {"step", "__bnb_optimizer_quant_state__"}
    assert set(sd["state"][1]["__bnb_optimizer_quant_state__"]) == set(streams)
    assert "state1" in opt.state[first[0]]  # the live state is not nested
    numoptim.save(sd, tmp_path / "ckpt")

    resumed = [Parameter(np.array(p)) for p in first]
    opt2 = cls(resumed, **kwargs)
    opt2.load_state_dict(numoptim.load(tmp_path / "ckpt"))
    assert opt2.state[resumed[0]]["step"] == 3
    assert opt2.state[resumed[0]]["state1"].dtype == np.uint8
    for g_step in grads[3:]:
        for p, g in zip(resumed, g_step):
            p.grad = g
        opt2.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


def test_16bit_parameter_keeps_float32_state_on_load():
    p = Parameter(np.ones(10, np.float16))
    opt = Adam8bit([p])
    p.grad = np.ones_like(p)
    opt.step()
    opt2 = Adam8bit([Parameter(np.ones(10, np.float16))])
    opt2.load_state_dict(opt.state_dict())
    assert next(iter(opt2.state.values()))["state1"].dtype == np.float32


# ------------------------------------------------------------------ convergence


def softmax_regression(features, labels, classes, opt_cls, steps, **kwargs):
    """Full-batch softmax regression; returns the final training loss."""
    rng = np.random.default_rng(0)
    w = Parameter((rng.standard_normal((features.shape[1], classes)) * 0.01).astype(np.float32))
    b = Parameter(np.zeros(classes, np.float32))
    opt = opt_cls([w, b], **kwargs)
    onehot = np.eye(classes, dtype=np.float32)[labels]
    for _ in range(steps + 1):
        logits = features @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-12)))
        delta = (probs - onehot) / len(labels)
        w.grad = (features.T @ delta).astype(np.float32)
        b.grad = delta.sum(axis=0).astype(np.float32)
        opt.step()
    return loss


def test_converges_within_2_percent_of_float32_adam():
    # 64 features x 64 classes: the weight matrix (4096 elements) gets 8-bit state.
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((64, 64)).astype(np.float32)
    labels = rng.integers(0, 64, 4000)
    features = centers[labels] + rng.standard_normal((4000, 64)).astype(np.float32) * 3
    reference = softmax_regression(features, labels, 64, numoptim.AdamW, 300, lr=1e-2)
    loss = softmax_regression(features, labels, 64, AdamW8bit, 300, lr=1e-2)
    assert abs(loss - reference) <= 0.02 * reference, (loss, reference)


def test_converges_on_digits_no_worse_than_2_percent_above_float32_adam():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    # With the products of pixel pairs (64 + 2080 inputs), the weights get 8-bit state.
    pairs = np.triu_indices(64)
    features = np.hstack([features, features[:, pairs[0]] * features[:, pairs[1]]])
    reference = softmax_regression(features, digits.target, 10, numoptim.Adam, 100, lr=1e-3)
    loss = softmax_regression(features, digits.target, 10, Adam8bit, 100, lr=1e-3)
    # 8-bit state ends 2% lower here (0.1567 against 0.1601); bitsandbytes' Adam8bit
    # ends at 0.1565 on the same problem in torch.
    assert loss <= 1.02 * reference, (loss, reference)


# ------------------------------------------------------------------ bitsandbytes


def check_against_bitsandbytes(p, grad, before, p_after, after, inexact, lr, weight_decay):
    """One step from bitsandbytes' state against bitsandbytes' result.

    The parameter must agree bit for bit wherever torch's sqrt (which bitsandbytes' CPU
    kernel calls) is correctly rounded. A code may differ only where ours is nearer to
    the value than bitsandbytes' (its CPU quantizer rounds to a 65536-point grid first).
    Returns the counts of differing elements.
    """
    ours = Parameter(p.copy())
    opt = AdamW8bit([ours], lr=lr, weight_decay=weight_decay)
    opt.state[ours] = {"step": 2, "qmap1": MAPS[0], "qmap2": MAPS[1],
                       **{k: v.copy() for k, v in before.items()}}  # fmt: skip
    ours.grad = grad
    opt.step()
    differ = np.asarray(ours) != p_after
    assert not (differ & ~inexact).any()
    _, _, m, v = model_step(p, grad, {"step": 2, **before}, lr, (0.9, 0.999), 1e-8,
                            weight_decay, moments=True)  # fmt: skip
    counts = {"p": int(differ.sum())}
    for key, code, x in (("state1", MAPS[0], m), ("state2", MAPS[1], v)):
        absmax = opt.state[ours]["absmax" + key[-1]]
        np.testing.assert_array_equal(absmax, after["absmax" + key[-1]])
        blocks = np.arange(x.size) // 256
        normalized = np.clip(x * (np.float32(1) / absmax)[blocks], -1, 1).astype(np.float64)
        mine, theirs = opt.state[ours][key], after[key]
        where = mine != theirs
        assert (np.abs(code[mine] - normalized) < np.abs(code[theirs] - normalized))[where].all()
        counts[key] = int(where.sum())
    return counts


def test_one_step_agrees_with_bitsandbytes_fixture():
    from conftest import load_golden

    f = load_golden("bnb_adamw8bit_step.npz")
    keys = ("state1", "state2", "absmax1", "absmax2")
    counts = check_against_bitsandbytes(
        f["p"], f["grad"], {k: f[k] for k in keys}, f["p_after"],
        {k: f[k + "_after"] for k in keys}, f["sqrt_inexact"], 1e-2, 0.1,
    )  # fmt: skip
    # Most elements agree exactly; the rest are the documented departures.
    assert counts["p"] < 0.01 * f["p"].size and counts["state1"] < 0.01 * f["p"].size


@pytest.mark.torch
@pytest.mark.parametrize("n", [4096, 6000 + 77, 8192 * 3 + 5])
def test_steps_agree_with_live_bitsandbytes(n):
    torch = pytest.importorskip("torch")
    bnb = pytest.importorskip("bitsandbytes")
    for signed in (True, False):
        expected = bnb.functional.create_dynamic_map(signed=signed).numpy()
        np.testing.assert_array_equal(create_dynamic_map(signed).view(np.uint32),
                                      expected.view(np.uint32))  # fmt: skip
    torch.manual_seed(n)
    p = torch.nn.Parameter(torch.randn(n))
    opt = bnb.optim.AdamW8bit([p], lr=1e-2, weight_decay=0.1)
    keys = ("state1", "state2", "absmax1", "absmax2")
    for step in range(6):
        p.grad = torch.randn(n) * 10.0 ** -(step % 3)
        if step < 2:  # from step 2 on, compare each step from bitsandbytes' state
            opt.step()
            continue
        state = opt.state[p]
        before = {k: state[k].numpy().copy() for k in keys}
        p_before, grad = p.detach().numpy().copy(), p.grad.numpy().copy()
        opt.step()
        _, _, _, v = model_step(p_before, grad, {"step": 2, **before}, 1e-2, (0.9, 0.999),
                                1e-8, 0.1, moments=True)  # fmt: skip
        state["step"] = 2  # our comparison restarts at step 3 each time
        inexact = torch.from_numpy(v.copy()).sqrt().numpy() != np.sqrt(v)
        check_against_bitsandbytes(
            p_before, grad, before, p.detach().numpy(), {k: state[k].numpy() for k in keys},
            inexact, 1e-2, 0.1,
        )  # fmt: skip


def test_pickled_optimizer_keeps_its_configuration_and_steps_on():
    import pickle

    p = Parameter(np.ones(5000, np.float32))
    p.grad = np.ones_like(p)
    opt = AdamW8bit([p], min_8bit_size=10_000)  # float32 state for this parameter
    opt.step()
    copy = pickle.loads(pickle.dumps(opt))
    q = copy.param_groups[0]["params"][0]
    q.grad = np.ones_like(q)
    copy.step()
    assert copy.args.min_8bit_size == 10_000 and copy.state[q]["step"] == 2
    fresh = Parameter(np.ones(6000, np.float32))
    fresh.grad = np.ones_like(fresh)
    copy.add_param_group({"params": [fresh]})
    copy.step()
    assert copy.state[fresh]["state1"].dtype == np.float32  # still below min_8bit_size
