#!/usr/bin/env bash
# CI for integrations/node (the wsticket-node package): npm ci, typecheck,
# then the tests against a real wsticket binary. Runs from any working
# directory; needs node (>= 20), npm and redis-server (the end-to-end
# revocation test starts its own; $REDIS_SERVER_BIN names another binary).
# The wsticket binary is $WSTICKET_BIN, else the repository's
# target/debug/wsticket.
set -euo pipefail

# A relative WSTICKET_BIN is relative to the caller's directory.
if [[ -n "${WSTICKET_BIN:-}" && "$WSTICKET_BIN" != /* ]]; then
  WSTICKET_BIN="$PWD/$WSTICKET_BIN"
fi
# So is a REDIS_SERVER_BIN with a slash (a bare name is looked up in PATH).
if [[ "${REDIS_SERVER_BIN:-}" == */* && "$REDIS_SERVER_BIN" != /* ]]; then
  export REDIS_SERVER_BIN="$PWD/$REDIS_SERVER_BIN"
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export WSTICKET_BIN="${WSTICKET_BIN:-$(cd ../.. && pwd)/target/debug/wsticket}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "ci.sh: node and npm are required" >&2
  exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "ci.sh: Node.js >= 20 is required, found $(node --version)" >&2
  exit 1
fi
if ! command -v "${REDIS_SERVER_BIN:-redis-server}" >/dev/null; then
  echo "ci.sh: redis-server is required for the end-to-end revocation test (install Redis, or set REDIS_SERVER_BIN)" >&2
  exit 1
fi
if [[ ! -x "$WSTICKET_BIN" ]]; then
  echo "ci.sh: no wsticket binary at $WSTICKET_BIN (run cargo build, or set WSTICKET_BIN)" >&2
  exit 1
fi

echo "ci.sh: npm ci"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
echo "ci.sh: typecheck"
npm run --silent typecheck
echo "ci.sh: tests (wsticket: $WSTICKET_BIN)"
npm test --silent
