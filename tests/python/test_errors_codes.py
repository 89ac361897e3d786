# SPDX-License-Identifier: Apache-2.0
"""Every NumafeedError carries the library's code and its name, and says one
true thing once: no message prefixed twice, no "GPU" from a host loader."""
import pytest

import numafeed
from conftest import GPU


def raised(fn):
    with pytest.raises(numafeed.NumafeedError) as e:
        fn()
    assert isinstance(e.value.code, int) and e.value.code < 0, e.value.code
    assert isinstance(e.value.name, str) and e.value.name, e.value.name
    return e.value


def test_missing_dataset(tmp_path):
    e = raised(lambda: numafeed.Loader(tmp_path / "nope", 10, device="cpu"))
    assert (e.code, e.name) == (-2, "ENOENT")
    assert str(e).count(str(tmp_path / "nope")) == 1, str(e)


def test_every_slot_held_is_said_once_and_names_a_host_pool(tokens_dataset):
    with numafeed.Loader(tokens_dataset, 100, device="cpu", prefetch=4) as loader:
        it = iter(loader)
        held = [next(it) for _ in range(4)]
        e = raised(lambda: next(it))
        del held
    msg = str(e)
    assert e.name == "EDEADLK" and msg.count("loader_next") == 1, msg
    assert "slots are held" in msg and "host pool" in msg and "GPU" not in msg, msg


def test_closed_loader_and_writer(tokens_dataset, tmp_path):
    loader = numafeed.Loader(tokens_dataset, 10, device="cpu")
    loader.close()
    raised(lambda: len(loader))
    raised(lambda: iter(loader))
    from numafeed import _numafeed
    w = _numafeed.Writer(str(tmp_path / "d"), (("x", "int32", ()),))
    w.close()
    raised(w.finish)


def test_a_corrupt_shard_in_a_host_loader_never_says_gpu(tmp_path, records):
    out = tmp_path / "ds"
    numafeed.pack(out, records["tokens"], codec="none", block_bytes=4096, progress=False)
    shard = sorted(p for p in out.iterdir() if p.name != "manifest.json")[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))

    def run():
        with numafeed.Loader(out, 100, device="cpu", shuffle=False) as loader:
            for _ in loader:
                pass

    e = raised(run)
    assert "GPU" not in str(e) and str(e).count("loader_next") <= 1, str(e)


@pytest.mark.skipif(GPU, reason="checks the refusal where no GPU is usable")
def test_no_gpu_is_enocuda(tokens_dataset):
    e = raised(lambda: numafeed.Loader(tokens_dataset, 10, device="cuda:0"))
    assert e.name == "NUMAFEED_ENOCUDA" and e.code == -10008


def test_has_cuda_and_cuda_available():
    assert isinstance(numafeed.has_cuda(), bool)
    assert isinstance(numafeed.cuda_available(), bool)
    if not numafeed.has_cuda():
        assert not numafeed.cuda_available()
    torch = pytest.importorskip("torch")
    # both ask the driver whether a device is usable now
    assert numafeed.cuda_available() == (numafeed.has_cuda() and torch.cuda.is_available())
    assert numafeed.has_cuda.__doc__ and "compiled" in numafeed.has_cuda.__doc__
    assert numafeed.cuda_available.__doc__
