#!/usr/bin/env bash
# Reading speed and peak memory: lowrank's triplet reader vs pandas.read_csv (C engine)
# on the same files, alternating, N rounds; prints one line per run.
# Usage: bench/read_vs_pandas.sh [ROUNDS]   (needs /tmp/peers-venv with pandas, see ../shared/peers)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
PY=${PY:-/tmp/peers-venv/bin/python}
cargo build --release -q -p lowrank-cli
BIN=target/release/lowrank
mkdir -p /tmp/lowrank-bench
F10=/tmp/lowrank-bench/r10m.tsv
[ -f "$F10" ] || $BIN gen ratings --users 200000 --items 20000 --count 10000000 --seed 42 --out "$F10"
ML=/tmp/lowrank-bench/u.data
[ -f "$ML" ] || gzip -dc ../shared/data/ml-100k/u.data.gz > "$ML"
cat > /tmp/lowrank-bench/pandas_read.py <<'PY'
import json, resource, sys, time
import pandas as pd
path = sys.argv[1]
t = time.perf_counter()
df = pd.read_csv(path, sep="\t", header=None, usecols=[0, 1, 2], names=["u", "i", "r"], engine="c")
dt = time.perf_counter() - t
print(json.dumps({"tool": "pandas", "file": path, "rows": len(df), "seconds": round(dt, 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
PY
for f in "$F10" "$ML"; do
  for r in $(seq "$ROUNDS"); do
    out=$( { /usr/bin/time -f "%M" $BIN inspect --json --data "$f" > /tmp/lowrank-bench/inspect.json; } 2>&1 )
    python3 -c "import json,sys; d=json.load(open('/tmp/lowrank-bench/inspect.json')); print(json.dumps({'tool':'lowrank','file':d['file'],'rows':d['entries'],'seconds':round(d['read_seconds'],3),'peak_rss_mb':round(int(sys.argv[1])/1024,1)}))" "$out"
    $PY /tmp/lowrank-bench/pandas_read.py "$f"
  done
done
