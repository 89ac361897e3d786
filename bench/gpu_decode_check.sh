#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# decode gpu on a GPU machine, end to end, in one go (about 6 minutes on an
# H200 with 16 cores). Run from the repository root with a prebuilt
# build/release (these of its files are all it uses: src/cli/numafeed,
# bench/nvcomp_ceiling, bench/gpu_ceiling, tests/test_gpu_decode,
# tests/test_cuda_loader, tests/test_gpu_emulated) and nvCOMP 6, the
# nvidia-libnvcomp-cu13 wheel unpacked (or its libnvcomp.so.6):
#
#   OUT=/some/dir bench/gpu_decode_check.sh [NVCOMP_DIR_OR_LIB]
#
# NVCOMP_DIR_OR_LIB defaults to $NUMAFEED_NVCOMP. Everything goes under $OUT:
#   env.txt          GPU, driver, numafeed doctor (its 'gpu decode' finding)
#   tests.txt        test_gpu_decode (decode gpu vs cpu batch for batch, fixed
#                    and variable fields, both worker paths, damaged blocks,
#                    the choice), test_cuda_loader, test_gpu_emulated
#   digests.txt      numafeed bench --digest, decode cpu vs gpu (copy staged
#                    and direct), at 1, 4 and 14 threads, for tokens-zstd,
#                    images-zstd and a variable-field dataset (pack --from
#                    files): every line must match
#   damaged.txt      a zstd block damaged: both decodes fail with the same
#                    typed error naming shard and block
#   gpu_decode.*     bench/gpu_decode.py on gpu_bench's workloads: decode cpu
#                    and gpu at 4, 8 and 14 threads, gpu at the default window
#                    and windows of 128 and 512 blocks (with a ring that holds
#                    the workers' units), alone and beside a 2 ms synthetic
#                    training step, each against nvCOMP's bare decode at the
#                    same blocks per call (table and JSON); NF_THROUGHPUT=0
#                    leaves this part out
#   sanitizer-*.txt  compute-sanitizer memcheck and racecheck over
#                    test_gpu_decode (NF_GPU_TEST_QUICK=1), up to
#                    $NF_SANITIZER_SECONDS (120) each
#   summary.txt      one line per check: PASS, FAIL or SKIP, and why
# Exit status: 0 when nothing failed.
set -uo pipefail
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
if [ -n "${1:-}" ]; then
  NUMAFEED_NVCOMP=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
fi
export NUMAFEED_NVCOMP=${NUMAFEED_NVCOMP:?give nvCOMP as the first argument or NUMAFEED_NVCOMP}
B=${NF_BUILD:-build/release}   # a build carried elsewhere: NF_BUILD=DIR
NF=$B/src/cli/numafeed
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nf-gpu-check-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
fails=0
T0=$(date +%s)

say() { echo "$*" | tee -a "$SUMMARY"; }
pass() { say "PASS  $*"; }
fail() { say "FAIL  $*"; fails=$((fails + 1)); }
skip() { say "SKIP  $*"; }
elapsed() { echo "$(( $(date +%s) - T0 )) s"; }

for f in "$NF" $B/tests/test_gpu_decode; do
  [ -x "$f" ] || { echo "missing $f: build it here and carry it" >&2; exit 2; }
done

# ---- 1. the machine -------------------------------------------------------
{
  date
  nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id --format=csv 2>&1
  nproc
  echo "NUMAFEED_NVCOMP=$NUMAFEED_NVCOMP"
  "$NF" doctor
} >"$OUT/env.txt" 2>&1
if grep -A1 'gpu decode *available' "$OUT/env.txt" >/dev/null; then
  pass "doctor: gpu decode available ($(grep -A1 'gpu decode' "$OUT/env.txt" | tail -1 | sed 's/^ *//'))"
else
  fail "doctor: gpu decode unavailable: $(grep -A1 'gpu decode' "$OUT/env.txt" | tail -1 | sed 's/^ *//')"
fi

# ---- 2. datasets ----------------------------------------------------------
# Standard library only: tokens (8 KiB records of small token ids, zstd 3),
# images (150528-byte gradients with noise, zstd 1), and an ImageFolder tree
# of text-like files of every size for a dataset with variable fields.
python3 - "$WORK" <<'EOF'
import os, random, sys
work = sys.argv[1]
rnd = random.Random(1)
def pool(n, alphabet):
    return bytes(rnd.choice(alphabet) for _ in range(n))
