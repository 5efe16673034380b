#!/usr/bin/env bash
# Installs the Debian packages slm needs (quick when they are already there)
# and builds slm into build/. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake make pkg-config            # the toolchain
  libgtest-dev libgmock-dev            # tests
  libfmt-dev nlohmann-json3-dev libcli11-dev  # formatting, JSON, the command line
  libpcre2-dev                         # Unicode-aware pre-tokenizer regexes
  libbz2-dev                           # reading eval sets as shipped (HellaSwag .txt.bz2)
  libcpp-httplib-dev                   # HTTP server for slm serve (OpenAI-compatible API)
  libopenblas-openmp-dev               # GEMM for training (OpenMP build: one thread runtime)
  fortunes                             # the corpus the default model is trained on
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# For the end-to-end tests of slm serve (tests/e2e; they skip without these).
# By command, not package: a Node.js from elsewhere (NodeSource) brings its own npm.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"

# The npm packages of tests/e2e (package-lock.json) into its git-ignored node_modules.
if command -v npm >/dev/null && [ ! -f tests/e2e/node_modules/playwright-core/package.json ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    echo "setup: 'npm ci' in tests/e2e failed; the end-to-end tests of slm serve will skip"
fi
