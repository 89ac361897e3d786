#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The CI cases of the multi-node kernel test, one after another (they share
# one static build): 2 nodes, an asymmetric 3-node machine, and 2 nodes under
# an inherited cpuset that excludes part of node 0.
set -euo pipefail
src=$1 work=$2
here=$(dirname "$0")
rc=0
for c in "0-1:2-3" "0:1-2:3" "0-1:2-3 0,2,3"; do
  # shellcheck disable=SC2086
  "$here/run.sh" "$src" "$work" $c || rc=$?
  [ "$rc" = 77 ] && exit 77
  [ "$rc" = 0 ] || exit "$rc"
done
