#!/bin/bash
# Time to reach relative error 1e-3 on the peers' planted completion problem
# (100x100, rank 5, 2000 observed): lowrank `deep` vs the same algorithm in
# PyTorch (bench/deep_torch.py), depth 3, both pinned to the same 2 cores.
# Usage: bench/deep_vs_torch.sh LOWRANK_BIN PYTHON DATA_DIR
#   e.g. bench/deep_vs_torch.sh ./target/release/lowrank /tmp/peers-venv/bin/python /tmp/peers-data/completion
# Environment: REPS (repetitions of every run, back to back; default 1),
#   CONFIGS (default "group_rmsprop 1e-3,sgd 10"), THREADS (default "1 2").
# Each run's JSON goes to a file first and is summarized afterwards: piping it
# into python would start an interpreter on the second core while the run is
# still going (session 4: that alone cost the 2-thread run of ours ~40 %).
set -u
B=${1:-./target/release/lowrank}; PY=${2:-python3}; DD=${3:-/tmp/peers-data/completion}
REPS=${REPS:-1}; CONFIGS=${CONFIGS:-group_rmsprop 1e-3,sgd 10}; THREADS=${THREADS:-1 2}
PIN="taskset -c 0,1"
# n_singulars_save=0: the records every 50 iterations compute the relative error
# (one product) but no SVD; torch's dev evaluations are excluded from its timing
OURS="--data $DD/completion_train.tsv --ids zero-based --truth $DD/completion_gt.npy --json -q --set n_singulars_save=0"
TORCH="--train $DD/completion_train.tsv --truth $DD/completion_gt.npy --dev-iters 50 --stop-at-target --train-thres 0"
TMP=$(mktemp)
trap 'rm -f $TMP' EXIT
show() { python3 -c "import json,sys; d=json.loads(open(sys.argv[1]).readlines()[-1]); print(json.dumps({k: d.get(k) for k in ['iterations','iters_to_rel_1e-3','seconds_to_rel_1e-3','fit_seconds','rel_error','iters_to_target','seconds_to_target','seconds','seconds_per_iter','cpu_seconds_per_iter','threads','termination']}))" "$TMP"; }
IFS=, read -ra CFGS <<< "$CONFIGS"
for cfg in "${CFGS[@]}"; do
  set -- $cfg; OPT=$1; LR=$2
  for rep in $(seq "$REPS"); do
    for t in $THREADS; do
      echo "== ours   depth 3 init 1e-5 $OPT lr $LR threads $t rep $rep ($(cut -d' ' -f1-3 /proc/loadavg))"
      $PIN $B fit --algo deep $OURS --set optimizer=$OPT --set lr=$LR --set n_dev_iters=50 --threads $t > $TMP; show
      echo "== torch  depth 3 init 1e-5 $OPT lr $LR threads $t rep $rep ($(cut -d' ' -f1-3 /proc/loadavg))"
      $PIN $PY bench/deep_torch.py $TORCH --optimizer $OPT --lr $LR --init-scale 1e-5 --threads $t 2>/dev/null > $TMP; show
    done
  done
done
