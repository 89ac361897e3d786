#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# bench/plots.py draws every result under docs/results that the docs plot
# (gpu_bench, multi_gpu and train_jpeg JSON) and prints their tables.
# Skips (77) where /usr/bin/python3 has no matplotlib.
set -eu
src=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
py=/usr/bin/python3
$py -c 'import matplotlib' 2>/dev/null || { echo "no matplotlib: skipped"; exit 77; }
n=0
for f in "$src"/docs/results/gpu-bench-*.json "$src"/docs/results/multi-gpu-*.json \
         "$src"/docs/results/jpeg-*.json; do
  [ -e "$f" ] || continue
  case $(basename "$f") in
    gpu-bench-*) opt=--gpu-bench png=throughput.png ;;
    multi-gpu-*) opt=--multi-gpu png=scaling.png ;;
    *) opt=--jpeg png=jpeg.png ;;
  esac
  rm -f "$out/$png"
  $py "$src/bench/plots.py" "$opt" "$f" --out "$out" --tables > "$out/tables.md"
  [ -s "$out/$png" ] || { echo "FAIL: $f gave no $png"; exit 1; }
  case $opt in
    --gpu-bench) grep -q '^| images-raw |' "$out/tables.md" || { echo "FAIL: $f: no table"; exit 1; } ;;
    --jpeg) grep -q 'DataLoader' "$out/tables.md" || { echo "FAIL: $f: no table"; exit 1; } ;;
  esac
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no results to plot under $src/docs/results"; exit 1; }
echo "plotted $n results"
