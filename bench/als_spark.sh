#!/usr/bin/env bash
# Explicit ALS side by side with Spark MLlib ALS (run_peer.py spark-als, local[2])
# on the same split, rank, regularization and iterations (no biases on our side,
# as Spark has none). One JSON summary line per program. Our test set is
# evaluated once at the end (eval_every), as Spark's fit_s has no evaluation.
# SPARK=0 skips Spark (its 10M run takes minutes); RUNS=n repeats ours.
# Usage: bash bench/als_spark.sh ml100k|synth1m|synth10m
set -euo pipefail
LOWRANK=${LOWRANK:-target/release/lowrank}
PY=${PY:-/tmp/peers-venv/bin/python}
PEERS=${PEERS:-/work/shared/peers}
DATA=${DATA:-/tmp/peers-data}
case ${1:-ml100k} in
  ml100k) TR=$DATA/ml-100k/train.tsv; TE=$DATA/ml-100k/test.tsv; A=(--rank 10 --reg 0.1 --epochs 10); MEM=6g ;;
  synth1m) TR=$DATA/synth1m/large_train.tsv; TE=$DATA/synth1m/large_test.tsv; A=(--rank 16 --reg 0.01 --epochs 15); MEM=6g ;;
  synth10m) TR=$DATA/synth10m/large_train.tsv; TE=$DATA/synth10m/large_test.tsv; A=(--rank 16 --reg 0.02 --epochs 10); MEM=10g ;;
esac
show='import json,sys; d=json.load(sys.stdin); t=d.get("fit_seconds", d.get("fit_s")); n=d.get("iterations", d.get("epochs")) or d["params"]["maxIter"]; print("%-8s test_rmse %.4f fit_s %.2f s/iter %.4f" % (sys.argv[1], d["test_rmse"], t, t / n))'
for r in $(seq "${RUNS:-1}"); do
  "$LOWRANK" fit --data "$TR" --test "$TE" --algo als "${A[@]}" --set biases=false --set eval_every=1000 --threads 2 --json 2>/dev/null | python3 -c "$show" lowrank
done
[ "${SPARK:-1}" = 0 ] || "$PY" "$PEERS/run_peer.py" spark-als --train "$TR" --test "$TE" "${A[@]}" --threads 2 --spark-mem $MEM 2>/dev/null | python3 -c "$show" spark
