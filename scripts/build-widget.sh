#!/usr/bin/env bash
# Build the widget and the agent console (widget/dist) with npm's esbuild, only when
# widget/dist is missing or older than the sources / lockfile. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/../widget"
stamp=dist/.built
if [ -f "$stamp" ] && [ -z "$(find src build.mjs package.json package-lock.json -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "widget: npm not found; install Node.js 18+ to build widget/dist" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
npm run --silent build
touch "$stamp"
