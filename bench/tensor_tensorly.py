#!/usr/bin/env python3
"""TensorLy side of bench/tensor_vs_tensorly.sh: CP-ALS (tensorly.decomposition.parafac,
init="random", tol=0, exactly --iters iterations, the run_peer.py tensorly-parafac settings)
on a tensor read from .npy, so both sides fit the same data. One JSON line per run.

usage: tensor_tensorly.py NOISY.npy [--clean CLEAN.npy] --rank R --iters N [--seed S] [--repeat K]
Threads: set OPENBLAS_NUM_THREADS (the script does).
"""
import argparse
import json
import os
import time

import numpy as np
import tensorly as tl
from tensorly.decomposition import parafac


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("noisy")
    ap.add_argument("--clean")
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--iters", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--init", default="random")
    a = ap.parse_args()
    t = np.load(a.noisy)
    clean = np.load(a.clean) if a.clean else None
    for rep in range(a.repeat):
        t0 = time.perf_counter()
        cp = parafac(t, rank=a.rank, n_iter_max=a.iters, init=a.init, tol=0, random_state=a.seed)
        fit_s = time.perf_counter() - t0
        rec = tl.cp_to_tensor(cp)
        out = dict(impl="tensorly", problem=os.path.basename(a.noisy), rank=a.rank, iterations=a.iters,
                   fit_s=fit_s, per_iter_ms=1e3 * fit_s / a.iters,
                   rel_err=float(np.linalg.norm(rec - t) / np.linalg.norm(t)),
                   rel_err_vs_clean=(float(np.linalg.norm(rec - clean) / np.linalg.norm(clean)) if clean is not None else None),
                   threads=os.environ.get("OPENBLAS_NUM_THREADS"), tensorly=tl.__version__, repeat=rep, init=a.init)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
