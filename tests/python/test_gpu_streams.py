# SPDX-License-Identifier: Apache-2.0
"""The CUDA path from Python (skipped without a GPU): device batches equal the
source for several shuffled epochs; a consumer on a side stream sees the
batch (its stream waits on the copy's ready event, the host never syncs);
and a slot is not refilled while the consumer's queued work still reads it
(the release event is recorded on the consumer's stream)."""
import numpy as np
import pytest

import numafeed
from conftest import GPU

pytestmark = pytest.mark.skipif(not GPU, reason="no GPU (or no CUDA path) here")


def test_device_batches_equal_source_for_several_epochs(dataset, records):
    import torch

    with numafeed.Loader(dataset, 128, device="cuda:0", seed=8, return_ids=True) as loader:
        assert loader.stats()["device"] == "cuda:0"
        for _ in range(3):
            seen = 0
            for b, ids in loader:
                assert b["tokens"].is_cuda and b["pixels"].device == torch.device("cuda", 0)
                idx = ids.numpy()
                for k in ("tokens", "label", "pixels"):
                    assert np.array_equal(b[k].cpu().numpy(), records[k][idx]), k
                seen += len(idx)
            assert seen == len(records["label"])


def test_side_stream_and_reuse_waits_for_release_event(tokens_dataset, records):
    import torch

    side = torch.cuda.Stream()
    sums, want = [], []
    with numafeed.Loader(tokens_dataset, 64, device="cuda:0", seed=2, prefetch=2,
                         return_ids=True) as loader:
        for epoch in range(3):
            it = iter(loader)
            while True:
                # the batch is made (torch.from_dlpack) with `side` current:
                # side waits on the copy, and the release is recorded on side
                with torch.cuda.stream(side):
                    try:
                        t, ids = next(it)
                    except StopIteration:
                        break
                    # a long kernel first: if the pool refilled this slot
                    # before the release event (queued after the sum)
                    # completed, the sum would read a later batch's bytes
                    torch.cuda._sleep(2_000_000)
                    sums.append(t.to(torch.int64).sum())
                    del t
                want.append(int(records["tokens"][ids.numpy()].astype(np.int64).sum()))
    torch.cuda.synchronize()
    assert [int(s) for s in sums] == want
