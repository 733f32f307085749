"""Plot a learning-rate schedule, from Python or from the command line.

    from numoptim import plotting, lr_scheduler
    values = plotting.plot_schedule(lr_scheduler.OneCycleLR, 100, max_lr=0.1,
                                    total_steps=100, path="lr.png")

    python -m numoptim plot-schedule CosineAnnealingLR --T_max 100 --steps 110 -o lr.png

The schedule is always stepped on a private deep copy: the caller's optimizer and
scheduler are left exactly as they were (the parameter arrays are shared with the
copy, not copied, and never written: the copied optimizer is never stepped).
matplotlib is imported only when drawing (``pip install matplotlib``).
"""

from __future__ import annotations

import ast
import copy
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import lr_scheduler, swa_utils
from .lr_scheduler import LRScheduler, ReduceLROnPlateau, _patch_track_step_called
from .optimizer import Optimizer
from .parameter import Parameter
from .sgd import SGD

__all__ = ["main", "plot_schedule", "schedule_values"]

_COMPOSITES = ("SequentialLR", "ChainedScheduler")


def _scheduler_class(name: str) -> type:
    cls = getattr(lr_scheduler, name, None) or getattr(swa_utils, name, None)
    if not (isinstance(cls, type) and issubclass(cls, LRScheduler)) or name.startswith("_"):
        raise ValueError(f"unknown scheduler {name!r}")
    return cls


def _dummy_optimizer(lr: float = 0.1, momentum: float = 0.9) -> SGD:
    """SGD on one scalar parameter; momentum lets CyclicLR/OneCycleLR cycle it."""
    return SGD([Parameter(np.zeros(1))], lr=lr, momentum=momentum)


def _private_copy(obj: Any, optimizer: Optimizer) -> Any:
    """Deep-copies ``obj`` (an optimizer or a scheduler) sharing the parameter arrays."""
    memo = {id(p): p for group in optimizer.param_groups for p in group["params"]}
    return copy.deepcopy(obj, memo)


def _build(cls: type, optimizer: Optimizer, kwargs: dict[str, Any]) -> Any:
    """Constructs ``cls`` on ``optimizer``; children of composites may be given as specs."""
    kwargs = dict(kwargs)
    if cls.__name__ in _COMPOSITES and "schedulers" in kwargs:
        children = []
        for child in kwargs["schedulers"]:
            if isinstance(child, str):
                child = _parse_specs(child)[0]
            if isinstance(child, tuple):
                child_cls, child_kwargs = child
                if isinstance(child_cls, str):
                    child_cls = _scheduler_class(child_cls)
                child = _build(child_cls, optimizer, child_kwargs)
            children.append(child)
        kwargs["schedulers"] = children
    if cls.__name__ == "ChainedScheduler":
        return cls(optimizer=optimizer, **kwargs)
    return cls(optimizer, **kwargs)


