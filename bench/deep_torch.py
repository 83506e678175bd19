#!/usr/bin/env python3
"""PyTorch (CPU) reference of `lowrank fit --algo deep`: the research code's
deep matrix factorization (Arora, Cohen, Hu, Luo 2019, `main.py` + `opt.py`),
trimmed to the matrix-completion loop.

Same algorithm as ours, step for step:
  * W = W_N ... W_1 with hidden widths n (`nn.Linear` layers without bias,
    e2e computed as in `get_e2e`);
  * init `gaussian`: N(0, (init_scale^(1/N) / sqrt(n))^2) per entry (the
    research code), then every layer rescaled by the same factor so that
    ||W||_F = init_scale * sqrt(n) exactly (what lowrank does; the research
    code only asserts it within 20 %);
  * loss = mean over observed entries of (W_ij - Y_ij)^2, autograd gradients;
  * optimizer `group_rmsprop` (the research code's GroupRMSprop, alpha 0.99,
    eps 1e-4, copied below), `sgd` (torch.optim.SGD) or `adam`;
  * stop when the loss before a step is <= --train-thres, or after --iters.
Every --dev-iters iterations it evaluates the relative error against the
ground truth (outside the timed region), to report the time to reach
--target (relative error 1e-3 by default).

Prints one JSON line: iterations, termination, rel_error, seconds (loop wall
time excluding the dev evaluations), seconds_per_iter, cpu_seconds (process
CPU time of the same region: less sensitive to a loaded machine), iters_to_target,
seconds_to_target, torch version, threads, dtype.

Usage:
  /tmp/peers-venv/bin/python bench/deep_torch.py \\
      --train /tmp/peers-data/completion/completion_train.tsv \\
      --truth /tmp/peers-data/completion/completion_gt.npy \\
      --depth 3 --init-scale 1e-5 --optimizer sgd --lr 10 --threads 2
"""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn


class GroupRMSprop(torch.optim.Optimizer):
    """The research code's `opt.py` (one global second moment), verbatim in
    substance; the moment is kept in the parameters' dtype."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-6):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, adjusted_lr=lr))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            state = self.state
            if len(state) == 0:
                state["step"] = 0
                state["square_avg"] = torch.tensor(0.0, dtype=group["params"][0].dtype)
            square_avg = state["square_avg"]
            alpha = group["alpha"]
            square_avg.mul_(alpha)
            state["step"] += 1
            for p in group["params"]:
                if p.grad is not None:
                    square_avg.add_((1 - alpha) * p.grad.pow(2).sum())
            avg = square_avg.div(1 - alpha ** state["step"]).sqrt_().add_(group["eps"])
            lr = group["lr"] / avg
            group["adjusted_lr"] = lr
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(-lr * p.grad)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="row<TAB>col<TAB>value, 0-based")
    ap.add_argument("--truth", required=True, help="dense ground truth .npy")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--init-scale", type=float, default=1e-3)
    ap.add_argument("--optimizer", choices=["group_rmsprop", "sgd", "adam"], default="group_rmsprop")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--iters", type=int, default=100000)
    ap.add_argument("--train-thres", type=float, default=1e-6)
    ap.add_argument("--dev-iters", type=int, default=50)
    ap.add_argument("--target", type=float, default=1e-3)
    ap.add_argument("--stop-at-target", action="store_true", help="stop once the target is reached")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dtype = getattr(torch, a.dtype)
    gt = torch.as_tensor(np.load(a.truth), dtype=dtype)
    m, n = gt.shape
    tr = np.loadtxt(a.train, ndmin=2)
    us = torch.as_tensor(tr[:, 0].astype(np.int64))
    vs = torch.as_tensor(tr[:, 1].astype(np.int64))
    ys = torch.as_tensor(tr[:, 2], dtype=dtype)

    hidden = [m] + [n] * a.depth  # the research code's hidden_sizes
    model = nn.Sequential(*[nn.Linear(i, o, bias=False) for i, o in zip(hidden, hidden[1:])]).to(dtype)

    def e2e():
        w = None
        for fc in model.children():
            w = fc.weight.t() if w is None else fc(w)
        return w

    with torch.no_grad():
        std = a.init_scale ** (1.0 / a.depth) * n ** -0.5
        for p in model.parameters():
            p.normal_(std=std)
        c = (a.init_scale * np.sqrt(min(m, n)) / e2e().norm().item()) ** (1.0 / a.depth)
        for p in model.parameters():
            p.mul_(c)
    params = list(model.parameters())
    if a.optimizer == "group_rmsprop":
        opt = GroupRMSprop(params, a.lr, eps=1e-4)
    elif a.optimizer == "sgd":
        opt = torch.optim.SGD(params, a.lr)
    else:
        opt = torch.optim.Adam(params, a.lr)

    gt_norm = gt.norm().item()
    timed = cpu = 0.0
    hit_it = hit_s = None
    termination = "max_iters"
    it = 0
    loss = None
    t, c = time.perf_counter(), time.process_time()
    for it in range(a.iters):
        w = e2e()
        loss = (w[us, vs] - ys).pow(2).mean()
        if loss.item() <= a.train_thres:
            termination = "converged"
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            termination = "diverged"
            break
        if (it + 1) % a.dev_iters == 0 and hit_it is None:
            timed += time.perf_counter() - t
            cpu += time.process_time() - c
            with torch.no_grad():
                rel = (e2e() - gt).norm().item() / gt_norm
            if rel <= a.target:
                hit_it, hit_s = it + 1, timed
                if a.stop_at_target:
                    termination = "target"
                    t, c = time.perf_counter(), time.process_time()
                    break
            t, c = time.perf_counter(), time.process_time()
    timed += time.perf_counter() - t
    cpu += time.process_time() - c
    iters = it + (0 if termination in ("converged",) else 1)
    with torch.no_grad():
        rel = (e2e() - gt).norm().item() / gt_norm
        sv = torch.linalg.svdvals(e2e())
    out = dict(peer="torch-deep", depth=a.depth, init_scale=a.init_scale, optimizer=a.optimizer, lr=a.lr,
               iterations=iters, termination=termination, train_loss=float(loss), rel_error=rel,
               seconds=round(timed, 4), seconds_per_iter=timed / max(iters, 1),
               cpu_seconds=round(cpu, 4), cpu_seconds_per_iter=cpu / max(iters, 1),
               iters_to_target=hit_it, seconds_to_target=hit_s, target=a.target,
               singular_values=[round(float(x), 6) for x in sv[:8]],
               torch=torch.__version__, threads=a.threads, dtype=a.dtype)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
