"""Times one optimizer step: numoptim against the roofline, NumPy in place and torch.

Usage::

    PYTHONPATH=python python bench/bench_step.py [--quick] [--threads 1 2]
        [--optimizers Adam SGD-momentum ...] [--scenarios a b c d]
        [--layouts direct astype view] [--same-process]

Each method runs in its own process (this script with --child), the methods alternating
in order and in reverse from round to round; each process reports the median of its
timed steps, and the table shows the median over rounds, the spread and the median
per-round ratio to the roofline. numoptim and NumPy run once per input layout (direct,
astype, view: see make_arrays) and the targets take numoptim's worst. --same-process
runs every method in one process, interleaved (a short step re-warmed at the start of
its turn), only to compare. The methods:

  roofline     numoptim._core.bench_stream: a native loop that reads and writes as many
               float32 arrays as the optimizer, in place, through the same driver, threads
               and SIMD level (numoptim/stream.hpp), over one flat array per operand of
               the step's total size. No elementwise step can beat it.
  roof-tensors the same loop over arrays shaped like the step's tensors (several tensors
               only): what moving the same bytes costs when they lie in many separate
               arrays, each on its own 4 KiB pages (NumPy asks for huge pages only from
               4 MiB up), as the parameters and their state do.
  roof-arrays  the same loop over the user's own parameter and gradient arrays, as the
               layout made them, with the other operands allocated as numoptim allocates
               state: run once per layout, it tells a step slowed by where its arrays
               live (the same slowdown here) from one slowed by the step.
  numoptim     optimizer.step() (gradients set once; only the step is timed).
  native       the optimizer's native calls alone, with the arguments its Python layer
               passed in one recorded step: numoptim/native is the Python layer's cost.
  numpy        the same update written with NumPy ufuncs and out= (what a NumPy user
               would write), single-threaded as NumPy is.
  torch        torch.optim's default path on CPU (the for-loop implementation).
  torch-fused  torch.optim with fused=True (SGD, Adam, AdamW, Adagrad).
  reference    for an optimizer torch.optim lacks, the torch implementation numoptim
               follows (REFERENCES: lion-pytorch, schedulefree, ...), foreach where it
               has one, when installed.
  optax        optax's sgd/adam/adamw under jax.jit on the CPU, parameters and state
               donated (SGD, Adam, AdamW; when jax and optax are installed).

Scenarios (see DESIGN.md, "Speed"):

  a  one tensor of 2^24 elements, for every optimizer in OPTIMIZERS that numoptim has
  b  ResNet-50's 161 parameter shapes (25,557,032 elements), Adam
  c  500 tensors of 256 elements, Adam: per-tensor overhead
  d  one tensor of 10 elements, Adam: the fixed cost of a step

Bytes per element count each float32 array read or written once: Adam reads p, g, m, v
and writes p, m, v (28 B). GB/s is that byte count over the time.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

try:
    import numoptim
except ImportError:  # run from a checkout without PYTHONPATH=python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import numoptim
from numoptim import _core

try:
    import torch
except ImportError:
    torch = None

# --------------------------------------------------------------------------- NumPy
# Each reference updates p and its state in place from g, as torch's single-tensor
# step does, with preallocated scratch arrays `tmp` (two arrays shaped like p).


def numpy_sgd(p, g, state, t, tmp, lr, momentum=0.0, **_):
    if momentum:
        b = state["momentum_buffer"]
        if t == 1:
            np.copyto(b, g)
        else:
            np.multiply(b, momentum, out=b)
            np.add(b, g, out=b)
        g = b
    np.multiply(g, lr, out=tmp[0])
    np.subtract(p, tmp[0], out=p)


def numpy_adam(
    p,
    g,
    state,
    t,
    tmp,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled=False,
    **_,
):
    beta1, beta2 = betas
    m, v = state["exp_avg"], state["exp_avg_sq"]
    a, b = tmp
    if weight_decay and decoupled:
        np.multiply(p, 1 - lr * weight_decay, out=p)
    elif weight_decay:
        np.multiply(p, weight_decay, out=a)
        g = np.add(g, a, out=a)
    np.subtract(g, m, out=b)  # m <- lerp(m, g, 1 - beta1)
    np.multiply(b, 1 - beta1, out=b)
    np.add(m, b, out=m)
    np.multiply(v, beta2, out=v)
    np.multiply(g, g, out=b)
    np.multiply(b, 1 - beta2, out=b)
    np.add(v, b, out=v)
    if amsgrad:
        v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
    np.sqrt(v, out=b)
    np.divide(b, math.sqrt(1 - beta2**t), out=b)
    np.add(b, eps, out=b)
    np.divide(m, b, out=b)
    np.multiply(b, lr / (1 - beta1**t), out=b)
    np.subtract(p, b, out=p)


def numpy_adamw(p, g, state, t, tmp, weight_decay=1e-2, **kwargs):
    numpy_adam(p, g, state, t, tmp, weight_decay=weight_decay, decoupled=True, **kwargs)


def numpy_adagrad(p, g, state, t, tmp, lr=1e-2, eps=1e-10, **_):
    s = state["sum"]
    a = tmp[0]
    np.multiply(g, g, out=a)
    np.add(s, a, out=s)
    np.sqrt(s, out=a)
    np.add(a, eps, out=a)
    np.divide(g, a, out=a)
    np.multiply(a, lr, out=a)
    np.subtract(p, a, out=p)


def numpy_rmsprop(p, g, state, t, tmp, lr=1e-2, alpha=0.99, eps=1e-8, **_):
    sq = state["square_avg"]
    a = tmp[0]
    np.multiply(sq, alpha, out=sq)
    np.multiply(g, g, out=a)
    np.multiply(a, 1 - alpha, out=a)
    np.add(sq, a, out=sq)
    np.sqrt(sq, out=a)
    np.add(a, eps, out=a)
    np.divide(g, a, out=a)
    np.multiply(a, lr, out=a)
    np.subtract(p, a, out=p)


def numpy_adadelta(p, g, state, t, tmp, lr=1.0, rho=0.9, eps=1e-6, **_):
    sq, acc = state["square_avg"], state["acc_delta"]
    a, b = tmp
    np.multiply(sq, rho, out=sq)
    np.multiply(g, g, out=a)
    np.multiply(a, 1 - rho, out=a)
    np.add(sq, a, out=sq)
    np.add(sq, eps, out=a)
    np.sqrt(a, out=a)  # std
    np.add(acc, eps, out=b)
    np.sqrt(b, out=b)
    np.divide(b, a, out=b)
    np.multiply(b, g, out=b)  # delta
    np.multiply(acc, rho, out=acc)
    np.multiply(b, b, out=a)
    np.multiply(a, 1 - rho, out=a)
    np.add(acc, a, out=acc)
    np.multiply(b, lr, out=b)
    np.subtract(p, b, out=p)


def numpy_adamax(p, g, state, t, tmp, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, **_):
    beta1, beta2 = betas
    m, u = state["exp_avg"], state["exp_inf"]
    a = tmp[0]
    np.subtract(g, m, out=a)
    np.multiply(a, 1 - beta1, out=a)
    np.add(m, a, out=m)
    np.multiply(u, beta2, out=u)
    np.abs(g, out=a)
    np.add(a, eps, out=a)
    np.maximum(u, a, out=u)
    np.divide(m, u, out=a)
    np.multiply(a, lr / (1 - beta1**t), out=a)
    np.subtract(p, a, out=p)


def numpy_lion(p, g, state, t, tmp, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, **_):
    beta1, beta2 = betas
    m = state["exp_avg"]
    a, b = tmp
    if weight_decay:
        np.multiply(p, 1 - lr * weight_decay, out=p)
    np.multiply(m, beta1, out=a)
    np.multiply(g, 1 - beta1, out=b)
    np.add(a, b, out=a)
    np.sign(a, out=a)
    np.multiply(a, lr, out=a)
    np.subtract(p, a, out=p)
    np.multiply(m, beta2, out=m)
    np.multiply(g, 1 - beta2, out=b)
    np.add(m, b, out=m)


def numpy_ademamix(
    p, g, state, t, tmp, lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=5.0, eps=1e-8,
    weight_decay=1e-2, **_,
):  # fmt: skip
    beta1, beta2, beta3 = betas
    m1, m2, nu = state["exp_avg_fast"], state["exp_avg_slow"], state["exp_avg_sq"]
    a, b = tmp
    for m, beta in ((m1, beta1), (m2, beta3)):
        np.multiply(m, beta, out=m)
        np.multiply(g, 1 - beta, out=b)
        np.add(m, b, out=m)
    np.multiply(nu, beta2, out=nu)
    np.multiply(g, g, out=b)
    np.multiply(b, 1 - beta2, out=b)
    np.add(nu, b, out=nu)
    if weight_decay:
        np.multiply(p, 1 - lr * weight_decay, out=p)
    np.multiply(m1, 1 / (1 - beta1**t), out=a)
    np.multiply(m2, alpha, out=b)
    np.add(a, b, out=a)
    np.sqrt(nu, out=b)
    np.multiply(b, 1 / math.sqrt(1 - beta2**t), out=b)
    np.add(b, eps, out=b)
    np.divide(a, b, out=a)
    np.multiply(a, lr, out=a)
    np.subtract(p, a, out=p)


def numpy_adan(
    p, g, state, t, tmp, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.0, **_,
):  # fmt: skip
    beta1, beta2, beta3 = betas
    m, v, n, npg = (state[k] for k in ("exp_avg", "exp_avg_diff", "exp_avg_sq", "neg_pre_grad"))
    a, b = tmp
    if t == 1:
        np.negative(g, out=npg)
    np.add(npg, g, out=npg)  # d
    np.subtract(g, m, out=a)
    np.multiply(a, 1 - beta1, out=a)
    np.add(m, a, out=m)
    np.multiply(v, beta2, out=v)
    np.multiply(npg, 1 - beta2, out=a)
    np.add(v, a, out=v)
    np.multiply(npg, beta2, out=a)
    np.add(a, g, out=a)  # g + beta2 * d
    np.multiply(a, a, out=a)
    np.multiply(a, 1 - beta3, out=a)
    np.multiply(n, beta3, out=n)
    np.add(n, a, out=n)
    np.sqrt(n, out=b)
    np.multiply(b, 1 / math.sqrt(1 - beta3**t), out=b)
    np.add(b, eps, out=b)
    np.divide(m, b, out=a)
    np.multiply(a, lr / (1 - beta1**t), out=a)
    np.subtract(p, a, out=p)
    np.divide(v, b, out=a)
    np.multiply(a, lr * beta2 / (1 - beta2**t), out=a)
    np.subtract(p, a, out=p)
    if weight_decay:
        np.divide(p, 1 + lr * weight_decay, out=p)
    np.negative(g, out=npg)


# ------------------------------------------------------------------- the optimizers


@dataclass
class Case:
    """One optimizer configuration.

    Attributes:
        label: the row's name and what --optimizers selects.
        name: the class name in numoptim and torch.optim.
        kwargs: constructor arguments (params excluded), the same for both.
        reads: float arrays read per element (param, grad, state).
        writes: float arrays written per element (param and state, in place).
        state: the state buffers a NumPy reference needs, by torch's names.
        numpy: the NumPy reference, or None.
        fused: whether torch has fused=True for it on CPU.
        first_pass: (read, written): float arrays only read, and read and written, in a
            first pass over every element before the update (LAMB and LARS, whose
            update needs per-tensor norms, LAMB's default global clipping reading the
            gradient once more; Prodigy, whose update needs sums over everything).
    """

    label: str
    name: str
    kwargs: dict
    reads: int
    writes: int
    state: tuple = ()
    numpy: Optional[Callable] = None  # noqa: UP045 (dataclass field on Python 3.9)
    fused: bool = False
    first_pass: tuple = (0, 0)

    @property
    def bytes_per_element(self) -> int:
        read, written = self.first_pass
        return 4 * (read + 2 * written + self.reads + self.writes)


# Adding an optimizer is one line; it is benchmarked as soon as numoptim has the class.
# fmt: off
OPTIMIZERS = [
    #    label           name        kwargs                               reads writes state (NumPy)                             NumPy reference  torch fused
    Case("SGD",          "SGD",      {"lr": 1e-2},                        2, 1, (),                                                 numpy_sgd,      True),
    Case("SGD-momentum", "SGD",      {"lr": 1e-2, "momentum": 0.9},       3, 2, ("momentum_buffer",),                               numpy_sgd,      True),
    Case("Adam",         "Adam",     {"lr": 1e-3},                        4, 3, ("exp_avg", "exp_avg_sq"),                          numpy_adam,     True),
    Case("AdamW",        "AdamW",    {"lr": 1e-3},                        4, 3, ("exp_avg", "exp_avg_sq"),                          numpy_adamw,    True),
    Case("Adam-amsgrad", "Adam",     {"lr": 1e-3, "amsgrad": True},       5, 4, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),        numpy_adam,     True),
    Case("Adagrad",      "Adagrad",  {"lr": 1e-2},                        3, 2, ("sum",),                                           numpy_adagrad,  True),
    Case("RMSprop",      "RMSprop",  {"lr": 1e-2},                        3, 2, ("square_avg",),                                    numpy_rmsprop),
    Case("Adadelta",     "Adadelta", {"lr": 1.0},                         4, 3, ("square_avg", "acc_delta"),                        numpy_adadelta),
    Case("Adamax",       "Adamax",   {"lr": 2e-3},                        4, 3, ("exp_avg", "exp_inf"),                             numpy_adamax),
    Case("NAdam",        "NAdam",    {"lr": 2e-3},                        4, 3),  # p, g, exp_avg, exp_avg_sq
    Case("RAdam",        "RAdam",    {"lr": 1e-3},                        4, 3),  # p, g, exp_avg, exp_avg_sq
    Case("ASGD",         "ASGD",     {"lr": 1e-2},                        3, 2),  # p, g, ax
    Case("Rprop",        "Rprop",    {"lr": 1e-2},                        4, 3),  # p, g, prev, step_size
    Case("Lion",         "Lion",     {"lr": 1e-4},                        3, 2, ("exp_avg",),                                       numpy_lion),  # no torch.optim.Lion
    Case("AdamW-SF",     "AdamWScheduleFree", {"lr": 2.5e-3},             4, 3),  # p, g, z, exp_avg_sq; schedulefree's
    Case("SGD-SF",       "SGDScheduleFree",   {"lr": 1.0},                3, 2),  # p, g, z
    Case("AdEMAMix",     "AdEMAMix", {"lr": 1e-3},                        5, 4, ("exp_avg_fast", "exp_avg_slow", "exp_avg_sq"),     numpy_ademamix),  # no torch.optim.AdEMAMix
    Case("Adan",         "Adan",     {"lr": 1e-3},                        6, 5, ("exp_avg", "exp_avg_diff", "exp_avg_sq", "neg_pre_grad"), numpy_adan),  # no torch.optim.Adan
    Case("NAdamW",       "NAdamW",   {"lr": 1e-3},                        4, 3),  # p, g, exp_avg, exp_avg_sq; timm's
    Case("LaProp",       "LaProp",   {"lr": 4e-4},                        4, 3),  # p, g, exp_avg, exp_avg_sq; timm's
    Case("AdaBelief",    "AdaBelief", {"lr": 1e-3},                       4, 3),  # p, g, exp_avg, exp_avg_var; timm's
    Case("Adopt",        "Adopt",    {"lr": 1e-3},                        4, 3),  # p, g, exp_avg, exp_avg_sq; timm's
    # Two passes: g (global clipping), then p, g, m, v (norms), then the update.
    Case("Lamb",         "Lamb",     {"lr": 1e-3},                        4, 3, first_pass=(5, 0)),
    # Two passes: p, g (norms), then the momentum step.
    Case("LARS",         "Lars",     {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}, 3, 2, first_pass=(2, 0)),
    # Two passes: p, g, p0 read and s, m, v updated; then p updated, m and v read.
    Case("Prodigy",      "Prodigy",  {"lr": 1.0},                         3, 1, first_pass=(3, 3)),
]
# fmt: on
# The optimizers beyond torch.optim, held to the elementwise target in scenario (a)
# (the two-pass ones to a roofline of their two passes' bytes).
BEYOND_TORCH = (
    "Lion",
    "AdamW-SF",
    "SGD-SF",
    "AdEMAMix",
    "Adan",
    "NAdamW",
    "LaProp",
    "AdaBelief",
    "Adopt",
    "Lamb",
    "LARS",
    "Prodigy",
)
# Scenario (a) by default; the others are always Adam.
DEFAULT_LARGE = ["SGD-momentum", "Adam", "AdamW"]

# torchvision.models.resnet50().parameters(), in order: 161 shapes, 25,557,032 elements.
RESNET50_SHAPES = [
    (64,3,7,7), (64,), (64,), (64,64,1,1), (64,), (64,), (64,64,3,3), (64,), (64,),
    (256,64,1,1), (256,), (256,), (256,64,1,1), (256,), (256,), (64,256,1,1), (64,), (64,),
    (64,64,3,3), (64,), (64,), (256,64,1,1), (256,), (256,), (64,256,1,1), (64,), (64,),
    (64,64,3,3), (64,), (64,), (256,64,1,1), (256,), (256,), (128,256,1,1), (128,), (128,),
    (128,128,3,3), (128,), (128,), (512,128,1,1), (512,), (512,), (512,256,1,1), (512,),
    (512,), (128,512,1,1), (128,), (128,), (128,128,3,3), (128,), (128,), (512,128,1,1),
    (512,), (512,), (128,512,1,1), (128,), (128,), (128,128,3,3), (128,), (128,),
    (512,128,1,1), (512,), (512,), (128,512,1,1), (128,), (128,), (128,128,3,3), (128,),
    (128,), (512,128,1,1), (512,), (512,), (256,512,1,1), (256,), (256,), (256,256,3,3),
    (256,), (256,), (1024,256,1,1), (1024,), (1024,), (1024,512,1,1), (1024,), (1024,),
    (256,1024,1,1), (256,), (256,), (256,256,3,3), (256,), (256,), (1024,256,1,1), (1024,),
    (1024,), (256,1024,1,1), (256,), (256,), (256,256,3,3), (256,), (256,), (1024,256,1,1),
    (1024,), (1024,), (256,1024,1,1), (256,), (256,), (256,256,3,3), (256,), (256,),
    (1024,256,1,1), (1024,), (1024,), (256,1024,1,1), (256,), (256,), (256,256,3,3),
    (256,), (256,), (1024,256,1,1), (1024,), (1024,), (256,1024,1,1), (256,), (256,),
    (256,256,3,3), (256,), (256,), (1024,256,1,1), (1024,), (1024,), (512,1024,1,1),
    (512,), (512,), (512,512,3,3), (512,), (512,), (2048,512,1,1), (2048,), (2048,),
    (2048,1024,1,1), (2048,), (2048,), (512,2048,1,1), (512,), (512,), (512,512,3,3),
    (512,), (512,), (2048,512,1,1), (2048,), (2048,), (512,2048,1,1), (512,), (512,),
    (512,512,3,3), (512,), (512,), (2048,512,1,1), (2048,), (2048,), (1000,2048), (1000,),
]  # fmt: skip

# ----------------------------------------------------------------------- the methods


LAYOUTS = ("direct", "astype", "view")


def make_arrays(shapes, rng, scale, layout):
    """float32 arrays made the ways users make them.

    direct: allocated as float32, then filled; astype: a float64 array converted with
    astype (a temporary, then a fresh allocation); view: views into one larger buffer,
    each starting 20 bytes past the end of the one before (not on a 64-byte line).
    """
    if layout == "direct":
        out = []
        for s in shapes:
            a = np.empty(s, np.float32)
            a[...] = rng.standard_normal(s, dtype=np.float32) * np.float32(scale)
            out.append(a)
        return out
    if layout == "astype":
        return [(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]
    sizes = [math.prod(s) for s in shapes]
    buffer = np.empty(sum(sizes) + 5 * len(sizes) + 16, np.float32)
    out, offset = [], 5
    for s, n in zip(shapes, sizes):
        view = buffer[offset : offset + n].reshape(s)
        view[...] = rng.standard_normal(s, dtype=np.float32) * np.float32(scale)
        out.append(view)
        offset += n + 5
    return out


def make_data(shapes, seed=0, layout="direct"):
    """Parameters and gradients (float32), the same values for every method."""
    rng = np.random.default_rng(seed)
    return make_arrays(shapes, rng, 1.0, layout), make_arrays(shapes, rng, 0.01, layout)


def stream_pass(read, written):
    """The roofline of a pass that reads `read` arrays and updates `written` in place,
    over tensors given as lists of arrays (at least read + written each): bench_stream
    updates the first `written` from one more, and a read-only bench_stream reads the
    rest."""

    def step(tensors):
        if written:
            _core.bench_stream([t[: written + 1] for t in tensors])
        rest = [t[written + 1 : written + read] if written else t[:read] for t in tensors]
        if rest[0]:
            _core.bench_stream(rest, True)

    return step


def with_first_pass(case, tensors):
    """The roofline step over `tensors` (lists of arrays): the first pass's bytes, if
    any, then the update's (`writes` arrays updated, the others read). Which array plays
    which part changes no byte moved."""
    first = stream_pass(*case.first_pass)
    update = stream_pass(case.reads - case.writes, case.writes)

    def step():
        if any(case.first_pass):
            first(tensors)
        update(tensors)

    return step


def roofline_step(case, total):
    """bench_stream over one flat tensor of `total` elements: the optimizer's bytes."""
    if not hasattr(_core, "bench_stream"):
        return None
    arrays = [
        np.zeros(total, dtype=np.float32) for _ in range(max(case.reads, sum(case.first_pass)))
    ]
    return with_first_pass(case, [arrays])


