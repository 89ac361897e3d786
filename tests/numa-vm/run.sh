#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The multi-node kernel test: boot Debian's cloud kernel under QEMU with an
# emulated NUMA topology, run a statically linked numafeed in it (one host
# pool per node) and have the kernel say where its threads and pages are.
#
#   tests/numa-vm/run.sh SRC_DIR WORK_DIR NODE_CPUS [TASKSET]
#     NODE_CPUS: CPUs per node separated by ':', e.g. 0-1:2-3 or 0:1-2:3
#     TASKSET:   optional CPU list to run the check under (an inherited cpuset)
# Exit 0 when the in-VM report says ok; 77 (skip) without qemu or a kernel.
set -euo pipefail
src=$1 work=$2 spec=$3 tset=${4:-}
kernel=$(ls /boot/vmlinuz-*cloud-amd64 2>/dev/null | sort -V | tail -n 1 || true)
if ! command -v qemu-system-x86_64 >/dev/null || [ -z "$kernel" ] || ! command -v busybox >/dev/null; then
  echo "numa-vm: qemu-system-x86, linux-image-cloud-amd64 or busybox-static missing: skipped"
  exit 77
fi
mkdir -p "$work"
bin=$work/bin
# 1. a host-only static build (the VM has no GPU and no shared libraries)
#    (the library build is incremental; the two links follow any change)
[ -f "$work/build/build.ninja" ] ||
  cmake -S "$src" -B "$work/build" -G Ninja -DNUMAFEED_CUDA=OFF -DNUMAFEED_BUILD_TESTS=OFF \
        -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS=-DNUMAFEED_NO_XXH_DISPATCH >/dev/null
