"""Data-parallel training over MPI: averaged gradients and a sharded optimizer.

Every rank holds the whole model and a shard of each batch. After its backward pass,
``allreduce_grads`` averages the gradients across the ranks; ``ZeroRedundancyOptimizer``
keeps the Adam state of 1/ranks of the parameters per rank, steps them and broadcasts
them, so every rank ends the step with the same weights. A scheduler drives its lr as
it would a plain optimizer's. Run it under MPI, or alone (one rank)::

    mpiexec -n 2 python examples/data_parallel.py
    python examples/data_parallel.py
"""

import numoptim
import numpy as np
from mpi4py import MPI
from numoptim.distributed import ZeroRedundancyOptimizer, allreduce_grads
from numoptim.lr_scheduler import CosineAnnealingLR

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()

# A fixed synthetic problem, the same on every rank: 4 classes of points in 8 dimensions.
rng = np.random.default_rng(0)
centers = rng.normal(0, 2, (4, 8))
labels = rng.integers(0, 4, 2048)
features = (centers[labels] + rng.normal(0, 1.5, (2048, 8))).astype(np.float32)

# A two-layer MLP, initialized identically on every rank (same seed).
w1 = numoptim.Parameter(rng.normal(0, 0.3, (8, 32)).astype(np.float32))
b1 = numoptim.Parameter(np.zeros(32, np.float32))
w2 = numoptim.Parameter(rng.normal(0, 0.3, (32, 4)).astype(np.float32))
b2 = numoptim.Parameter(np.zeros(4, np.float32))
params = [w1, b1, w2, b2]

optimizer = ZeroRedundancyOptimizer(params, numoptim.Adam, lr=0.02)
epochs, batch = 8, 256
scheduler = CosineAnnealingLR(optimizer, T_max=epochs * (len(features) // batch))


def forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hidden = np.maximum(x @ w1 + b1, 0)
    logits = hidden @ w2 + b2
    return hidden, logits


for epoch in range(epochs):
    order = np.random.default_rng(epoch).permutation(len(features))  # same on every rank
    losses = []
    for start in range(0, len(features), batch):
        # This rank's shard of the batch.
        index = np.array_split(order[start : start + batch], size)[rank]
        x, y = features[index], labels[index]
        hidden, logits = forward(x)
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        losses.append(-np.log(prob[np.arange(len(y)), y]).mean())
        # Backward pass of the mean cross-entropy over this shard.
        dlogits = prob
        dlogits[np.arange(len(y)), y] -= 1
        dlogits /= len(y)
        w2.grad = hidden.T @ dlogits
        b2.grad = dlogits.sum(axis=0)
        dhidden = (dlogits @ w2.T) * (hidden > 0)
        w1.grad = x.T @ dhidden
        b1.grad = dhidden.sum(axis=0)
        allreduce_grads(params, comm)  # the mean over the ranks' shards
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    loss = comm.allreduce(float(np.mean(losses))) / size
    if rank == 0:
        print(f"epoch {epoch}: loss {loss:.4f}, lr {scheduler.get_last_lr()[0]:.5f}")

accuracy = float((forward(features)[1].argmax(axis=1) == labels).mean())
# Every rank holds the same weights.
assert all(np.array_equal(p, comm.bcast(np.array(p), root=0)) for p in params)
if rank == 0:
    print(f"{size} rank(s), final accuracy {accuracy:.3f}")
assert accuracy > 0.8, accuracy
