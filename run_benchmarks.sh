#!/usr/bin/env bash
# Set up .venv/ with the project, test and peer requirements, then run a benchmark:
#   ./run_benchmarks.sh speed [options]   training-step time and memory beside the peers
#   ./run_benchmarks.sh toys [options]    the KAN paper's toy functions, test RMSE per grid size
#   ./run_benchmarks.sh memory [options]  the memory estimate against the peak RSS of real runs
#   ./run_benchmarks.sh formulas [options] ten physics laws from CSV files: formula recovered?
#   ./run_benchmarks.sh classification [options]  iris, breast cancer, two moons: KAN beside an MLP
#   ./run_benchmarks.sh seeds [options]   a paper toy's minimal network for seeds 0-9; recipe defaults
# Pass --help after the name for its options. Results: printed, and under benchmarks/results/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in
    speed) script=bench_speed.py ;;
    toys) script=paper_toys.py ;;
    memory) script=bench_memory.py ;;
    formulas) script=formula_laws.py ;;
    classification) script=bench_classification.py ;;
    seeds) script=seed_sweep.py ;;
    *)
        echo "usage: ./run_benchmarks.sh speed|toys|memory|formulas|classification|seeds [options]" >&2
        exit 2
        ;;
esac
shift
source "$here/venv_setup.sh" requirements.txt requirements-dev.txt benchmarks/requirements.txt >&2
exec "$PY" "$here/benchmarks/$script" "$@"
