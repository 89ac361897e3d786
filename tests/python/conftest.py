# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: small datasets packed with numafeed.pack, and the device
the tests run on (a GPU where torch and numafeed both see one, else cpu)."""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import numafeed

N_RECORDS = 3000


def make_records(n=N_RECORDS, seed=7):
    """Token-like int32 rows, a float label and a uint8 image-ish field: every
    record different, so a swapped or repeated record is seen."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 50000, size=(n, 32), dtype=np.int32)
    tokens[:, 0] = np.arange(n, dtype=np.int32)  # the record's own index
    label = (np.arange(n, dtype=np.float32) * 0.5).astype(np.float32)
    pixels = rng.integers(0, 255, size=(n, 3, 4, 4), dtype=np.uint8)
    return {"tokens": tokens, "label": label, "pixels": pixels}


@pytest.fixture(scope="session")
def records():
    return make_records()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, records):
    """Three fields, zstd, small blocks and shards: many blocks, 3+ shards."""
    out = tmp_path_factory.mktemp("ds") / "multi"
    numafeed.pack(out, records, block_bytes=8 * 1024, shard_bytes=64 * 1024, progress=False)
    return str(out)


@pytest.fixture(scope="session")
def tokens_dataset(tmp_path_factory, records):
    """One field, stored raw: batches come as a single tensor."""
    out = tmp_path_factory.mktemp("ds") / "tokens"
    numafeed.pack(out, records["tokens"], name="tokens", codec="none", block_bytes=16 * 1024,
                  progress=False)
    return str(out)


N_SAMPLES = 1500
# text with 2-, 3- and 4-byte UTF-8 (and a combining mark)
_TEXTS = ["", "a", "héllo", "日本語のテキスト", "emoji 🚀🧪", "e\u0301", "Ωμέγα " * 7]


def make_samples(n=N_SAMPLES, seed=3):
    """Dict samples of every value kind pack takes, lengths 0 included, each
    sample different (its `idx`) so a swap or repeat is seen."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(0, 60))
        out.append({
            "__key__": f"s{i:05d}",
            "idx": i,                                                  # int -> int64
            "score": i * 0.25,                                         # float -> float64
            "text": _TEXTS[i % len(_TEXTS)] * (i % 3),                 # str, "" included
            "blob": rng.integers(0, 256, size=k % 41, dtype=np.uint8).tobytes(),  # bytes
            "tokens": np.arange(i, i + k, dtype=np.int32),             # variable int32
            "weights": rng.standard_normal(k % 7).astype(np.float32),  # variable float32
            "patch": np.full((2, 3), i % 251, dtype=np.uint8),         # fixed [2, 3]
        })
    return out


@pytest.fixture(scope="session")
def samples():
    return make_samples()


@pytest.fixture(scope="session")
def var_dataset(tmp_path_factory, samples):
    """The samples packed with small blocks and shards: many of each."""
    out = tmp_path_factory.mktemp("ds") / "var"
    numafeed.pack(out, samples, block_bytes=4 * 1024, shard_bytes=32 * 1024, progress=False)
    return str(out)


def _gpu_available():
    if os.environ.get("NUMAFEED_TEST_DEVICE") == "cpu":
        return False
    try:
        import torch
    except ImportError:
        return False
    return numafeed.has_cuda() and torch.cuda.is_available()


GPU = _gpu_available()


@pytest.fixture(scope="session")
def device():
    return "cuda:0" if GPU else "cpu"


def to_numpy(t):
    return t.cpu().numpy() if hasattr(t, "cpu") else np.asarray(t)


def epoch_ids(loader):
    """The record ids of one epoch of a return_ids=True loader, in order."""
    return np.concatenate([to_numpy(ids) for _, ids in loader]).tolist()


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def count_fds():
    return len(os.listdir("/proc/self/fd"))


def count_threads():
    return len(os.listdir("/proc/self/task"))


def run_bounded(code, *args, timeout=30, max_rss_mib=1024):
    """Run `python -c code args...` in a child and return (exit code, stderr),
    killing it (and failing the test) when it outlives timeout seconds or
    its resident memory passes max_rss_mib: for calls that, done wrong, block
    forever or read without end."""
    err = tempfile.TemporaryFile(mode="w+")
    child = subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                             stdout=subprocess.DEVNULL, stderr=err, text=True)
    deadline = time.monotonic() + timeout
    why = None
    while child.poll() is None and why is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
        except OSError:  # exited meanwhile
            rss = 0
        if rss > max_rss_mib * 1024:
            why = f"used more than {max_rss_mib} MiB"
        elif time.monotonic() > deadline:
            why = f"ran longer than {timeout} s"
        time.sleep(0.01)
    if why is not None:
        child.kill()
        child.wait()
        pytest.fail(f"the child {why}")
    err.seek(0)
    return child.returncode, err.read()