def roofline_tensors_step(case, params):
    """bench_stream over arrays shaped like each of the step's tensors (same bytes, and
    the same per-tensor costs: many arrays, each on its own pages)."""
    if not hasattr(_core, "bench_stream") or len(params) < 2:
        return None
    count = max(case.reads, sum(case.first_pass))
    tensors = [[np.zeros(p.size, dtype=np.float32) for _ in range(count)] for p in params]
    return with_first_pass(case, tensors)


def roofline_arrays_step(case, params, grads):
    """bench_stream over the step's own parameter and gradient arrays (where the layout
    put them) and state-like arrays from numoptim's allocator: p and the state are
    written, the gradient only read, as in the step."""
    if not hasattr(_core, "bench_stream") or not hasattr(_core, "state_zeros"):
        return None
    f32 = np.dtype(np.float32)
    tensors = [
        [p.reshape(-1)]
        + [
            _core.state_zeros((p.size,), f32)
            for _ in range(max(case.reads, sum(case.first_pass)) - 2)
        ]
        + [g.reshape(-1)]
        for p, g in zip(params, grads)
    ]
    return with_first_pass(case, tensors)


def numoptim_step(case, params, grads):
    ps = []
    for p, g in zip(params, grads):
        q = numoptim.Parameter(p)  # the user's array, where the layout put it
        q.grad = g
        ps.append(q)
    opt = getattr(numoptim, case.name)(ps, **case.kwargs)
    if hasattr(opt, "train"):  # Schedule-Free steps in train mode only
        opt.train()
    return opt.step


