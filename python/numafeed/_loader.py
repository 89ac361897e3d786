# SPDX-License-Identifier: Apache-2.0
"""numafeed.Loader: the Python face of one numafeed pool."""
import errno
import hashlib
import os
import time

from . import _numafeed
from ._args import U32, U64, int_arg, seconds_arg

_OUTPUTS = ("torch", "numpy", "dlpack")
_DEVICE_AUTO, _DEVICE_CPU = 0, 1  # enum loader_device
_INT_MAX = (1 << 31) - 1


def _env_int(name):
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"environment variable {name}={v!r} is not an integer") from None


def _dist():
    """torch.distributed when it is importable and initialised, else None."""
    try:
        import torch.distributed as dist
    except Exception:  # torch absent or built without distributed
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


def _resolve_device(device):
    """(ordinal, host_mode, cuda_required) from the device argument."""
    local = _env_int("LOCAL_RANK")
    default = local if local is not None else 0
    if device is None:
        return default, False, False
    if isinstance(device, bool):
        raise TypeError("device must be 'cuda:N', 'cuda', 'cpu', an int or a torch.device")
    if isinstance(device, int):
        if device < 0:
            raise ValueError(f"device {device} is negative")
        return device, False, True
    text = str(device)  # torch.device prints as 'cuda:0' / 'cpu'
    if text == "cpu":
        return default, True, False
    if text == "cuda":
        return default, False, True
    if text.startswith("cuda:"):
        try:
            n = int(text[5:])
        except ValueError:
            n = -1
        if n < 0:
            raise ValueError(f"device {text!r}: expected cuda:N with N >= 0")
        return n, False, True
    raise ValueError(f"device {text!r}: expected 'cuda:N', 'cuda', 'cpu' or an int")


def _resolve_ranks(rank, world_size):
    rank = int_arg("rank", rank, 0, U32, none=True)
    world_size = int_arg("world_size", world_size, 1, U32, none=True)
    dist = _dist()
    if rank is None:
        rank = _env_int("RANK")
        if rank is None and dist is not None:
            rank = dist.get_rank()
    if world_size is None:
        world_size = _env_int("WORLD_SIZE")
        if world_size is None and dist is not None:
            world_size = dist.get_world_size()
    if rank is None and world_size is None:
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError(
            f"rank={rank} but world_size={world_size}: give both (or set both RANK and "
            "WORLD_SIZE, as torchrun does)")
    if world_size < 1 or rank < 0 or rank >= world_size:
        raise ValueError(f"rank must be below world_size: rank {rank}, world_size {world_size}")
    return rank, world_size


