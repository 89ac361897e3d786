# SPDX-License-Identifier: Apache-2.0
"""One vocabulary: Loader's keywords are the C fields and the CLI's options
(prefetch, io, device, shuffle_window, follow_symlinks, max_ring_bytes,
pin_memory), and each reaches the C loader: device "cpu"/"cuda" become
loader_config.device, shuffle_window changes the order, follow_symlinks lets
a shard live elsewhere, max_ring_bytes bounds the ring, pin_memory registers
it."""
import inspect
import os

import numpy as np
import pytest

import numafeed
from conftest import GPU, N_RECORDS, epoch_ids


def test_keywords_are_the_c_and_cli_names():
    params = inspect.signature(numafeed.Loader).parameters
    for name in ("batch_size", "device", "threads", "prefetch", "shuffle_window", "seed", "rank",
                 "world_size", "io", "node", "follow_symlinks", "max_ring_bytes", "drop_last",
                 "decode", "pin_memory"):
        assert name in params, name
    assert "help" not in params and "ring_depth" not in params and "host_mode" not in params


def test_shuffle_window_reaches_the_sampler(dataset):
    def order(**kw):
        with numafeed.Loader(dataset, 50, device="cpu", seed=3, return_ids=True, **kw) as loader:
            return epoch_ids(loader)

    default, one, big = order(), order(shuffle_window=1), order(shuffle_window=2**24)
    assert sorted(one) == sorted(default) == list(range(N_RECORDS))
    assert order(shuffle_window=0) == order(shuffle_window=None) == default
    assert one != default and big != default
    assert order(shuffle_window=1) == one


@pytest.mark.skipif(GPU, reason="checks the refusal where no GPU is usable")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", 0])
def test_device_cuda_without_a_gpu_is_the_c_librarys_error(tokens_dataset, device):
    with pytest.raises(numafeed.NumafeedError) as e:
        numafeed.Loader(tokens_dataset, 10, device=device)
    assert e.value.name == "NUMAFEED_ENOCUDA", (e.value.name, str(e.value))
    assert "device" in str(e.value)


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
def test_device_cpu_gives_host_batches(tokens_dataset, device):
    if device == "torch-cpu":
        torch = pytest.importorskip("torch")
        device = torch.device("cpu")
    with numafeed.Loader(tokens_dataset, 10, device=device) as loader:
        assert loader.stats()["device"] == "cpu" and loader.stats()["pool"]["cuda"] == 0
        assert next(iter(loader)).device.type == "cpu"


def test_pin_memory_reaches_the_ring(tokens_dataset):
    """pin_memory registers the host ring with CUDA where a GPU is usable,
    else says why in the notes; the batches are the same either way."""
    with numafeed.Loader(tokens_dataset, 10, device="cpu", shuffle=False, output="numpy",
                         pin_memory=True) as loader:
        pool = loader.stats()["pool"]
        pinned = np.concatenate(list(loader))
    assert pool["registered"] == int(GPU), pool
    assert ("pin_memory: " in pool["notes"]) == (not GPU), pool["notes"]
    if not GPU:
        assert "the ring is not registered" in pool["notes"]
    with numafeed.Loader(tokens_dataset, 10, device="cpu", shuffle=False,
                         output="numpy") as loader:
        assert loader.stats()["pool"]["registered"] == 0
        assert "pin_memory" not in loader.stats()["pool"]["notes"]
        assert np.array_equal(np.concatenate(list(loader)), pinned)


def test_follow_symlinks_reaches_the_shards(tmp_path, records):
    ds = tmp_path / "ds"
    numafeed.pack(ds, records["tokens"], codec="none", progress=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shard = next(p for p in ds.iterdir() if p.name != "manifest.json")
    os.rename(shard, elsewhere / shard.name)
    os.symlink(elsewhere / shard.name, shard)
    with pytest.raises(numafeed.NumafeedError) as e:
        numafeed.Loader(ds, 100, device="cpu")
    assert shard.name in str(e.value), str(e.value)
    with numafeed.Loader(ds, 100, device="cpu", shuffle=False, follow_symlinks=True,
                         output="numpy") as loader:
        assert np.array_equal(np.concatenate(list(loader)), records["tokens"])


def test_max_ring_bytes_bounds_the_ring(tokens_dataset):
    with pytest.raises(numafeed.NumafeedError) as e:
        numafeed.Loader(tokens_dataset, 100, device="cpu", prefetch=64, max_ring_bytes=1 << 20)
    assert e.value.name == "NUMAFEED_ECONFIG" and "max_ring_bytes" in str(e.value)
    with numafeed.Loader(tokens_dataset, 100, device="cpu", max_ring_bytes=1 << 20) as loader:
        pool = loader.stats()["pool"]
        assert pool["prefetch"] * pool["slot_bytes"] <= 1 << 20
        assert sum(b.shape[0] for b in loader) == N_RECORDS


def test_a_state_of_another_shuffle_window_is_refused(tokens_dataset):
    with numafeed.Loader(tokens_dataset, 100, device="cpu", shuffle_window=64) as loader:
        state = loader.state_dict()
    assert state["shuffle_window"] == 64
    with numafeed.Loader(tokens_dataset, 100, device="cpu") as other:
        with pytest.raises(ValueError, match="shuffle_window"):
            other.load_state_dict(state)
