# SPDX-License-Identifier: Apache-2.0
"""Loader's integer arguments are taken exactly: a value out of its range is
a ValueError naming the keyword and the range, a bool or a float a
TypeError, never truncated to 32 bits or wrapped; the extension refuses the
same values on its own."""
import math

import numpy as np
import pytest

import numafeed
from numafeed import _numafeed
from conftest import N_RECORDS

U32, U64 = 2**32 - 1, 2**64 - 1

BAD = [
    # keyword, value, exception, what the message must say
    ("batch_size", 0, ValueError, "1..4294967295"),
    ("batch_size", 2**32 + 16, ValueError, "1..4294967295"),
    ("batch_size", -1, ValueError, "1..4294967295"),
    ("batch_size", True, TypeError, "bool"),
    ("batch_size", 64.0, TypeError, "int"),
    ("threads", 0, ValueError, "1..256"),
    ("threads", 257, ValueError, "1..256"),
    ("threads", True, TypeError, "bool"),
    ("prefetch", 1, ValueError, "2..4294967295"),
    ("prefetch", 2**32 + 4, ValueError, "2..4294967295"),
    ("seed", -1, ValueError, "0..18446744073709551615"),
    ("seed", 2**64, ValueError, "0..18446744073709551615"),
    ("seed", False, TypeError, "bool"),
    ("shuffle_window", -1, ValueError, "0..16777216"),
    ("shuffle_window", 2**24 + 1, ValueError, "0..16777216"),
    ("max_ring_bytes", -1, ValueError, "0..18446744073709551615"),
    ("max_ring_bytes", 2**64, ValueError, "0..18446744073709551615"),
    ("node", -1, ValueError, "0..2147483647"),
    ("node", 2**31, ValueError, "0..2147483647"),
    ("node", True, TypeError, "bool"),
    ("timeout", -1, ValueError, ">= 0"),
    ("timeout", math.nan, ValueError, ">= 0"),
    ("timeout", True, TypeError, "bool"),
    ("timeout", "1", TypeError, "seconds"),
]


@pytest.mark.parametrize("key,value,exc,says", BAD, ids=[f"{k}={v!r}" for k, v, *_ in BAD])
def test_out_of_range_is_refused_by_name(tokens_dataset, key, value, exc, says):
    kw = dict(device="cpu")
    if key == "batch_size":
        args = (tokens_dataset, value)
    else:
        args = (tokens_dataset, 10)
        kw[key] = value
    with pytest.raises(exc) as e:
        numafeed.Loader(*args, **kw).close()
    msg = str(e.value)
    assert key in msg and says in msg, msg


@pytest.mark.parametrize("rank,world_size", [(2**32, 2**32 + 1), (0, 2**32), (2, 2), (0, 0),
                                             (-1, 2)])
def test_rank_and_world_size_exact(tokens_dataset, rank, world_size):
    with pytest.raises(ValueError) as e:
        numafeed.Loader(tokens_dataset, 10, device="cpu", rank=rank, world_size=world_size)
    msg = str(e.value)
    assert "rank" in msg or "world_size" in msg, msg


def test_edges_and_numpy_integers_are_accepted(tokens_dataset):
    with numafeed.Loader(tokens_dataset, np.int64(100), device="cpu", threads=np.int32(1),
                         prefetch=2, seed=U64, rank=np.uint32(2), world_size=3, timeout=60,
                         shuffle_window=2**24, max_ring_bytes=U64, node=0) as loader:
        assert loader.state_dict()["seed"] == U64
        assert sum(b.shape[0] for b in loader) == N_RECORDS // 3
    with numafeed.Loader(tokens_dataset, 10, device="cpu", timeout=math.inf) as loader:
        next(iter(loader))
    numafeed.Loader(tokens_dataset, 10, device="cpu", timeout=0).close()


@pytest.mark.parametrize("kw", [dict(batch_size=2**32 + 16), dict(rank=2**32, world_size=3),
                                dict(world_size=2**32 + 1), dict(threads=-1), dict(seed=-1),
                                dict(shuffle_window=2**64), dict(max_ring_bytes=-1),
                                dict(prefetch=True), dict(gpu=2**31), dict(node=2**31)])
def test_the_extension_refuses_what_it_would_truncate(tokens_dataset, kw):
    key = next(iter(kw))
    with pytest.raises((ValueError, TypeError)) as e:
        _numafeed.Loader(tokens_dataset, **dict(dict(batch_size=10, device=1), **kw))
    assert key in str(e.value), str(e.value)
