#!/usr/bin/env bash
# Set up .venv/ (only when missing or requirements changed) and train:
#   ./run_pykan_mit.sh [--config FILE] [--dir DIR] [--set key=value ...]
# Paths are relative to where you run it; the default run folder is data/<timestamp> here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/venv_setup.sh" requirements.txt >&2
exec "$PY" "$here/pykan_mit.py" "$@"
