#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (tests that need ../shared/data
# report SKIPPED when it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build && ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)"