def native_step(case, params, grads):
    """The optimizer's native calls alone, in order, with the arguments its Python layer
    passed in one recorded step (a deferred write, run): numoptim's time over this one is
    the cost of the Python layer (step(), its hooks, the argument marshalling, and what
    it computes between native calls: Lamb's clipping factor, Prodigy's d)."""
    step = numoptim_step(case, params, grads)
    calls = []
    originals = {
        name: function
        for name, function in vars(_core).items()
        if callable(function) and not isinstance(function, type) and not name.startswith("_")
    }

    def recorder(name):
        def record(*args):
            calls.append((originals[name], args))
            return originals[name](*args)

        return record

    for name in originals:
        setattr(_core, name, recorder(name))
    try:
        step()
    finally:
        for name, function in originals.items():
            setattr(_core, name, function)
    if not calls:  # a Python-level optimizer
        return None

    def replay():
        for function, args in calls:
            result = function(*args)
            if callable(result):  # a deferred write (defer=True)
                result()

    return replay


def numpy_step(case, params, grads):
    if case.numpy is None:
        return None
    ps = [p.copy() for p in params]
    gs = [g.copy() for g in grads]
    states = [{k: np.zeros_like(p) for k in case.state} for p in ps]
    tmps = [(np.empty_like(p), np.empty_like(p)) for p in ps]
    t = [0]

    def step():
        t[0] += 1
        for p, g, s, tmp in zip(ps, gs, states, tmps):
            case.numpy(p, g, s, t[0], tmp, **case.kwargs)

    return step


