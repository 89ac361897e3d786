# SPDX-License-Identifier: Apache-2.0
"""numafeed.Loader batches equal a reference torch DataLoader's over the same
records: values, dtypes and shapes, unshuffled (the same order by
definition), with and without drop_last, and shuffled (the reference samples
numafeed's record order)."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import numafeed
from conftest import to_numpy


class Records(Dataset):
    def __init__(self, records):
        self.r = {k: torch.from_numpy(v) for k, v in records.items()}

    def __len__(self):
        return len(self.r["label"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.r.items()}


def assert_batches_equal(ours, ref):
    assert isinstance(ours, dict) and set(ours) == set(ref)
    for k in ref:
        assert ours[k].dtype == ref[k].dtype, k
        assert tuple(ours[k].shape) == tuple(ref[k].shape), k
        assert np.array_equal(to_numpy(ours[k]), ref[k].numpy()), k


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("batch_size", [1, 64, 999])
def test_unshuffled_equals_dataloader(dataset, records, device, drop_last, batch_size):
    ref = DataLoader(Records(records), batch_size=batch_size, shuffle=False, drop_last=drop_last)
    with numafeed.Loader(dataset, batch_size, device=device, shuffle=False,
                         drop_last=drop_last) as loader:
        assert len(loader) == len(ref)
        n = 0
        for ours, theirs in zip(loader, ref):
            assert_batches_equal(ours, theirs)
            n += 1
        assert n == len(ref)


def test_shuffled_equals_dataloader_in_the_same_order(dataset, records, device):
    with numafeed.Loader(dataset, 100, device=device, seed=3, return_ids=True) as loader:
        got = [(b, to_numpy(ids)) for b, ids in loader]
    order = np.concatenate([ids for _, ids in got]).tolist()
    assert sorted(order) == list(range(len(records["label"])))
    assert order != sorted(order)
    ref = DataLoader(Records(records), batch_size=100, sampler=order)
    for (ours, _), theirs in zip(got, ref):
        assert_batches_equal(ours, theirs)


def test_single_field_is_a_tensor(tokens_dataset, records, device):
    with numafeed.Loader(tokens_dataset, 128, device=device, shuffle=False) as loader:
        first = next(iter(loader))
        assert isinstance(first, torch.Tensor)
        assert first.dtype == torch.int32 and tuple(first.shape) == (128, 32)
        assert np.array_equal(to_numpy(first), records["tokens"][:128])
        assert str(first.device) == ("cuda:0" if device != "cpu" else "cpu")


def test_numpy_and_dlpack_outputs(dataset, records):
    with numafeed.Loader(dataset, 50, device="cpu", shuffle=False, output="numpy") as loader:
        b = next(iter(loader))
        assert isinstance(b["tokens"], np.ndarray)
        assert np.array_equal(b["pixels"], records["pixels"][:50])
    with numafeed.Loader(dataset, 50, device="cpu", shuffle=False, output="dlpack") as loader:
        b = next(iter(loader))
        f = b["label"]
        assert f.name == "label" and f.dtype == "float32" and f.shape == (50,)
        assert f.__dlpack_device__() == (1, 0)
        assert np.array_equal(np.from_dlpack(f), records["label"][:50])
        # one field exported twice: two views of the same slot
        assert np.from_dlpack(f).ctypes.data == torch.from_dlpack(f).data_ptr()