def schedule_values(
    scheduler_or_class: Any,
    steps: int,
    *,
    optimizer: Optimizer | None = None,
    metrics: Iterable[float] | None = None,
    **scheduler_kwargs: Any,
) -> list[list[float]]:
    """The lr of every parameter group at each of ``steps`` steps, without side effects.

    Args:
        scheduler_or_class: a scheduler instance (stepped from its current state on a
            private copy), or a scheduler class or class name, built with
            ``scheduler_kwargs`` on a private copy of ``optimizer``.
        steps: the number of steps to record.
        optimizer: for a class: the optimizer to copy (default: SGD on a dummy
            parameter with lr 0.1 and momentum 0.9).
        metrics: for ReduceLROnPlateau, the metric passed at each step (default: a
            constant, i.e. a plateau).
        **scheduler_kwargs: the constructor arguments, for a class. For SequentialLR
            and ChainedScheduler, ``schedulers`` may list ``(class or name, kwargs)``
            pairs or ``"Name(key=value, ...)"`` strings, built on the same optimizer.

    Returns:
        One list per parameter group: ``values[g][i]`` is the lr used at step ``i``
        (the scheduler's ``get_last_lr()`` before its ``i``-th ``step()``).

    Raises:
        TypeError: arguments that only apply to a class were given with an instance.
    """
    if isinstance(scheduler_or_class, (str, type)):
        cls = (
            _scheduler_class(scheduler_or_class)
            if isinstance(scheduler_or_class, str)
            else scheduler_or_class
        )
        source = optimizer if optimizer is not None else _dummy_optimizer()
        opt = _private_copy(source, source)
        scheduler = _build(cls, opt, scheduler_kwargs)
    else:
        if optimizer is not None or scheduler_kwargs:
            raise TypeError(
                "optimizer and scheduler keyword arguments apply only when a scheduler "
                "class is given, not a scheduler instance"
            )
        scheduler = _private_copy(scheduler_or_class, scheduler_or_class.optimizer)
        opt = scheduler.optimizer
    # The copy's optimizer lost the call-order tracking wrapper (it is not part of an
    # optimizer's state); reinstall it and mark the optimizer as stepped, so that stepping
    # the scheduler alone does not warn.
    _patch_track_step_called(opt)
    opt._opt_called = True

    metric_values = list(metrics) if metrics is not None else None
    values: list[list[float]] = [[] for _ in opt.param_groups]
    for i in range(steps):
        for column, lr in zip(values, scheduler.get_last_lr()):
            column.append(float(lr))
        if isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step(metric_values[i] if metric_values is not None else 1.0)
        else:
            scheduler.step()
    return values


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plotting a schedule needs matplotlib; install it with: pip install matplotlib"
        ) from error
    return Figure


def plot_schedule(
    scheduler_or_class: Any,
    steps: int,
    *,
    optimizer: Optimizer | None = None,
    metrics: Iterable[float] | None = None,
    ax: Any = None,
    path: str | None = None,
    title: str | None = None,
    **scheduler_kwargs: Any,
) -> list[list[float]]:
    """Draws the lr of every parameter group against the step, with matplotlib.

    The values are those of :func:`schedule_values` (a private copy is stepped).

    Args:
        scheduler_or_class: a scheduler, or a scheduler class or class name.
        steps: the number of steps to draw.
        optimizer: for a class: the optimizer to copy (default: a dummy SGD, lr 0.1).
        metrics: for ReduceLROnPlateau, the metric at each step.
        ax: a matplotlib Axes to draw on (default: a new Figure's).
        path: where to save the figure (PNG, or any format matplotlib infers).
        title: the plot's title (default: the scheduler's class name).
        **scheduler_kwargs: the constructor arguments, for a class.

    Returns:
        One list of lrs per parameter group, as :func:`schedule_values`.

    Raises:
        ImportError: matplotlib is not installed (``pip install matplotlib``).
    """
    figure_cls = _require_matplotlib()
    values = schedule_values(
        scheduler_or_class, steps, optimizer=optimizer, metrics=metrics, **scheduler_kwargs
    )
    if isinstance(scheduler_or_class, str):
        name = scheduler_or_class
    elif isinstance(scheduler_or_class, type):
        name = scheduler_or_class.__name__
    else:
        name = type(scheduler_or_class).__name__
    if ax is None:
        ax = figure_cls(figsize=(6.4, 4.0), layout="constrained").add_subplot()
    for g, column in enumerate(values):
        ax.plot(range(len(column)), column, label=f"group {g}")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(title if title is not None else name)
    if len(values) > 1:
        ax.legend()
    if path is not None:
        ax.figure.savefig(path)
    return values


# --------------------------------------------------------------------------------- CLI


def _parse_value(text: str) -> Any:
    """A command-line value: a Python literal (int, float, list, tuple, None, True...),
    true/false in any case, a ``lambda`` (for lr_lambda / scale_fn), else the string."""
    stripped = text.strip()
    if stripped.startswith("lambda"):
        # The user's own command line, evaluated with only ``math`` in scope.
        return eval(stripped, {"__builtins__": {}, "math": math})
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        pass
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    return text


