"""Steps every optimizer through each native entry point, then exits normally.

Dense groups of both dtypes, large enough for the threaded path, complex parameters,
and row-sparse gradients. Run by tests/test_process.py and by CI on every Python (a
process that had stepped once crashed at exit on Python 3.12 and 3.13), and on an
installed wheel with --bundled-openmp, which also checks that the OpenMP runtime in use
is the wheel's own.
"""

import sys

import numoptim
import numpy as np
from registry import COMPLEX, ELEMENTWISE, TRAIN_MODE  # this script's folder is on sys.path

numoptim.set_num_threads(2)
names = [*ELEMENTWISE, "Adafactor", "Muon"]
for name in names:
    for dtype in (np.float32, np.float64):
        params = [
            numoptim.Parameter(np.ones((256, 300), dtype)),
            numoptim.Parameter(np.ones((3, 5), dtype)),
        ]
        for p in params:
            p.grad = np.full(p.shape, 0.5, dtype)
        optimizer = getattr(numoptim, name)(params, lr=0.01)
        if name in TRAIN_MODE:
            optimizer.train()
        optimizer.step()
        optimizer.step()
for name in COMPLEX:  # complex parameters, stepped as their real pairs
    params = [
        numoptim.Parameter(np.ones((256, 150), np.complex64)),
        numoptim.Parameter(np.ones((3, 5), np.float32)),  # one group, one native call
    ]
    for p in params:
        p.grad = np.full(p.shape, 0.5, p.dtype)
    optimizer = getattr(numoptim, name)(params, lr=0.01)
    optimizer.step()
    optimizer.step()
for name in ("Adam8bit", "AdamW8bit", "Lion8bit", "AdEMAMix8bit"):  # 8-bit and float32 state
    params = [
        numoptim.Parameter(np.ones((256, 300), np.float32)),
        numoptim.Parameter(np.ones((3, 5), np.float32)),
    ]
    for p in params:
        p.grad = np.full(p.shape, 0.5, np.float32)
    optimizer = getattr(numoptim, name)(params, lr=0.01)
    optimizer.step()
    optimizer.step()
for name, kwargs in (("SGD", {}), ("Adagrad", {}), ("SparseAdam", {})):
    p = numoptim.Parameter(np.ones((70000, 4), np.float32))
    p.grad = numoptim.RowSparseGrad(np.array([3, 1, 3]), np.ones((3, 4), np.float32), p.shape)
    getattr(numoptim, name)([p], lr=0.1, **kwargs).step()
lbfgs_param = numoptim.Parameter(np.ones(3))


def closure():
    lbfgs_param.grad = 2 * np.asarray(lbfgs_param)
    return float((lbfgs_param**2).sum())


numoptim.LBFGS([lbfgs_param]).step(closure)
if "--bundled-openmp" in sys.argv:
    with open("/proc/self/maps") as maps:
        gomp = {line.split()[-1] for line in maps if "libgomp" in line}
    assert gomp and all("/numoptim.libs/" in path for path in gomp), gomp
print("stepped every optimizer")
