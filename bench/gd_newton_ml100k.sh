#!/usr/bin/env bash
# Newton-CG, rank 1, on all of MovieLens-100k (seed 002): gradient-norm reduction and time.
#   bash bench/gd_newton_ml100k.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/work/shared/data/ml-100k/u.data.gz}
cargo build --release -p lowrank-cli >/dev/null 2>&1 || { echo "build failed; using the existing target/release/lowrank" >&2; }
for seed in 0 1 2; do
  for rank in 1 5; do
    ./target/release/lowrank fit --data "$DATA" --algo newton --rank "$rank" --epochs 100 --threads 2 --seed "$seed" --json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d.get(k) for k in ['rank','seed','grad_norm_initial','grad_norm_final','grad_norm_reduction','iterations','termination','objective','train_rmse','fit_seconds']}))"
  done
done
