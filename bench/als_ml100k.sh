#!/usr/bin/env bash
# Explicit ALS (`lowrank fit --algo als`, default settings) on MovieLens-100k:
# the peers' 90/10 split (run_peer.py's split.py, seed 42) and the five
# canonical splits u1..u5 of the GroupLens archive.
# Usage: bash bench/als_ml100k.sh [extra lowrank fit args, e.g. --rank 10 --reg 0.1]
set -euo pipefail
LOWRANK=${LOWRANK:-target/release/lowrank}
DATA=${DATA:-/tmp/peers-data}
ML=${ML:-/tmp/ml-100k-unpacked}
THREADS=${THREADS:-2}
fit() {
  "$LOWRANK" fit --data "$1" --test "$2" --algo als --threads "$THREADS" --json "${@:3}" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.4f %.4f %.1f" % (d["test_rmse"], d["test_mae"], d["fit_seconds"] / d["iterations"] * 1e3))'
}
printf 'split test_rmse test_mae ms/iter\n'
printf '90/10 %s\n' "$(fit "$DATA/ml-100k/train.tsv" "$DATA/ml-100k/test.tsv" "$@")"
sum=0
for k in 1 2 3 4 5; do
  r=$(fit "$ML/u$k.base" "$ML/u$k.test" "$@")
  printf 'u%s %s\n' "$k" "$r"
  sum=$(python3 -c "print($sum + ${r%% *})")
done
python3 -c "print(f'u1..u5 mean test_rmse {$sum / 5:.4f}')"
