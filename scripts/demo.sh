#!/usr/bin/env bash
# The main job on the embedded default: sets up, then generates a story.
# Runs stories260K from ../shared/data when it is there (the project's own
# trained default model arrives with `slm train`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
model=${SLM_MODEL:-../shared/data/models/stories260K/stories260K.gguf}
if [ ! -e "$model" ]; then
  echo "demo: no model at $model. slm is built (build/slm); run it on any GGUF, safetensors folder"
  echo "demo: or llama2.c .bin:  build/slm run MODEL -p \"Once upon a time\""
  exit 0
fi
build/slm run "$model" -p "Once upon a time" -n 200 --temp 0.8 --seed 42
