#!/usr/bin/env bash
# Long-pretraining PU runs on a GPU: three seeds at once on one device, then one merged JSON.
# What produced benchmarks/results/pu_gpu_long.json (on an H200, with DATA_DIR=.gpu/data):
#   OUT=/some/dir LIMIT=470 EPOCHS=120 bash benchmarks/pu_long.sh
# Variables: OUT (output folder), EPOCHS (120), LIMIT (seconds per seed, 450), DEV (cuda), METHODS,
# DATA_DIR (Fashion-MNIST IDX files), PY (python3).
export PYTHONUNBUFFERED=1 PYTHONPATH=src
PY=${PY:-python3}
M=${METHODS:-"pucl pucl-k10 pucl-k10-ft pucl-ft-nnpu nnpu"}
WORK=$(mktemp -d)
for s in 0 1 2; do
  timeout "${LIMIT:-450}" $PY benchmarks/pu.py --datasets I --labeled 1000 --methods $M --seeds $s \
    --epochs "${EPOCHS:-120}" --device "${DEV:-cuda}" --threads 4 --data-dir "${DATA_DIR:-/usr/share/datasets/fashion-mnist}" \
    --work "$WORK" --out "$WORK/summary_s$s.json" > "$OUT/log_s$s.txt" 2>&1 &
done
wait
$PY - "$WORK" "$OUT/pu_gpu_runs.json" <<'PYEOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = {p.name: json.loads(p.read_text()) for p in sorted(work.glob("I-*.json"))}
out.write_text(json.dumps({"runs": runs}, indent=1))
print("merged", len(runs), "runs:", ", ".join(runs))
PYEOF
