#!/usr/bin/env bash
# CP-ALS side by side: lowrank (examples/cp_als.rs) vs TensorLy parafac (bench/tensor_tensorly.py)
# on the SAME tensors: our example generates the notebook's problem (lowrank::data::synth::random_cp:
# unit-norm Gaussian factor columns + Gaussian noise of relative size mu), writes it as .npy, fits it,
# and TensorLy fits the .npy files with the run_peer.py tensorly-parafac settings
# (init="random", tol=0, exactly N iterations). Same number of iterations on both sides.
#
# usage (from anywhere): bash bench/tensor_vs_tensorly.sh
# env: PY (python with tensorly; default /tmp/peers-venv/bin/python), OUT (default /tmp/lowrank-tensor-bench),
#      THREADS (default 2, also OPENBLAS_NUM_THREADS), SEEDS (default 5), BIG_ITERS (default 50),
#      BIG_SEEDS (default 3: the 200^3 problem for seeds 999, 998, ..., medians over them),
#      SKIP_BIG=1 to skip the 200^3 problem, EX=path to a prebuilt examples/cp_als binary (no cargo build),
#      PIN (a command prefix for both sides, e.g. PIN="taskset -c 0,1").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-/tmp/peers-venv/bin/python}
OUT=${OUT:-/tmp/lowrank-tensor-bench}
THREADS=${THREADS:-2}
SEEDS=${SEEDS:-5}
BIG_ITERS=${BIG_ITERS:-50}
BIG_SEEDS=${BIG_SEEDS:-3}
mkdir -p "$OUT"
PIN=${PIN:-}
if [ -z "${EX:-}" ]; then
  cargo build --release -p lowrank --example cp_als
  EX=target/release/examples/cp_als
fi
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
RES="$OUT/results.jsonl"
: > "$RES"

# 1. the notebook's problem: 30x30x30, rank 20, mu 1e-5, 500 iterations, seeds 999, 998, ...
$PIN "$EX" --dims 30 --rank 20 --mu 1e-5 --iters 500 --seeds "$SEEDS" --threads "$THREADS" --json --write-npy "$OUT" | tee -a "$RES"
for s in $(seq 999 -1 $((1000 - SEEDS))); do
  $PIN "$PY" bench/tensor_tensorly.py "$OUT/noisy_30x30x30_r20_s$s.npy" --clean "$OUT/clean_30x30x30_r20_s$s.npy" \
    --rank 20 --iters 500 --seed "$s" | tee -a "$RES"
done

# 2. 200x200x200, rank 10, mu 1e-5, BIG_ITERS iterations, BIG_SEEDS seeds (the machine is shared and
#    noisy: one run of each side can be 20 % off)
if [ "${SKIP_BIG:-0}" != 1 ]; then
  $PIN "$EX" --dims 200 --rank 10 --mu 1e-5 --iters "$BIG_ITERS" --seeds "$BIG_SEEDS" --threads "$THREADS" --json --write-npy "$OUT" | tee -a "$RES"
  for s in $(seq 999 -1 $((1000 - BIG_SEEDS))); do
    $PIN "$PY" bench/tensor_tensorly.py "$OUT/noisy_200x200x200_r10_s$s.npy" --clean "$OUT/clean_200x200x200_r10_s$s.npy" \
      --rank 10 --iters "$BIG_ITERS" --seed "$s" | tee -a "$RES"
  done
fi

"$PY" bench/tensor_summarize.py "$RES"
