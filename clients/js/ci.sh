#!/usr/bin/env bash
# CI for the browser client: install the locked dev dependencies, then
# type-check and test. Works from any directory; exits non-zero on failure.
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")"

npm ci --no-audit --no-fund --loglevel=error >/dev/null
npm run --silent typecheck
npm test
