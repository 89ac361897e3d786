#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Python package on a GPU machine without network, from a wheel built
# elsewhere (pip wheel . -w out/gpu) and wheels of pytest/tqdm in out/gpu/whl:
# installs them into a scratch target, runs tests/python (the GPU tests
# included), then examples/train_images.py with torch's DataLoader and with
# numafeed, alternating, twice each. Results under $OUT (default ./out/run).
#   LD_LIBRARY_PATH=out/gpu/lib bench/gpu_python.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/run}
mkdir -p "$out"
target=$(mktemp -d /tmp/nfpy.XXXXXX)
{ python3 -m pip install -q --no-index --find-links out/gpu/whl --target "$target" pytest tqdm &&
  python3 -m pip install -q --no-index --no-deps --target "$target" out/gpu/numafeed-*.whl
} >"$out/pip.txt" 2>&1 || { cat "$out/pip.txt"; exit 1; }
export PYTHONPATH=$target
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
  python3 -c 'import torch, numafeed; print("torch", torch.__version__, "numafeed", numafeed.__version__)'
} >"$out/machine.txt" 2>&1
(cd tests/python && timeout 400 python3 -m pytest -q -p no:cacheprovider -rs) >"$out/pytest.txt" 2>&1
echo "pytest rc=$?" >>"$out/pytest.txt"
data=/tmp/nf-images
python3 examples/train_images.py prepare "$data" --images 8192 >"$out/prepare.txt" 2>&1
for round in 1 2; do
  for l in torch numafeed; do
    timeout 200 python3 examples/train_images.py train "$data" --loader "$l" --epochs 4 \
      >>"$out/train.jsonl" 2>>"$out/train.err"
  done
done
timeout 120 python3 examples/train_images.py train "$data" --loader torch --epochs 4 --workers 14 \
  >>"$out/train.jsonl" 2>>"$out/train.err"
tail -5 "$out/pytest.txt"; cat "$out/train.jsonl"
