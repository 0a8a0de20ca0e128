#!/usr/bin/env bash
# Retrain DreamShard, AutoShard and NeuroShard on the step-cost meter at batch 4096, choose on
# validation tasks, report on test tasks. Tables: train / valid / test splits of the pool are
# disjoint (embedlab.sharding.generator.split_pool). Resumable step by step: a step whose output
# exists is skipped. Usage: bash benchmarks/sharding_retrain.sh  (about 290 min on this 2-core
# machine: training 23 and 35, validations 39, 33 and 26, the final fit's plans 22, AutoShard's search 35, test about 42). The
# models that ship were made by this pipeline's steps (each model.json names its machine).
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

# AutoShard candidates also learn from memory-limited mixed-dim tasks (train split)
[ -f "$W/as_ns20.json" ] || $E shard gen-tasks --family neuroshard --tables 20 --devices 4 --count 10 --seed 4 --split train --out "$W/as_ns20.json"
[ -f "$W/as_ns40.json" ] || $E shard gen-tasks --family neuroshard --tables 40 --devices 4 --count 5 --seed 40 --split train --out "$W/as_ns40.json"
[ -f "$W/as_train_mixed.json" ] || $PY - "$W" <<'EOF'
import sys
from embedlab.sharding.types import load_tasks, save_tasks
w = sys.argv[1]
save_tasks(f"{w}/as_train_mixed.json", [t for f in ("as_train", "as_ns20", "as_ns40") for t in load_tasks(f"{w}/{f}.json")])
EOF

# 2. DreamShard (measuring its search's plans too) beside AutoShard, then beside NeuroShard
#    (one thread each). The shipped AutoShard was trained on as_train.json alone (same command).
step train dreamshard, autoshard, neuroshard
[ -f "$W/ds/model/model.json" ] || $E shard train dreamshard --tasks "$W/ds_train.json" --comm "$W/comm4.json" --batch-size $B --search-plans 10 --search composed-starts8-refine20 --seed 0 --out "$W/ds" > "$W/ds.log" 2>&1 &
{ [ -f "$W/as_mixed/model/model.json" ] || $E shard train autoshard --tasks "$W/as_train_mixed.json" --iterations 30 --rollout-tasks 3 --batch-size $B --budget-s 420 --reward measured --seed 0 --out "$W/as_mixed" > "$W/as_mixed.log" 2>&1
  [ -f "$W/ns/model/model.json" ] || $E shard pretrain neuroshard --out "$W/ns" --budget-s 1300 --samples 4000 --shard-memory-gib 1 --device-counts 2,4,8 --batch-size $B --comm "$W/comm4.json" --seed 0 > "$W/ns.log" 2>&1; } &
wait

# DreamShard's communication mode: the reference's learned communication, same settings (it
# trained beside the analytic model for the shipped one, one core each)
[ -f "$W/ds_learned/model/model.json" ] || { step train dreamshard, learned communication
  $E shard train dreamshard --tasks "$W/ds_train.json" --comm "$W/comm4.json" --batch-size $B --search-plans 10 --search composed-starts8-refine20 --seed 0 --comm-mode learned --out "$W/ds_learned" > "$W/ds_learned.log" 2>&1; }

# 3. choose on validation tasks, 4. report on test tasks (nothing chosen there)
step validation
# The models trained here against the ones in the package, and NeuroShard's search with the
# input all-to-all; the rule, fixed beforehand: each planner ships the configuration with the
# lowest geometric mean over the families (ties to 3 decimals keep the shipped one).
$PY benchmarks/sharding_learned.py --split valid --eval-count 10 --families "$FAMILIES" \
  --candidate "dreamshard-searchdata=$W/ds/model" --candidate "autoshard-mixed=$W/as_mixed/model" \
  --candidate "neuroshard-more=$W/ns/model" --candidate "neuroshard-more-input=$W/ns/model@input-refine20" \
  --neuroshard-variants input-refine20 --resume --out "$W/learned_valid.json"
cp "$W/learned_valid.json" benchmarks/results/sharding_retrained_valid.json
# DreamShard: analytic against learned communication, and a longer search, beside the shipped
# model (rule in benchmarks/results/sharding_dreamshard_valid.json, fixed before that run)
$PY benchmarks/sharding_learned.py --split valid --eval-count 10 --families "$FAMILIES" \
  --candidate "dreamshard-analytic=$W/ds/model" --candidate "dreamshard-learned=$W/ds_learned/model" \
  --dreamshard-variants composed-starts32-refine40 --resume --out "$W/ds_valid.json"
cp "$W/ds_valid.json" benchmarks/results/sharding_dreamshard_valid.json
# DreamShard's final cost-network fit (--final-cost-steps 3000) alone, and with 240 newly measured
# perturbed heuristic plans (--final-plans 240), each on a copy of the finished run, against the
# model in the package, the same rule. The final fit alone was not shipped (0.926 against 0.931,
# benchmarks/results/sharding_dreamshard_final_fit_valid.json); with the plans it shipped (0.9175
# against 0.9225, benchmarks/results/sharding_dreamshard_final_plans_valid.json)
for v in final plans; do
  extra=(--final-cost-steps 3000); [ $v = plans ] && extra+=(--final-plans 240)
  grep -q final_cost_fit "$W/ds_$v/model/model.json" 2>/dev/null || {
    rm -rf "$W/ds_$v"; cp -r "$W/ds" "$W/ds_$v"
    $E shard train dreamshard --tasks "$W/ds_train.json" --comm "$W/comm4.json" --batch-size $B --search-plans 10 --search composed-starts8-refine20 --seed 0 "${extra[@]}" --resume --out "$W/ds_$v" > "$W/ds_$v.log" 2>&1; }
done
$PY benchmarks/sharding_learned.py --split valid --eval-count 10 --families "$FAMILIES" \
  --candidate "dreamshard-plans=$W/ds_plans/model" --candidate "dreamshard-final=$W/ds_final/model" --resume --out "$W/ds_final_valid.json"
# (after copying the chosen models into src/embedlab/sharding/*/default_model)
# AutoShard's planning-time search with the shipped models (the same rule; AutoShard must also
# plan 200 tables in under 2 s); the registered `autoshard` is the search in force.
step autoshard search
$PY benchmarks/sharding_learned.py --split valid --eval-count 10 --families "$FAMILIES" \
  --autoshard-variants greedy,refine20,step-refine20 \
  --dreamshard-variants composed-starts8-refine20-heur --resume --out "$W/search_valid.json"
cp "$W/search_valid.json" benchmarks/results/sharding_autoshard_search_valid.json
step test
$PY benchmarks/sharding_learned.py --split test --eval-count 10 --torchrec --portfolio \
  --autoshard-variants greedy --neuroshard-variants refine20 --families "$FAMILIES" --resume --out "$W/learned_test.json"
cp "$W/learned_test.json" benchmarks/results/sharding_learned.json

# 5. planning time on 200 tables (alone on the machine)
$PY benchmarks/sharding_planning_time.py --out benchmarks/results/sharding_planning_time.json
step done
