#!/usr/bin/env bash
# One seed of the whole PU grid on a GPU, every (dataset, labeled) cell at once on one device,
# each cell stopped after LIMIT seconds; the finished runs are merged into one JSON.
# What produced benchmarks/results/pu_gpu_grid.json (on an H200, with DATA_DIR=.gpu/data):
#   OUT=/some/dir LIMIT=200 bash benchmarks/pu_grid.sh
export PYTHONUNBUFFERED=1 PYTHONPATH=src
PY=${PY:-python3}
M="pucl pucl-ft-nnpu nnpu pn punce simclr upu"
WORK=$(mktemp -d)
for ds in I II; do
  for n in 100 500 1000 3000; do
    timeout "${LIMIT:-200}" $PY benchmarks/pu.py --datasets $ds --labeled $n --methods $M --seeds ${SEED:-0} \
      --epochs "${EPOCHS:-20}" --device "${DEV:-cuda}" --threads 2 --data-dir "${DATA_DIR:-/usr/share/datasets/fashion-mnist}" \
      --work "$WORK" --out "$WORK/summary_${ds}_$n.json" > "$WORK/log_${ds}_$n.txt" 2>&1 &
  done
done
wait
tail -q -n 3 "$WORK"/log_*.txt > "$OUT/logs.txt"
$PY - "$WORK" "$OUT/pu_gpu_grid_runs.json" <<'PYEOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = {p.name: json.loads(p.read_text()) for p in sorted(work.glob("I*-*.json"))}
out.write_text(json.dumps({"runs": runs}, indent=1))
print("merged", len(runs), "runs")
for k, v in runs.items():
    print(k, round(v["accuracy"], 4))
PYEOF
