#!/usr/bin/env bash
# Set up .venv/ with the runtime and test requirements, check formatting and lint, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")"
source ./venv_setup.sh requirements.txt requirements-dev.txt
export MPLBACKEND=Agg
"$PY" -m ruff format --check .
"$PY" -m ruff check .
exec "$PY" -m pytest -q "$@"