# The torch implementations that the optimizers beyond torch.optim follow:
# name -> (module, class, kwargs). Their parity is tested in tests/; here, their speed.
REFERENCES = {
    "Lion": ("lion_pytorch", "Lion", {}),
    "AdamWScheduleFree": ("schedulefree", "AdamWScheduleFree", {"foreach": True}),
    "SGDScheduleFree": ("schedulefree", "SGDScheduleFree", {"foreach": True}),
    "RAdamScheduleFree": ("schedulefree", "RAdamScheduleFree", {"foreach": True}),
    "AdEMAMix": ("bitsandbytes.optim", "AdEMAMix", {}),  # its 32-bit CPU kernel
    "Adan": ("timm.optim.adan", "Adan", {"foreach": True}),  # pip install --no-deps timm
    "Lamb": ("timm.optim.lamb", "Lamb", {"foreach": True}),
    "Lars": ("timm.optim.lars", "Lars", {"foreach": True}),
    "NAdamW": ("timm.optim.nadamw", "NAdamW", {"foreach": True}),
    "LaProp": ("timm.optim.laprop", "LaProp", {"foreach": True}),
    "AdaBelief": ("timm.optim.adabelief", "AdaBelief", {"foreach": True}),
    "Adopt": ("timm.optim.adopt", "Adopt", {"foreach": True}),
    "Prodigy": ("prodigyopt", "Prodigy", {}),
}


