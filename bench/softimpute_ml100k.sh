#!/usr/bin/env bash
# SoftImpute / SoftImpute-ALS (defaults) on the MovieLens-100k 90/10 split vs peers,
# run back to back REPS times (timings on a shared 2-core box are noisy: take medians).
# Usage: bash bench/softimpute_ml100k.sh   (from the repository root)
set -euo pipefail
DATA=${DATA:-/tmp/peers-data/ml-100k}
PY=${PY:-/tmp/peers-venv/bin/python}
PEERS=${PEERS:-/work/shared/peers}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
if [ ! -f "$DATA/train.tsv" ]; then
  "$PY" "$PEERS/split.py" /work/shared/data/ml-100k/u.data.gz --out "$DATA"
fi
cargo build --release -p lowrank-cli >&2
BIN=target/release/lowrank
uptime >&2
for rep in $(seq "$REPS"); do
  for algo in softimpute softimpute-als; do
    "$BIN" fit --algo "$algo" --data "$DATA/train.tsv" --test "$DATA/test.tsv" --threads "$THREADS" --json -q \
      | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d.get(k) for k in ["algo","rank","z_rank","lambda","lambda_max","iterations","termination","train_rmse","test_rmse","test_mae","fit_seconds","threads"]}))'
  done
  "$PY" "$PEERS/run_peer.py" sklearn-truncsvd --train "$DATA/train.tsv" --test "$DATA/test.tsv" --rank 10 2>/dev/null
  "$PY" "$PEERS/run_peer.py" libmf --train "$DATA/train.tsv" --test "$DATA/test.tsv" --rank 50 --epochs 100 --lr 0.03 --reg 0.1 --threads "$THREADS" 2>/dev/null
done
uptime >&2
