#!/usr/bin/env bash
# Set up and run the whole test suite: lint, types, unit, contract (SQLite, PostgreSQL,
# in-process broker, Redis), integration (real server, real Python and Node clients),
# browser (Debian chromium). scripts/services.sh first installs the Debian packages the
# tests need when they are missing (chromium, age, nodejs, npm) and starts PostgreSQL
# (127.0.0.1:5432, database `test`, trust auth) and Redis (127.0.0.1:6379) when they are
# not running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/setup.sh --dev
if [ -f tests/node/package.json ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
echo "== widget"; bash scripts/build-widget.sh
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider "$@"
