# SPDX-License-Identifier: Apache-2.0
"""numafeed: NUMA-local data loading for GPU training.

A drop-in for torch's DataLoader over a dataset packed by ``numafeed pack``
or :func:`numafeed.pack`::

    import numafeed
    loader = numafeed.Loader("data/", batch_size=64, device="cuda:0")
    for epoch in range(epochs):
        for batch in loader:          # a tensor, or a dict of field -> tensor
            train_step(batch)

One pool of native threads per GPU, pinned to the GPU's NUMA node, reads,
checks and decodes shards into page-locked node-local buffers and copies each
batch to the GPU on its own CUDA stream; batches reach Python zero-copy
through DLPack. See ``help(numafeed.Loader)`` and docs/python.md.
"""
import json as _json

from . import _numafeed
from ._numafeed import NumafeedError, has_cuda
from ._numafeed import version as _c_version
from ._loader import Loader
from ._pack import pack
from ._ragged import Ragged

__all__ = ["Loader", "Ragged", "pack", "NumafeedError", "has_cuda", "cuda_available",
           "topology", "__version__"]
__version__ = _c_version()


def cuda_available():
    """Whether a GPU is usable now: the CUDA path is compiled in, a driver
    new enough for it is loaded and it sees at least one device (after
    CUDA_VISIBLE_DEVICES). The first call initialises the CUDA runtime in
    this process; ``numafeed doctor`` says why not, when not."""
    try:
        return _numafeed.cuda_device_count() > 0
    except NumafeedError as e:
        if e.code in (_numafeed.ENOCUDA, _numafeed.ECUDA):
            return False
        raise


def topology(sysfs_root=None):
    """This machine's NUMA nodes and GPUs as ``numafeed topo --json`` reports
    them (a dict). sysfs_root reads a captured tree instead of /sys."""
    from ._numafeed import topology_json

    return _json.loads(topology_json(sysfs_root=sysfs_root))
