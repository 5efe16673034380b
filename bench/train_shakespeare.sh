#!/usr/bin/env bash
# nanoGPT's CPU recipe on Tiny Shakespeare, with slm's Llama block (issue 4):
# 4 layers, 4 heads, width 128, context 64, batch 12, 2000 steps, lr 1e-3 with
# 100 warmup steps and cosine decay to 1e-4, AdamW (beta2 0.99, weight decay
# 0.1), gradient clipping at 1, no dropout; byte-level vocabulary; the first
# 90% of input.txt trains, the last 10% validates. The SwiGLU width 352 keeps
# the parameter count at nanoGPT's (0.8M in the blocks).
# nanoGPT reaches a validation loss of about 1.88; PyTorch runs it here at about
# 1,240 tokens/s. Last line: val_loss=X tokens_per_s=Y.
# Usage: bench/train_shakespeare.sh [extra slm train flags, e.g. --bf16 or -t 1]
# Env: DIM, FFN (default 128, 352). The compression tables' wider model, whose
# rows every k-quant block divides: DIM=256 FFN=768 (3.5M parameters).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/slm ] || scripts/setup.sh
data=../shared/data/corpora/tinyshakespeare/input.txt
[ -f "$data" ] || { echo "missing $data (../shared/data is absent)"; exit 1; }
out=${SLM_TRAIN_OUT:-/tmp/slm-shakespeare}
rm -rf "$out"
result=$(build/slm train --data "$data" --out "$out" --tokenizer byte \
  --dim "${DIM:-128}" --layers 4 --heads 4 --ffn "${FFN:-352}" --seq 64 --batch 12 --steps 2000 \
  --lr 1e-3 --min-lr 1e-4 --warmup 100 --schedule cosine --beta2 0.99 --weight-decay 0.1 --clip 1 \
  --eval-every 250 --eval-batches 200 --ckpt-every 2000 --seed 1337 "$@")
echo "$result" >&2
echo "curve: $out/loss.csv, $out/loss.svg; model: $out/model.gguf" >&2
echo "$result" | sed -n 's/.*\(val_loss=[0-9.]*\) \(tokens_per_s=[0-9]*\).*/\1 \2/p'
