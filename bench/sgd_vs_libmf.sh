#!/usr/bin/env bash
# SGD side by side with LIBMF on the same files: rank 64, 20 epochs, reg 0.005, 2 threads,
# lr 0.1 (LIBMF's AdaGrad-style step; lowrank's `libmf` preset uses the same adaptive rate).
# Usage: bench/sgd_vs_libmf.sh [ml100k|synth1m|synth10m ...]   (data from ../shared/peers/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-/tmp/peers-venv/bin/python}
DATA=${DATA:-/tmp/peers-data}
RUNS=${RUNS:-2}
cargo build --release -q -p lowrank-cli
L=target/release/lowrank
for set in "${@:-ml100k synth1m synth10m}"; do
  for s in $set; do
    case $s in
      ml100k) tr=$DATA/ml-100k/train.tsv; te=$DATA/ml-100k/test.tsv ;;
      synth1m) tr=$DATA/synth1m/large_train.tsv; te=$DATA/synth1m/large_test.tsv ;;
      synth10m) tr=$DATA/synth10m/large_train.tsv; te=$DATA/synth10m/large_test.tsv ;;
      *) echo "unknown set $s" >&2; exit 2 ;;
    esac
    for r in $(seq "$RUNS"); do
      $PY ../shared/peers/run_peer.py libmf --train "$tr" --test "$te" --rank 64 --epochs 20 --reg 0.005 --threads 2 2>/dev/null \
        | tail -1 | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'tool':'libmf','set':'$s','test_rmse':d['test_rmse'],'fit_s':d['fit_s']}))"
      $L fit --data "$tr" --test "$te" --algo sgd --set preset='"libmf"' --rank 64 --epochs 20 --reg 0.005 --threads 2 --json -q \
        | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'tool':'lowrank','set':'$s','test_rmse':d['test_rmse'],'fit_s':d['fit_seconds']}))"
    done
  done
done
