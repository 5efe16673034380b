#!/usr/bin/env bash
# Runs one end-to-end test of slm serve under Node.js:
#   tests/e2e/run.sh openai    SLM_BINARY MODEL
#   tests/e2e/run.sh chat_page SLM_BINARY MODEL SCREENSHOT.png
# Installs the npm packages of package-lock.json into tests/e2e/node_modules
# (git-ignored) on first use. Exits 77 with "SKIP: why" when Node.js, npm, the
# registry or Chromium is missing, so the calling test reports SKIPPED.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
test=$1
shift
command -v node >/dev/null || { echo "SKIP: node is not installed (apt-get install nodejs npm)"; exit 77; }
if [ ! -f "$here/node_modules/openai/package.json" ] || [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
  command -v npm >/dev/null || { echo "SKIP: npm is not installed (apt-get install npm)"; exit 77; }
  # One install at a time when tests run in parallel.
  if ! flock /tmp/slm-e2e-npm.lock sh -c "cd '$here' && { [ -f node_modules/playwright-core/package.json ] || npm ci --no-audit --no-fund >/dev/null 2>&1; }"; then
    echo "SKIP: 'npm ci' in tests/e2e failed (is the npm registry reachable?)"
    exit 77
  fi
fi
if [ "$test" = chat_page ]; then
  exe=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
  [ -n "$exe" ] || { echo "SKIP: chromium is not installed (apt-get install chromium)"; exit 77; }
  exec node "$here/chat_page.test.mjs" "$1" "$2" "$exe" "$3"
fi
exec node "$here/$test.test.mjs" "$@"
