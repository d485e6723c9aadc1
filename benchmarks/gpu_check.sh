#!/usr/bin/env bash
# One device check for a lent GPU machine; run from the repository root:
#   bash benchmarks/gpu_check.sh            # one GPU, under 8 minutes, JSON + md in $OUT
#   bash benchmarks/gpu_check.sh --quick    # tiny sizes, any machine (the CPU too)
# Nothing is installed or downloaded; the package need not be installed (PYTHONPATH=.).
# 1. benchmarks/gpu_check.py: members/s against a Python loop of one jitted step at
#    M = 1 ... 4,096 for softmax, MLP and CNN, the ASHA width chosen, the default flow's
#    wall -> $OUT/throughput-<backend>.{json,md}
# 2. benchmarks/bench_gpu.py: softmax members/s up to 65,536 against one member after
#    another, and the float32 matmul rate -> $OUT/gpu-check.json
# Each stops starting work at its deadline and writes its JSON after every row; the
# outer timeouts are only a backstop (partial JSON stays valid).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-benchmarks/results}"
export OUT
mkdir -p "$OUT"
QUICK=()
if [[ "${1:-}" == "--quick" || -n "${SWEEPJAX_GPU_CHECK_QUICK:-}" ]]; then
  QUICK=(--quick)
  export SWEEPJAX_GPU_CHECK_QUICK=1
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
python -c "import jax; print('jax', jax.__version__, jax.devices())"
status=0
timeout 300 python benchmarks/gpu_check.py "${QUICK[@]}" --out "$OUT" --deadline-s 270 || status=$?
timeout 170 python benchmarks/bench_gpu.py --out "$OUT" --deadline-s 150 || status=$?
echo "results in $OUT"
exit "$status"
