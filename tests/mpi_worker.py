"""The MPI side of tests/test_distributed.py: ``mpiexec -n N python mpi_worker.py MODE OUT``.

Each rank runs every check of MODE and writes what it found to ``OUT/MODE-nN-rankR.pkl``
(a dict of named results); the test reads every rank's file. Checks that compare with
one process run that process's computation here too, in the same rank, so that the
comparison is exact (bit for bit) and needs no second launch.
"""

from __future__ import annotations

import copy
import pickle
import sys
import traceback
from pathlib import Path

import numoptim
import numpy as np
from mpi4py import MPI
from numoptim.distributed import ZeroRedundancyOptimizer, allreduce_grads
from numoptim.lr_scheduler import ExponentialLR

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()

# Every native optimizer, with a second group whose hyperparameters differ.
CASES = {
    "SGD": ({"lr": 0.05, "momentum": 0.9}, {"lr": 0.02, "weight_decay": 0.1}),
    "Adam": ({"lr": 0.01}, {"lr": 0.003, "amsgrad": True, "weight_decay": 0.1}),
    "AdamW": ({"lr": 0.01}, {"lr": 0.02, "weight_decay": 0.2}),
    "Adagrad": ({"lr": 0.05}, {"lr_decay": 0.1}),
    "RMSprop": ({"lr": 0.01}, {"momentum": 0.9, "centered": True}),
    "Adadelta": ({"lr": 1.0}, {"rho": 0.8}),
    "Adamax": ({"lr": 0.01}, {"lr": 0.02}),
    "NAdam": ({"lr": 0.01}, {"momentum_decay": 0.005}),
    "RAdam": ({"lr": 0.01}, {"decoupled_weight_decay": True, "weight_decay": 0.1}),
    "ASGD": ({"lr": 0.01}, {"t0": 1.0}),
    "Rprop": ({"lr": 0.01}, {"etas": (0.4, 1.3)}),
    "Lion": ({"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.003, "betas": (0.8, 0.95)}),
    "AdEMAMix": ({"lr": 0.01, "t_alpha": 3, "t_beta3": 4}, {"lr": 0.003, "alpha": 2.0}),
    "Adan": ({"lr": 0.01, "weight_decay": 0.02}, {"lr": 0.003, "no_prox": True}),
    # Lamb's default clipping takes the norm of every rank's gradients.
    "Lamb": ({"lr": 0.01}, {"lr": 0.003, "decoupled_decay": True}),
    "Lars": ({"lr": 0.1, "weight_decay": 0.01, "momentum": 0.9}, {"lr": 0.05, "trust_clip": True}),
    "NAdamW": ({"lr": 0.01}, {"lr": 0.003, "corrected_weight_decay": True}),
    "LaProp": ({"lr": 0.01, "weight_decay": 0.02}, {"lr": 0.003, "betas": (0.8, 0.95)}),
    "AdaBelief": ({"lr": 0.01, "amsgrad": True}, {"lr": 0.003, "rectify": False}),
    "Adopt": ({"lr": 0.01, "weight_decay": 0.02}, {"lr": 0.003, "decoupled": True}),
    "Adam8bit": ({"lr": 0.01}, {"lr": 0.005}),
    "AdamW8bit": ({"lr": 0.01}, {"lr": 0.005, "weight_decay": 0.1}),
    "Lion8bit": ({"lr": 0.001}, {"lr": 0.003, "weight_decay": 0.1}),
    "AdEMAMix8bit": ({"lr": 0.01, "t_alpha": 3, "t_beta3": 4}, {"lr": 0.003, "alpha": 2.0}),
}
# Odd sizes; the 4097- and 5001-element ones take 8-bit state in Adam8bit.
SHAPES = ([(3, 5), (7,), (1,), (33, 17), (5001,), (2, 3, 4)], [(11,), (9, 9), (4097,)])


def make_params(dtype, values=None):
    rng = np.random.default_rng(1)
    groups = [
        [numoptim.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
        for shapes in SHAPES
    ]
    if values is not None:
        for p, v in zip((p for g in groups for p in g), values):
            p[...] = v
    return groups


def set_grads(groups, step):
    """The same gradients on every rank (seeded by the step), one param without."""
    rng = np.random.default_rng(100 + step)
    for i, p in enumerate(p for g in groups for p in g):
        g = rng.standard_normal(p.shape).astype(p.dtype)
        p.grad = None if (i == 1 and step % 2) else g


def build(name, dtype, wrapped, values=None):
    defaults, second = CASES[name]
    groups = make_params(dtype, values)
    spec = [{"params": groups[0]}, {"params": groups[1], **second}]
    cls = getattr(numoptim, name)
    if wrapped:
        opt = ZeroRedundancyOptimizer(spec, cls, **defaults)
    else:
        opt = cls(spec, **defaults)
    return groups, opt, ExponentialLR(opt, gamma=0.9)


def flat(groups):
    return [np.array(p) for g in groups for p in g]


def same_tree(a, b):
    """Bit-identical state dicts (arrays compared by bytes and dtype)."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(same_tree(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic)):
        b = np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return type(a) is type(b) and a == b


def same(xs, ys):
    return all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(xs, ys))


def run_steps(groups, opt, sched, steps, first):
    for t in range(first, first + steps):
        set_grads(groups, t)
        opt.step()
        sched.step()


def mode_zero(out):
    """Every optimizer, float32 and float64: steps, consolidated state, reloads."""
    results = {}
    saved = {}
    for name in CASES:
        for dtype in (np.float32, np.float64):
            if "8bit" in name and dtype == np.float64:
                continue
            key = f"{name}-{np.dtype(dtype).name}"
            try:
                zg, zopt, zs = build(name, dtype, True)
                pg, popt, ps = build(name, dtype, False)
                run_steps(zg, zopt, zs, 3, 0)
                run_steps(pg, popt, ps, 3, 0)
                results[key + " params"] = same(flat(zg), flat(pg))
                after3 = (flat(pg), copy.deepcopy(ps.state_dict()))
                results[key + " lr"] = [g["lr"] for g in zopt.param_groups] == [
                    g["lr"] for g in popt.param_groups
                ]
                owned = sum(len(g["params"]) for g in zopt.optim.param_groups)
                results[key + " owned"] = (owned, len(zopt.optim.state))
                zopt.consolidate_state_dict(to=0)
                sd = zopt.state_dict() if RANK == 0 else None
                if RANK == 0:
                    results[key + " state_dict"] = same_tree(sd, popt.state_dict())
                    # The consolidated dict loads into a plain optimizer, which goes on
                    # as the one that never stopped.
                    lg, lopt, ls = build(name, dtype, False, flat(pg))
                    lopt.load_state_dict(sd)
                    ls.load_state_dict(ps.state_dict())
                    run_steps(lg, lopt, ls, 2, 3)
                else:
                    try:
                        zopt.state_dict()
                        results[key + " state_dict elsewhere"] = "no error"
                    except RuntimeError as error:
                        results[key + " state_dict elsewhere"] = str(error)
                sd = COMM.bcast(sd, root=0)
                # ...and into a fresh ZeroRedundancyOptimizer on every rank.
                rg, ropt, rs = build(name, dtype, True, flat(pg))
                ropt.load_state_dict(sd)
                rs.load_state_dict(ps.state_dict())
                run_steps(rg, ropt, rs, 2, 3)
                run_steps(pg, popt, ps, 2, 3)
                results[key + " reload"] = same(flat(rg), flat(pg))
                if RANK == 0:
                    results[key + " plain reload"] = same(flat(lg), flat(pg))
                saved[key] = (sd, *after3)
                # A state dict saved by a run with another number of ranks.
                other = Path(out) / "zero-saved-n2.pkl"
                if SIZE != 2 and other.exists():
                    osd, ovalues, osched = pickle.loads(other.read_bytes())[key]
                    og, oopt, osch = build(name, dtype, True, ovalues)
                    oopt.load_state_dict(osd)
                    osch.load_state_dict(osched)
                    qg, qopt, qsch = build(name, dtype, False, ovalues)
                    qopt.load_state_dict(osd)
                    qsch.load_state_dict(osched)
                    run_steps(og, oopt, osch, 2, 5)
                    run_steps(qg, qopt, qsch, 2, 5)
                    results[key + " from 2 ranks"] = same(flat(og), flat(qg))
            except Exception:  # noqa: BLE001 - reported to the test
                results[key + " error"] = traceback.format_exc()
    if SIZE == 2 and RANK == 0:
        (Path(out) / "zero-saved-n2.pkl").write_bytes(pickle.dumps(saved))
    return results


def exact_grads(p_index, shape, dtype, rank):
    """Small integers times powers of two: every sum and mean over 2 or 4 ranks exact."""
    base = (np.arange(np.prod(shape)).reshape(shape) % 17 - 8) / 8
    return ((rank + 1) * base).astype(dtype)


def mode_allreduce(out):
    import ml_dtypes

    results = {}
    dtypes = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]
    shapes = [(5,), (3, 7), (1,), (300,), (2, 2, 2), (64, 64)] * 3
    for op in ("mean", "sum"):
        for bucket_bytes in (1024, 4 * 2**20):
            params, expected = [], []
            for i, shape in enumerate(shapes):
                dtype = dtypes[i % len(dtypes)]
                p = numoptim.Parameter(np.zeros(shape, dtype=dtype))
                if i % 7 == 3:
                    expected.append(None)  # no gradient on any rank: skipped
                else:
                    p.grad = exact_grads(i, shape, dtype, RANK)
                    total = sum(exact_grads(i, shape, np.float64, r) for r in range(SIZE))
                    expected.append((total / SIZE if op == "mean" else total).astype(dtype))
                params.append(p)
            big = numoptim.Parameter(np.zeros(5 * 2**20 // 4, dtype=np.float32))
            big.grad = exact_grads(0, big.shape, np.float32, RANK)
            total = sum(exact_grads(0, big.shape, np.float64, r) for r in range(SIZE))
            expected.append((total / SIZE if op == "mean" else total).astype(np.float32))
            params.append(big)
            allreduce_grads(params, op=op, bucket_bytes=bucket_bytes)
            ok = all(
                (p.grad is None) if e is None else (p.grad.tobytes() == e.tobytes())
                for p, e in zip(params, expected)
            )
            results[f"{op} bucket {bucket_bytes}"] = ok
    # A gradient missing on one rank only: an error on every rank, no hang.
    params = [numoptim.Parameter(np.zeros(4, dtype=np.float32)) for _ in range(3)]
    for i, p in enumerate(params):
        if not (i == 1 and RANK == SIZE - 1):
            p.grad = np.ones(4, dtype=np.float32)
    try:
        allreduce_grads(params)
        results["none on one rank"] = "no error"
    except RuntimeError as error:
        results["none on one rank"] = str(error)
    # A different number of parameters on one rank.
    try:
        allreduce_grads(params[: 2 if RANK == 0 else 3])
        results["count differs"] = "no error"
    except RuntimeError as error:
        results["count differs"] = str(error)
    # Still usable after those errors.
    for p in params:
        p.grad = np.full(4, float(RANK), dtype=np.float32)
    allreduce_grads(params, op="sum")
    results["after errors"] = float(params[0].grad[0])
    return results


def mode_fail(out):
    """Rank SIZE-1 hands its local optimizer a gradient of the wrong dtype."""
    results = {}
    groups, opt, _ = build("Adam", np.float32, True)
    before = flat(groups)
    set_grads(groups, 0)
    if RANK == SIZE - 1:
        for p in (p for g in groups for p in g):
            p._grad = np.zeros(p.shape, dtype=np.float64)  # past the setter's check
    try:
        opt.step()
        results["step"] = "no error"
    except Exception as error:  # noqa: BLE001 - reported to the test
        results["step"] = f"{type(error).__name__}: {error}"
    results["unchanged"] = same(flat(groups), before)
    results["state empty"] = len(opt.optim.state) == 0 or all(
        not s for s in opt.optim.state.values()
    )
    # Everyone can go on with good gradients.
    set_grads(groups, 0)
    opt.step()
    results["after"] = [float(np.asarray(p).sum()) for g in groups for p in g]
    return results


def train(dtype, features, labels, steps=30):
    """Logistic regression, data parallel: each rank a contiguous shard of the batch."""
    rng = np.random.default_rng(3)
    w = numoptim.Parameter(rng.standard_normal((features.shape[1], 3)).astype(dtype) * 0.1)
    b = numoptim.Parameter(np.zeros(3, dtype=dtype))
    opt = ZeroRedundancyOptimizer([w, b], numoptim.Adam, lr=0.05)
    shard = np.array_split(np.arange(len(features)), SIZE)[RANK]
    x, y = features[shard].astype(dtype), labels[shard]
    n_total = len(features)
    for _ in range(steps):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        prob[np.arange(len(y)), y] -= 1
        # Each rank's gradient of the mean loss over the whole batch, times SIZE, so
        # that the mean over the ranks is the whole batch's gradient.
        scale = SIZE / n_total
        w.grad = (x.T @ prob * scale).astype(dtype)
        b.grad = (prob.sum(axis=0) * scale).astype(dtype)
        allreduce_grads([w, b])
        opt.step()
    return np.array(w), np.array(b)


def mode_train(out):
    rng = np.random.default_rng(7)
    features = rng.standard_normal((256, 5))
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(int) + (features[:, 2] > 1)
    results = {}
    for dtype in (np.float64, np.float32):
        first = train(dtype, features, labels)
        second = train(dtype, features, labels)
        results[f"{np.dtype(dtype).name} run"] = first
        results[f"{np.dtype(dtype).name} repeat identical"] = same(first, second)
    return results


def main():
    mode, out = sys.argv[1], sys.argv[2]
    results = globals()[f"mode_{mode}"](out)
    path = Path(out) / f"{mode}-n{SIZE}-rank{RANK}.pkl"
    path.write_bytes(pickle.dumps(results))


if __name__ == "__main__":
    main()
