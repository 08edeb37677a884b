#!/usr/bin/env bash
# Set up .venv/ (only when missing or requirements changed) and train:
#   ./run_pykan_mit.sh [--nproc N] [--config FILE] [--dir DIR] [--set key=value ...]
# Paths are relative to where you run it; the default run folder is data/<timestamp> here.
# --nproc N: N processes on this machine (launcher.py: torchrun's environment, gloo on the CPU /
# nccl on CUDA; Ctrl-C and a failing process end all of them, one exit code); the config and
# the data are checked once first, so a mistake is reported once, before any process starts.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/venv_setup.sh" requirements.txt >&2
if [[ "${1:-}" == "--nproc" ]]; then
    nproc="${2:?--nproc needs a number of processes}"
    shift 2
    "$PY" "$here/pykan_mit.py" --check "$@" >/dev/null
    exec "$PY" "$here/launcher.py" "$nproc" "$@"
fi
exec "$PY" "$here/pykan_mit.py" "$@"
