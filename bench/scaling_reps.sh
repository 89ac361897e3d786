#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Scaling with repetitions: one process serving 1, 2, ... GPUs (one pool
# each, T worker threads per pool), interleaved with the host's own rate at
# the same thread totals, R times, so that the spread between runs on a
# shared machine is seen next to the ratios it would distort.
#
#   bench/scaling_reps.sh BIN DATASET BATCH T EPOCHS_PER_GPU R COUNTS CEILING
#
# COUNTS: GPU counts, e.g. "1 2 4"; each run takes EPOCHS_PER_GPU x count
# epochs, so runs last about as long at every count. CEILING: "zstd" (bare
# decode of DATASET's blocks without zstd's frame checksum, as numafeed's
# readers) or "memcpy" (64 MiB buffers per thread). Prints one line per run:
#   rep R gpus K threads N gbps X        (numafeed, K GPUs, N = K x T threads)
#   rep R ceiling NAME threads N gbps X  (the host at N threads)
set -eu
[ $# -eq 8 ] || { sed -n '3,15p' "$0" >&2; exit 2; }
bin=$1 ds=$2 batch=$3 t=$4 epg=$5 reps=$6 counts=$7 ceil=$8
nf="$bin/src/cli/numafeed"
gc="$bin/bench/gpu_ceiling"
r=1
while [ "$r" -le "$reps" ]; do
    for k in $counts; do
        gpus=$(seq -s, 0 $((k - 1)))
        gbps=$("$nf" bench "$ds" --gpus "$gpus" --epochs $((epg * k)) --batch-size "$batch" \
            --threads "$t" | sed -n 's/^total: .*: \([0-9.]*\) GB\/s.*/\1/p')
        echo "rep $r gpus $k threads $((k * t)) gbps $gbps"
    done
    for k in $counts; do
        n=$((k * t))
        if [ "$ceil" = zstd ]; then
            g=$("$gc" zstd "$ds" "$n" 2 nocheck | awk '{print $NF}')
        else
            g=$("$gc" memcpy "$n" 64 2 | awk '{print $NF}')
        fi
        echo "rep $r ceiling $ceil threads $n gbps $g"
    done
    r=$((r + 1))
done