# tokens: 32768 records of 2048 int32 each, drawn from a pool of token runs
tok = b"".join(int(rnd.paretovariate(1.2) * 40).to_bytes(4, "little") for _ in range(1 << 18))
with open(f"{work}/tokens.bin", "wb") as f:
    for i in range(32768):
        o = (i * 7919 * 4) % (len(tok) - 8192) & ~3
        f.write(tok[o:o + 8192])
# images: 2048 records of 3x224x224 uint8, smooth with noise
base = bytes((x + y) % 256 for y in range(224) for x in range(224)) * 3
noise = pool(1 << 20, bytes(range(4)))
with open(f"{work}/images.bin", "wb") as f:
    for i in range(2048):
        o = (i * 4099) % (len(noise) - len(base))
        f.write(bytes((a + b + i) & 255 for a, b in zip(base, noise[o:o + len(base)])) if i < 64
                else base[i % 97:] + base[:i % 97])
# files: 4 classes, 1500 files of 0 to 20000 bytes of words
words = [pool(rnd.randint(2, 9), b"abcdefghijklmnopqrstuvwxyz") for _ in range(500)]
for c in range(4):
    os.makedirs(f"{work}/files/class{c}", exist_ok=True)
for i in range(1500):
    n = rnd.randint(0, 20000)
    text = b" ".join(rnd.choice(words) for _ in range(n // 5 + 1))[:n]
    with open(f"{work}/files/class{i % 4}/{i:05d}.txt", "wb") as f:
        f.write(text)
EOF
if ! "$NF" pack --quiet --out "$WORK/tokens-zstd" --field tokens:int32:2048 --codec zstd \
       --level 3 "$WORK/tokens.bin" ||
   ! "$NF" pack --quiet --out "$WORK/images-zstd" --field image:uint8:3x224x224 --codec zstd \
       --level 1 --block-bytes 1M "$WORK/images.bin" ||
   ! "$NF" pack --quiet --out "$WORK/files-var" --from files --block-bytes 256K "$WORK/files"; then
  fail "packing the datasets"
  exit 1
fi
cat "$WORK"/*/manifest.json >/dev/null
for d in tokens-zstd images-zstd files-var; do cat "$WORK/$d"/* >/dev/null; done
say "----  datasets made ($(elapsed))"

# ---- 3. the GPU tests -----------------------------------------------------
: >"$OUT/tests.txt"
for t in test_gpu_decode test_cuda_loader test_gpu_emulated; do
  [ -x "$B/tests/$t" ] || { skip "$t: not carried"; continue; }
  timeout 240 "$B/tests/$t" >>"$OUT/tests.txt" 2>&1
  rc=$?
  case $rc in
    0) pass "$t" ;;
    77) fail "$t skipped itself (no GPU or no nvCOMP?): see tests.txt" ;;
    *) fail "$t (exit $rc): see tests.txt" ;;
  esac
done
say "----  tests done ($(elapsed))"

# ---- 4. digests: decode cpu vs decode gpu ---------------------------------
: >"$OUT/digests.txt"
digest() { # dataset threads decode batch copy
  "$NF" bench "$WORK/$1" --gpus 0 --device cuda --digest --epochs 2 --threads "$2" \
    --batch-size "$4" --decode "$3" --copy "$5" 2>&1
}
for spec in tokens-zstd:64 images-zstd:64 files-var:128; do
  ds=${spec%%:*} batch=${spec##*:}
  for t in 1 4 14; do
    c=$(digest "$ds" "$t" cpu "$batch" staged)
    dc=$(echo "$c" | grep '^epoch')
    echo "== $ds threads $t decode cpu"$'\n'"$c" >>"$OUT/digests.txt"
    # staged: blocks read into the workers' staging; direct: copied by the
    # GPU from the page-locked shards (the report says which)
    for copy in staged direct; do
      g=$(digest "$ds" "$t" gpu "$batch" $copy)
      echo "== $ds threads $t decode gpu copy $copy"$'\n'"$g" >>"$OUT/digests.txt"
      dg=$(echo "$g" | grep '^epoch')
      ran=no
      if echo "$g" | grep -q 'decode gpu:'; then
        case $copy in
          direct) echo "$g" | grep -q 'copied direct from the page cache' && ran=yes ;;
          *) echo "$g" | grep -q 'copied direct from the page cache' || ran=yes ;;
        esac
      fi
      if [ -n "$dc" ] && [ "$dc" = "$dg" ] && [ $ran = yes ]; then
        pass "digest $ds threads $t: decode gpu, copy $copy = decode cpu"
      else
        fail "digest $ds threads $t: decode gpu, copy $copy differs from or did not run like decode cpu"
      fi
    done
  done
done
say "----  digests done ($(elapsed))"

# ---- 5. a damaged zstd block ----------------------------------------------
cp -r "$WORK/tokens-zstd" "$WORK/damaged"
python3 - "$WORK/damaged" <<'EOF'
import json, os, struct, sys
ds = sys.argv[1]
man = json.load(open(os.path.join(ds, "manifest.json")))
p = os.path.join(ds, man["shards"][0]["file"])
with open(p, "r+b") as f:
    f.seek(-32, 2)
    foff, fsize = struct.unpack("<QQ", f.read(16))
    f.seek(foff)
    foot = f.read(fsize)
    n = struct.unpack_from("<I", foot, 0)[0]
    for i in range(n // 2, n):
        off, stored, dec, recs, codec = struct.unpack_from("<QIIII", foot, 16 + 32 * i)
        if codec == 1:
            break
    f.seek(off + stored // 2)
    b = f.read(1)
    f.seek(off + stored // 2)
    f.write(bytes([b[0] ^ 0x5A]))
    print(f"damaged block {i} of {man['shards'][0]['file']} at offset {off + stored // 2}")
EOF
{
  for d in cpu gpu; do
    echo "== decode $d"
    "$NF" bench "$WORK/damaged" --gpus 0 --device cuda --threads 4 --decode $d 2>&1
    echo "exit $?"
  done
} >"$OUT/damaged.txt" 2>&1
ec=$(grep -A3 '== decode cpu' "$OUT/damaged.txt" | grep -o 'shard-[^(]*(NUMAFEED_E[A-Z]*)' | head -1)
eg=$(grep -A3 '== decode gpu' "$OUT/damaged.txt" | grep -o 'shard-[^(]*(NUMAFEED_E[A-Z]*)' | head -1)
if [ -n "$ec" ] && [ "$ec" = "$eg" ]; then
  pass "damaged block: decode gpu gives decode cpu's error: $eg"
else
  fail "damaged block: cpu '$ec' vs gpu '$eg' (damaged.txt)"
fi
say "----  damage done ($(elapsed))"

# ---- 6. throughput: bench/gpu_decode.py on gpu_bench's workloads ------------
# decode cpu and gpu (default window, and windows of 128 and 512 blocks,
# a ring that holds the workers' units) at 4, 8 and 14 threads, alone and
# beside a 2 ms synthetic training step, each against nvCOMP's bare decode
# at its own blocks per call
if [ "${NF_THROUGHPUT:-1}" = 0 ]; then
  skip "bench/gpu_decode.py: NF_THROUGHPUT=0"
elif python3 -c 'import numpy' 2>/dev/null; then
  timeout 300 python3 bench/gpu_decode.py --bin "$B" --work "$WORK/gb" --threads 4,8,14 \
    --windows 0,128,512 --ring units --blocks-per-call 4096 --gpu-step-us 2000 --epochs 3 \
    --records 1 --json "$OUT/gpu_decode.json" >"$OUT/gpu_decode.txt" 2>&1 ||
    fail "bench/gpu_decode.py: exit $? (gpu_decode.txt)"
  sed 's/^/      /' "$OUT/gpu_decode.txt" >>"$SUMMARY"
else
  skip "bench/gpu_decode.py: no numpy"
fi
say "----  throughput done ($(elapsed))"

# ---- 7. compute-sanitizer, in the time that is left ------------------------
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
budget=${NF_SANITIZER_SECONDS:-120}
for tool in memcheck racecheck; do
  if [ -z "$CS" ]; then
    skip "compute-sanitizer $tool: compute-sanitizer not found"
    continue
  fi
  NF_GPU_TEST_QUICK=1 timeout "$budget" "$CS" --tool "$tool" --error-exitcode 99 \
    "$B/tests/test_gpu_decode" >"$OUT/sanitizer-$tool.txt" 2>&1
  rc=$?
  case $rc in
    0) pass "compute-sanitizer $tool: no error ($(grep -c 'OK \]' "$OUT/sanitizer-$tool.txt") cases)" ;;
    124) fail "compute-sanitizer $tool: over its $budget s (sanitizer-$tool.txt)" ;;
    *) fail "compute-sanitizer $tool: exit $rc (sanitizer-$tool.txt)" ;;
  esac
done
say "----  sanitizers done ($(elapsed))"

say "$fails check(s) failed; total $(elapsed)"
[ "$fails" -eq 0 ]
