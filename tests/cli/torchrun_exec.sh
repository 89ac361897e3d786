#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# numafeed exec under torchrun, on CPU with a fixture sysfs tree:
#   torchrun --nproc_per_node 2 --no_python numafeed exec --local-rank auto -- CHILD
# Each local rank must come up bound exactly as `numafeed exec --dry-run`
# plans for that rank (allowed CPUs from the kernel, memory policy from
# numa_maps, both read by CHILD = torchrun_child.sh), the two ranks must get
# different GPUs, and a rank whose LOCAL_RANK is past CUDA_VISIBLE_DEVICES
# must fail with status 2 and a message, its command never started.
#
# Three launches:
#  dgx    the committed DGX tree with CUDA_VISIBLE_DEVICES=3,4: rank 0 gets a
#         node-0 GPU, rank 1 a node-1 GPU. Node 0's list (0-55,112-167) holds
#         this machine's CPUs and node 1's none of them, so rank 0 is bound
#         (memory to node 0) and rank 1 is launched unbound with a warning.
#  split  a copy of that tree whose nodes 0 and 1 each hold one of our CPUs,
#         so both ranks are bound, to different CPUs: the CPU binding shows,
#         not only the memory policy. Where node 1 is not a node of this
#         machine set_mempolicy refuses it; exec warns and the rank keeps the
#         default policy, which is asserted too.
#  short  CUDA_VISIBLE_DEVICES=3: one GPU for two ranks.
#
# Usage: torchrun_exec.sh NUMAFEED_CLI DGX_FIXTURE_DIR
# Exits 77 (skipped) when $NF_TORCH_PYTHON (default /usr/bin/python3, which
# has Debian's python3-torch) cannot import torch.distributed.run.
set -euo pipefail
cli=$1 dgx=$2
py=${NF_TORCH_PYTHON:-/usr/bin/python3}
child=$(cd "$(dirname "$0")" && pwd)/torchrun_child.sh
if ! "$py" -c 'import torch.distributed.run' 2>/dev/null; then
  echo "skip: $py cannot import torch.distributed.run (Debian package python3-torch)"
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/nf-torchrun.XXXXXX")
trap 'rm -rf "$work"' EXIT
# a launcher around this test (Slurm, mpirun, torchrun) must not leak in
unset LOCAL_RANK RANK WORLD_SIZE SLURM_LOCALID OMPI_COMM_WORLD_LOCAL_RANK NUMAFEED_SYSFS_ROOT

fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*/out; do
    [ -f "$f" ] && { echo "---- $f"; cat "$f"; }
  done >&2
  exit 1
}

# "0-2,5" -> "0 1 2 5 "
ids() { tr ',' '\n' <<<"$1" | awk -F- 'NF { for (i = $1; i <= (NF > 1 ? $2 : $1); i++) printf "%d ", i }'; }
# what this script (and so the launcher and its workers) inherits
self_status() { sed -n "s/^$1:[[:space:]]*//p" /proc/$$/status; }
allowed=$(ids "$(self_status Cpus_allowed_list)")
mems=" $(ids "$(self_status Mems_allowed_list)")"

launch() { # NAME CUDA_VISIBLE_DEVICES SYSFS_ROOT; sets rc
  local d=$work/$1
  mkdir -p "$d/reports" "$d/tmp"
  # Rendezvous through a FileStore in our own directory: no TCP port, so
  # parallel runs cannot meet (torch 1.13's --standalone always takes 29400).
  # --redirects 1 --tee 1: the default 0 crashes torch 1.13 under Python 3.11
  # in Std.from_str. --monitor_interval: the agent polls every 5 s otherwise.
  set +e
  TMPDIR=$d/tmp NF_REPORT_DIR=$d/reports CUDA_VISIBLE_DEVICES=$2 NUMAFEED_SYSFS_ROOT=$3 \
    timeout -k 5 60 "$py" -m torch.distributed.run --nnodes 1 --nproc_per_node 2 \
    --rdzv_backend c10d --rdzv_endpoint "$d/rdzv" --rdzv_conf store_type=file \
    --rdzv_id "nf-$1" --max_restarts 0 --monitor_interval 0.1 --log_dir "$d/logs" \
    --redirects 1 --tee 1 --no_python "$cli" exec --local-rank auto -- "$child" \
    >"$d/out" 2>&1
  rc=$?
  set -e
}

