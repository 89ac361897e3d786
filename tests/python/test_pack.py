# SPDX-License-Identifier: Apache-2.0
"""numafeed.pack from arrays, dicts and iterables of records; dtypes; errors
leave nothing behind; force; the result reads back through the CLI's check."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import numafeed


def read_all(path, batch=1000):
    with numafeed.Loader(path, batch, device="cpu", shuffle=False, output="numpy") as loader:
        parts = list(loader)
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32",
                                   "uint64", "int64", "float16", "float32", "float64"])
def test_every_dtype_round_trips(tmp_path, dtype):
    a = (np.arange(600 * 5) % 120).astype(dtype).reshape(600, 5)
    s = numafeed.pack(tmp_path / "d", a, progress=False)
    assert s["records"] == 600 and s["fields"] == [("data", dtype, (5,))]
    assert np.array_equal(read_all(tmp_path / "d"), a)


def test_big_endian_input_is_stored_little_endian(tmp_path):
    a = np.arange(100, dtype=">i4")
    numafeed.pack(tmp_path / "d", a, progress=False)
    got = read_all(tmp_path / "d")
    assert got.dtype == np.int32 and np.array_equal(got, np.arange(100))


def test_iterable_of_records_equals_dict_of_arrays(tmp_path):
    n = 777
    x = np.random.default_rng(0).standard_normal((n, 3, 2)).astype(np.float32)
    y = np.arange(n, dtype=np.int64)
    numafeed.pack(tmp_path / "a", {"x": x, "y": y}, progress=False)
    numafeed.pack(tmp_path / "b", ({"x": x[i], "y": y[i]} for i in range(n)), total=n,
                  chunk_records=100, progress=False)
    a, b = read_all(tmp_path / "a"), read_all(tmp_path / "b")
    for k in ("x", "y"):
        assert np.array_equal(a[k], b[k]) and np.array_equal(a[k], {"x": x, "y": y}[k])
    ma = (tmp_path / "a" / "manifest.json").read_text()
    mb = (tmp_path / "b" / "manifest.json").read_text()
    assert ma == mb  # the same layout, the same bytes


def test_bad_input_is_refused_and_leaves_nothing(tmp_path):
    out = tmp_path / "d"
    with pytest.raises(ValueError, match="same record count"):
        numafeed.pack(out, {"a": np.zeros((3, 2)), "b": np.zeros(4)}, progress=False)
    with pytest.raises(TypeError, match="dtype"):
        numafeed.pack(out, np.zeros(3, dtype=np.complex64), progress=False)
    with pytest.raises(ValueError, match="record 2"):
        numafeed.pack(out, iter([np.zeros(3), np.zeros(3), np.zeros(4)]), progress=False)
    with pytest.raises(ValueError, match="no records"):
        numafeed.pack(out, iter([]), progress=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary left either


def test_existing_output_needs_force(tmp_path):
    numafeed.pack(tmp_path / "d", np.zeros(10, np.int32), progress=False)
    with pytest.raises(numafeed.NumafeedError) as exc:
        numafeed.pack(tmp_path / "d", np.ones(10, np.int32), progress=False)
    assert exc.value.code == -17  # -EEXIST
    numafeed.pack(tmp_path / "d", np.ones(10, np.int32), progress=False, force=True)
    assert read_all(tmp_path / "d").tolist() == [1] * 10


def test_progress_bar_and_cli_check(tmp_path, capfd):
    numafeed.pack(tmp_path / "d", np.zeros((5000, 8), np.uint8), progress=True,
                  chunk_records=1000)
    err = capfd.readouterr().err
    assert "5.00k/5.00k" in err or "5000/5000" in err, err
    cli = shutil.which("numafeed") or os.environ.get("NUMAFEED_CLI")
    if cli:
        r = subprocess.run([cli, "check", str(tmp_path / "d")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
