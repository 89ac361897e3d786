# SPDX-License-Identifier: Apache-2.0
"""Variable fields on the CUDA path (skipped without a GPU): values and
offsets on the device, zero-copy; record bounds from the slot's host offsets;
pad= computed on the device; str fields decoded from the slot's host values;
every sample once per epoch and equal to the source."""
import numpy as np
import pytest

import numafeed
from conftest import GPU, N_SAMPLES

pytestmark = pytest.mark.skipif(not GPU, reason="no GPU (or no CUDA path) here")


@pytest.mark.parametrize("ragged", ["njt", "ragged"])
def test_device_values_equal_source(var_dataset, samples, ragged):
    import torch

    if ragged == "njt" and not hasattr(torch.nested, "nested_tensor_from_jagged"):
        pytest.skip("this torch has no nested_tensor_from_jagged")
    seen = []
    with numafeed.Loader(var_dataset, 64, device="cuda:0", seed=3, ragged=ragged,
                         return_ids=True) as loader:
        for b, ids in loader:
            ids = ids.tolist()
            seen += ids
            t = b["tokens"]
            values = t.values() if ragged == "njt" else t.values
            offsets = t.offsets() if ragged == "njt" else t.offsets
            assert values.is_cuda and offsets.is_cuda and offsets.dtype == torch.int64
            rows = t.unbind() if ragged == "njt" else list(t)
            for row, i in zip(rows, ids):
                assert row.is_cuda and row.cpu().numpy().tobytes() == samples[i]["tokens"].tobytes()
            assert b["text"] == [samples[i]["text"] for i in ids]  # from host values
            assert b["patch"].is_cuda
    assert sorted(seen) == list(range(N_SAMPLES))


def test_pad_on_the_device(var_dataset, samples):
    import torch

    with numafeed.Loader(var_dataset, 64, device="cuda:0", seed=3, return_ids=True,
                         pad={"tokens": (24, -7)}) as loader:
        for b, ids in loader:
            padded, lengths = b["tokens"]
            assert padded.is_cuda and lengths.is_cuda and padded.shape == (len(ids), 24)
            for row, n, i in zip(padded.cpu().tolist(), lengths.cpu().tolist(), ids.tolist()):
                src = samples[i]["tokens"].tolist()[:24]
                assert n == len(src) and row == src + [-7] * (24 - n)
    torch.cuda.synchronize()


def test_dlpack_fields_on_the_device(var_dataset, samples):
    with numafeed.Loader(var_dataset, 16, device="cuda:0", shuffle=False,
                         output="dlpack") as loader:
        b = next(iter(loader))
        f = b["weights"]
        assert f.__dlpack_device__() == (2, 0) and f.offsets.__dlpack_device__() == (2, 0)
        assert f.host_offsets.__dlpack_device__() == (1, 0)
        off = np.from_dlpack(f.host_offsets)
        assert off.tolist() == np.cumsum([0] + [len(s["weights"]) for s in samples[:16]]).tolist()
        assert b["blob"].tolist() == [s["blob"] for s in samples[:16]]