def _import_reference(module):
    import importlib

    if module.startswith("timm."):
        # timm's optimizer modules through stub packages (its __init__ needs torchvision
        # and a plain install replaces torch): the tests' loader.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
        from harness import load_timm_module

        return load_timm_module(module.rsplit(".", 1)[1])
    return importlib.import_module(module)


def reference_step(case, params, grads):
    """The reference implementation's step (REFERENCES), when torch and it are installed."""
    if torch is None or case.name not in REFERENCES:
        return None
    module, attribute, extra = REFERENCES[case.name]
    try:
        cls = getattr(_import_reference(module), attribute)
    except ImportError:
        return None
    ps = []
    for p, g in zip(params, grads):
        q = torch.nn.Parameter(torch.from_numpy(p.copy()))
        q.grad = torch.from_numpy(g.copy())
        ps.append(q)
    opt = cls(ps, **case.kwargs, **extra)
    if hasattr(opt, "train"):  # Schedule-Free
        opt.train()
    return opt.step


def torch_step(case, params, grads, fused):
    if torch is None or (fused and not case.fused):
        return None
    ps = []
    for p, g in zip(params, grads):
        q = torch.nn.Parameter(torch.from_numpy(p.copy()))
        q.grad = torch.from_numpy(g.copy())
        ps.append(q)
    if not hasattr(
        torch.optim, case.name
    ):  # Lion, Schedule-Free, AdEMAMix, Adan, timm's: not in torch.optim
        return None
    try:
        opt = getattr(torch.optim, case.name)(
            ps, **case.kwargs, **({"fused": True} if fused else {})
        )
        opt.step()  # fails here if this torch has no such fused kernel on CPU
    except (RuntimeError, TypeError, ValueError):
        return None
    return opt.step


