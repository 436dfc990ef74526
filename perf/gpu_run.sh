#!/usr/bin/env bash
# The one command for a lent GPU machine (see perf/gpu_run.py): runs the GPU steps with the machine's python3,
# or with $PYTHON. Stage first, here: python perf/gpu_stage.py; check here: PYTHON=.venv/bin/python perf/gpu_run.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -u perf/gpu_run.py "$@"
