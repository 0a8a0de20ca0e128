#!/usr/bin/env bash
# BLENDER staging on a GPU machine: for each class partition, in parallel, the generator
# (a larger UNet than the CPU default), the class judge, the guidance-scale selection, the
# fidelity study and the synthetic pools, packed into $OUT for the metric-learning stage,
# which then runs on CPU from the unpacked cache:
#
#   OUT=/tmp/out bash benchmarks/blender_gpu.sh            # on the GPU machine
#   mkdir -p benchmarks/.work/blender-gpu && cat OUT/blender-gpu.tgz.part-* | tar -xzf - -C benchmarks/.work/blender-gpu
#   python benchmarks/blender.py --work benchmarks/.work/blender-gpu <the same staging flags> --seeds 0 1 2 3 4
#
# The oracle pool is not generated (a CPU re-render, made locally); generator checkpoints are
# left out of the archive (only the EMA weights travel).
set -euo pipefail
: "${OUT:?set OUT}"
WORK=${WORK:-/tmp/blender-gpu}
PARTS=${PARTITIONS:-"0 1 2"}
DEVICE=${DEVICE:-cuda}
mkdir -p "$WORK"
ARGS=(--work "$WORK" --device "$DEVICE" --gen-channels 32 64 64 --gen-layers 2 --gen-batch 128
      --gen-lr 5e-4 --gen-iterations "${ITERATIONS:-20000}" --gen-deadline-s "${DEADLINE:-240}"
      --fid-n "${FID_N:-300}" --pool-size "${POOL:-500}" --select-n "${SELECT_N:-60}"
      --steps "${STEPS:-25}" --judge-images "${JUDGE:-8000}" --threads 4 --stage-only
      --arms none class union intersection both)
pids=()
for p in $PARTS; do
  python3 benchmarks/blender.py --partitions "$p" "${ARGS[@]}" > "$OUT/stage-p$p.log" 2>&1 &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
tar -C "$WORK" --exclude=checkpoint.pt -czf - . | split -b 15M - "$OUT/blender-gpu.tgz.part-"
ls -la "$OUT"
exit $rc