def optax_step(case, params, grads, threads=None):
    """optax under jax.jit on the CPU, when installed: the update and apply_updates in one
    jitted call, parameters and state donated so that XLA may update them in place.
    SGD, Adam and AdamW only (torch's defaults; optax puts Adam's eps where torch does)."""
    if case.name not in ("SGD", "Adam", "AdamW") or case.kwargs.get("amsgrad"):
        return None
    if threads == 1:  # before jax is imported: XLA's CPU thread pool, one thread
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
    try:
        import jax
        import optax
    except ImportError:
        return None
    lr = case.kwargs["lr"]
    if case.name == "SGD":
        tx = optax.sgd(lr, momentum=case.kwargs.get("momentum") or None)
    elif case.name == "Adam":
        tx = optax.adam(lr)
    else:
        tx = optax.adamw(lr, weight_decay=0.01)
    box = [[jax.numpy.asarray(p) for p in params]]
    gs = [jax.numpy.asarray(g) for g in grads]
    state = [tx.init(box[0])]

    def update(ps, opt_state, g):
        updates, opt_state = tx.update(g, opt_state, ps)
        return optax.apply_updates(ps, updates), opt_state

    update = jax.jit(update, donate_argnums=(0, 1))

    def step():
        box[0], state[0] = update(box[0], state[0], gs)
        jax.block_until_ready(box[0])

    return step


METHODS = [
    "roofline",
    "roof-tensors",
    "roof-arrays",
    "numoptim",
    "native",
    "numpy",
    "torch",
    "torch-fused",
    "reference",
    "optax",
]
# The methods that run once per input layout; the others make their own arrays.
PER_LAYOUT = ("roof-arrays", "numoptim", "native", "numpy")


def build(case, shapes, layout="direct"):
    params, grads = make_data(shapes, layout=layout)
    total = sum(p.size for p in params)
    return {
        "roofline": roofline_step(case, total),
        "roof-tensors": roofline_tensors_step(case, params),
        "roof-arrays": roofline_arrays_step(case, params, grads),
        "numoptim": numoptim_step(case, params, grads),
        "native": native_step(case, params, grads),
        "numpy": numpy_step(case, params, grads),
        "torch": torch_step(case, params, grads, fused=False),
        "torch-fused": torch_step(case, params, grads, fused=True),
        "reference": reference_step(case, params, grads),
        "optax": optax_step(case, params, grads),
    }


def measure(steps, repeats, warmup, min_sample=10e-3):
    """Median seconds per call of each step, interleaved round by round.

    A step shorter than `min_sample` is called `inner` times per sample, so that a
    sample lasts about that long, after one untimed call: the other methods of the
    round have just replaced the caches' contents, and a short step's time would
    otherwise be mostly the cost of bringing its arrays and Python objects back (the
    same for every method, so it is taken out of all of them). Steps longer than that
    work on more data than the caches hold anyway.
    """
    steps = {k: f for k, f in steps.items() if f is not None}
    inner = {}
    for name, f in steps.items():
        start = time.perf_counter()
        for _ in range(warmup):
            f()
        per_call = (time.perf_counter() - start) / max(warmup, 1)
        inner[name] = max(1, int(min_sample / max(per_call, 1e-9)))
    samples = {k: [] for k in steps}
    for _ in range(repeats):
        for name, f in steps.items():
            n = inner[name]
            if n > 1:
                f()
            start = time.perf_counter()
            for _ in range(n):
                f()
            samples[name].append((time.perf_counter() - start) / n)
    return {k: statistics.median(v) for k, v in samples.items()}


# ------------------------------------------------------------------------ reporting


