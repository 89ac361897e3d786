# SPDX-License-Identifier: Apache-2.0
"""Where torch cannot take a batch, the error says what to do: without torch
installed, install it or pass output="numpy"; for an unsigned field wider
than 8 bits on a torch without those DLPack types, output="numpy" or a
wider signed dtype at pack time."""
import sys

import numpy as np
import pytest

import numafeed


def test_without_torch_output_torch_says_what_to_do(tokens_dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails as if absent
    with pytest.raises(ImportError) as e:
        numafeed.Loader(tokens_dataset, 10, device="cpu")
    msg = str(e.value)
    assert "torch" in msg and "output='numpy'" in msg, msg
    with numafeed.Loader(tokens_dataset, 10, device="cpu", output="numpy") as loader:
        assert next(iter(loader)).shape == (10, 32)


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_unsigned_field_on_a_torch_without_the_type(tmp_path, monkeypatch, dtype):
    torch = pytest.importorskip("torch")
    numafeed.pack(tmp_path / "d", np.arange(100, dtype=dtype).reshape(50, 2), progress=False)
    real = torch.from_dlpack

    def old_torch(x):  # what torch before 2.3 does with kDLUInt wider than 8 bits
        if getattr(x, "dtype", "") == dtype:
            raise RuntimeError(f"Unsupported kUInt bits {np.dtype(dtype).itemsize * 8}")
        return real(x)

    monkeypatch.setattr(torch, "from_dlpack", old_torch)
    with numafeed.Loader(tmp_path / "d", 10, device="cpu") as loader:
        with pytest.raises(numafeed.NumafeedError) as e:
            next(iter(loader))
    msg = str(e.value)
    assert dtype in msg and "output='numpy'" in msg and "pack" in msg, msg
    assert e.value.code < 0 and e.value.name
