#!/usr/bin/env bash
# Full-batch GD (Adam, masked MSE, rank 10) on MovieLens-100k: lowrank vs PyTorch CPU,
# seconds per iteration. Needs /tmp/peers-data/ml-100k/train.tsv (peers/split.py) and
# torch in /tmp/peers-venv (peers/requirements-torch.txt).
#   bash bench/gd_ml100k.sh            # THREADS=2 ITERS=600 REPEATS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN=${TRAIN:-/tmp/peers-data/ml-100k/train.tsv}
THREADS=${THREADS:-2}
ITERS=${ITERS:-600}
REPEATS=${REPEATS:-3}
PY=${PY:-/tmp/peers-venv/bin/python}
cargo build --release -p lowrank-cli >/dev/null 2>&1 || { echo "build failed; using the existing target/release/lowrank" >&2; }
for r in $(seq "$REPEATS"); do
  ./target/release/lowrank fit --data "$TRAIN" --algo gd --rank 10 --lr 0.01 --epochs "$ITERS" \
    --threads "$THREADS" --seed "$r" --set optimizer=adam --set cost=mse --set init_scale=0.1 --json \
  | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'impl':'lowrank-gd-adam','dtype':'float64','threads':d['threads'],'seconds_per_iter':d['fit_seconds']/d['iterations'],'final_train_mse':d['objective']}))"
done
for dt in float64 float32; do
  "$PY" bench/torch_gd.py --train "$TRAIN" --rank 10 --lr 0.01 --iters 200 --repeats "$REPEATS" --threads "$THREADS" --dtype "$dt"
done
