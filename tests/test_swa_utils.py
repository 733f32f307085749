"""numoptim.swa_utils against torch 2.13: averaging numerics, SWALR (in the scheduler
registry: tests/scheduler_cases.py), errors, and bn_statistics."""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from conftest import assert_close
from numoptim import swa_utils
from swa_cases import AVERAGING, DTYPES, model_values, run_averaging

GOLDEN = np.load(__file__.rsplit("/", 1)[0] + "/fixtures/schedulers.npz")


@pytest.mark.parametrize("name", list(AVERAGING))
def test_averaging_golden(name):
    out = run_averaging(name, "numoptim")
    for dname in DTYPES:
        assert out[dname].dtype == np.dtype(dname)
        assert_close(out[dname], GOLDEN[f"avg/{name}/{dname}"], what=f"{name}/{dname}")


@pytest.mark.torch
@pytest.mark.parametrize("name", list(AVERAGING))
def test_averaging_live_torch(name):
    pytest.importorskip("torch")
    out, expected = run_averaging(name, "numoptim"), run_averaging(name, "torch")
    for dname in DTYPES:
        assert_close(out[dname], expected[dname], what=f"{name}/{dname}")


def test_default_is_the_mean_and_model_is_not_aliased():
    model = [numoptim.Parameter(np.zeros(3)), numoptim.Parameter(np.zeros(2))]
    averaged = swa_utils.AveragedModel(model)
    assert averaged.n_averaged.dtype == np.int64 and averaged.n_averaged == 0
    for k in range(1, 5):
        model[0][...] = k
        model[1][...] = -k
        averaged.update_parameters(model)
    np.testing.assert_array_equal(averaged.module[0], np.full(3, 2.5))
    np.testing.assert_array_equal(averaged.module[1], np.full(2, -2.5))
    assert averaged.n_averaged == 4
    assert not np.shares_memory(averaged.module[0], model[0])


def test_dict_model_and_state_dict():
    model = {"w": np.arange(4.0), "b": np.ones(1)}
    averaged = swa_utils.AveragedModel(model, avg_fn=swa_utils.get_ema_avg_fn(0.5))
    averaged.update_parameters(model)
    averaged.update_parameters({"w": np.zeros(4), "b": np.zeros(1)})
    np.testing.assert_array_equal(averaged.module["w"], np.arange(4.0) * 0.5)
    state = averaged.state_dict()
    assert set(state) == {"module.w", "module.b", "n_averaged"}
    other = swa_utils.AveragedModel(model)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.module["w"], averaged.module["w"])
    assert other.n_averaged == 2
    with pytest.raises(ValueError, match="names differ"):
        averaged.update_parameters({"w": np.zeros(4)})


def test_errors():
    model = [np.zeros(2)]
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn should be"):
        swa_utils.AveragedModel(
            model, avg_fn=swa_utils.get_swa_avg_fn(), multi_avg_fn=swa_utils.get_swa_multi_avg_fn()
        )
    msg = r"Invalid decay value 1.5 provided. Please provide a value in \[0,1\] range."
    with pytest.raises(ValueError, match=msg):
        swa_utils.get_ema_multi_avg_fn(1.5)
    with pytest.raises(ValueError, match=msg):
        swa_utils.get_ema_avg_fn(1.5)
    with pytest.raises(ValueError, match="differ in number or shape"):
        swa_utils.AveragedModel(model).update_parameters([np.zeros(3)])
    with pytest.raises(ValueError, match="CPU"):
        swa_utils.AveragedModel(model, device="cuda")
    with pytest.raises(TypeError, match="list or tuple of arrays or a dict"):
        swa_utils.AveragedModel(np.zeros(2))


def test_swalr_state_dict_drops_anneal_func():
    opt = numoptim.SGD([numoptim.Parameter(np.zeros(1))], lr=0.1)
    sched = swa_utils.SWALR(opt, 0.05, anneal_epochs=3, anneal_strategy="linear")
    state = sched.state_dict()
    assert "anneal_func" not in state and state["_anneal_strategy"] == "linear"
    assert opt.param_groups[0]["swa_lr"] == 0.05
    sched.load_state_dict(state)
    assert sched.anneal_func(0.25) == 0.25


def test_bn_statistics_matches_torch_update_bn_definition():
    batches = [np.arange(24.0).reshape(2, 3, 4) * (k + 1) for k in range(3)]
    mean, var = swa_utils.bn_statistics(((b, None) for b in batches), lambda x: x)
    expected_mean = np.mean([b.mean(axis=(0, 2)) for b in batches], axis=0)
    expected_var = np.mean([b.var(axis=(0, 2), ddof=1) for b in batches], axis=0)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-15)
    np.testing.assert_allclose(var, expected_var, rtol=1e-15)
    pairs = swa_utils.bn_statistics(batches, lambda x: [x, x[:, :2]])
    assert len(pairs) == 2 and pairs[1][0].shape == (2,)
    with pytest.raises(ValueError, match="at least one batch"):
        swa_utils.bn_statistics([], lambda x: x)


@pytest.mark.torch
def test_bn_statistics_live_torch():
    torch = pytest.importorskip("torch")
    batches = [np.stack([model_values(k, np.float64)[2][:30].reshape(5, 6)] * 2) for k in range(4)]
    bn = torch.nn.BatchNorm1d(5, dtype=torch.float64)
    loader = [torch.from_numpy(b) for b in batches]
    torch.optim.swa_utils.update_bn(loader, torch.nn.Sequential(bn))
    mean, var = swa_utils.bn_statistics(batches, lambda x: x)
    np.testing.assert_allclose(mean, bn.running_mean.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(var, bn.running_var.numpy(), rtol=1e-12)
