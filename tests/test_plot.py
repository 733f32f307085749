"""numoptim.plotting: values, no side effects, a real PNG, the CLI, the missing extra."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numoptim
import numpy as np
import pytest
from numoptim import lr_scheduler as L
from numoptim import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def two_groups():
    return numoptim.SGD(
        [
            {"params": [numoptim.Parameter(np.ones(3))]},
            {"params": [numoptim.Parameter(np.ones(2))], "lr": 0.03},
        ],
        lr=0.1,
        momentum=0.9,
    )


def last_lr_trace(opt, sched, steps):
    trace = []
    for _ in range(steps):
        trace.append([float(v) for v in sched.get_last_lr()])
        opt.step()
        sched.step()
    return [list(column) for column in zip(*trace)]


@pytest.fixture
def agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    return matplotlib


def test_values_equal_trace_and_user_objects_unchanged(agg, tmp_path):
    opt = two_groups()
    sched = L.OneCycleLR(opt, [0.5, 0.2], total_steps=40, three_phase=True)
    opt.step()
    sched.step()  # mid-schedule: plotting continues from here
    groups_before = copy.deepcopy(
        [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    )
    state_before = copy.deepcopy(sched.state_dict())
    step_before = opt.step

    path = tmp_path / "one_cycle.png"
    values = plotting.plot_schedule(sched, 30, path=str(path))

    assert sched.state_dict() == state_before
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == (
        groups_before
    )
    assert opt.step is step_before
    twin_opt = two_groups()
    twin = L.OneCycleLR(twin_opt, [0.5, 0.2], total_steps=40, three_phase=True)
    twin_opt.step()
    twin.step()
    assert values == last_lr_trace(twin_opt, twin, 30)
    assert len(values) == 2 and len(values[0]) == 30

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    image = agg.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_class_with_user_optimizer_is_not_touched(agg, tmp_path):
    opt = two_groups()
    values = plotting.plot_schedule(
        L.CosineAnnealingLR, 25, optimizer=opt, T_max=10, path=str(tmp_path / "c.png")
    )
    assert "initial_lr" not in opt.param_groups[0]
    assert not hasattr(opt.step, "_wrapped_by_lr_sched")
    twin_opt = two_groups()
    assert values == last_lr_trace(twin_opt, L.CosineAnnealingLR(twin_opt, 10), 25)


def test_plateau_and_sequential_specs(agg):
    metrics = [1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    values = plotting.schedule_values("ReduceLROnPlateau", 6, patience=1, metrics=metrics)
    assert values == [[0.1, 0.1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1]]
    values = plotting.schedule_values(
        "SequentialLR",
        6,
        schedulers=["ConstantLR(factor=0.5, total_iters=2)", ("ExponentialLR", {"gamma": 0.9})],
        milestones=[3],
    )
    np.testing.assert_allclose(values[0], [0.05, 0.05, 0.1, 0.1, 0.09, 0.081], rtol=1e-15)


def test_instance_with_kwargs_is_rejected():
    opt = two_groups()
    with pytest.raises(TypeError, match="only when a scheduler class is given"):
        plotting.schedule_values(L.StepLR(opt, 2), 3, gamma=0.5)


def test_cli_writes_png(agg, tmp_path, capsys):
    path = tmp_path / "lr.png"
    argv = [
        "plot-schedule",
        "CosineAnnealingLR",
        "--T_max",
        "100",
        "--steps",
        "110",
        "-o",
        str(path),
    ]
    assert plotting.main(argv) == 0
    assert capsys.readouterr().out.strip() == f"wrote {path}"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_cli_parsing():
    name, options, kwargs = plotting._parse_args(
        [
            "CyclicLR",
            "--base_lr",
            "0.01",
            "--max_lr=0.1",
            "--mode",
            "triangular2",
            "--cycle_momentum",
            "false",
            "--steps",
            "50",
            "--lr",
            "0.2",
            "--milestones",
            "[3, 5]",
            "--three_phase",
        ]
    )
    assert name == "CyclicLR"
    assert options["steps"] == 50 and options["lr"] == 0.2
    assert kwargs == {
        "base_lr": 0.01,
        "max_lr": 0.1,
        "mode": "triangular2",
        "cycle_momentum": False,
        "milestones": [3, 5],
        "three_phase": True,
    }
    assert plotting._parse_value("lambda e: 0.5 ** e")(2) == 0.25
    assert plotting._parse_specs("StepLR(step_size=3), ExponentialLR(gamma=0.9)") == [
        ("StepLR", {"step_size": 3}),
        ("ExponentialLR", {"gamma": 0.9}),
    ]
    with pytest.raises(SystemExit, match="unknown scheduler 'NoSuchLR'"):
        plotting.main(["NoSuchLR"])


def test_missing_matplotlib_says_how_to_install_it(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    # `pip install matplotlib` works wherever numoptim was installed from; the
    # `numoptim[plot]` extra only from an index that has numoptim.
    with pytest.raises(
        ImportError, match=r"needs matplotlib; install it with: pip install matplotlib$"
    ):
        plotting.plot_schedule(L.StepLR, 5, step_size=2)


def test_cli_missing_scheduler_argument_is_one_line_and_exit_2(agg, tmp_path, capsys):
    status = plotting.main(["plot-schedule", "CosineAnnealingLR", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "T_max" in err and "Traceback" not in err


def test_cli_without_matplotlib_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status = plotting.main(["plot-schedule", "StepLR", "--step_size", "3"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "pip install matplotlib" in err


def test_module_entry_point_exits_2_without_a_traceback(agg, tmp_path):
    # The numoptim under test, wherever it is imported from (installed or a source tree).
    root = os.path.dirname(os.path.dirname(os.path.abspath(numoptim.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-m", "numoptim", "plot-schedule", "CosineAnnealingLR"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "T_max" in out.stderr


def test_demo_plots_have_titles_and_legends_clear_of_the_curves(tmp_path):
    pytest.importorskip("matplotlib")
    from numoptim.demo import _plot

    long_label = "SGD(lr=0.1, momentum=0.9, nesterov=True) + OneCycleLR(max_lr=0.3)"
    curves = {long_label: np.linspace(1, 0.01, 60), "Adam(lr=0.03)": np.linspace(1, 0.2, 60)}
    fig = _plot(curves, "A title", "loss", "epoch", str(tmp_path / "p.png"), log=True)
    assert (tmp_path / "p.png").stat().st_size > 0
    ax = fig.axes[0]
    assert ax.get_title() == "A title"
    # Extents as drawn by savefig.
    legend, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    # The legend lies wholly below the axes, inside the figure: it hides no curve and no
    # tick label, and is not cut off.
    assert legend.y1 <= axes_box.y0 and legend.y0 >= 0
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.width