def _parse_specs(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Parses ``"LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95)"``
    into ``[(name, kwargs), ...]`` (literal keyword arguments only)."""
    tree = ast.parse(text.strip(), mode="eval").body
    calls = tree.elts if isinstance(tree, (ast.Tuple, ast.List)) else [tree]
    specs = []
    for call in calls:
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)) or call.args:
            raise ValueError(f"expected Name(key=value, ...) scheduler specs, got {text!r}")
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        specs.append((call.func.id, kwargs))
    return specs


def _parse_args(argv: Sequence[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Splits argv into the scheduler name, the CLI options and the constructor kwargs."""
    if not argv or argv[0].startswith("-"):
        raise SystemExit(_USAGE)
    name, rest = argv[0], list(argv[1:])
    options: dict[str, Any] = {"steps": 100, "lr": 0.1, "momentum": 0.9, "output": None}
    kwargs: dict[str, Any] = {}
    i = 0
    while i < len(rest):
        token = rest[i]
        if token in ("-h", "--help"):
            raise SystemExit(_USAGE)
        if token == "-o":
            token = "--output"
        if not token.startswith("--"):
            raise SystemExit(f"unexpected argument {token!r}\n{_USAGE}")
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 < len(rest) and not rest[i + 1].startswith("--") and rest[i + 1] != "-o":
                value = rest[i + 1]
                i += 1
            else:
                value = "True"  # a bare flag
        i += 1
        if key in options:
            options[key] = value if key == "output" else _parse_value(value)
        elif key == "schedulers":
            kwargs[key] = _parse_specs(value)
        elif key == "metrics":
            options[key] = _parse_value(value)
        else:
            kwargs[key] = _parse_value(value)
    return name, options, kwargs


_USAGE = """usage: python -m numoptim plot-schedule SCHEDULER [--steps N] [--lr LR]
                                       [--momentum M] [-o PATH] [--ARG VALUE ...]

Draws the lr of SCHEDULER (any class of numoptim.lr_scheduler, or SWALR) over N steps
(default 100) of an SGD on a dummy parameter (lr 0.1, momentum 0.9) and writes a PNG
(default SCHEDULER.png). Every other --ARG VALUE is a constructor argument; VALUE is a
Python literal (3, 0.5, [30, 60], True, 'cos'), a bare word (string), or a lambda
(for lr_lambda/scale_fn, with math available). SequentialLR / ChainedScheduler take
--schedulers "LinearLR(total_iters=5), CosineAnnealingLR(T_max=95)". ReduceLROnPlateau
takes --metrics [..] (default: a constant metric, i.e. a plateau).

example: python -m numoptim plot-schedule CosineAnnealingLR --T_max 100 --steps 110 -o lr.png"""


def main(argv: Sequence[str] | None = None) -> int:
    """The ``plot-schedule`` command: parses ``argv``, writes the PNG, prints its path.

    Args:
        argv: the arguments after the program name, optionally starting with
            ``plot-schedule`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 after a one-line error on stderr when the scheduler
        rejects its arguments (a missing ``--T_max``, say) or matplotlib is missing.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "plot-schedule":
        argv = argv[1:]
    name, options, kwargs = _parse_args(argv)
    try:
        cls = _scheduler_class(name)
    except ValueError as error:
        raise SystemExit(f"{error}\n{_USAGE}") from None
    optimizer = _dummy_optimizer(options["lr"], options["momentum"])
    path = options["output"] or f"{name}.png"
    try:
        plot_schedule(
            cls,
            int(options["steps"]),
            optimizer=optimizer,
            metrics=options.get("metrics"),
            path=path,
            **kwargs,
        )
    except (TypeError, ValueError, ImportError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"python -m numoptim plot-schedule: error: {message}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