# The dry-run plan for local rank R, in the launcher's environment:
# sets BUS[R], NODE[R], CPUS[R] (a list, or "unchanged"), MEM[R].
declare -a BUS NODE CPUS MEM
plan() { # NAME CUDA_VISIBLE_DEVICES SYSFS_ROOT R
  local p re='^gpu ([0-9]+) pci_bus_id ([^ ]+) node (-?[0-9]+)( unknown)? cpus ([^ ]+) memory ([a-z]+)$'
  p=$(LOCAL_RANK=$4 CUDA_VISIBLE_DEVICES=$2 NUMAFEED_SYSFS_ROOT=$3 \
      "$cli" exec --dry-run --local-rank auto -- "$child" 2>/dev/null) ||
    fail "$1: dry run for local rank $4 failed"
  p=${p%%$'\n'*}
  [[ $p =~ $re ]] || fail "$1: dry run for local rank $4 printed '$p'"
  [ "${BASH_REMATCH[1]}" = "$4" ] || fail "$1: local rank $4 planned for GPU ${BASH_REMATCH[1]}"
  BUS[$4]=${BASH_REMATCH[2]} NODE[$4]=${BASH_REMATCH[3]} CPUS[$4]=${BASH_REMATCH[5]}
  MEM[$4]=${BASH_REMATCH[6]}
}

# Run NAME: torchrun succeeded and every rank's process holds its plan.
expect_bound() { # NAME CUDA_VISIBLE_DEVICES SYSFS_ROOT
  local name=$1 d=$work/$1 r rep n want_cpus want_policy refused=0
  [ "$rc" = 0 ] || fail "$name: torchrun exited $rc"
  n=$(find "$d/reports" -name 'report.*' ! -name '*.tmp' | wc -l)
  [ "$n" = 2 ] || fail "$name: $n children reported, expected 2"
  for r in 0 1; do
    plan "$@" "$r"
    rep=$(grep -lx "local_rank=$r" "$d"/reports/report.*) ||
      fail "$name: no child reported local_rank=$r"
    [ "$(wc -l <<<"$rep")" = 1 ] || fail "$name: several children reported local_rank=$r"
    if ! grep -qx "rank=$r" "$rep" || ! grep -qx "world_size=2" "$rep"; then
      fail "$name: local rank $r: launcher variables $(tr '\n' ' ' <"$rep")"
    fi
    # exec announced the planned GPU for this rank (one fprintf: intact even
    # when the two ranks' stderr lines interleave)
    grep -qF "GPU $r (${BUS[$r]}) node ${NODE[$r]}" "$d/out" ||
      fail "$name: exec did not announce GPU $r (${BUS[$r]}) node ${NODE[$r]}"
    if [ "${MEM[$r]}" = unchanged ]; then
      want_cpus=$allowed want_policy=default
    else
      want_cpus=$(ids "${CPUS[$r]}") want_policy=bind:${NODE[$r]}
      [ "${MEM[$r]}" = membind ] || fail "$name: local rank $r: unexpected memory '${MEM[$r]}'"
      if [[ $mems != *" ${NODE[$r]} "* ]]; then
        want_policy=default # not a node here: set_mempolicy refuses, exec warns
        refused=$((refused + 1))
      fi
    fi
    [ "$(ids "$(sed -n 's/^cpus=//p' "$rep")")" = "$want_cpus" ] ||
      fail "$name: local rank $r runs on CPUs $(sed -n 's/^cpus=//p' "$rep"), planned '$want_cpus'"
    grep -qx "policy=$want_policy" "$rep" ||
      fail "$name: local rank $r has memory $(sed -n 's/^policy=//p' "$rep"), expected $want_policy"
  done
  [ "${BUS[0]}" != "${BUS[1]}" ] || fail "$name: both local ranks got GPU ${BUS[0]}"
  n=$(grep -c 'numafeed exec: warning: set_mempolicy:' "$d/out" || true)
  [ "$n" = "$refused" ] || fail "$name: $n set_mempolicy warnings, expected $refused"
}

