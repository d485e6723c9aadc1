#!/usr/bin/env bash
# One device check for a lent GPU machine; run from the repository root:
#   bash benchmarks/gpu_check.sh                              # ~5 min, writes $OUT/gpu-check.json
#   SWEEPJAX_GPU_CHECK_QUICK=1 bash benchmarks/gpu_check.sh   # tiny sizes, any machine
# The package need not be installed (PYTHONPATH=.); nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-benchmarks/results}"
export OUT
mkdir -p "$OUT"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
python -c "import jax; print('jax', jax.__version__, jax.devices())"
# bench_gpu.py stops starting sizes after --deadline-s and writes JSON after every size;
# the outer timeout is only a backstop (its partial JSON stays valid).
timeout 350 python benchmarks/bench_gpu.py --out "$OUT" --deadline-s 290
echo "results in $OUT"
