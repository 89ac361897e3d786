# SPDX-License-Identifier: Apache-2.0
"""With io="mmap" a shard truncated while the loader runs is a NumafeedError
(NUMAFEED_ECORRUPT, a short read at an offset) at the batch it affects, not
a SIGBUS that kills the process; Python's faulthandler, installed first,
keeps every other SIGBUS. Run in a child: a regression kills only it."""
from conftest import run_bounded

TRUNCATE = """
import faulthandler, os, sys
import numpy as np
import numafeed
faulthandler.enable()
path = sys.argv[1]
numafeed.pack(path, np.arange(4 << 20, dtype=np.int32).reshape(-1, 64), codec="none",
              block_bytes=64 << 10, progress=False)
shard = sorted(p for p in os.listdir(path) if p != "manifest.json")[0]
with numafeed.Loader(path, 16, device="cpu", io="mmap", shuffle=False, threads=1,
                     prefetch=2, output="numpy") as loader:
    it = iter(loader)
    next(it)
    os.truncate(os.path.join(path, shard), 8192)
    try:
        for _ in it:
            pass
    except numafeed.NumafeedError as e:
        sys.exit(f"NumafeedError {e.name}: {e}")
sys.exit("no error")
"""


def test_a_shard_truncated_under_mmap_is_an_error_not_a_signal(tmp_path):
    code, err = run_bounded(TRUNCATE, tmp_path / "ds", timeout=120)
    assert code == 1 and err.startswith("NumafeedError NUMAFEED_ECORRUPT"), (code, err)
    assert "short read" in err and "offset" in err, err
