#!/usr/bin/env bash
# Retrain DreamShard, AutoShard and NeuroShard on the step-cost meter at batch 4096, choose on
# validation tasks, report on test tasks. Tables: train / valid / test splits of the pool are
# disjoint (embedlab.sharding.generator.split_pool). Resumable step by step: a step whose output
# exists is skipped. Usage: bash benchmarks/sharding_retrain.sh  (57 min on this 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-benchmarks/.work/retrain}
E=.venv/bin/embedlab
PY=.venv/bin/python
B=4096
FAMILIES=${FAMILIES:-dreamshard:50x4,dreamshard:20x2,neuroshard:40x4}
mkdir -p "$W"
step() { echo "[$(date -u +%H:%M:%S)] $*"; }

# 1. training tasks (train split only) and the 4-process communication model
[ -f "$W/ds_train.json" ] || $E shard gen-tasks --family dreamshard --tables 50 --devices 4 --count 50 --seed 0 --split train --out "$W/ds_train.json"
for d in 2 4 8; do
  [ -f "$W/as_t$d.json" ] || $E shard gen-tasks --family autoshard --tables $((d * 5)) --devices $d --count 10 --seed $d --split train --out "$W/as_t$d.json"
done
[ -f "$W/as_train.json" ] || $PY - "$W" <<'EOF'
import sys
from embedlab.sharding.types import load_tasks, save_tasks
w = sys.argv[1]
save_tasks(f"{w}/as_train.json", [t for d in (2, 4, 8) for t in load_tasks(f"{w}/as_t{d}.json")])
EOF
[ -f "$W/comm4.json" ] || { step calibrate; $E shard calibrate-comm --nproc 4 --out "$W/comm4.json"; }

# 2. DreamShard and AutoShard side by side (one thread each), then NeuroShard alone
step train dreamshard and autoshard
[ -f "$W/ds/model/model.json" ] || $E shard train dreamshard --tasks "$W/ds_train.json" --comm "$W/comm4.json" --batch-size $B --seed 0 --out "$W/ds" > "$W/ds.log" 2>&1 &
[ -f "$W/as/model/model.json" ] || $E shard train autoshard --tasks "$W/as_train.json" --iterations 30 --rollout-tasks 3 --batch-size $B --budget-s 420 --reward measured --seed 0 --out "$W/as" > "$W/as.log" 2>&1 &
wait
step pretrain neuroshard
[ -f "$W/ns/model/model.json" ] || $E shard pretrain neuroshard --out "$W/ns" --budget-s 600 --samples 4000 --shard-memory-gib 1 --device-counts 2,4,8 --batch-size $B --comm "$W/comm4.json" --seed 0 > "$W/ns.log" 2>&1

MODELS=(--model-dir "dreamshard=$W/ds/model" --model-dir "autoshard=$W/as/model" --model-dir "neuroshard=$W/ns/model")
# 3. choose on validation tasks, 4. report on test tasks (nothing chosen there)
step validation
# (DreamShard's and NeuroShard's planning-time searches are chosen here:
#  dreamshard.planner.DEFAULT_SEARCH, neuroshard.planner.DEFAULT_SEARCH)
$PY benchmarks/sharding_learned.py --split valid --eval-count 5 --dreamshard-variants refine20,composed-refine20,composed-starts8-refine20,composed-starts32-refine20,starts8-refine20 --neuroshard-variants refine0,refine20,refine100 --families "$FAMILIES" "${MODELS[@]}" --resume --out "$W/learned_valid.json"
cp "$W/learned_valid.json" benchmarks/results/sharding_search_valid.json
# NeuroShard's descent, checked on 10 validation tasks per family before shipping it
$PY benchmarks/sharding_learned.py --split valid --eval-count 10 --neuroshard-variants refine0 --families "$FAMILIES" "${MODELS[@]}" --resume --out "$W/neuroshard_valid.json"
cp "$W/neuroshard_valid.json" benchmarks/results/sharding_neuroshard_valid.json
step test
$PY benchmarks/sharding_learned.py --split test --eval-count 10 --torchrec --portfolio --dreamshard-variants refine20 --neuroshard-variants refine0 --families "$FAMILIES" "${MODELS[@]}" --resume --out "$W/learned_test.json"
cp "$W/learned_test.json" benchmarks/results/sharding_learned.json

# 5. AutoShard's planning time on 200 tables
[ -f "$W/t200.json" ] || $E shard gen-tasks --family dreamshard --tables 200 --devices 4 --count 3 --seed 1 --split test --out "$W/t200.json"
$E shard plan --tasks "$W/t200.json" --planner autoshard --model "$W/as/model" --out "$W/p200.json"
step done
