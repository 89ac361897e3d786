#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install numafeed into a scratch prefix and build the examples against it
# both ways a user would: find_package(numafeed) and pkg-config.
set -euo pipefail
build_dir=$1 src_dir=$2
prefix=$(mktemp -d "${TMPDIR:-/tmp}/numafeed-install-XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
for f in include/numafeed.h include/numafeed_version.h bin/numafeed \
         lib/libnumafeed.so lib/libnumafeed.a lib/pkgconfig/numafeed.pc \
         lib/cmake/numafeed/numafeedConfig.cmake lib/cmake/numafeed/numafeedConfigVersion.cmake; do
  [ -e "$prefix/$f" ] || { echo "missing after install: $f" >&2; exit 1; }
done
# the shared library exports only the public prefixes
if nm -D --defined-only "$prefix/lib/libnumafeed.so" | awk '{print $3}' |
   grep -vE '^(numafeed_|loader_|NUMAFEED_0$)' | grep -v '^$'; then
  echo "libnumafeed.so exports symbols outside numafeed_*/loader_*" >&2; exit 1
fi
cmake -S "$src_dir/examples" -B "$prefix/ex" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/ex" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$prefix/ex/print_topology" | grep -q '^numafeed '
"$prefix/ex/print_topology_static" | grep -q '^numafeed '
# the README's C example over a small dataset, in host memory (no GPU here)
head -c 65536 /dev/urandom > "$prefix/raw.bin"
"$build_dir/src/cli/numafeed" pack --quiet --out "$prefix/ds" --record-bytes 256 "$prefix/raw.bin"
LD_LIBRARY_PATH="$prefix/lib" "$prefix/ex/read_batches" "$prefix/ds" 2 64 > "$prefix/read.txt"
grep -q '^field data: uint8, 16384 bytes in this batch' "$prefix/read.txt"
[ "$(grep -c '^epoch [01]: 256 records$' "$prefix/read.txt")" = 2 ] ||
  { echo "read_batches: not 256 records in each of 2 epochs:" >&2; cat "$prefix/read.txt" >&2; exit 1; }
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" \
  cc "$src_dir/examples/print_topology.c" -o "$prefix/pc_dynamic" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs numafeed)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/pc_dynamic" | grep -q '^numafeed '
cc "$src_dir/examples/print_topology.c" -o "$prefix/pc_static" \
  $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --static --cflags numafeed) \
  "$prefix/lib/libnumafeed.a" \
  $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --static --libs numafeed | sed 's/-lnumafeed//')
"$prefix/pc_static" | grep -q '^numafeed '
echo "install: header, libraries, CLI, CMake package and pkg-config all usable"
