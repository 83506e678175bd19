#!/usr/bin/env bash
# nuclear-min: the initial penalty `rho` across 54 planted problems (n 60/100/150, rank 3/5/8, sampling
# 20/30/50 %, 2 seeds), with the default box (eps 1e-3, tol 1e-5) and with eps 1e-6 tol 1e-6.
# One JSON line per run (L-BFGS iterations are deterministic; seconds are not), then a summary against
# the first rho listed.
# usage: bench/nucmin_rho_study.sh [BIN] [WORKDIR] [RHO...]   (default rhos: 1 3 10)
set -euo pipefail
BIN=${1:-target/release/lowrank}
WORK=${2:-/tmp/nucmin-rho}
shift $(($# < 2 ? $# : 2))
RHOS=("${@:-1 3 10}")
read -r -a RHOS <<<"${RHOS[*]}"
mkdir -p "$WORK"
OUT="$WORK/runs.jsonl"
: >"$OUT"
for n in 60 100 150; do for rank in 3 5 8; do for pct in 20 30 50; do for seed in 1 2; do
  obs=$((n * n * pct / 100))
  d="$WORK/p_${n}_${rank}_${pct}_${seed}"
  [ -d "$d" ] || "$BIN" gen planted --n "$n" --rank "$rank" --observed "$obs" --seed "$seed" --out "$d" >/dev/null 2>&1
  for set in "" "--set eps=1e-6 --set tol=1e-6"; do for rho in "${RHOS[@]}"; do
    # shellcheck disable=SC2086
    "$BIN" fit --algo nuclear-min --data "$d/train.tsv" --ids zero-based --truth "$d/gt.npy" --threads 1 $set \
      --set rho="$rho" --json 2>/dev/null | tail -1 |
      python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print(json.dumps(dict(problem='$n/$rank/$pct/$seed', \
settings='${set:-defaults}', rho=$rho, seconds=d['fit_seconds'], rel_error=d['rel_error'], outer=d['iterations'], \
inner=d['inner_iters'], termination=d['termination'])))" >>"$OUT"
  done; done
done; done; done; done
python3 - "$OUT" <<'PY'
import collections, json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rhos = list(dict.fromkeys(r["rho"] for r in rows))
by = collections.defaultdict(dict)
for r in rows:
    by[(r["problem"], r["settings"])][r["rho"]] = r
for settings in dict.fromkeys(r["settings"] for r in rows):
    groups = [v for (p, s), v in by.items() if s == settings and len(v) == len(rhos) and v[rhos[0]]["inner"] > 0]
    print(f"{settings}: {len(groups)} problems that need L-BFGS work (the rest certify in one step)")
    for rho in rhos[1:]:
        for key in ("inner", "outer", "seconds"):
            q = [g[rho][key] / g[rhos[0]][key] for g in groups]
            gm = math.exp(sum(map(math.log, q)) / len(q))
            print(f"  rho {rho} vs {rhos[0]}: {key:7} geometric mean {gm:.3f}, range {min(q):.2f}-{max(q):.2f}")
    print("  terminations:", dict(collections.Counter((r["rho"], r["termination"]) for r in rows if r["settings"] == settings)))
PY
