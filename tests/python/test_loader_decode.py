# SPDX-License-Identifier: Apache-2.0
"""decode= reaches loader_config.decode: "cpu" decodes on the pool's cores
and says so, "auto" says what it chose and why, "gpu" either decodes on the
GPU (a GPU with nvCOMP: the same records as "cpu") or is the C library's
error saying why, and a word that is none of the three is a ValueError."""
import pytest

import numafeed
from conftest import N_RECORDS, to_numpy


def ids_and_rows(loader):
    out = {}
    for batch, ids in loader:
        rows = to_numpy(batch["tokens"])
        for i, rid in enumerate(to_numpy(ids).tolist()):
            out[rid] = rows[i].tobytes()
    return out


def test_decode_cpu_and_auto_say_what_they_chose(dataset):
    with numafeed.Loader(dataset, 64, device="cpu", decode="cpu") as loader:
        info = loader.stats()["pool"]
        assert info["decode"] == "cpu" and info["decode_why"] == "decode cpu: as configured"
    with numafeed.Loader(dataset, 64, device="cpu") as loader:  # auto, host batches
        info = loader.stats()["pool"]
        assert info["decode"] == "cpu" and "batches stay on the host" in info["decode_why"]
        assert loader.stats()["gpu_decode_ns"] == 0


def test_decode_gpu_is_the_same_records_or_says_why(dataset):
    with numafeed.Loader(dataset, 64, device="cpu", decode="cpu", return_ids=True) as loader:
        want = ids_and_rows(loader)
    assert len(want) == N_RECORDS
    try:
        loader = numafeed.Loader(dataset, 64, decode="gpu", return_ids=True)
    except numafeed.NumafeedError as e:
        assert e.name in ("NUMAFEED_ENOCUDA", "NUMAFEED_ENVCOMP", "NUMAFEED_ECONFIG"), e.name
        assert "decode gpu: " in str(e)
        return
    with loader:
        assert loader.stats()["pool"]["decode"] == "gpu"
        assert ids_and_rows(loader) == want
        assert loader.stats()["gpu_decode_ns"] > 0


def test_decode_word_is_checked(dataset):
    with pytest.raises(ValueError, match="decode must be one of auto, cpu, gpu"):
        numafeed.Loader(dataset, 64, device="cpu", decode="fpga")