@dataclass
class Result:
    scenario: str
    label: str
    threads: int
    elements: int
    bytes_per_element: int
    seconds: dict = field(default_factory=dict)

    def ratio(self, method):
        """numoptim's time over `method`'s (below 1: numoptim is faster)."""
        if "numoptim" not in self.seconds or method not in self.seconds:
            return None
        return self.seconds["numoptim"] / self.seconds[method]


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_result(r: Result):
    print(
        f"  {r.label} | {r.elements:,} elements | {r.bytes_per_element} B/elem | "
        f"{r.threads} thread{'s' if r.threads > 1 else ''}"
    )
    print(f"    {'method':<12} {'ns/elem':>9} {'GB/s':>7} {'us/step':>10} {'numoptim/this':>14}")
    for m in METHODS:
        s = r.seconds.get(m)
        if s is None:
            continue
        ns = s / r.elements * 1e9
        gbs = r.bytes_per_element * r.elements / s / 1e9
        print(f"    {m:<12} {ns:>9.3f} {gbs:>7.1f} {s * 1e6:>10.1f} {fmt(r.ratio(m), '>14.2f')}")


def check_targets(results):
    """(description, value text, passed) for each target (2 threads, float32)."""
    rows = []
    for r in results:
        if r.threads != 2:
            continue
        roof, fused = r.ratio("roofline"), r.ratio("torch-fused")
        if r.scenario == "a" and r.label in ("SGD-momentum", "Adam", "AdamW"):
            ok = roof is not None and roof <= 1.10 and (fused is None or fused <= 1.0)
            rows.append(
                (
                    f"(a) {r.label} 2^24: numoptim/roofline <= 1.10, /torch-fused <= 1",
                    f"{fmt(roof, '.2f')}, {fmt(fused, '.2f')}",
                    ok,
                )
            )
        elif r.scenario == "a" and r.label in BEYOND_TORCH:
            ref = r.ratio("reference")
            speedup = "-" if ref is None else f"{1 / ref:.1f}x"
            rows.append(
                (
                    f"(a) {r.label} 2^24: numoptim/roofline <= 1.10 (speedup over reference)",
                    f"{fmt(roof, '.2f')} ({speedup})",
                    roof is not None and roof <= 1.10,
                )
            )
        elif r.scenario == "b":
            rows.append(
                (
                    "(b) ResNet-50 Adam: numoptim/roofline <= 1.15",
                    f"{fmt(roof, '.2f')} (vs roof-tensors {fmt(r.ratio('roof-tensors'), '.2f')})",
                    roof is not None and roof <= 1.15,
                )
            )
        elif r.scenario == "c":
            speedup = None if fused is None else 1 / fused
            ms = r.seconds["numoptim"] * 1e3
            torch_ms = r.seconds.get("torch-fused")
            torch_ms = None if torch_ms is None else torch_ms * 1e3
            text = f"{fmt(speedup, '.1f')}x ({ms:.3f} ms vs {fmt(torch_ms, '.3f')} ms)"
            rows.append(
                (
                    "(c) 500x256 Adam: torch-fused/numoptim >= 10",
                    text,
                    speedup is not None and speedup >= 10,
                )
            )
        elif r.scenario == "d":
            us = r.seconds["numoptim"] * 1e6
            rows.append(("(d) 10-element Adam step < 5 us", f"{us:.2f} us", us < 5))
    return rows


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


SCENARIOS = {
    "a": "one tensor of 2^24 elements",
    "b": "ResNet-50 parameter shapes (161 tensors)",
    "c": "500 tensors of 256 elements",
    "d": "one tensor of 10 elements",
}


def child(spec: str) -> None:
    """One method in this process: prints the median seconds per step as JSON."""
    import json

    job = json.loads(spec)
    numoptim.set_num_threads(job["threads"])
    if torch is not None:
        torch.set_num_threads(job["threads"])
    case = {c.label: c for c in OPTIMIZERS}[job["case"]]
    shapes = [tuple(s) for s in job["shapes"]]
    params, grads = make_data(shapes, layout=job["layout"])
    method = job["method"]
    if method == "roofline":
        step = roofline_step(case, sum(p.size for p in params))
    elif method == "roof-arrays":
        step = roofline_arrays_step(case, params, grads)
    elif method == "roof-tensors":
        step = roofline_tensors_step(case, params)
    elif method == "numoptim":
        step = numoptim_step(case, params, grads)
    elif method == "native":
        step = native_step(case, params, grads)
    elif method == "numpy":
        step = numpy_step(case, params, grads)
    elif method == "optax":
        step = optax_step(case, params, grads, job["threads"])
    elif method == "reference":
        step = reference_step(case, params, grads)
    else:
        step = torch_step(case, params, grads, fused=method == "torch-fused")
    seconds = None if step is None else measure({method: step}, job["repeats"], 3)[method]
    print(json.dumps({"seconds": seconds}))


def run_separately(case, shapes, threads, rounds, repeats, layouts):
    """Each method (numoptim and numpy once per layout) in its own process, the methods
    alternating in order and in reverse from round to round. Returns per method the
    list of per-round medians (None where the method does not apply)."""
    import json
    import subprocess

    methods = [
        (m, layout) for m in METHODS for layout in (layouts if m in PER_LAYOUT else ("direct",))
    ]
    samples = {m: [] for m in methods}
    for r in range(rounds):
        for m, layout in methods if r % 2 == 0 else methods[::-1]:
            job = {"case": case.label, "shapes": shapes, "threads": threads, "method": m,
                   "layout": layout, "repeats": repeats}  # fmt: skip
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", json.dumps(job)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            samples[(m, layout)].append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    return samples


