#!/usr/bin/env bash
# Predict with a trained model (same arguments as pykan_mit_predict.sh): ./run_predict.sh RUN_DIR X1 ... XN
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/pykan_mit_predict.sh" "$@"
