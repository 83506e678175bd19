#!/usr/bin/env bash
# nuclear-min vs cvxpy (SCS, exact equality constraints) on the peers' 100x100 rank-5 completion task.
# usage: bench/nucmin_vs_cvxpy.sh [BIN] [PYTHON] [REPEATS]
# Data: python /work/shared/peers/synth.py completion --out /tmp/peers-data/completion
#       python /work/shared/peers/synth.py completion --observed 5000 --out /tmp/peers-data/completion5000
set -euo pipefail
BIN=${1:-target/release/lowrank}
PY=${2:-/tmp/peers-venv/bin/python}
REP=${3:-3}
PEER=/work/shared/peers/run_peer.py
echo "load: $(uptime)"
for d in completion completion5000; do
  D=/tmp/peers-data/$d
  for r in $(seq "$REP"); do
    "$PY" "$PEER" cvxpy-nuclear --train "$D/completion_train.tsv" --test "$D/completion_gt.npy" 2>/dev/null | tail -1 |
      "$PY" -c "import json,sys; d=json.loads(sys.stdin.read()); print('$d', 'cvxpy', 'rep $r', 'rel_err', d['rel_err'], 'fit_s', d['fit_s'])"
    for set in "" "--set eps=1e-6 --set tol=1e-4" "--set eps=1e-6 --set tol=1e-6"; do
      # shellcheck disable=SC2086
      "$BIN" fit --algo nuclear-min --data "$D/completion_train.tsv" --ids zero-based --truth "$D/completion_gt.npy" $set --json 2>/dev/null | tail -1 |
        "$PY" -c "import json,sys; d=json.loads(sys.stdin.read()); print('$d', 'ours[${set:-defaults}]', 'rep $r', 'rel_err', d['rel_error'], 'fit_s', d['fit_seconds'], 'gap', d['rel_gap'], 'viol', d['violation'], 'rank', d['rank'], 'erank', round(d['effective_rank'],2), 'iters', d['iterations'], d['termination'])"
    done
  done
done
