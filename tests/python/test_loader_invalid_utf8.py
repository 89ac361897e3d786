# SPDX-License-Identifier: Apache-2.0
"""A str field whose bytes are not UTF-8 (a dataset written otherwise, or a
manifest changed by hand: here a bytes field relabelled str) raises
NumafeedError naming the field and the record, never crashes, and the other
ways to read it still work."""
import json

import pytest

import numafeed

GOOD = ["ok", "ünïcödé", "", "🚀"]
BAD = {5: b"\xff\xfe", 9: b"abc\xc3", 12: b"\xed\xa0\x80"}  # a lone byte, a cut 2-byte, a surrogate


@pytest.fixture
def damaged(tmp_path):
    rows = []
    for i in range(16):
        raw = BAD.get(i, GOOD[i % len(GOOD)].encode())
        rows.append({"n": i, "t": raw})
    out = tmp_path / "d"
    numafeed.pack(out, rows, progress=False)
    manifest = out / "manifest.json"
    m = json.loads(manifest.read_text())
    for f in m["fields"]:
        if f["name"] == "t":
            f["dtype"] = "str"
    manifest.write_text(json.dumps(m))
    return out


@pytest.mark.parametrize("output", ["torch", "numpy"])
def test_invalid_utf8_names_field_and_record(damaged, output):
    if output == "torch":
        pytest.importorskip("torch")
    with numafeed.Loader(damaged, 16, device="cpu", shuffle=False, output=output) as loader:
        with pytest.raises(numafeed.NumafeedError) as e:
            next(iter(loader))
    msg = str(e.value)
    assert e.value.name == "NUMAFEED_ECORRUPT"
    assert "field t" in msg and "record 5" in msg and "UTF-8" in msg, msg


def test_valid_records_decode_and_dlpack_reads_the_bytes(damaged):
    with numafeed.Loader(damaged, 4, device="cpu", shuffle=False, output="numpy") as loader:
        first = next(iter(loader))
    assert first["t"] == GOOD  # records 0..3 are UTF-8
    with numafeed.Loader(damaged, 16, device="cpu", shuffle=False, output="dlpack") as loader:
        b = next(iter(loader))
        import numpy as np

        values, off = np.from_dlpack(b["t"]), np.from_dlpack(b["t"].offsets)
        assert values[off[12]:off[13]].tobytes() == BAD[12]
        with pytest.raises(numafeed.NumafeedError, match="record 5"):
            b["t"].tolist()
