# Sourced by the project's scripts: create .venv/ when missing, and (re)install the
# requirements files given as arguments whenever one of them changed (stamp file per set).
# Usage: source venv_setup.sh requirements.txt [requirements-dev.txt ...]
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_venv="$_root/.venv"
if [ ! -x "$_venv/bin/python" ]; then
    echo "Creating virtual environment in $_venv ..."
    python3 -m venv "$_venv"
fi
_stamp="$_venv/.stamp-$(echo "$@" | tr ' /' '__')"
_want="$(cd "$_root" && cat "$@" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$_stamp" ] || [ "$(cat "$_stamp")" != "$_want" ]; then
    echo "Installing $* into $_venv ..."
    (cd "$_root" && "$_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        $(printf -- '-r %s ' "$@"))
    echo "$_want" > "$_stamp"
fi
PY="$_venv/bin/python"
