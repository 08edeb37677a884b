#!/usr/bin/env bash
# Predict with a trained model: ./pykan_mit_predict.sh RUN_DIR X1 ... XN, or RUN_DIR --csv IN [--out OUT].
# Paths stay relative to the caller's directory (no cd); venv set-up messages go to stderr so
# that stdout carries only the predictions.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/venv_setup.sh" requirements.txt >&2
exec "$PY" "$here/predict.py" "$@"
