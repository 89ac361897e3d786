# SPDX-License-Identifier: Apache-2.0
"""numafeed.pack takes torch bfloat16 tensors (the format and the CLI's
--field name:bfloat16 have the dtype; numpy has none) and the loader gives
them back bit for bit as torch bfloat16."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import numafeed

torch = pytest.importorskip("torch")


def read_torch(path, batch=1000):
    with numafeed.Loader(path, batch, device="cpu", shuffle=False) as loader:
        parts = list(loader)
    if isinstance(parts[0], dict):
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return torch.cat(parts)


def test_a_bfloat16_tensor_round_trips(tmp_path):
    x = torch.randn(300, 4, 2).to(torch.bfloat16)
    s = numafeed.pack(tmp_path / "d", x, progress=False)
    assert s["fields"] == [("data", "bfloat16", (4, 2))]
    got = read_torch(tmp_path / "d")
    assert got.dtype == torch.bfloat16 and torch.equal(got, x)
    cli = shutil.which("numafeed") or os.environ.get("NUMAFEED_CLI")
    if cli:
        r = subprocess.run([cli, "check", str(tmp_path / "d")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_bfloat16_beside_other_fields_and_as_records(tmp_path):
    x = torch.randn(200, 3).to(torch.bfloat16)
    y = np.arange(200, dtype=np.int64)
    numafeed.pack(tmp_path / "a", {"x": x, "y": y}, progress=False)
    # a 1-D value makes a variable-length field unless fields= says fixed
    numafeed.pack(tmp_path / "b", ({"x": x[i], "y": y[i]} for i in range(200)),
                  {"x": (torch.bfloat16, (3,)), "y": "int64"}, total=200, chunk_records=64,
                  progress=False)
    for d in ("a", "b"):
        got = read_torch(tmp_path / d)
        assert torch.equal(got["x"], x) and got["y"].tolist() == y.tolist()
    with pytest.raises(ValueError, match="bfloat16"):
        numafeed.pack(tmp_path / "c", iter([{"x": x[0]}, {"x": x[1].float()}]), progress=False)
