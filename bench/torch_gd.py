#!/usr/bin/env python3
"""Full-batch gradient descent on the masked MSE with PyTorch (CPU): the peer of
`lowrank fit --algo gd`.

The same problem as `--algo gd --set cost=mse --set optimizer=adam`: minimize
mean over the observed entries of (u_i . v_j - r_ij)^2 with Adam, U and V drawn
from N(0, init_scale^2), one full-batch step per iteration. Prints one JSON line:
seconds per iteration (median of `--repeats` timed blocks after `--warmup`
iterations), the final train MSE, torch version, threads, dtype.

Usage:
  /tmp/peers-venv/bin/python bench/torch_gd.py --train /tmp/peers-data/ml-100k/train.tsv \
      --rank 10 --iters 200 --threads 2 --dtype float64
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch


def load(path):
    rows, cols, vals = [], [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            rows.append(parts[0])
            cols.append(parts[1])
            vals.append(float(parts[2]))
    # dense ids in order of first appearance (as lowrank's IdMap)
    def index(ids):
        table = {}
        return np.array([table.setdefault(x, len(table)) for x in ids], dtype=np.int64), len(table)

    r, m = index(rows)
    c, n = index(cols)
    return r, c, np.array(vals), m, n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--init-scale", type=float, default=0.1)
    ap.add_argument("--iters", type=int, default=200, help="iterations per timed block")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dt = getattr(torch, a.dtype)
    r, c, v, m, n = load(a.train)
    rows = torch.from_numpy(r)
    cols = torch.from_numpy(c)
    vals = torch.from_numpy(v).to(dt)
    U = (a.init_scale * torch.randn(m, a.rank, dtype=dt)).requires_grad_()
    V = (a.init_scale * torch.randn(n, a.rank, dtype=dt)).requires_grad_()
    opt = torch.optim.Adam([U, V], lr=a.lr)

    def step():
        opt.zero_grad(set_to_none=True)
        pred = (U[rows] * V[cols]).sum(dim=1)
        loss = (pred - vals).pow(2).mean()
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    blocks = []
    loss = None
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.iters):
            loss = step()
        blocks.append((time.perf_counter() - t0) / a.iters)
    print(json.dumps({
        "peer": "torch-gd-adam",
        "train": a.train,
        "rank": a.rank,
        "nnz": int(len(v)),
        "shape": [m, n],
        "dtype": a.dtype,
        "threads": a.threads,
        "torch": torch.__version__,
        "seconds_per_iter": statistics.median(blocks),
        "seconds_per_iter_blocks": blocks,
        "iters_total": a.warmup + a.iters * a.repeats,
        "final_train_mse": float(loss.item()),
    }))


if __name__ == "__main__":
    main()
