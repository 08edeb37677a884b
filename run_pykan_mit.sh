#!/usr/bin/env bash
# Set up .venv/ (only when missing or requirements changed) and train: ./run_pykan_mit.sh [--config FILE] [--dir DIR] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")"
source ./venv_setup.sh requirements.txt
exec "$PY" pykan_mit.py "$@"
