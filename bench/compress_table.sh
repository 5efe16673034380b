#!/bin/bash
# The README's compression table: perplexity on held-out text and file size of
# a GGUF model quantized (GGUF types with RTN, GPTQ, AWQ; Q4_K, Q3_K, Q2_K
# with RTN and imatrix; int4 per row with RTN, GPTQ, AWQ) and pruned (magnitude, Wanda,
# SparseGPT; 50% unstructured and 2:4; 25% of the feed-forward channels, heads
# or layers), one markdown row each. The k-quant rows only where some matrix
# takes them (rows of whole 256-blocks).
# Usage: bench/compress_table.sh MODEL.gguf CALIB.txt TEST.txt CTX [QUANTIZE FLAGS, e.g. --keep token_embd output.]
# Env: SLM (default build/slm), OUT (default /tmp/slm-compress), THREADS (default 2),
#      ROWS (default "gguf kquant int4 prune structured": the groups of rows to run; F32 always).
set -euo pipefail
cd "$(dirname "$0")/.."
slm=${SLM:-build/slm}; out=${OUT:-/tmp/slm-compress}; t=${THREADS:-2}
rows=" ${ROWS:-gguf kquant int4 prune structured} "
model=$1; calib=$2; test=$3; ctx=$4; shift 4
mkdir -p "$out"
f32=""
row() {  # name file log
  local ppl size err
  ppl=$("$slm" eval "$2" --ppl "$test" --ctx "$ctx" -t "$t" 2>/dev/null | tail -1 | sed 's/ppl=//')
  size=$(stat -c %s "$2")
  [ -z "$f32" ] && f32=${ppl%% *}
  err=$( [ -n "$3" ] && sed -n 's/.*over [0-9]* matrices: \([0-9.e+-]*\).*/\1/p' "$3" || true)
  printf '| %s | %.2f MiB | %s | %+.2f%% | %s |\n' "$1" "$(echo "$size / 1048576" | bc -l)" "$ppl" \
    "$(echo "(${ppl%% *} / $f32 - 1) * 100" | bc -l)" "${err:--}"
}
echo "| model | size | ppl | vs F32 | mean layer output error |"
echo "| --- | --- | --- | --- | --- |"
row F32 "$model" ""
quantize() {  # name file quantize-flags...
  local name=$1 file=$2; shift 2
  "$slm" quantize "$model" "$@" --out "$file" -t "$t" > "$file.log" 2>&1
  row "$name" "$file" "$file.log"
}
if [[ $rows == *" gguf "* ]]; then
  for type in Q8_0 Q5_0 Q4_0; do
    for m in rtn gptq "gptq --act-order" awq; do
      quantize "$type $m" "$out/$type-${m// /}.gguf" --type $type --method $m --calib "$calib" "$@"
    done
  done
fi
if [[ $rows == *" kquant "* ]]; then
  for type in Q4_K Q3_K Q2_K; do
    for m in rtn imatrix; do
      file="$out/$type-$m.gguf"
      if "$slm" quantize "$model" --type $type --method $m --calib "$calib" "$@" --out "$file" -t "$t" > "$file.log" 2>&1; then
        row "$type $m" "$file" "$file.log"
      else
        echo "| $type $m | no matrix has rows of whole 256-blocks | | | |"
      fi
    done
  done
fi
if [[ $rows == *" int4 "* ]]; then
  for m in rtn gptq "gptq --act-order" awq; do
    quantize "int4 per row $m" "$out/int4-row-${m// /}.gguf" --type int4 --group 0 --method $m --calib "$calib" "$@"
  done
fi
for pattern in "" "--pattern 2:4"; do
  [[ $rows == *" prune "* ]] || break
  for m in magnitude wanda sparsegpt; do
    name="$m ${pattern:+2:4}"; [ -z "$pattern" ] && name="$m 50%"; file="$out/prune-$m${pattern:+-24}.gguf"
    "$slm" prune "$model" --method $m --sparsity 0.5 $pattern --calib "$calib" --out "$file" -t "$t" > "$file.log" 2>&1
    row "$name" "$file" "$file.log"
  done
done
for m in ffn heads layers; do
  [[ $rows == *" structured "* ]] || break
  file="$out/prune-$m-25.gguf"
  "$slm" prune "$model" --method $m --sparsity 0.25 --calib "$calib" --out "$file" -t "$t" > "$file.log" 2>&1
  row "$m -25% (structured)" "$file" ""
done