def _fingerprint(path):
    try:
        with open(os.path.join(path, "manifest.json"), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError as e:
        raise _numafeed.error(-e.errno, f"{path}: cannot read the dataset's manifest.json: "
                              f"{e.strerror}") from None


class Loader:
    """Batches of a numafeed dataset from a pool of native threads on the
    GPU's NUMA node, delivered zero-copy (DLPack) as torch tensors.

    Loader(path, batch_size, *, device=None, shuffle=True, seed=0,
           drop_last=False, threads=None, prefetch=None, rank=None,
           world_size=None, timeout=None, output="torch", return_ids=False,
           io="auto", node=None, check_ranks=True, verbose=False)

    path        a dataset directory (``numafeed pack`` or numafeed.pack).
    batch_size  records per batch; an epoch's last batch is short unless
                drop_last.
    device      "cuda:N" or N: batches in that GPU's memory (an error if the
                library has no CUDA path or no such GPU); "cuda": the GPU of
                LOCAL_RANK (0 without it); "cpu": host batches, the pool on
                LOCAL_RANK's GPU's node; None: the GPU of LOCAL_RANK where
                there is one, host batches otherwise.
    shuffle, seed
                the order is a pure function of (seed, epoch, dataset, rank,
                world_size): the same for any threads or prefetch.
    threads     worker threads (default: min(4, the node's CPUs)).
    prefetch    batches in flight, the ring's slots (default: enough for
                every worker's shuffle window; at least 4).
    rank, world_size
                default to RANK and WORLD_SIZE (torchrun), else to
                torch.distributed's when initialised, else 0 and 1. Every
                rank gets the same number of batches per epoch; together
                they see every record once.
    timeout     seconds to wait for a batch before TimeoutError (None:
                forever). Ctrl-C interrupts a wait either way.
    output      "torch" (default): torch tensors; "numpy": numpy arrays
                (host batches only); "dlpack": numafeed Field objects, for
                any DLPack consumer.
    return_ids  yield (batch, record_ids): each record's index in the dataset
                (int64, host, a copy that does not hold the batch's slot).
    io          "auto", "io_uring", "pread" or "mmap".
    node        use this NUMA node instead of the one sysfs reports.
    check_ranks with torch.distributed initialised, check at creation and
                at every epoch that all ranks agree on the dataset, seed,
                batch size and epoch; a clear error otherwise.

    Iterating yields one tensor for a one-field dataset, else a dict of
    field name -> tensor, shaped [records, *field shape] with the dataset's
    dtype. Each ``for`` runs one epoch on the same persistent pool: epoch 0,
    then 1, ...; ``set_epoch(e)`` chooses the next one, ``state_dict()`` and
    ``load_state_dict()`` resume exactly mid-epoch. A loop left early (break,
    an exception) ends that epoch, as with torch's DataLoader.

    Memory: a batch's slot returns to the pool when every tensor of it has
    been freed (after an event on the consumer's CUDA stream, so reuse is
    safe without synchronising). Holding more batches than the ring has
    slots raises NumafeedError (code -EDEADLK) instead of waiting forever:
    raise prefetch, or drop batches sooner.

    Positioning (set_epoch to an epoch other than the next one,
    load_state_dict, or a new loop after a loop left early) restarts the
    pool at that position: a fresh ring, as at creation.

    A forked child cannot use a loader made by its parent (its threads do
    not exist there): every call raises; create a new Loader in the child.
    """

    def __init__(self, path, batch_size, *, device=None, shuffle=True, seed=0,
                 drop_last=False, threads=None, prefetch=None, rank=None, world_size=None,
                 timeout=None, output="torch", return_ids=False, io="auto", node=None,
                 check_ranks=True, verbose=False):
        self._c = None
        path = os.fspath(path)
        batch_size = int_arg("batch_size", batch_size, 1, U32)
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, not {output!r}")
        threads = int_arg("threads", threads, 1, 256, none=True)
        prefetch = int_arg("prefetch", prefetch, 2, U32, none=True)
        node = int_arg("node", node, 0, _INT_MAX, none=True)
        seed = int_arg("seed", seed, 0, U64)
        timeout = seconds_arg("timeout", timeout)
        self._ordinal, host_mode, cuda_required = _resolve_device(device)
        rank, world_size = _resolve_ranks(rank, world_size)
        self._path = path
        self._args = dict(
            gpu=self._ordinal, device=_DEVICE_CPU if host_mode else _DEVICE_AUTO,
            shuffle=bool(shuffle), seed=seed,
            drop_last=bool(drop_last), threads=threads or 0, prefetch=prefetch or 0,
            rank=rank, world_size=world_size, io=io, node=-1 if node is None else node,
            verbose=bool(verbose))
        self._batch_size = batch_size
        self._timeout = timeout
        self._return_ids = return_ids
        self._check = check_ranks
        self._fingerprint = _fingerprint(path)
        self._epoch = 0      # the epoch the next loop runs
        self._batch = 0      # batches of it already delivered
        self._c_pos = None   # (epoch, batch) the C loader delivers next
        self._t0 = time.monotonic()
        self._open(0, 0)
        if cuda_required and not self._c.cuda:
            notes = self._c.pool_info().get("notes", "")
            self.close()
            raise _numafeed.error(
                _numafeed.ENOCUDA,
                f"device {device!r}: batches cannot go to GPU {self._ordinal}"
                + ("" if _numafeed.has_cuda() else " (this build has no CUDA path)")
                + (f": {notes}" if notes else "; no CUDA driver or no such GPU")
                + "; pass device='cpu' for host batches")
        if output == "torch":
            import torch

            self._conv = torch.from_dlpack
        elif output == "numpy":
            if self._c.cuda:
                self.close()
                raise ValueError("output='numpy' needs host batches (device='cpu')")
            import numpy

            self._conv = numpy.from_dlpack
        else:
            self._conv = None  # the Field objects themselves
        self._check_ranks(None)

    # ---- positioning -----------------------------------------------------

    def _open(self, epoch, batch):
        old, self._c = self._c, None
        if old is not None:
            old.close()
        self._c = _numafeed.Loader(self._path, self._batch_size, start_epoch=epoch,
                                   start_batch=batch, **self._args)
        self._c_pos = (epoch, batch)

    def _live(self):
        if self._c is None:
            raise _numafeed.error(-errno.EBADF, "the loader is closed")
        return self._c

    def _check_ranks(self, epoch):
        dist = _dist() if self._check else None
        if dist is None or dist.get_world_size() < 2:
            return
        mine = dict(dataset=self._fingerprint, seed=self._args["seed"],
                    batch_size=self._batch_size, shuffle=self._args["shuffle"],
                    drop_last=self._args["drop_last"], world_size=self._args["world_size"],
                    epoch=epoch, batch=self._batch if epoch is not None else None)
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, mine)
        for r, theirs in enumerate(everyone):
            if theirs != mine:
                diff = {k: (mine[k], theirs.get(k)) for k in mine if theirs.get(k) != mine[k]}
                raise _numafeed.error(
                    _numafeed.ECONFIG,
                    f"numafeed.Loader: rank {dist.get_rank()} and rank {r} disagree on "
                    + ", ".join(f"{k} ({a!r} here, {b!r} there)" for k, (a, b) in diff.items())
                    + ": every rank must load the same dataset with the same seed, batch "
                    "size and epoch")

    def __len__(self):
        """Batches per epoch (equal on every rank)."""
        return self._live().epoch_batches

    @property
    def epoch(self):
        """The epoch the next loop runs (or the one running)."""
        return self._epoch

    def set_epoch(self, epoch):
        """Make the next loop run epoch `epoch` from its first batch (as
        DistributedSampler.set_epoch). Free when it is the next epoch anyway."""
        epoch = int_arg("epoch", epoch, 0, U64)
        self._epoch, self._batch = epoch, 0

    def state_dict(self):
        """Where the iteration stands: load it into a Loader over the same
        dataset and configuration to continue with exactly the next batch."""
        return dict(epoch=self._epoch, batch=self._batch, seed=self._args["seed"],
                    shuffle=self._args["shuffle"], drop_last=self._args["drop_last"],
                    batch_size=self._batch_size, rank=self._args["rank"],
                    world_size=self._args["world_size"], dataset=self._fingerprint)

    def load_state_dict(self, state):
        """Continue from a state_dict(): the next loop starts at its batch."""
        for key in ("seed", "shuffle", "drop_last", "batch_size", "world_size", "dataset"):
            mine = self._batch_size if key == "batch_size" else (
                self._fingerprint if key == "dataset" else self._args[key])
            if key in state and state[key] != mine:
                raise ValueError(
                    f"load_state_dict: the state has {key}={state[key]!r}, this loader "
                    f"{mine!r}; resuming would not continue the same sequence")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        n = len(self)
        if epoch < 0 or not 0 <= batch <= n:
            raise ValueError(f"load_state_dict: batch {batch} of epoch {epoch} is out of range "
                             f"(an epoch has {n} batches)")
        if batch == n:  # saved after the last batch, before the loop noticed the end
            epoch, batch = epoch + 1, 0
        self._epoch, self._batch = epoch, batch

    # ---- iteration -------------------------------------------------------

    def __iter__(self):
        self._live()
        epoch, start = self._epoch, self._batch
        if self._c_pos != (epoch, start):
            self._open(epoch, start)
        self._check_ranks(epoch)
        return self._run(epoch)

    def _run(self, epoch):
        c = self._c
        finished = False
        try:
            while True:
                b = c.next(timeout=-1 if self._timeout is None else self._timeout)
                if b is None:
                    finished = True
                    return
                if b.epoch != epoch:  # cannot happen: say so loudly if it does
                    raise _numafeed.error(-errno.EPROTO, f"numafeed.Loader: internal: a batch "
                                          f"of epoch {b.epoch} in epoch {epoch}")
                self._batch = b.index + 1
                self._c_pos = (epoch, b.index + 1)
                yield self._convert(b)
        finally:
            self._epoch, self._batch = epoch + 1, 0
            if finished:
                self._c_pos = (epoch + 1, 0)

    def _convert(self, b):
        conv = self._conv or (lambda f: f)
        fields = b.fields
        if len(fields) == 1:
            data = conv(fields[0])
        else:
            data = {f.name: conv(f) for f in fields}
        if self._return_ids:
            # a copy (8 bytes a record): keeping ids must not keep the slot
            ids = conv(b.record_ids)
            return data, (ids.clone() if hasattr(ids, "clone") else ids.copy())
        return data

    # ---- introspection and lifetime ----------------------------------------

    def stats(self):
        """The pool's counters and placement: batches, records, bytes,
        throughput (bytes/s since creation), consumer wait percentiles
        (ns), worker stage times, and pool_info (node, CPUs, threads, ring
        page size and placement incl. pages_strayed, io backend, notes on
        every shortfall, and where start-up went: setup_context_us,
        setup_ring_us, setup_cuda_us)."""
        c = self._live()
        st = c.stats()
        elapsed = time.monotonic() - self._t0
        st["elapsed_s"] = elapsed
        st["throughput_bytes_per_s"] = st["bytes"] / elapsed if elapsed > 0 else 0.0
        st["pool"] = c.pool_info()
        st["device"] = f"cuda:{self._ordinal}" if c.cuda else "cpu"
        return st

    def close(self):
        """Stop the pool (once no batch of it is alive) and free it. Idempotent."""
        c, self._c = self._c, None
        if c is not None:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        state = "closed" if self._c is None else (
            f"cuda:{self._ordinal}" if self._c.cuda else "cpu")
        return (f"numafeed.Loader({self._path!r}, batch_size={self._batch_size}, {state}, "
                f"epoch={self._epoch}, batch={self._batch})")
