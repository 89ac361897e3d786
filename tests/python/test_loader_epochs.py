# SPDX-License-Identifier: Apache-2.0
"""Epochs on a persistent pool: exactly once per epoch, a new order per epoch,
the same order for the same seed whatever the threads and prefetch, ranks
partitioning the records, set_epoch, len."""
import pytest

import numafeed
from conftest import N_RECORDS, epoch_ids, to_numpy


def test_exactly_once_and_new_order_each_epoch(dataset, device):
    with numafeed.Loader(dataset, 64, device=device, seed=11, return_ids=True) as loader:
        pool = loader.stats()["pool"]
        tids = pool["tids"]
        assert pool["setup_ring_us"] > 0  # the ring was placed and touched
        assert pool["setup_cuda_us"] >= 0 and pool["setup_context_us"] >= 0
        # one node here: first touch cannot miss it, so nothing was moved
        assert pool["pages_strayed"] == 0 and pool["pages_on_node"] == pool["pages"] > 0
        orders = []
        for e in range(4):
            assert loader.epoch == e
            ids = epoch_ids(loader)
            assert sorted(ids) == list(range(N_RECORDS)), f"epoch {e}"
            orders.append(ids)
        assert len({tuple(o) for o in orders}) == 4
        assert loader.stats()["pool"]["tids"] == tids  # the same threads throughout
        assert loader.stats()["records"] == 4 * N_RECORDS


@pytest.mark.parametrize("threads,prefetch", [(1, 2), (2, 3), (4, None), (3, 17)])
def test_order_independent_of_threads_and_prefetch(dataset, threads, prefetch):
    def run(t, p):
        with numafeed.Loader(dataset, 77, device="cpu", seed=5, threads=t, prefetch=p,
                             return_ids=True) as loader:
            return [epoch_ids(loader) for _ in range(2)]

    assert run(threads, prefetch) == run(1, 2)


def test_same_seed_same_order_other_seed_other_order(dataset):
    def first_epoch(seed):
        with numafeed.Loader(dataset, 64, device="cpu", seed=seed, return_ids=True) as loader:
            return epoch_ids(loader)

    assert first_epoch(1) == first_epoch(1)
    assert first_epoch(1) != first_epoch(2)


def test_set_epoch_and_len(dataset):
    with numafeed.Loader(dataset, 64, device="cpu", seed=4, return_ids=True) as a, \
         numafeed.Loader(dataset, 64, device="cpu", seed=4, return_ids=True) as b:
        assert len(a) == -(-N_RECORDS // 64)
        for _ in range(3):
            ref = epoch_ids(a)  # a runs epochs 0, 1, 2
        b.set_epoch(2)
        assert epoch_ids(b) == ref
        assert b.epoch == 3


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_disjoint_complete_equal_counts(dataset, world, drop_last):
    per_rank, counts = [], []
    for rank in range(world):
        with numafeed.Loader(dataset, 50, device="cpu", seed=9, rank=rank, world_size=world,
                             drop_last=drop_last, return_ids=True) as loader:
            n = 0
            ids = []
            for _, i in loader:
                ids.extend(to_numpy(i).tolist())
                n += 1
            assert n == len(loader)
            per_rank.append(ids)
            counts.append(n)
    assert len(set(counts)) == 1, counts
    flat = [i for ids in per_rank for i in ids]
    assert len(flat) == len(set(flat))  # disjoint
    if not drop_last:
        assert sorted(flat) == list(range(N_RECORDS))  # complete


def test_rank_defaults_from_torchrun_environment(dataset, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with numafeed.Loader(dataset, 50, device="cpu", return_ids=True) as loader:
        assert loader.state_dict()["rank"] == 1 and loader.state_dict()["world_size"] == 2
        assert len(epoch_ids(loader)) == N_RECORDS // 2
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        numafeed.Loader(dataset, 50, device="cpu")
