#!/usr/bin/env bash
# The gateway configurations of docs/gateways.md, tested against the real
# nginx and Caddy: a WebSocket client, through each proxy, to an echo app
# that knows nothing of wsticket, with a real wsticket doing the checks.
#
#   integrations/gateways/ci.sh          (from any directory)
#
# Needs python3 (3.11 or newer, with the venv module), nginx (with
# auth_request) and caddy; installs the last two with apt-get when they are
# missing (sudo when not root). The wsticket binary is $WSTICKET_BIN, else
# target/debug/wsticket of this repository. The venv lives in
# ${TMPDIR:-/tmp}/wsticket-gateways-venv and is reused from run to run.
# Extra arguments go to pytest (e.g. -k caddy).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${TMPDIR:-/tmp}/wsticket-gateways-venv"
python="${PYTHON:-python3}"

# A relative WSTICKET_BIN is relative to the caller's directory.
if [[ -n "${WSTICKET_BIN:-}" && "$WSTICKET_BIN" != /* ]]; then
    WSTICKET_BIN="$PWD/$WSTICKET_BIN"
fi
export WSTICKET_BIN="${WSTICKET_BIN:-$(cd "$here/../.." && pwd)/target/debug/wsticket}"
if [[ ! -x "$WSTICKET_BIN" ]]; then
    echo "ci.sh: no wsticket binary at $WSTICKET_BIN (run cargo build, or set WSTICKET_BIN)" >&2
    exit 1
fi

# nginx lives in /usr/sbin, which a non-root PATH may lack.
find_tool() { command -v "$1" 2>/dev/null || { [[ -x "/usr/sbin/$1" ]] && echo "/usr/sbin/$1"; } || true; }
need=()
[[ -n "${NGINX_BIN:-}" || -n "$(find_tool nginx)" ]] || need+=(nginx)
[[ -n "${CADDY_BIN:-}" || -n "$(find_tool caddy)" ]] || need+=(caddy)
if ((${#need[@]})); then
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    if ! command -v apt-get >/dev/null 2>&1 || { ((${#sudo[@]})) && ! sudo -n true 2>/dev/null; }; then
        echo "ci.sh: missing ${need[*]}; install them, then run ci.sh again:" >&2
        echo "  sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
        exit 2
    fi
    echo "ci.sh: installing ${need[*]} with apt-get" >&2
    "${sudo[@]}" apt-get update -qq || echo "ci.sh: apt-get update failed; trying the install anyway" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX_BIN="${NGINX_BIN:-$(find_tool nginx)}"
CADDY_BIN="${CADDY_BIN:-$(find_tool caddy)}"
export NGINX_BIN CADDY_BIN
if ! "$NGINX_BIN" -V 2>&1 | grep -q -- --with-http_auth_request_module; then
    echo "ci.sh: $NGINX_BIN has no auth_request module (Debian's nginx package has it)" >&2
    exit 1
fi

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
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

cd "$here"
echo "== ruff check"
"$venv/bin/ruff" check .
echo "== ruff format --check"
"$venv/bin/ruff" format --check .
echo "== mypy --strict"
"$venv/bin/mypy" --strict .
echo "== pytest (wsticket: $WSTICKET_BIN; $("$NGINX_BIN" -v 2>&1); caddy $("$CADDY_BIN" version | cut -d' ' -f1))"
"$venv/bin/python" -m pytest -q "$@"
