#!/usr/bin/env bash
# The GPU check: CIFAR-10 with ResNet-18 (the paper's model and step schedule) through original, gold,
# TMU and the four baselines for two forget classes, on whatever device tmu_core picks (CUDA first).
# Prepare the data here:  python benchmarks/jpeg_pack.py pack ../shared/data/cifar10 .gpu/cifar10.npz
# Run it on the GPU machine (carry .gpu):  bash benchmarks/gpu_check.sh
# Knobs: EPOCHS (15), CLASSES ("3 8"), PER_CLASS (0 = all 5000 less the aux pool), OUT (results folder).
set -euo pipefail
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
EPOCHS=${EPOCHS:-15}
CLASSES=${CLASSES:-"3 8"}
PER_CLASS=${PER_CLASS:-0}
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export TMU_RUNS_DIR=${TMU_RUNS_DIR:-/tmp/tmu-gpu-runs}
DATA=${DATA:-/tmp/cifar10}
[ -d "$DATA/train" ] || $PY benchmarks/jpeg_pack.py unpack .gpu/cifar10.npz "$DATA"
$PY - <<'PY'
import platform, torch
from tmu_core.train import pick_device
d = pick_device()
print(f"torch {torch.__version__}  python {platform.python_version()}  picked device: {d}")
if d.type == "cuda":
    print("gpu:", torch.cuda.get_device_name(0))
PY
for c in $CLASSES; do
  start=$SECONDS
  $PY -m tmu_core run --dataset imagefolder --data-root "$DATA" --recipe paper --epochs "$EPOCHS" \
      --train-per-class "$PER_CLASS" --forget-class "$c" --forget-count 100 --seed 0 --json > "$OUT/class$c.json"
  echo "class $c: wall $((SECONDS - start)) s"
done
$PY benchmarks/gpu_summary.py "$OUT" "EPOCHS=$EPOCHS CLASSES='$CLASSES' PER_CLASS=$PER_CLASS"
