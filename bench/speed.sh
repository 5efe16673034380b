#!/usr/bin/env bash
# Speed table: slm bench on synthetic models of the 110m and tinyllama-1.1b
# shapes in F32, F16, Q8_0, Q4_K and Q4_0 (the last three also with --repack),
# 2 threads, next to llama.cpp's numbers measured on this kind of machine
# (issue 3). Prints a markdown table.
# Models are generated once into $SLM_BENCH_MODELS (default /tmp/slm-bench-models;
# the F32 tinyllama is 4.4 GB). Takes about 20 minutes.
# Usage: bench/speed.sh [shape ...]   (shapes: 110m tinyllama-1.1b)
# SLM_BIN=path runs another slm binary (default build/slm).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/slm ] || scripts/setup.sh
slm=${SLM_BIN:-build/slm}
dir=${SLM_BENCH_MODELS:-/tmp/slm-bench-models}
mkdir -p "$dir"
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(110m tinyllama-1.1b)

# llama.cpp (early-2025 build) on this machine kind, 2 threads: "tg pp", "-" = not given.
ref() {
  case "$1/$2" in
    tinyllama-1.1b/Q4_0) echo "51 196" ;;  tinyllama-1.1b/Q8_0) echo "29 114" ;;
    tinyllama-1.1b/F16) echo "17.7 151" ;; tinyllama-1.1b/F32) echo "7.7 108" ;;
    110m/Q4_0) echo "286 -" ;;             110m/Q8_0) echo "181 -" ;;
    110m/F32) echo "86 -" ;;               *) echo "- -" ;;
  esac
}

echo "| shape | type | slm tg tok/s | llama.cpp tg | slm pp tok/s | llama.cpp pp | tg GB/s | % of read bandwidth | peak RSS MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for shape in "${shapes[@]}"; do
  for variant in Q4_0 Q4_0+repack Q4_K Q4_K+repack Q8_0 Q8_0+repack F16 F32; do
    type=${variant%+repack}
    flags=()
    [ "$variant" = "$type" ] || flags=(--repack)
    model="$dir/$shape-$type.gguf"
    [ -f "$model" ] || "$slm" gen-model --preset "$shape" --type "$type" --out "$model" 2>/dev/null
    json=$("$slm" bench "$model" -t 2 -p 128 -n 64 --reps 3 --kv-type f16 "${flags[@]}" --json 2>/dev/null)
    read -r ref_tg ref_pp <<<"$(ref "$shape" "$type")"
    python3 - "$shape" "${type}${flags:+ ${flags[*]}}" "$ref_tg" "$ref_pp" "$json" <<'PY'
import json, sys
shape, typ, rtg, rpp, j = sys.argv[1:6]
r = json.loads(j)
print(f"| {shape} | {typ} | {r['tg_tps']:.1f} | {rtg} | {r['pp_tps']:.1f} | {rpp} | {r['tg_gbps']:.1f} | "
      f"{100 * r['tg_vs_read']:.0f}% of {r['read_gbps']:.1f} | {r['peak_rss_mib']:.0f} |")
PY
  done
done
