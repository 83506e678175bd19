#!/usr/bin/env python3
"""Sweep `lowrank fit --algo sgd` settings on MovieLens-100k: the five canonical
folds (u1..u5 base/test) and the 90/10 split of ../shared/peers/split.py.

Usage: python3 bench/sgd_tune.py [--threads T] [--jobs J] 'rank=128,lr=0.01,reg=0.08' ...
Each argument is one configuration (comma-separated key=value; `epochs=N` sets
--epochs, everything else goes to --set). Prints one line per configuration:
the 90/10 test RMSE, every fold's test RMSE and the fold mean.
"""
import argparse, json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "lowrank")
U = os.environ.get("ML100K", "/tmp/ml-100k-unpacked")
S = os.environ.get("SPLIT", "/tmp/peers-data/ml-100k")


def run(cfg, train, test, threads):
    cmd = [BIN, "fit", "--data", train, "--test", test, "--algo", "sgd", "--threads", str(threads), "--json"]
    for kv in filter(None, cfg.split(",")):
        k, v = kv.split("=", 1)
        if k == "epochs":
            cmd += ["--epochs", v]
        elif k == "seed":
            cmd += ["--seed", v]
        else:
            cmd += ["--set", f"{k}={v}"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("configs", nargs="*", default=[""])
    a = ap.parse_args()
    splits = [(f"{S}/train.tsv", f"{S}/test.tsv")] + [(f"{U}/u{i}.base", f"{U}/u{i}.test") for i in range(1, 6)]
    with ThreadPoolExecutor(a.jobs) as ex:
        for cfg in a.configs:
            res = list(ex.map(lambda s: run(cfg, s[0], s[1], a.threads), splits))
            r = [x["test_rmse"] for x in res]
            folds = r[1:]
            secs = sum(x["fit_seconds"] for x in res) / len(res)
            print(f"{cfg or 'defaults':60s} 90/10 {r[0]:.4f} | folds " + " ".join(f"{x:.4f}" for x in folds)
                  + f" | mean {sum(folds) / 5:.4f} | fit {secs:.2f}s", flush=True)


if __name__ == "__main__":
    main()
