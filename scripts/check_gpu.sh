#!/usr/bin/env bash
# make check-gpu: every check that needs a GPU, as one script (about 5 minutes on one GPU; each part is
# time-boxed so the whole stays under 10). Run on a machine whose PyTorch sees a CUDA device:
#   make check-gpu                      (the venv's torch must be a CUDA build: make install TORCH_SPEC=torch)
#   BIN=/usr/bin bash scripts/check_gpu.sh   (a Python that already has torch with CUDA and jko-flow installed)
# Writes its logs and bench.json under ${OUT:-outputs/check-gpu}.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-outputs/check-gpu}
mkdir -p "$OUT"
status=0

"$BIN/python" - <<'PY' || exit 2
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"check-gpu: torch {torch.__version__} sees no CUDA device (a CPU build, or no GPU here); "
             "on a GPU machine: make install TORCH_SPEC=torch")
print(f"check-gpu: torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY

echo "== tests marked cuda (trainer.device=cuda) =="
timeout 300 "$BIN/python" -m pytest -q -m cuda tests -p no:cacheprovider 2>&1 | tee "$OUT/tests.log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 5 ] && echo "check-gpu: no cuda test was collected" && rc=1
[ "$rc" -ne 0 ] && status=1

echo "== make bench DEVICE=cuda =="
timeout 300 "$BIN/python" -m jko_cli.bench --device cuda --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
[ "${PIPESTATUS[0]}" -ne 0 ] && status=1

echo "check-gpu: $([ $status -eq 0 ] && echo passed || echo FAILED) (logs in $OUT)"
exit $status
