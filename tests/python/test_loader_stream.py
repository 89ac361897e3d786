# SPDX-License-Identifier: Apache-2.0
"""epochs=None: one stream of batches across epoch boundaries, for loops that
count steps: the same batches as epoch-per-loop iteration, each epoch
exactly once, a loop left early goes on where it stopped, and state_dict /
load_state_dict resume it exactly. epochs=N runs N epochs per loop."""
import itertools
import json

import numpy as np
import pytest

import numafeed
from conftest import N_RECORDS, to_numpy

BATCH = 128  # 24 batches an epoch, the last short


def ids_of(batch):
    return tuple(to_numpy(batch[1]).tolist())


def per_epoch_loops(dataset, epochs):
    with numafeed.Loader(dataset, BATCH, device="cpu", seed=5, return_ids=True) as loader:
        return [ids_of(b) for _ in range(epochs) for b in loader]


def test_stream_equals_epoch_per_loop(dataset, device):
    want = per_epoch_loops(dataset, 3)
    with numafeed.Loader(dataset, BATCH, device=device, seed=5, return_ids=True,
                         epochs=None) as loader:
        n = len(loader)
        got, epochs = [], []
        for b in loader:  # never ends by itself
            got.append(ids_of(b))
            epochs.append(loader.epoch)
            if len(got) == len(want):
                break
        assert loader.state_dict()["epoch"] == 2 and loader.state_dict()["batch"] == n
    assert got == want
    assert epochs == [e for e in range(3) for _ in range(n)]
    for e in range(3):
        assert sorted(itertools.chain(*got[e * n:(e + 1) * n])) == list(range(N_RECORDS))


def test_a_loop_left_early_goes_on_where_it_stopped(dataset):
    want = per_epoch_loops(dataset, 2)
    got = []
    with numafeed.Loader(dataset, BATCH, device="cpu", seed=5, return_ids=True,
                         epochs=None) as loader:
        while len(got) < len(want):
            for k, b in enumerate(loader):  # 10 steps, then "evaluate", then on
                got.append(ids_of(b))
                if k == 9 or len(got) == len(want):
                    break
    assert got == want


@pytest.mark.parametrize("stop_after", [5, 23, 24, 30, 47])
def test_stream_resumes_exactly(dataset, stop_after):
    want = per_epoch_loops(dataset, 3)
    kw = dict(device="cpu", seed=5, return_ids=True, epochs=None)
    with numafeed.Loader(dataset, BATCH, **kw) as loader:
        it = iter(loader)
        got = [ids_of(next(it)) for _ in range(stop_after)]
        state = json.loads(json.dumps(loader.state_dict()))
    with numafeed.Loader(dataset, BATCH, threads=1, **kw) as loader:
        loader.load_state_dict(state)
        it = iter(loader)
        got += [ids_of(next(it)) for _ in range(len(want) - stop_after)]
    assert got == want


def test_epochs_n_runs_n_epochs_a_loop(dataset):
    want = per_epoch_loops(dataset, 4)
    with numafeed.Loader(dataset, BATCH, device="cpu", seed=5, return_ids=True,
                         epochs=2) as loader:
        got = [ids_of(b) for b in loader]
        assert loader.epoch == 2
        got += [ids_of(b) for b in loader]
        assert loader.epoch == 4
    assert got == want


def test_epochs_argument_checked(dataset):
    with pytest.raises(ValueError, match="epochs"):
        numafeed.Loader(dataset, BATCH, device="cpu", epochs=0)
    with pytest.raises(TypeError, match="epochs"):
        numafeed.Loader(dataset, BATCH, device="cpu", epochs=True)


def test_stream_over_variable_fields(var_dataset, samples):
    with numafeed.Loader(var_dataset, 100, device="cpu", output="numpy", epochs=None,
                         return_ids=True) as loader:
        n = len(loader)
        seen = np.zeros(len(samples), dtype=int)
        for k, (b, ids) in enumerate(loader):
            seen[ids] += 1
            for i, row in zip(ids.tolist(), b["tokens"]):
                assert row.tobytes() == samples[i]["tokens"].tobytes()
            if k + 1 == 2 * n:
                break
    assert (seen == 2).all()
