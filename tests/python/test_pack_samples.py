# SPDX-License-Identifier: Apache-2.0
"""numafeed.pack from an iterable of dict samples: every value kind round
trips byte for byte, every sample exactly once per epoch for any thread
count; the inference rules; fields= in each spelling; a sample that does not
fit is refused naming its index, key and field; a record over
max_record_bytes is refused naming its key; nothing is left behind."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import numafeed
from conftest import N_SAMPLES


def manifest(path):
    with open(os.path.join(path, "manifest.json")) as f:
        return {f["name"]: (f["dtype"], f.get("shape")) for f in json.load(f)["fields"]}


def read_by_id(path, threads=1, batch=53):
    """{record id: {field: value}} over one shuffled epoch, as numpy and
    Python values, counting how often each id came."""
    seen = {}
    with numafeed.Loader(path, batch, device="cpu", output="numpy", seed=4, threads=threads,
                         return_ids=True) as loader:
        for b, ids in loader:
            for j, rid in enumerate(ids.tolist()):
                assert rid not in seen, f"record {rid} twice in one epoch"
                # copies: a view would hold the batch's slot
                seen[rid] = {k: (v[j] if isinstance(v, list) else np.array(v[j]))
                             for k, v in b.items()}
    return seen


def test_inferred_layout(var_dataset):
    assert manifest(var_dataset) == {
        "__key__": ("str", None), "idx": ("int64", []), "score": ("float64", []),
        "text": ("str", None), "blob": ("bytes", None), "tokens": ("int32", [-1]),
        "weights": ("float32", [-1]), "patch": ("uint8", [2, 3])}


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_every_kind_round_trips_exactly_once(var_dataset, samples, threads):
    got = read_by_id(var_dataset, threads=threads)
    assert sorted(got) == list(range(N_SAMPLES))
    for rid, rec in got.items():
        s = samples[rid]
        assert rec["idx"] == s["idx"] == rid and rec["score"] == s["score"]
        assert rec["__key__"] == s["__key__"] and rec["text"] == s["text"]
        assert rec["blob"].tobytes() == s["blob"]
        for k in ("tokens", "weights", "patch"):
            assert rec[k].dtype == s[k].dtype and rec[k].tobytes() == s[k].tobytes(), (rid, k)


def test_cli_check_accepts_it(var_dataset):
    cli = shutil.which("numafeed") or os.environ.get("NUMAFEED_CLI")
    if not cli:
        pytest.skip("no numafeed command built")
    r = subprocess.run([cli, "check", var_dataset], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_empty_values_and_unicode(tmp_path):
    texts = ["", "ß", "日本", "🚀" * 1000, "a\u0000b", ""]
    rows = [{"t": t, "b": t.encode()[:3], "v": np.arange(len(t) % 3, dtype=np.int16)}
            for t in texts]
    numafeed.pack(tmp_path / "d", rows, progress=False)
    with numafeed.Loader(tmp_path / "d", 6, device="cpu", shuffle=False,
                         output="numpy") as loader:
        b = next(iter(loader))
    assert b["t"] == texts
    assert [bytes(x) for x in b["b"]] == [r["b"] for r in rows]
    assert b["v"].lengths().tolist() == [len(t) % 3 for t in texts]


def test_empty_samples_beside_others(tmp_path):
    rows = [{"t": "", "v": np.zeros(0, np.int64)}] * 5 + [{"t": "x", "v": np.ones(1, np.int64)}]
    numafeed.pack(tmp_path / "d", rows, progress=False)
    with numafeed.Loader(tmp_path / "d", 6, device="cpu", shuffle=False,
                         output="numpy") as loader:
        b = next(iter(loader))
    assert b["t"] == [""] * 5 + ["x"] and b["v"].values.tolist() == [1]
    assert b["v"].lengths().tolist() == [0] * 5 + [1]


def test_only_empty_samples_are_refused(tmp_path):
    """A block holds at least one byte (docs/format.md): a dataset of records
    of 0 bytes each has nothing to store."""
    expect_refusal(tmp_path, [{"t": "", "v": np.zeros(0, np.int64)}] * 5, ValueError,
                   "every sample", "0 bytes")


def test_python_lists_and_scalars(tmp_path):
    rows = [{"ids": list(range(i)), "x": [float(i)] * (i + 1), "n": i, "grid": [[i, i], [0, 1]]}
            for i in range(1, 20)]
    s = numafeed.pack(tmp_path / "d", rows, progress=False)
    assert s["fields"] == [("ids", "int64", None), ("x", "float64", None), ("n", "int64", ()),
                           ("grid", "int64", (2, 2))]
    with numafeed.Loader(tmp_path / "d", 19, device="cpu", shuffle=False,
                         output="numpy") as loader:
        b = next(iter(loader))
    assert [r.tolist() for r in b["ids"]] == [r["ids"] for r in rows]
    assert b["grid"].tolist() == [r["grid"] for r in rows]


def test_torch_tensors_bfloat16_included(tmp_path):
    torch = pytest.importorskip("torch")
    rows = [{"h": torch.randn(i % 5).to(torch.bfloat16), "y": torch.tensor(i)} for i in range(40)]
    s = numafeed.pack(tmp_path / "d", rows, progress=False)
    assert s["fields"] == [("h", "bfloat16", None), ("y", "int64", ())]
    with numafeed.Loader(tmp_path / "d", 40, device="cpu", shuffle=False,
                         ragged="ragged") as loader:
        b = next(iter(loader))
    assert b["h"].values.dtype == torch.bfloat16
    for i, h in enumerate(b["h"]):
        assert torch.equal(h, rows[i]["h"])


def test_fields_in_each_spelling_give_one_layout(tmp_path):
    rows = [{"tok": np.arange(8, dtype=np.uint16), "txt": "x" * i, "y": i, "extra": b"?"}
            for i in range(30)]
    spellings = [
        [("tok", "uint16", (8,)), ("txt", "str"), ("y", "int32")],
        {"tok": (np.uint16, 8), "txt": str, "y": ("int32", ())},
        [("tok", np.dtype("<u2"), [8]), ("txt", "str", None), ("y", np.int32, ())],
    ]
    texts = set()
    for k, fields in enumerate(spellings):
        s = numafeed.pack(tmp_path / str(k), rows, fields, progress=False)  # extra left out
        assert s["fields"] == [("tok", "uint16", (8,)), ("txt", "str", None), ("y", "int32", ())]
        texts.add((tmp_path / str(k) / "manifest.json").read_text())
    assert len(texts) == 1
    # what pack returns goes back in as fields=
    s2 = numafeed.pack(tmp_path / "again", rows, s["fields"], progress=False)
    assert s2["fields"] == s["fields"]
    for var in (None, -1, (-1,), [-1]):
        s = numafeed.pack(tmp_path / f"v{var}", rows, [("tok", "uint16", var)], force=True,
                          progress=False)
        assert s["fields"] == [("tok", "uint16", None)]


def test_a_fixed_1d_field_needs_fields(tmp_path):
    rows = [{"t": np.arange(4, dtype=np.int32)}] * 10
    assert numafeed.pack(tmp_path / "a", rows, progress=False)["fields"] == [
        ("t", "int32", None)]
    assert numafeed.pack(tmp_path / "b", rows, {"t": ("int32", (4,))}, progress=False)[
        "fields"] == [("t", "int32", (4,))]
    with numafeed.Loader(tmp_path / "b", 10, device="cpu", output="numpy") as loader:
        assert next(iter(loader)).shape == (10, 4)


def test_records_form_and_arrays_forms_unchanged(tmp_path):
    """A bare array per record is still a fixed record of the field `name`."""
    s = numafeed.pack(tmp_path / "r", (np.arange(3) + i for i in range(10)), progress=False)
    assert s["fields"] == [("data", "int64", (3,))]


def expect_refusal(tmp_path, rows, exc, *words, fields=None, **kw):
    out = tmp_path / "d"
    with pytest.raises(exc) as e:
        numafeed.pack(out, rows, fields, progress=False, **kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []
    return e.value


def test_refusals_name_the_sample_key_and_field(tmp_path):
    good = {"__key__": "a", "t": "x", "v": np.arange(3, dtype=np.int32), "n": 1}
    cases = [
        ([good, dict(good, __key__="b", t=b"bytes")], TypeError, "sample 1", "'b'", "'t'"),
        ([good, dict(good, __key__="c", v=np.zeros(3, np.float32))], ValueError, "sample 1",
         "'c'", "'v'", "float32", "int32"),
        ([good, dict(good, __key__="d", v=np.zeros((2, 2), np.int32))], ValueError, "'d'", "'v'"),
        ([good, good, {"__key__": "e", "t": "x", "n": 2}], ValueError, "sample 2", "'e'",
         "lacks", "'v'"),
        ([good, dict(good, __key__="f", more=1)], ValueError, "'f'", "'more'"),
        ([good, dict(good, __key__="g", n=2.5)], ValueError, "'g'", "'n'", "float"),
        ([good, dict(good, __key__="h", n=1 << 70)], TypeError, "'h'", "'n'"),
        ([good, dict(good, __key__="i", t="\ud800")], ValueError, "'i'", "'t'", "UTF-8"),
        ([good, dict(good, __key__="j", t=None)], TypeError, "'j'", "'t'"),
        ([dict(good, v=[])], TypeError, "sample 0", "'v'", "fields="),
        ([dict(good, v=None)], TypeError, "sample 0", "'v'", "fields="),
        ([{"key": 7, "x": np.zeros(2, np.complex64)}], TypeError, "key 7", "'x'", "dtype"),
    ]
    for rows, exc, *words in cases:
        expect_refusal(tmp_path, rows, exc, *words)


def test_python_values_convert_only_when_nothing_changes(tmp_path):
    fields = {"a": "uint8", "b": ("float32", None), "c": ("int16", (2,))}
    ok = [{"a": 255, "b": [0.5, 1], "c": [1, -2]}]
    assert numafeed.pack(tmp_path / "ok", ok, fields, progress=False)["records"] == 1
    # an array of a narrower dtype goes in; a wider one does not
    narrow = [{"a": np.uint8(1), "b": np.zeros(2, np.float16), "c": np.zeros(2, np.int8)}]
    assert numafeed.pack(tmp_path / "narrow", narrow, fields, progress=False)["records"] == 1
    for k, (row, words) in enumerate([
            ({"a": 256, "b": [], "c": [1, 2]}, ("'a'", "range")),
            ({"a": 1, "b": [], "c": [1, 2.5]}, ("'c'", "float")),
            ({"a": 1, "b": np.zeros(2, np.float64), "c": [1, 2]}, ("'b'", "float64"))]):
        d = tmp_path / f"bad{k}"
        d.mkdir()
        expect_refusal(d, [row], ValueError, "sample 0", *words, fields=fields)


def test_a_record_too_large_is_refused_naming_its_key(tmp_path):
    rows = [{"__key__": f"r{i}", "data": bytes(1000 * (i + 1))} for i in range(5)]
    e = expect_refusal(tmp_path, iter(rows), numafeed.NumafeedError, "sample 3", "'r3'",
                       "4002 bytes", "max_record_bytes (3500)", max_record_bytes=3500)
    assert e.name == "EFBIG"
    e = expect_refusal(tmp_path, [{"x": np.zeros(20 << 20, np.float32)}],
                       numafeed.NumafeedError, "sample 0", "83886080 bytes", "64 MiB")
    assert e.name == "EFBIG"
    with pytest.raises(ValueError, match="max_record_bytes"):
        numafeed.pack(tmp_path / "d", rows, max_record_bytes=(256 << 20) + 1)


def test_progress_counts_every_sample(tmp_path, capfd, samples):
    numafeed.pack(tmp_path / "d", iter(samples[:700]), total=700, progress=True)
    err = capfd.readouterr().err
    assert "700/700" in err, err
