#!/usr/bin/env bash
# Randomized SVD: lowrank `--algo svd` vs scikit-learn `randomized_svd` on the same sparse matrix
# (the `sklearn-rsvd` peer's default problem: scipy.sparse.random(20000, 5000, density=0.01,
# rng=default_rng(SEED)), k = 50, 10 oversamples, 4 power iterations), RUNS times each, back to back.
# Usage: bash bench/rsvd_vs_sklearn.sh [BIN] [PYTHON]
set -euo pipefail
BIN=${1:-target/release/lowrank}
PY=${2:-/tmp/peers-venv/bin/python}
PEERS=${PEERS:-../shared/peers}
OUT=${OUT:-/tmp/rsvd}
SEED=${SEED:-0}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
# the peer's matrix, written as 0-based triplets (every row and column is non-empty at 1 % density)
"$PY" - "$OUT/A.tsv" "$SEED" <<'PYEOF'
import sys, numpy as np, scipy.sparse as sp
A = sp.random(20000, 5000, density=0.01, format="coo", dtype=np.float64, rng=np.random.default_rng(int(sys.argv[2])))
assert (np.bincount(A.row, minlength=20000) > 0).all() and (np.bincount(A.col, minlength=5000) > 0).all()
with open(sys.argv[1], "w") as f:
    for i, j, v in zip(A.row, A.col, A.data):
        f.write(f"{i}\t{j}\t{float(v)!r}\n")
PYEOF
uptime
for r in $(seq "$RUNS"); do
  "$PY" "$PEERS/run_peer.py" sklearn-rsvd --train "$OUT/A.tsv" --rank 50 --epochs 4 --threads "$THREADS" --seed "$SEED" \
    | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print("sklearn ", "fit_s", d["fit_s"], "rel_error", d["rel_error"], "s1..3", d["top_singular"])'
  "$BIN" fit --algo svd --data "$OUT/A.tsv" --ids zero-based --rank 50 --set center=false --set oversample=10 \
    --set power_iters=4 --threads "$THREADS" --seed "$SEED" --json \
    | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print("lowrank ", "fit_s", round(d["fit_seconds"], 4), "rel_error", d["rel_residual"], "s1..3", d["singular_values"][:3])'
done
