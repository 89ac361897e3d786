# SPDX-License-Identifier: Apache-2.0
"""load_state_dict names the key it cannot use and what it expected."""
import pytest

import numafeed


@pytest.fixture
def loader(tokens_dataset):
    with numafeed.Loader(tokens_dataset, 100, device="cpu") as loader:
        yield loader


@pytest.mark.parametrize("bad,key,exc", [
    (dict(epoch="x"), "epoch", TypeError),
    (dict(epoch=1.5), "epoch", TypeError),
    (dict(epoch=True), "epoch", TypeError),
    (dict(epoch=-1), "epoch", ValueError),
    (dict(batch="3"), "batch", TypeError),
    (dict(batch=None), "batch", TypeError),
])
def test_a_bad_value_is_named(loader, bad, key, exc):
    state = dict(loader.state_dict(), **bad)
    with pytest.raises(exc) as e:
        loader.load_state_dict(state)
    msg = str(e.value)
    assert repr(key) in msg and "int" in msg, msg


@pytest.mark.parametrize("key", ["epoch", "batch"])
def test_a_missing_key_is_named(loader, key):
    state = loader.state_dict()
    del state[key]
    with pytest.raises(ValueError) as e:
        loader.load_state_dict(state)
    assert repr(key) in str(e.value) and "state_dict()" in str(e.value), str(e.value)


def test_not_a_mapping(loader):
    with pytest.raises(TypeError, match="state_dict"):
        loader.load_state_dict([("epoch", 0)])
