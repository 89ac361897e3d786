# SPDX-License-Identifier: Apache-2.0
"""examples/train_tokens.py runs as its docstring says, with tiny settings on
the CPU: prepare writes nanoGPT's train.bin and the same tokens as numafeed
records (windows of seq_len + 1 at a stride of seq_len), and train with
either loader writes a loss curve that falls; numafeed's stream crosses an
epoch boundary without the loop noticing."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import numafeed

pytest.importorskip("torch")
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "train_tokens.py")
SEQ = 32


def run(*args):
    r = subprocess.run([sys.executable, EXAMPLE, *map(str, args)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokens")
    info = run("prepare", d, "--max-bytes", 40000, "--seq-len", SEQ)
    assert info["corpus_bytes"] == 40000 and info["fields"][0]["shape"] == [SEQ + 1]
    return d, info


def test_prepare_packs_the_token_file_as_windows(data):
    d, info = data
    train = np.fromfile(d / "train.bin", dtype=np.uint16)
    assert len(train) == info["train_tokens"] and train.max() < 256
    with numafeed.Loader(d / "numafeed", 1000, device="cpu", shuffle=False,
                         output="numpy") as loader:
        windows = np.concatenate(list(loader))
    assert len(windows) == (len(train) - 1) // SEQ == info["records"]
    for i in (0, 1, len(windows) - 1):
        assert windows[i].tolist() == train[i * SEQ:i * SEQ + SEQ + 1].tolist()


@pytest.mark.parametrize("loader", ["numafeed", "random"])
def test_train_writes_a_falling_loss_curve(data, loader):
    d, info = data
    out = d / f"curve-{loader}.jsonl"
    steps = 50
    # 40 records a batch of about 1100: 29 batches an epoch, so 50 steps
    # cross an epoch end
    s = run("train", d, "--loader", loader, "--steps", steps, "--device", "cpu",
            "--batch-size", 40, "--layers", 1, "--heads", 2, "--width", 32, "--lr", 3e-3,
            "--out", out)
    curve = [json.loads(line) for line in open(out)]
    assert [c["step"] for c in curve] == list(range(1, steps + 1))
    losses = [c["loss"] for c in curve]
    assert abs(losses[0] - np.log(256)) < 0.5, losses[0]  # the initialisation
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5, losses
    assert s["final_loss"] == losses[-1] and s["block_size"] == SEQ
    if loader == "numafeed":
        per_epoch = -(-info["records"] // 40)
        assert steps > per_epoch  # the stream crossed an epoch end
        assert curve[-1]["epoch"] == steps // per_epoch
        assert s["state"]["epoch"] * per_epoch + s["state"]["batch"] == steps
