#!/usr/bin/env bash
# The prepared GPU check of issue 18, one run on one H100/H200-class GPU in at most 10 minutes, offline:
# the CUDA tests, `graphdel demo` on drugs (default recipe, every method) with its wall time, Retrain vs
# MultiDelete wall time, training throughput (pairs/s) and peak GPU memory, and the bf16-autocast vs fp32
# metric difference of the demo's trained model. One JSON line per step on stdout (bench/gpu.py says what
# each holds); progress and the tests' output on stderr.
#
#   bash bench/gpu.sh                          # on the GPU machine, from the repository root
#   bash bench/gpu.sh --device cpu --quick     # the dry run on a CPU (about 4 minutes): checks the script
#   bash bench/gpu.sh --skip tests,bf16        # leave steps out
#
# Python: the active virtual environment's, else .venv/bin/python, else python3 (override with PYTHON=...).
# On the lent GPU machine (no network, 64 MiB a call), bench/gpu_kit.py brings the wheels its image lacks
# in three calls and prints them; the last one runs this script.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
    py="$PYTHON"
elif [ -n "${VIRTUAL_ENV:-}" ]; then
    py="$VIRTUAL_ENV/bin/python"
elif [ -x .venv/bin/python ]; then
    py=.venv/bin/python
else
    py=python3
fi
exec "$py" bench/gpu.py "$@"