# dgx: the committed tree as it is
launch dgx 3,4 "$dgx"
expect_bound dgx 3,4 "$dgx"
[ "${BUS[0]} ${NODE[0]} ${BUS[1]} ${NODE[1]}" = "0000:5d:00.0 0 0000:9a:00.0 1" ] ||
  fail "dgx: ordinals 0,1 of CUDA_VISIBLE_DEVICES=3,4 are ${BUS[0]} (node ${NODE[0]}) and ${BUS[1]} (node ${NODE[1]})"
[ "${MEM[0]}" = membind ] || fail "dgx: local rank 0 (node 0, CPUs 0-55,112-167) not bound"
if [ -z "$(comm -12 <(tr ' ' '\n' <<<"$allowed" | sort) <(ids 56-111,168-223 | tr ' ' '\n' | sort))" ]; then
  [ "${MEM[1]}" = unchanged ] || fail "dgx: local rank 1 bound to node 1, which has none of our CPUs"
  grep -qF 'warning: no CPU this process may use is on that node; launching unbound' \
    "$work/dgx/out" || fail "dgx: no warning for local rank 1 launched unbound"
fi

# split: node 0 and node 1 each get one of the CPUs we may use
read -r cpu_a cpu_b _ <<<"$allowed" || true
if [ -n "${cpu_b:-}" ]; then
  split=$work/split-sysfs
  cp -R "$dgx" "$split"
  printf '%s\n' "$cpu_a" >"$split/devices/system/node/node0/cpulist"
  printf '%s\n' "$cpu_b" >"$split/devices/system/node/node1/cpulist"
  while IFS= read -r f; do # keep each device's local_cpulist its node's
    case $(cat "$(dirname "$f")/numa_node") in
      0) printf '%s\n' "$cpu_a" >"$f" ;;
      1) printf '%s\n' "$cpu_b" >"$f" ;;
    esac
  done < <(find "$split/devices" -name local_cpulist)
  launch split 3,4 "$split"
  expect_bound split 3,4 "$split"
  [ "${CPUS[0]} ${MEM[0]} ${CPUS[1]} ${MEM[1]}" = "$cpu_a membind $cpu_b membind" ] ||
    fail "split: planned CPUs ${CPUS[0]} (${MEM[0]}) and ${CPUS[1]} (${MEM[1]}), expected $cpu_a and $cpu_b"
else
  echo "note: one allowed CPU ($allowed); the split launch needs two, not run"
fi

# short: LOCAL_RANK=1 but CUDA_VISIBLE_DEVICES names one GPU
launch short 3 "$dgx"
[ "$rc" != 0 ] || fail "short: torchrun exited 0 with local rank 1 past CUDA_VISIBLE_DEVICES=3"
grep -qF 'GPU 1 is not visible (1 visible after CUDA_VISIBLE_DEVICES)' "$work/short/out" ||
  fail "short: no message naming GPU 1 and CUDA_VISIBLE_DEVICES"
# torchrun's failure table: local rank 1 exited 2 (usage), not 1 or a signal
awk '/\(local_rank: 1\)/ { f = 1; next } f && /exitcode/ { print $3; exit }' "$work/short/out" |
  grep -qx 2 || fail "short: torchrun does not report exit code 2 for local rank 1"
! grep -qx 'local_rank=1' "$work"/short/reports/report.* 2>/dev/null ||
  fail "short: local rank 1's command ran"
# the same without torchrun, with the list cut short by an index that does not exist
set +e
LOCAL_RANK=1 CUDA_VISIBLE_DEVICES=3,99 NUMAFEED_SYSFS_ROOT=$dgx NF_REPORT_DIR=$work \
  "$cli" exec --local-rank auto -- "$child" 2>"$work/cut.err"
rc=$?
set -e
[ "$rc" = 2 ] || fail "LOCAL_RANK=1 CUDA_VISIBLE_DEVICES=3,99: exit $rc, expected 2"
grep -qF 'GPU 1 is not visible' "$work/cut.err" || fail "CUDA_VISIBLE_DEVICES=3,99: no message"
echo "ok: torchrun launched 2 local ranks, each bound as its dry run planned, on different GPUs;" \
  "LOCAL_RANK past CUDA_VISIBLE_DEVICES refused with status 2"
