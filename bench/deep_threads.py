#!/usr/bin/env python3
"""Back-to-back timing of `deep` (ours, several binaries / thread counts) and
the PyTorch loop (bench/deep_torch.py) on the peers' completion problem, with
a measure of what else ran on the machine during each run.

Each run is pinned to cores 0,1 (`taskset -c 0,1`); its JSON goes to a file
(no pipe: a python started beside the run would take the second core). For
every run the script records the CPU time the rest of the machine used during
the run ("other" = busy jiffies of /proc/stat minus the run's own CPU time,
in cores), so runs disturbed by others' builds can be told apart.

Usage:
  bench/deep_threads.py [--quiet-wait 120] --reps 7 --ours BIN:THREADS[,BIN:THREADS...] \
      --torch PYTHON:THREADS[,...] [--opt sgd --lr 10] [--data DIR] [--json-out FILE]
Prints one line per run and a median table (all runs, and runs with other < 0.1 core).
"""
import argparse, json, os, resource, statistics, subprocess, tempfile, time


def busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_quiet(max_wait, window=0.5, limit=0.1):
    """Wait (at most max_wait seconds) until the machine's other load over a
    window is below `limit` cores; returns the seconds waited."""
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.time()
    while time.time() - t0 < max_wait:
        b0 = busy_jiffies()
        time.sleep(window)
        if (busy_jiffies() - b0) / hz / window < limit:
            break
    return time.time() - t0


def run(cmd):
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryFile("w+") as out:
        b0, c0, t0 = busy_jiffies(), children_cpu(), time.time()
        subprocess.run(["taskset", "-c", "0,1"] + cmd, stdout=out, stderr=subprocess.DEVNULL, check=True)
        b1, c1, t1 = busy_jiffies(), children_cpu(), time.time()
        out.seek(0)
        d = json.loads(out.read().strip().splitlines()[-1])
    own = c1 - c0
    other = max(0.0, (b1 - b0) / hz - own) / (t1 - t0)
    return d, own, other


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ours", default="./target/release/lowrank:1,./target/release/lowrank:2")
    ap.add_argument("--torch", default="/tmp/peers-venv/bin/python:1,/tmp/peers-venv/bin/python:2")
    ap.add_argument("--opt", default="sgd")
    ap.add_argument("--lr", default="10")
    ap.add_argument("--data", default="/tmp/peers-data/completion")
    ap.add_argument("--json-out")
    ap.add_argument("--quiet-wait", type=float, default=0.0,
                    help="before each run, wait up to this many seconds for the machine to be idle")
    a = ap.parse_args()
    dd = a.data
    jobs = []
    for spec in filter(None, a.ours.split(",")):
        b, t = spec.rsplit(":", 1)
        cmd = [b, "fit", "--algo", "deep", "--data", f"{dd}/completion_train.tsv", "--ids", "zero-based",
               "--truth", f"{dd}/completion_gt.npy", "--json", "-q", "--set", "n_singulars_save=0",
               "--set", f"optimizer={a.opt}", "--set", f"lr={a.lr}", "--set", "n_dev_iters=50", "--threads", t]
        jobs.append((f"ours {os.path.basename(b)} t{t}", cmd, "seconds_to_rel_1e-3", "iters_to_rel_1e-3"))
    for spec in filter(None, a.torch.split(",")):
        py, t = spec.rsplit(":", 1)
        cmd = [py, "bench/deep_torch.py", "--train", f"{dd}/completion_train.tsv", "--truth",
               f"{dd}/completion_gt.npy", "--dev-iters", "50", "--stop-at-target", "--train-thres", "0",
               "--optimizer", a.opt, "--lr", a.lr, "--init-scale", "1e-5", "--threads", t]
        jobs.append((f"torch t{t}", cmd, "seconds_to_target", "iters_to_target"))
    rows = {name: [] for name, *_ in jobs}
    log = []
    for rep in range(a.reps):
        for name, cmd, key, ikey in jobs:
            if a.quiet_wait > 0:
                wait_quiet(a.quiet_wait)
            d, own, other = run(cmd)
            secs, its = d.get(key), d.get(ikey)
            load = open("/proc/loadavg").read().split()[0]
            print(f"rep {rep} {name:28s} {its} it  {secs:.4f} s  own cpu {own:.3f} s  other {other:.2f} cores  load {load}",
                  flush=True)
            rows[name].append((secs, other))
            log.append({"rep": rep, "run": name, "iters": its, "seconds": secs, "own_cpu": own, "other": other,
                        "load1": float(load)})
    print("\n| run | median s (all) | min s | median s (other < 0.1 core) | runs quiet/all |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        quiet = [s for s, o in r if o < 0.1]
        qm = f"{statistics.median(quiet):.4f}" if quiet else "-"
        print(f"| {name} | {statistics.median(s for s, _ in r):.4f} | {min(s for s, _ in r):.4f} | {qm} | {len(quiet)}/{len(r)} |")
    if a.json_out:
        with open(a.json_out, "w") as f:
            for x in log:
                f.write(json.dumps(x) + "\n")


if __name__ == "__main__":
    main()