cmake --build "$work/build" --target numafeed_static >/dev/null
if [ ! -x "$bin/vm_check" ] || [ "$src/tests/numa-vm/vm_check.c" -nt "$bin/vm_check" ] ||
   [ "$work/build/libnumafeed.a" -nt "$bin/vm_check" ]; then
  mkdir -p "$bin"
  libs="$work/build/libnumafeed.a -lnuma -luring -lzstd -lxxhash -ljansson -lpthread"
  cc -static -O2 -Wno-unused-result -I"$src/include" -I"$work/build/include" -I"$src/src" \
     "$src/tests/numa-vm/vm_check.c" \
     -o "$bin/vm_check" $libs
  cc -static -O2 -D_GNU_SOURCE -I"$src/include" -I"$work/build/include" -I"$src/src" \
     "$src"/src/cli/*.c -o "$bin/numafeed" $libs
fi
# 2. a small dataset and its raw records (zstd, several shards and blocks)
if [ ! -f "$work/data/ds/manifest.json" ]; then
  mkdir -p "$work/data"
  head -c $((1000 * 1024)) /dev/urandom | od -An -v -tu1 | tr -s ' ' '\n' | head -c 1024000 \
    > "$work/data/raw.bin" || true
  truncate -s $((1000 * 1024)) "$work/data/raw.bin"
  "$bin/numafeed" pack --quiet --out "$work/data/ds" --record-bytes 1024 --block-bytes 16K \
    --shard-bytes 256K "$work/data/raw.bin"
fi
# 3. the initramfs: busybox, the binaries, the data, and an init that checks
root=$work/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,proc,sys,tmp,data}
cp "$(command -v busybox)" "$root/bin/busybox"
for a in sh mount poweroff cat echo taskset sleep grep head; do ln -sf busybox "$root/bin/$a"; done
cp "$bin/vm_check" "$bin/numafeed" "$root/bin/"
cp -r "$work/data/ds" "$work/data/raw.bin" "$root/data/"
# a GPU on the last node, for numafeed exec: the VM's own nodes, plus one
# PCI device whose numa_node names the last of them
fx=$root/fx
IFS=':' read -r -a fxnodes <<< "$spec"
last_node=$((${#fxnodes[@]} - 1))
mkdir -p "$fx/devices/system/node" "$fx/bus/pci/devices/0000:3b:00.0"
echo "0-$last_node" > "$fx/devices/system/node/online"
for i in "${!fxnodes[@]}"; do
  mkdir -p "$fx/devices/system/node/node$i"
  echo "${fxnodes[$i]}" > "$fx/devices/system/node/node$i/cpulist"
done
echo 0x10de > "$fx/bus/pci/devices/0000:3b:00.0/vendor"
echo 0x030200 > "$fx/bus/pci/devices/0000:3b:00.0/class"
echo "$last_node" > "$fx/bus/pci/devices/0000:3b:00.0/numa_node"
cat > "$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
# a line break first: the console has the firmware's screen-clearing escapes
# and no newline before init's first line, and the markers below are matched
# as whole lines
echo
echo "NUMAFEED-TOPO"
/bin/numafeed topo --json
if [ -n "$tset" ]; then
  taskset -c $tset /bin/vm_check /data/ds /data/raw.bin > /tmp/report
else
  /bin/vm_check /data/ds /data/raw.bin > /tmp/report
fi
echo "NUMAFEED-RC \$?"
LOCAL_RANK=0 /bin/numafeed exec --sysfs-root /fx -- /bin/sh -c \
  'grep Cpus_allowed_list /proc/self/status; grep -m1 -o "bind:[0-9]*" /proc/self/numa_maps' \
  > /tmp/exec 2>&1
echo "NUMAFEED-EXEC"
cat /tmp/exec
echo "NUMAFEED-EXEC-END"
echo "NUMAFEED-REPORT"
cat /tmp/report
echo "NUMAFEED-MEMFREE"
grep -h MemFree /sys/devices/system/node/node*/meminfo
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.cpio.gz"
# 4. the machine: one memory backend and a CPU range per node
IFS=':' read -r -a nodes <<< "$spec"
args=() ncpu=0 n=0
for cpus in "${nodes[@]}"; do
  args+=(-object "memory-backend-ram,id=m$n,size=256M" -numa "node,nodeid=$n,cpus=$cpus,memdev=m$n")
  last=${cpus##*-}; last=${last##*,}
  [ $((last + 1)) -gt $ncpu ] && ncpu=$((last + 1))
  n=$((n + 1))
done
accel=tcg cpu=max
# TCG by default: nested KVM on cloud VMs is flaky (MSR assertions seen here)
if [ -w /dev/kvm ] && [ -n "${NUMAFEED_VM_KVM:-}" ]; then accel=kvm cpu=host; fi
log=$work/console.log
# A boot that never reaches our init (no NUMAFEED-TOPO line: the emulator
# hung in firmware or early boot, seen once under TCG on a loaded 2-core VM)
# is retried once; anything init printed is judged as it stands.
for attempt in 1 2; do
  timeout 240 qemu-system-x86_64 -machine q35,accel=$accel -cpu $cpu -smp "$ncpu" -m $((256 * n))M \
    "${args[@]}" -kernel "$kernel" -initrd "$work/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet" -nographic -no-reboot > "$log" 2>&1 || true
  tr -d '\r' < "$log" | grep -q '^NUMAFEED-TOPO$' && break
  echo "numa-vm: attempt $attempt: the kernel never reached init (console: $(wc -c < "$log") bytes)" >&2
done
report=$(sed -n '/^NUMAFEED-REPORT/{n;p;}' "$log" | tr -d '\r')
rc=$(sed -n 's/^NUMAFEED-RC \([0-9]*\).*/\1/p' "$log" | tr -d '\r')
echo "numa-vm: nodes $spec${tset:+, taskset $tset}, $accel"
sed -n '/^NUMAFEED-TOPO/{n;p;}' "$log" | tr -d '\r'
echo "$report"
# numafeed exec for the GPU on the last node: the child must report that
# node's CPUs (as narrowed by the taskset, if any) and a bind to that node
execout=$(tr -d '\r' < "$log" | sed -n '/^NUMAFEED-EXEC$/,/^NUMAFEED-EXEC-END/p')
echo "$execout" | grep -v '^NUMAFEED-EXEC'
if [ -z "$tset" ] && { ! tr -d '\r' < "$log" | grep -q "^Cpus_allowed_list:.${fxnodes[$last_node]}\$" ||
                       ! tr -d '\r' < "$log" | grep -q "^bind:$last_node\$"; }; then
  echo "numa-vm: FAILED: numafeed exec did not bind to node $last_node" >&2
  exit 1
fi
if [ "$rc" != 0 ] || ! grep -q '"ok":true' <<< "$report"; then
  echo "numa-vm: FAILED (in-VM rc '${rc}'); console log: $log" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
