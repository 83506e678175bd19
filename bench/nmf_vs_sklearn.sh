#!/usr/bin/env bash
# NMF: lowrank (`fit --algo nmf`, accelerated HALS, nndsvda) vs scikit-learn NMF
# (cd solver, nndsvda, tol 0) on the same dense matrix: X = W H + U(0, 0.01)
# noise, W 2000x20, H 20x1000 ~ U(0,1), from numpy default_rng(SEED) (the
# sklearn-nmf peer's own recipe, written to one .npy that both read).
# Prints one JSON line per run; run back to back REPEAT times.
#   bash bench/nmf_vs_sklearn.sh                 # 3 repeats, 2 threads, ours at EPOCHS=200
#   EPOCHS=100 REPEAT=3 bash bench/nmf_vs_sklearn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-/tmp/peers-venv/bin/python}
DIR=${DIR:-/tmp/nmf-bench}
SEED=${SEED:-0}
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-200}
SK_EPOCHS=${SK_EPOCHS:-200}
REPEAT=${REPEAT:-3}
mkdir -p "$DIR"
"$PY" - "$DIR/X.npy" "$SEED" <<'PYEOF'
import sys, numpy as np
rng = np.random.default_rng(int(sys.argv[2]))
W0 = rng.uniform(0.0, 1.0, (2000, 20)); H0 = rng.uniform(0.0, 1.0, (20, 1000)); N = rng.uniform(0.0, 0.01, (2000, 1000))
np.save(sys.argv[1], W0 @ H0 + N)
PYEOF
cargo build --release -q -p lowrank-cli
uptime
for r in $(seq 1 "$REPEAT"); do
  ./target/release/lowrank fit --data "$DIR/X.npy" --algo nmf --set rank=20 --epochs "$EPOCHS" \
      --threads "$THREADS" --seed "$SEED" --json \
    | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(json.dumps({k: d.get(k) for k in ("algo","rank","iterations","loss","fit_seconds","total_seconds","threads")}))'
  "$PY" /work/shared/peers/run_peer.py sklearn-nmf --train "$DIR/X.npy" --threads "$THREADS" \
      --epochs "$SK_EPOCHS" --seed "$SEED" \
    | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(json.dumps({k: d.get(k) for k in ("peer","rank","iterations","loss","fit_s","threads")}))'
done
uptime
