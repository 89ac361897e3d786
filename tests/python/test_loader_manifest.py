# SPDX-License-Identifier: Apache-2.0
"""The dataset's fingerprint (what ranks compare) reads manifest.json the way
the loader does (numafeed_dataset_manifest): beneath the directory, never
blocking on a FIFO, a regular file of at most 64 MiB checked before reading.
Each hostile manifest is tried in a child with a time and memory bound, so a
regression fails here instead of hanging or exhausting the machine."""
import os

import pytest

import numafeed
from conftest import run_bounded

LOAD = """
import sys, numafeed
try:
    kw = dict(follow_symlinks=True) if sys.argv[2] == "1" else {}
    numafeed.Loader(sys.argv[1], 10, device="cpu", output="numpy", **kw)
except numafeed.NumafeedError as e:
    sys.exit(f"NumafeedError {e.name}: {e}")
sys.exit("no error")
"""


@pytest.fixture
def ds(tmp_path, records):
    out = tmp_path / "ds"
    numafeed.pack(out, records["tokens"][:100], progress=False)
    return out


def replace_manifest(ds, make):
    (ds / "manifest.json").unlink()
    make(str(ds / "manifest.json"))


def refused(ds, follow_symlinks=False):
    code, err = run_bounded(LOAD, ds, int(follow_symlinks), timeout=30, max_rss_mib=1024)
    assert code != 0 and err.startswith("NumafeedError"), err
    return err


def test_a_fifo_is_refused_without_blocking(ds):
    replace_manifest(ds, os.mkfifo)
    err = refused(ds)
    assert "NUMAFEED_EMANIFEST" in err and "manifest.json" in err, err


def test_a_link_out_of_the_directory_is_refused(ds, tmp_path):
    outside = tmp_path / "outside.json"
    os.rename(ds / "manifest.json", outside)
    os.symlink(outside, ds / "manifest.json")
    err = refused(ds)
    assert "EXDEV" in err and "manifest.json" in err, err
    # following links is the caller's choice, passed through
    with numafeed.Loader(ds, 10, device="cpu", output="numpy", follow_symlinks=True) as loader:
        assert len(loader) == 10


@pytest.mark.parametrize("follow_symlinks", [False, True])
def test_dev_zero_through_a_link_is_refused(ds, follow_symlinks):
    replace_manifest(ds, lambda p: os.symlink("/dev/zero", p))
    err = refused(ds, follow_symlinks)
    assert ("NUMAFEED_EMANIFEST" if follow_symlinks else "EXDEV") in err, err


def test_a_missing_manifest_has_a_code(tmp_path):
    with pytest.raises(numafeed.NumafeedError) as e:
        numafeed.Loader(tmp_path, 10, device="cpu")
    assert e.value.code == -2 and e.value.name == "ENOENT"
    assert "manifest.json" in str(e.value)
