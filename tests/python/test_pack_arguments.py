# SPDX-License-Identifier: Apache-2.0
"""numafeed.pack's integer options are taken exactly: out of range is a
ValueError naming the option and its range (never wrapped: block_bytes=2**64
is not the default 0), a bool a TypeError; nothing is left behind."""
import numpy as np
import pytest

import numafeed
from numafeed import _numafeed

BAD = [
    ("level", 23, ValueError, "-131072..22"),
    ("level", 2**31, ValueError, "-131072..22"),
    ("level", True, TypeError, "bool"),
    ("block_bytes", -1, ValueError, "0..268435456"),
    ("block_bytes", 2**64, ValueError, "0..268435456"),
    ("block_bytes", 2**28 + 1, ValueError, "0..268435456"),
    ("shard_bytes", 2**64, ValueError, "0..18446744073709551615"),
    ("shard_bytes", -1, ValueError, "0..18446744073709551615"),
    ("chunk_records", 0, ValueError, "1..4294967295"),
    ("chunk_records", 1.5, TypeError, "int"),
    ("total", -1, ValueError, "0.."),
]


@pytest.mark.parametrize("key,value,exc,says", BAD, ids=[f"{k}={v!r}" for k, v, *_ in BAD])
def test_out_of_range_is_refused_by_name(tmp_path, key, value, exc, says):
    out = tmp_path / "d"
    with pytest.raises(exc) as e:
        numafeed.pack(out, np.zeros((10, 2), np.int32), progress=False, **{key: value})
    msg = str(e.value)
    assert key in msg and says in msg, msg
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw", [dict(block_bytes=2**64), dict(shard_bytes=-1),
                                dict(level=2**31), dict(level=True)])
def test_the_extension_refuses_what_it_would_wrap(tmp_path, kw):
    key = next(iter(kw))
    with pytest.raises((ValueError, TypeError)) as e:
        _numafeed.Writer(str(tmp_path / "d"), (("x", "int32", ()),), **kw)
    assert key in str(e.value), str(e.value)
    assert list(tmp_path.iterdir()) == []
