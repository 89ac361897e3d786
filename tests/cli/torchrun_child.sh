#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The program `numafeed exec` runs in tests/cli/torchrun_exec.sh. exec
# replaces numafeed with this shell, so /proc/$$ is the very process that
# inherited the binding: its allowed CPUs, its memory policy (numa_maps
# shows the task's policy on every mapping that has none of its own) and the
# launcher's variables. One report per process, named by pid so two
# processes claiming the same LOCAL_RANK cannot hide one another.
set -eu
out=${NF_REPORT_DIR:?}/report.$$
{
    echo "local_rank=${LOCAL_RANK-unset}"
    echo "rank=${RANK-unset}"
    echo "world_size=${WORLD_SIZE-unset}"
    sed -n 's/^Cpus_allowed_list:[[:space:]]*/cpus=/p' "/proc/$$/status"
    awk 'NR == 1 { print "policy=" $2 }' "/proc/$$/numa_maps"
} >"$out.tmp"
mv "$out.tmp" "$out"
