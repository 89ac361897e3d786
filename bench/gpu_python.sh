#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Python package on a GPU machine without network, from the wheel that
# scripts/build-wheel made (dist/numafeed-*.whl): installs it into a scratch
# target beside the machine's own torch (PYTHONPATH, and its bin/ with the
# numafeed command on PATH: a venv over the GPU machine's python3, itself
# a venv, would not see torch), then runs
#   - tests/python, the GPU tests included;
#   - examples/train_jpeg.py bench: numafeed + nvJPEG against torch's
#     DataLoader (0, 8, 14 workers) and decode_jpeg alone;
#   - examples/train_tokens.py: the same small GPT fed by numafeed's stream
#     and by nanoGPT's random-offset get_batch (loss curves as JSON lines);
#   - examples/train_images.py with the DataLoader and with numafeed.
# Results under $RESULTS (default out/run); a summary on standard output.
#
#   bench/gpu_python.sh [TOKEN_STEPS]        default 3000 steps
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=${RESULTS:-out/run}
mkdir -p "$out"
out=$(cd "$out" && pwd)
steps=${1:-3000}
target=$(mktemp -d /tmp/nfpy.XXXXXX)
python3 -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$target" \
  dist/numafeed-*.whl >"$out/pip.txt" 2>&1 || { cat "$out/pip.txt"; exit 1; }
export PYTHONPATH=$target PATH=$target/bin:$PATH PYTHONUNBUFFERED=1

{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
  python3 -c 'import torch, torchvision, numafeed
print("torch", torch.__version__, "torchvision", torchvision.__version__,
      "numafeed", numafeed.__version__, "cuda usable", numafeed.cuda_available())'
  command -v numafeed; numafeed --version
} >"$out/machine.txt" 2>&1
# from /tmp: the tests import the installed wheel, not the source tree's python/
(cd /tmp && timeout 300 python3 -m pytest -q -p no:cacheprovider -rs "$repo/tests/python") \
  >"$out/pytest.txt" 2>&1
echo "pytest rc=$?" >>"$out/pytest.txt"

jpeg=/tmp/nf-jpeg
timeout 120 python3 examples/train_jpeg.py prepare "$jpeg" --images 2048 >"$out/jpeg-prepare.txt" 2>&1
timeout 150 python3 examples/train_jpeg.py bench "$jpeg" --workers 0,8,14 --seconds 5 \
  --json "$out/jpeg.json" >"$out/jpeg.txt" 2>&1
echo "train_jpeg bench rc=$?" >>"$out/jpeg.txt"

tok=/tmp/nf-tokens
timeout 120 python3 examples/train_tokens.py prepare "$tok" >"$out/tokens-prepare.txt" 2>&1
for l in numafeed random; do
  timeout 150 python3 examples/train_tokens.py train "$tok" --loader "$l" --steps "$steps" \
    --out "$out/loss-$l.jsonl" >"$out/tokens-$l.txt" 2>&1
  echo "train_tokens $l rc=$?" >>"$out/tokens-$l.txt"
done

img=/tmp/nf-images
timeout 120 python3 examples/train_images.py prepare "$img" --images 8192 >"$out/images-prepare.txt" 2>&1
for l in torch numafeed; do
  timeout 120 python3 examples/train_images.py train "$img" --loader "$l" --epochs 4 \
    >>"$out/train-images.jsonl" 2>>"$out/train-images.err"
done

cat "$out/machine.txt"; tail -3 "$out/pytest.txt"; cat "$out/jpeg.txt"
tail -n 2 "$out/tokens-numafeed.txt" "$out/tokens-random.txt"; cat "$out/train-images.jsonl"
