#!/usr/bin/env bash
# Set up and start the gateway on its embedded defaults (SQLite under ./data,
# in-process broker) with a demo tenant. Extra arguments go to `python -m gateway serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-widget.sh
exec .venv/bin/python -m gateway serve --demo "$@"
