# SPDX-License-Identifier: Apache-2.0
"""Exact mid-epoch resume: a loader restored from state_dict() at any point
delivers exactly what the uninterrupted run delivers from that point."""
import json

import numpy as np
import pytest

import numafeed
from conftest import to_numpy

BATCH = 97


def run(loader, epochs):
    """Every batch (epoch, ids) until `epochs` epochs end."""
    out = []
    while loader.epoch < epochs:
        e = loader.epoch
        for _, ids in loader:
            out.append((e, tuple(to_numpy(ids).tolist())))
    return out


@pytest.fixture(scope="module")
def reference(dataset):
    with numafeed.Loader(dataset, BATCH, device="cpu", seed=21, return_ids=True) as loader:
        return run(loader, 3)


@pytest.mark.parametrize("stop_after", [0, 1, 5, 30, 31, 32, 40, 61, 62, 92])
def test_resume_equals_uninterrupted(dataset, device, reference, stop_after):
    with numafeed.Loader(dataset, BATCH, device=device, seed=21, return_ids=True) as loader:
        got = []
        it = iter(loader)
        e = loader.epoch
        while len(got) < stop_after:
            try:
                _, ids = next(it)
                got.append((e, tuple(to_numpy(ids).tolist())))
            except StopIteration:
                it = iter(loader)
                e = loader.epoch
        state = loader.state_dict()
        del it
    state = json.loads(json.dumps(state))  # a checkpoint round trip
    with numafeed.Loader(dataset, BATCH, device=device, seed=21, return_ids=True,
                         threads=1) as resumed:
        resumed.load_state_dict(state)
        if state["batch"] < len(resumed):  # else normalised to the next epoch's start
            assert resumed.state_dict() == state
        got += run(resumed, 3)
    assert got == reference


def test_state_dict_round_trip_and_mismatch(dataset):
    with numafeed.Loader(dataset, BATCH, device="cpu", seed=21) as loader:
        it = iter(loader)
        for _ in range(3):
            next(it)
        state = loader.state_dict()
        assert state["epoch"] == 0 and state["batch"] == 3
        with numafeed.Loader(dataset, BATCH, device="cpu", seed=22) as other:
            with pytest.raises(ValueError, match="seed"):
                other.load_state_dict(state)
        with numafeed.Loader(dataset, BATCH + 1, device="cpu", seed=21) as other:
            with pytest.raises(ValueError, match="batch_size"):
                other.load_state_dict(state)
        bad = dict(state, batch=len(loader) + 1)
        with pytest.raises(ValueError, match="out of range"):
            loader.load_state_dict(bad)


def test_state_saved_after_the_last_batch_resumes_at_the_next_epoch(dataset, reference):
    with numafeed.Loader(dataset, BATCH, device="cpu", seed=21, return_ids=True) as loader:
        n = len(loader)
        state = dict(loader.state_dict(), epoch=1, batch=n)
        loader.load_state_dict(state)
        assert loader.epoch == 2
        ids = [tuple(to_numpy(i).tolist()) for _, i in loader]
    assert ids == [b for e, b in reference if e == 2]


def test_break_ends_the_epoch_like_torch(dataset, reference):
    with numafeed.Loader(dataset, BATCH, device="cpu", seed=21, return_ids=True) as loader:
        for k, _ in enumerate(loader):
            if k == 2:
                break
        assert loader.epoch == 1 and loader.state_dict()["batch"] == 0
        ids = [tuple(to_numpy(i).tolist()) for _, i in loader]
    assert ids == [b for e, b in reference if e == 1]
    assert np.array_equal(sorted(sum(ids, ())), np.arange(3000))