def report_separately(scenario, case, shapes, threads, samples):
    """Prints medians, spreads and per-round ratios; returns a Result holding, for
    numoptim, its worst layout."""
    elements = sum(math.prod(s) for s in shapes)
    roof = samples.get(("roofline", "direct"))
    print(
        f"  {case.label} | {elements:,} elements | {case.bytes_per_element} B/elem | "
        f"{threads} thread{'s' if threads > 1 else ''} | separate processes"
    )
    print(f"    {'method':<22} {'us/step':>10} {'[min-max]':>21} {'ns/elem':>8} {'x roofline':>11}")
    seconds = {}
    worst = None
    for (m, layout), values in samples.items():
        if not values or values[0] is None:
            continue
        med = statistics.median(values)
        ratio = None
        if roof and roof[0] is not None:
            ratio = statistics.median(v / r for v, r in zip(values, roof))
        name = m if m not in PER_LAYOUT else f"{m} ({layout})"
        print(
            f"    {name:<22} {med * 1e6:>10.1f} [{min(values) * 1e6:>9.1f}-{max(values) * 1e6:>9.1f}]"
            f" {med / elements * 1e9:>8.3f} {fmt(ratio, '>11.2f')}"
        )
        if m == "numoptim":
            if worst is None or med > statistics.median(samples[worst]):
                worst = (m, layout)
        elif m not in PER_LAYOUT:
            seconds[m] = med
    if worst is not None:
        seconds["numoptim"] = statistics.median(samples[worst])
        for m in ("roofline", "torch-fused", "reference"):
            other = samples.get((m, "direct"))
            if other and other[0] is not None:
                ratio = statistics.median(a / b for a, b in zip(samples[worst], other))
                print(f"    numoptim ({worst[1]}, the worst layout) / {m}: x{ratio:.2f} per round")
    for (m, layout), values in samples.items():
        if m != "numoptim" or not values or values[0] is None:
            continue
        for other, what in (("roof-arrays", "the same arrays"), ("native", "the Python layer")):
            own = samples.get((other, layout))
            if own and own[0] is not None:
                ratio = statistics.median(a / b for a, b in zip(values, own))
                print(
                    f"    numoptim ({layout}) / {other} ({layout}), {what}: x{ratio:.3f} per round"
                )
    return Result(scenario, case.label, threads, elements, case.bytes_per_element, seconds)


def main(argv=None):
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--optimizers",
        nargs="+",
        default=None,
        help="labels for scenario (a) (default: SGD-momentum Adam AdamW and "
        "every other optimizer numoptim has beyond SGD/Adam)",
    )
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="every method in this process, interleaved (the old way; can mislead)",
    )
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    args = parser.parse_args(argv)

    by_label = {c.label: c for c in OPTIMIZERS}
    if args.optimizers:
        unknown = [x for x in args.optimizers if x not in by_label]
        if unknown:
            parser.error(f"unknown optimizers {unknown}; known: {list(by_label)}")
        large = [by_label[x] for x in args.optimizers]
    else:
        large = [
            c
            for c in OPTIMIZERS
            if c.label in DEFAULT_LARGE or c.name not in ("SGD", "Adam", "AdamW")
        ]
    missing = [c.label for c in large if not hasattr(numoptim, c.name)]
    large = [c for c in large if hasattr(numoptim, c.name)]
    repeats, warmup = (5, 2) if args.quick else (15, 3)

    print(
        f"numoptim {numoptim.__version__} simd={_core.simd_level()} "
        f"(cpu {_core.cpu_simd_level()}) | numpy {np.__version__} | "
        f"torch {torch.__version__ if torch else 'not installed'} | "
        f"python {platform.python_version()} | {os.cpu_count()} cpus | "
        f"{'quick: ' if args.quick else ''}"
        + (
            f"median of {repeats} rounds, one process"
            if args.same_process
            else "each method in its own process, alternating; medians of the rounds"
        )
        + f" | {_cpu_model()}"
    )
    if not hasattr(_core, "bench_stream"):
        print("note: numoptim._core has no bench_stream (see bench/README.md): no roofline")
    if missing:
        print(f"not in this numoptim yet: {', '.join(missing)}")

    adam = by_label["Adam"]
    plans = []  # (scenario, case, shapes)
    if "a" in args.scenarios:
        plans += [("a", c, [(1 << 24,)]) for c in large]
    if "b" in args.scenarios:
        plans.append(("b", adam, RESNET50_SHAPES))
    if "c" in args.scenarios:
        plans.append(("c", adam, [(256,)] * 500))
    if "d" in args.scenarios:
        plans.append(("d", adam, [(10,)]))

    results = []
    for threads in args.threads:
        numoptim.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        current = None
        for scenario, case, shapes in plans:
            if scenario != current:
                print(f"\n({scenario}) {SCENARIOS[scenario]}, float32, {threads} thread(s)")
                current = scenario
            if args.same_process:
                steps = build(case, shapes)
                seconds = measure(steps, repeats, warmup)
                del steps
                r = Result(
                    scenario,
                    case.label,
                    threads,
                    sum(math.prod(s) for s in shapes),
                    case.bytes_per_element,
                    seconds,
                )
                print_result(r)
            else:
                rounds = 3 if args.quick else 7
                samples = run_separately(case, shapes, threads, rounds, 7, args.layouts)
                r = report_separately(scenario, case, shapes, threads, samples)
            results.append(r)
            sys.stdout.flush()

    rows = check_targets(results)
    if rows:
        print("\ntargets (2 threads, float32)")
        width = max(len(d) for d, _, _ in rows)
        for description, value, ok in rows:
            print(f"  {description:<{width}}  {value:<32} {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
