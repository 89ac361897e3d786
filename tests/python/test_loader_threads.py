# SPDX-License-Identifier: Apache-2.0
"""A Loader is used by one thread at a time: a second thread that starts an
epoch, steps another thread's epoch or repositions the loader while an
epoch is open gets a RuntimeError saying to use one Loader per thread, never
a deadlock, and the first thread's epoch goes on whole."""
import threading

import numpy as np
import pytest

import numafeed
from conftest import N_RECORDS, to_numpy


def in_thread(fn, timeout=30):
    """fn() on another thread; its exception, or None. Fails on a hang."""
    out = []

    def run():
        try:
            fn()
            out.append(None)
        except BaseException as e:  # noqa: B902 - handed to the test
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the second thread hung"
    return out[0]


def test_a_second_thread_is_refused_while_an_epoch_is_open(tokens_dataset):
    with numafeed.Loader(tokens_dataset, 100, device="cpu", return_ids=True) as loader:
        it = iter(loader)
        ids = [to_numpy(next(it)[1])]
        for use in (lambda: next(iter(loader)), lambda: next(it),
                    lambda: loader.set_epoch(3), lambda: loader.load_state_dict(
                        loader.state_dict())):
            e = in_thread(use)
            assert isinstance(e, RuntimeError), repr(e)
            assert "one Loader per thread" in str(e), str(e)
        ids += [to_numpy(i) for _, i in it]  # the owner's epoch is whole
        assert sorted(np.concatenate(ids).tolist()) == list(range(N_RECORDS))
        # once the epoch is over another thread may take the loader
        assert in_thread(lambda: sum(1 for _ in loader)) is None


@pytest.mark.parametrize("round", range(5))
def test_two_threads_iterating_one_loader_never_hang(tokens_dataset, round):
    loader = numafeed.Loader(tokens_dataset, 10, device="cpu")
    start = threading.Barrier(2)
    results = []

    def epochs():
        start.wait()
        try:
            for _ in range(3):
                results.append(sum(b.shape[0] for b in loader))
        except RuntimeError as e:
            results.append(e)

    threads = [threading.Thread(target=epochs, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "two threads on one Loader hung"
    loader.close()
    for r in results:  # every epoch run was whole; the other thread was told why
        assert r == N_RECORDS or ("one Loader per thread" in str(r)), r


def test_close_from_another_thread_is_allowed(tokens_dataset):
    loader = numafeed.Loader(tokens_dataset, 100, device="cpu")
    it = iter(loader)
    first = next(it)
    assert in_thread(loader.close) is None
    with pytest.raises(numafeed.NumafeedError, match="closed"):
        next(it)
    assert first.shape[0] == 100
