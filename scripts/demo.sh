#!/usr/bin/env bash
# The main job on the embedded default: sets up, then generates text with the
# default model, which slm trains on first use from the Debian fortunes corpus
# the set-up installs (about two minutes on 2 cores; cached in ~/.cache/slm).
# SLM_MODEL=path runs another model instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
model=()
[ -n "${SLM_MODEL:-}" ] && model=("$SLM_MODEL")
build/slm run "${model[@]}" -p "The " -n 240 --temp 0.8 --seed 42
echo
