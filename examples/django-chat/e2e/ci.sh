#!/usr/bin/env bash
# Real-browser end-to-end test of the Django chat example, for CI and by hand:
#
#   examples/django-chat/e2e/ci.sh          (from any directory)
#
# Installs what it needs, when missing: Debian's chromium (apt-get, with sudo
# when not root), the example's venv (../setup-venv), playwright-core from the
# committed package-lock.json (npm ci; it never downloads a browser). Then
# chat.e2e.mjs starts wsticket ($WSTICKET_BIN, else target/debug/wsticket of
# this checkout; never built here) and daphne on free loopback ports, drives
# headless Chromium, and stops everything. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
example="$(cd "$here/.." && pwd)"
repo="$(cd "$example/../.." && pwd)"
SECONDS=0

die() { echo "e2e/ci.sh: $*" >&2; exit 1; }

# --- Chromium: Debian's package, never a downloaded browser -----------------------
chromium="${E2E_CHROMIUM:-$(command -v chromium || true)}"
if [[ -z "$chromium" ]]; then
    command -v apt-get >/dev/null || die "needs Chromium: install your distribution's chromium package (or set E2E_CHROMIUM)"
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null || die "needs Chromium: run 'apt-get install -y chromium' as root"
        sudo=(sudo)
    fi
    echo "e2e/ci.sh: installing chromium with apt-get" >&2
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    chromium="$(command -v chromium)" || die "apt-get installed chromium, but there is no chromium command"
fi

# --- Node and playwright-core ------------------------------------------------------
command -v node >/dev/null || die "needs Node.js 20 or newer (and npm)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    die "needs Node.js 20 or newer, not $(node --version)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# --- Python: the example's venv ------------------------------------------------------
python="$("$example/setup-venv")"

# --- wsticket ----------------------------------------------------------------------
bin="${WSTICKET_BIN:-$repo/target/debug/wsticket}"
[[ -x "$bin" ]] || die "no wsticket binary at $bin: build it (cargo build) or set WSTICKET_BIN"

echo "e2e/ci.sh: ready in ${SECONDS}s ($("$chromium" --version 2>/dev/null | head -n1), node $(node --version), wsticket $bin)"
cd "$here"
status=0
E2E_PYTHON="$python" E2E_CHROMIUM="$chromium" WSTICKET_BIN="$bin" node chat.e2e.mjs || status=$?
echo "e2e/ci.sh: finished in ${SECONDS}s"
exit "$status"
