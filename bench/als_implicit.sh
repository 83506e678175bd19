#!/usr/bin/env bash
# Implicit ALS side by side with `implicit` (run_peer.py implicit-als) on the
# same binarized data: MovieLens-100k 90/10 (ratings >= 4 are positives) and
# the synthetic 1M set (threshold 0). Rank 64, 15 iterations, 2 threads.
# Each program is run RUNS times (default 3), alternating; one line per run.
# implicit's own model: --set confidence=proportional --set init=uniform
# (C = alpha r, U[0, 0.01) start).
# Usage: bash bench/als_implicit.sh [ml100k|synth1m] [extra lowrank args]
set -euo pipefail
LOWRANK=${LOWRANK:-target/release/lowrank}
PY=${PY:-/tmp/peers-venv/bin/python}
PEERS=${PEERS:-/work/shared/peers}
DATA=${DATA:-/tmp/peers-data}
RUNS=${RUNS:-3}
which=${1:-ml100k}; shift || true
case $which in
  ml100k) TR=$DATA/ml-100k/train.tsv; TE=$DATA/ml-100k/test.tsv; THR=4 ;;
  synth1m) TR=$DATA/synth1m/large_train.tsv; TE=$DATA/synth1m/large_test.tsv; THR=0 ;;
esac
show='import json,sys; d=json.load(sys.stdin); print("%-8s P@10 %.4f NDCG@10 %.4f recall@10 %.4f users %d fit_s %.3f" % (sys.argv[1], d["p_at_10"], d["ndcg_at_10"], d["recall_at_10"], d["n_users"], d.get("fit_seconds", d.get("fit_s"))))'
for r in $(seq "$RUNS"); do
  "$LOWRANK" fit --data "$TR" --test "$TE" --algo ials --rank 64 --epochs 15 --threads 2 \
    --set positive_threshold=$THR --json "$@" 2>/dev/null | python3 -c "$show" lowrank
  "$PY" "$PEERS/run_peer.py" implicit-als --train "$TR" --test "$TE" --rank 64 --epochs 15 --threads 2 \
    --positive-threshold $THR 2>/dev/null | python3 -c "$show" implicit
done
