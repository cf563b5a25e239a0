#!/usr/bin/env bash
# Lint, type-check and test wsticket-channels in a virtualenv of its own.
#
#   integrations/django-channels/ci.sh          (from any directory)
#
# Needs python3 (3.11 or newer, with the venv module), redis-server on PATH (for
# the end-to-end revocation test) and a built wsticket: $WSTICKET_BIN, else
# target/debug/wsticket of this repository. The venv lives
# in ${TMPDIR:-/tmp}/wsticket-channels-venv and is reused from run to run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${TMPDIR:-/tmp}/wsticket-channels-venv"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "ci.sh: needs Python 3.11 or newer (tried: $python; set PYTHON to another)" >&2
    exit 1
fi

# Reuse the venv only if it still works and has the same Python.
want="$("$python" -c 'import sys; print(sys.version_info[:2])')"
have="$("$venv/bin/python" -c 'import pip, sys; print(sys.version_info[:2])' 2>/dev/null || true)"
if [[ "$have" != "$want" ]]; then
    rm -rf "$venv"
    if ! "$python" -m venv "$venv"; then
        echo "ci.sh: '$python -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 1
    fi
fi

# The package itself (not editable: this checks the packaging, py.typed included)
# with its pinned test and lint tools; pip rebuilds a local directory every time.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here[test,lint]"

cd "$here"
echo "== ruff check"
"$venv/bin/ruff" check .
echo "== ruff format --check"
"$venv/bin/ruff" format --check .
echo "== mypy --strict"
"$venv/bin/mypy" --strict src/wsticket_channels tests
echo "== pytest (wsticket: ${WSTICKET_BIN:-$here/../../target/debug/wsticket})"
"$venv/bin/python" -m pytest -q
