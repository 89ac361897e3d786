# SPDX-License-Identifier: Apache-2.0
"""Variable fields through the Loader: Ragged (numpy, torch) and torch's
nested tensors over the batch's own memory (they hold its slot like any
tensor), equal to each other and to the source; pad= collation; str fields
as lists of str; output="dlpack" Fields with their offsets; the arguments
checked; exact resume mid-epoch."""
import json

import numpy as np
import pytest

import numafeed
from conftest import N_SAMPLES, to_numpy

BATCH = 37


def has_njt():
    try:
        import torch
    except ImportError:
        return False
    return hasattr(getattr(torch, "nested", None), "nested_tensor_from_jagged")


def source_rows(samples, ids, field):
    return [samples[i][field] for i in ids]


def test_numpy_ragged_equals_source(var_dataset, samples):
    with numafeed.Loader(var_dataset, BATCH, device="cpu", output="numpy", seed=2,
                         return_ids=True) as loader:
        seen = 0
        for b, ids in loader:
            ids = ids.tolist()
            r = b["tokens"]
            assert isinstance(r, numafeed.Ragged) and len(r) == len(ids)
            assert r.offsets.dtype == np.int64 and r.offsets[0] == 0
            want = source_rows(samples, ids, "tokens")
            assert [x.tolist() for x in r] == [w.tolist() for w in want]
            assert r.lengths().tolist() == [len(w) for w in want]
            assert np.shares_memory(r[len(r) - 1], r.values) or len(r[len(r) - 1]) == 0
            assert [bytes(x) for x in b["blob"]] == source_rows(samples, ids, "blob")
            assert b["text"] == source_rows(samples, ids, "text")
            assert b["__key__"] == [f"s{i:05d}" for i in ids]
            seen += len(ids)
    assert seen == N_SAMPLES


def test_torch_default_is_njt_where_torch_has_it(var_dataset):
    torch = pytest.importorskip("torch")
    with numafeed.Loader(var_dataset, BATCH, device="cpu") as loader:
        t = next(iter(loader))["tokens"]
    if has_njt():
        assert t.is_nested and t.layout == torch.jagged
    else:
        assert isinstance(t, numafeed.Ragged) and isinstance(t.values, torch.Tensor)


@pytest.mark.parametrize("ragged", ["njt", "ragged"])
def test_torch_outputs_hold_the_slot_zero_copy(var_dataset, ragged):
    """Four slots: four kept values fill the ring, as four kept tensors of
    fixed fields do; a copy would hold nothing."""
    pytest.importorskip("torch")
    if ragged == "njt" and not has_njt():
        pytest.skip("this torch has no nested_tensor_from_jagged")
    with numafeed.Loader(var_dataset, BATCH, device="cpu", prefetch=4, ragged=ragged,
                         timeout=5) as loader:
        it = iter(loader)
        kept = [next(it)["weights"] for _ in range(4)]
        with pytest.raises(numafeed.NumafeedError) as e:
            next(it)
        assert e.value.name == "EDEADLK"
        del kept


def test_njt_values_and_offsets_are_the_raggeds(var_dataset):
    torch = pytest.importorskip("torch")
    if not has_njt():
        pytest.skip("this torch has no nested_tensor_from_jagged")
    kw = dict(device="cpu", seed=9, return_ids=True)
    with numafeed.Loader(var_dataset, BATCH, ragged="njt", **kw) as a, \
            numafeed.Loader(var_dataset, BATCH, ragged="ragged", **kw) as b:
        for (x, ia), (y, ib) in zip(a, b):
            assert torch.equal(ia, ib)
            for k in ("tokens", "weights", "blob"):
                assert torch.equal(x[k].values(), y[k].values)
                assert torch.equal(x[k].offsets(), y[k].offsets)
                assert [t.tolist() for t in x[k].unbind()] == [t.tolist() for t in y[k]]


def test_pad_collation(var_dataset, samples):
    torch = pytest.importorskip("torch")
    pad = {"tokens": (16, -1), "blob": 8}
    with numafeed.Loader(var_dataset, BATCH, device="cpu", pad=pad, seed=1,
                         return_ids=True) as loader:
        for b, ids in loader:
            padded, lengths = b["tokens"]
            assert padded.shape == (len(ids), 16) and padded.dtype == torch.int32
            assert lengths.dtype == torch.int64
            for row, n, i in zip(padded.tolist(), lengths.tolist(), ids.tolist()):
                src = samples[i]["tokens"].tolist()
                assert n == min(len(src), 16)  # longer records are truncated
                assert row == src[:16] + [-1] * (16 - n)
            bp, bl = b["blob"]
            assert bp.dtype == torch.uint8 and bp.shape == (len(ids), 8)
            for row, n, i in zip(bp.tolist(), bl.tolist(), ids.tolist()):
                assert bytes(row[:n]) == samples[i]["blob"][:8] and row[n:] == [0] * (8 - n)
            assert isinstance(b["weights"], (numafeed.Ragged, torch.Tensor))  # not padded


