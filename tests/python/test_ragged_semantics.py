# SPDX-License-Identifier: Apache-2.0
"""numafeed.Ragged over numpy arrays and torch tensors alike: len,
indexing (negative, out of range, slices), iteration, lengths, and pad with
and without `to` (truncation included), against a per-record reference."""
import numpy as np
import pytest

import numafeed

LENGTHS = [3, 0, 5, 1, 0, 7, 2]


def reference():
    values = np.arange(1, sum(LENGTHS) + 1, dtype=np.int32) * 10
    offsets = np.concatenate([[0], np.cumsum(LENGTHS)]).astype(np.int64)
    rows = [values[offsets[i]:offsets[i + 1]] for i in range(len(LENGTHS))]
    return values, offsets, rows


def libs():
    out = [("numpy", np.asarray, lambda x: np.asarray(x))]
    try:
        import torch

        out.append(("torch", torch.from_numpy, lambda x: x.numpy()))
    except ImportError:
        pass
    return out


@pytest.fixture(params=[lib[0] for lib in libs()])
def lib(request):
    return next(x for x in libs() if x[0] == request.param)


def test_len_index_iterate(lib):
    _, wrap, back = lib
    values, offsets, rows = reference()
    r = numafeed.Ragged(wrap(values), wrap(offsets))
    assert len(r) == len(LENGTHS)
    for i, row in enumerate(rows):
        assert back(r[i]).tolist() == row.tolist()
        assert back(r[i - len(rows)]).tolist() == row.tolist()
    assert [back(x).tolist() for x in r] == [x.tolist() for x in rows]
    with pytest.raises(IndexError):
        r[len(rows)]
    with pytest.raises(IndexError):
        r[-len(rows) - 1]
    assert back(r.lengths()).tolist() == LENGTHS
    part = r[2:5]
    assert len(part) == 3 and [back(x).tolist() for x in part] == [x.tolist() for x in rows[2:5]]
    assert back(part.offsets).tolist() == [0, 5, 6, 6]
    assert len(r[5:2]) == 0


def test_views_share_memory(lib):
    name, wrap, back = lib
    values, offsets, _ = reference()
    v = wrap(values.copy())
    r = numafeed.Ragged(v, wrap(offsets))
    r[2][0] = -1  # a view: the change shows in values
    assert back(v)[offsets[2]] == -1


@pytest.mark.parametrize("to", [None, 0, 1, 4, 7, 10])
def test_pad_equals_per_record_reference(lib, to):
    _, wrap, back = lib
    values, offsets, rows = reference()
    padded, lengths = numafeed.Ragged(wrap(values), wrap(offsets)).pad(value=-9, to=to)
    width = max(LENGTHS) if to is None else to
    want = np.full((len(rows), width), -9, dtype=np.int32)
    for i, row in enumerate(rows):
        k = min(len(row), width)
        want[i, :k] = row[:k]
    assert back(padded).dtype == np.int32 and back(padded).tolist() == want.tolist()
    assert back(lengths).tolist() == [min(n, width) for n in LENGTHS]


def test_pad_of_no_values_and_no_records(lib):
    _, wrap, back = lib
    r = numafeed.Ragged(wrap(np.zeros(0, np.float32)), wrap(np.zeros(4, np.int64)))
    p, n = r.pad()
    assert back(p).shape == (3, 0) and back(n).tolist() == [0, 0, 0]
    p, n = r.pad(value=1.5, to=2)
    assert back(p).tolist() == [[1.5, 1.5]] * 3
    empty = numafeed.Ragged(wrap(np.zeros(0, np.int8)), wrap(np.zeros(1, np.int64)))
    assert len(empty) == 0 and list(empty) == [] and back(empty.pad(to=3)[0]).shape == (0, 3)


def test_bad_construction():
    with pytest.raises(ValueError, match="1-D"):
        numafeed.Ragged(np.zeros((2, 2)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="at least one"):
        numafeed.Ragged(np.zeros(2), np.zeros(0, np.int64))
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="both"):
        numafeed.Ragged(torch.zeros(2), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="to"):
        numafeed.Ragged(np.zeros(2), np.array([0, 2])).pad(to=-1)
