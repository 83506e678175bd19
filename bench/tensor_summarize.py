#!/usr/bin/env python3
"""Markdown table from the JSON lines of bench/tensor_vs_tensorly.sh (median over seeds/runs)."""
import json
import re
import statistics
import sys
from collections import defaultdict

rows = defaultdict(list)
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    m = re.search(r"(\d+x\d+x\d+)", r["problem"])
    rows[(m.group(1) if m else r["problem"], r["rank"], r["iterations"])].append(r)

print("| problem | rank | iterations | impl | runs | median ms/iteration | median fit s | rel err vs noisy (max) | rel err vs clean (max) | time ratio lowrank/tensorly |")
print("|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(rows):
    by = defaultdict(list)
    for r in rows[key]:
        by[r["impl"]].append(r)
    med = {k: statistics.median(x["per_iter_ms"] for x in v) for k, v in by.items()}
    for impl in ("lowrank", "tensorly"):
        if impl not in by:
            continue
        v = by[impl]
        ratio = f"{med['lowrank'] / med['tensorly']:.3f}" if impl == "lowrank" and "tensorly" in med else ""
        clean = [x["rel_err_vs_clean"] for x in v if x.get("rel_err_vs_clean") is not None]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {impl} | {len(v)} | {med[impl]:.4f} | "
              f"{statistics.median(x['fit_s'] for x in v):.4f} | {max(x['rel_err'] for x in v):.3e} | "
              f"{(max(clean) if clean else float('nan')):.3e} | {ratio} |")