def test_pad_with_numpy(var_dataset, samples):
    with numafeed.Loader(var_dataset, BATCH, device="cpu", output="numpy", shuffle=False,
                         pad={"weights": (3, 0.5)}) as loader:
        padded, lengths = next(iter(loader))["weights"]
    assert padded.dtype == np.float32 and padded.shape == (BATCH, 3)
    for i in range(BATCH):
        src = samples[i]["weights"][:3]
        assert lengths[i] == len(src) and np.array_equal(padded[i, :len(src)], src)
        assert (padded[i, len(src):] == 0.5).all()


def test_dlpack_output_gives_fields_with_offsets(var_dataset, samples):
    with numafeed.Loader(var_dataset, BATCH, device="cpu", output="dlpack",
                         shuffle=False) as loader:
        b = next(iter(loader))
    f = b["tokens"]
    assert (f.kind, f.dtype, f.offsets.kind, f.offsets.dtype) == ("array", "int32", "offsets",
                                                                  "int64")
    assert f.offsets.shape == (BATCH + 1,) and f.host_offsets.__dlpack_device__() == (1, 0)
    off = np.from_dlpack(f.offsets)
    assert f.shape == (off[-1],)
    values = np.from_dlpack(f)
    assert [values[off[i]:off[i + 1]].tolist() for i in range(BATCH)] == [
        samples[i]["tokens"].tolist() for i in range(BATCH)]
    assert b["text"].kind == "str" and b["text"].tolist() == [s["text"] for s in samples[:BATCH]]
    assert b["blob"].tolist() == [s["blob"] for s in samples[:BATCH]]
    assert b["patch"].kind == "fixed" and b["patch"].offsets is None
    with pytest.raises(TypeError, match="bytes or str"):
        b["tokens"].tolist()


def test_dlpack_output_with_ids(var_dataset):
    with numafeed.Loader(var_dataset, BATCH, device="cpu", output="dlpack", shuffle=False,
                         return_ids=True) as loader:
        b, ids = next(iter(loader))
    assert isinstance(ids, np.ndarray) and ids.tolist() == list(range(BATCH))
    assert b["idx"].shape == (BATCH,)


def test_arguments_checked(var_dataset):
    bad = [
        (dict(pad={"nope": 4}), ValueError, "no field 'nope'"),
        (dict(pad={"text": 4}), ValueError, "str"),
        (dict(pad={"patch": 4}), ValueError, "fixed"),
        (dict(pad={"tokens": 0}), ValueError, "length"),
        (dict(pad={"tokens": (4, "x")}), TypeError, "number"),
        (dict(pad=[("tokens", 4)]), TypeError, "dict"),
        (dict(pad={"tokens": 4}, output="dlpack"), ValueError, "dlpack"),
        (dict(ragged="list"), ValueError, "ragged"),
        (dict(ragged="njt", output="numpy"), ValueError, "output='torch'"),
    ]
    for kw, exc, words in bad:
        with pytest.raises(exc, match=words):
            numafeed.Loader(var_dataset, 4, device="cpu", **kw)


def test_njt_on_a_torch_without_it_says_what_to_do(var_dataset, monkeypatch):
    torch = pytest.importorskip("torch")
    if has_njt():
        monkeypatch.delattr(torch.nested, "nested_tensor_from_jagged")
    with pytest.raises(ValueError, match="ragged='ragged'"):
        numafeed.Loader(var_dataset, 4, device="cpu", ragged="njt")
    with numafeed.Loader(var_dataset, 4, device="cpu") as loader:  # the default falls back
        assert isinstance(next(iter(loader))["tokens"], numafeed.Ragged)


class Batches:
    """A loader's batches as (ids, tokens as lists, text), taken n at a time
    through one iterator kept open (dropping it would end the epoch)."""

    def __init__(self, loader):
        self.loader, self.it = loader, iter(loader)

    def take(self, n):
        out = []
        while len(out) < n:
            try:
                b, ids = next(self.it)
            except StopIteration:
                self.it = iter(self.loader)
                continue
            out.append((to_numpy(ids).tolist(), [x.tolist() for x in b["tokens"]], b["text"]))
        return out


@pytest.mark.parametrize("stop_after", [1, 17, 40, 41, 55])
def test_resume_mid_epoch_on_variable_data(var_dataset, stop_after):
    kw = dict(device="cpu", seed=13, output="numpy", return_ids=True)
    with numafeed.Loader(var_dataset, BATCH, **kw) as loader:  # 41 batches an epoch
        whole = Batches(loader).take(90)
    with numafeed.Loader(var_dataset, BATCH, **kw) as loader:
        first = Batches(loader)
        got = first.take(stop_after)
        state = json.loads(json.dumps(loader.state_dict()))
        assert state["epoch"] * 41 + state["batch"] == stop_after
    with numafeed.Loader(var_dataset, BATCH, threads=3, **kw) as loader:
        loader.load_state_dict(state)
        got += Batches(loader).take(90 - stop_after)
    assert got == whole
