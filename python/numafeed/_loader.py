# SPDX-License-Identifier: Apache-2.0
"""numafeed.Loader: the Python face of one numafeed pool."""
import errno
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Mapping

from . import _numafeed
from ._args import U32, U64, int_arg, seconds_arg
from ._convert import Converter, manifest_kinds
from ._numafeed import NumafeedError

_DEVICE_AUTO, _DEVICE_CPU, _DEVICE_CUDA = 0, 1, 2  # enum loader_device
_INT_MAX = (1 << 31) - 1
_IN_USE = ("numafeed.Loader: another thread is iterating this loader; a Loader is used by "
           "one thread at a time: create one Loader per thread")


class _Launcher:
    """What the job's launcher set, read once and only when a default needs
    it, by the C library's reader (numafeed_launch_env): the same variables,
    in the same order, as the numafeed command and loader_create."""

    def __init__(self):
        self._env = None

    def __getitem__(self, key):
        if self._env is None:
            try:
                self._env = _numafeed.launch_env()
            except NumafeedError as e:  # a bad value, like a bad argument
                raise ValueError(str(e)) from e
        return self._env[key]


def _dist():
    """torch.distributed when it is importable and initialised, else None."""
    try:
        import torch.distributed as dist
    except Exception:  # torch absent or built without distributed
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


def _resolve_device(device, launcher, output):
    """(CUDA ordinal, enum loader_device) from torch's spelling of a device.
    Without an ordinal, the launcher's local rank (0 without one)."""
    def local():
        r = launcher["local_rank"]
        return 0 if r is None else r

    if device is None:  # numpy holds host memory only
        return local(), _DEVICE_CPU if output == "numpy" else _DEVICE_AUTO
    if isinstance(device, bool):
        raise TypeError(f"device must be 'cuda:N', 'cuda', 'cpu', an int or a torch.device, "
                        f"not {device!r}")
    if hasattr(device, "__index__"):  # an int, a numpy integer
        return int_arg("device", device, 0, _INT_MAX), _DEVICE_CUDA
    text = str(device)  # torch.device prints as 'cuda:0' / 'cuda' / 'cpu'
    if text == "cpu":
        return local(), _DEVICE_CPU
    if text == "cuda":
        return local(), _DEVICE_CUDA
    if text.startswith("cuda:") and text[5:].isdigit() and int(text[5:]) <= _INT_MAX:
        return int(text[5:]), _DEVICE_CUDA
    raise ValueError(f"device {text!r}: expected 'cuda:N', 'cuda', 'cpu' or an int")


def _resolve_ranks(rank, world_size, launcher):
    """Each of rank and world_size: the argument, else the launcher's, else
    torch.distributed's when initialised; neither anywhere is 0 of 1."""
    rank = int_arg("rank", rank, 0, U32, none=True)
    world_size = int_arg("world_size", world_size, 1, U32, none=True)
    if rank is None:
        rank = launcher["rank"]
    if world_size is None:
        world_size = launcher["world_size"]
    dist = _dist() if rank is None or world_size is None else None
    if dist is not None:
        rank = dist.get_rank() if rank is None else rank
        world_size = dist.get_world_size() if world_size is None else world_size
    if rank is None and world_size is None:
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError(
            f"rank={rank} but world_size={world_size}: give both (or run under a launcher "
            "that sets both: torchrun's RANK and WORLD_SIZE, Open MPI's or Slurm's)")
    if rank >= world_size:
        raise ValueError(f"rank must be below world_size: rank {rank}, world_size {world_size}")
    return rank, world_size


def _fingerprint(text):
    """A hash of the dataset's manifest, which ranks compare."""
    return hashlib.sha256(text).hexdigest()[:16]


class Loader:
    """Batches of a numafeed dataset from a pool of native threads on the
    GPU's NUMA node, delivered zero-copy (DLPack) as torch tensors.

    Loader(path, batch_size, *, device=None, shuffle=True, seed=0,
           drop_last=False, threads=None, prefetch=None, shuffle_window=None,
           rank=None, world_size=None, timeout=None, output="torch",
           ragged=None, pad=None, epochs=1, return_ids=False, io="auto",
           node=None, follow_symlinks=False, max_ring_bytes=None,
           check_ranks=True, verbose=False, decode="auto", pin_memory=False)

    Keywords are loader_config's fields and the numafeed command's options
    (docs/python.md has the table).

    path        a dataset directory (``numafeed pack`` or numafeed.pack).
    batch_size  records per batch, 1 to 2**32-1; an epoch's last batch is
                short unless drop_last.
    device      where batches go, in torch's spelling. "cuda:N", N or
                torch.device("cuda", N): that GPU's memory, or NumafeedError
                NUMAFEED_ENOCUDA when no GPU is usable (no CUDA path, no
                driver, no such GPU). "cuda": the same for the launcher's
                local rank's GPU (0 without a launcher). "cpu": host batches,
                the pool on the local rank's GPU's node. None: the local
                rank's GPU when one is usable, host batches otherwise (host
                batches always with output="numpy"). The local rank is
                LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_RANK or SLURM_LOCALID,
                the innermost launcher's first.
    shuffle, seed
                seed 0 to 2**64-1. The order is a pure function of (seed,
                epoch, dataset, rank, world_size, shuffle_window): the same
                for any threads or prefetch.
    threads     worker threads, 1 to 256 (None: min(4, the node's CPUs)).
    prefetch    batches in flight, the ring's slots, 2 to 2**32-1 (None:
                enough for every worker's shuffle window; at least 4; within
                max_ring_bytes).
    shuffle_window
                records mixed by the within-window shuffle, 1 to 2**24 (None
                or 0: 16 blocks' worth, at most 65536), on top of the
                block-level shuffle: a larger window mixes records from more
                blocks into each batch (docs/python.md measures it), for
                about 40 bytes of tables per record of the window in each
                worker.
    rank, world_size
                this process's part of the data: rank 0 to world_size-1,
                world_size 1 to 2**32-1. Each defaults to the launcher's
                (RANK and WORLD_SIZE, OMPI_COMM_WORLD_RANK and
                OMPI_COMM_WORLD_SIZE, SLURM_PROCID and SLURM_NTASKS, the
                innermost launcher's first), else to torch.distributed's
                when initialised, else 0 and 1. Every rank gets the same
                number of batches per epoch; together they see every record
                once.
    timeout     seconds to wait for a batch before TimeoutError (None:
                forever). Ctrl-C interrupts a wait either way.
    output      "torch" (default): torch tensors; "numpy": numpy arrays
                (host batches only); "dlpack": numafeed Field objects, for
                any DLPack consumer (a variable field's Field has .offsets).
    ragged      how a variable field (bytes, or a 1-D array whose length
                varies) comes out with output="torch": "njt", a torch
                nested tensor of the jagged layout
                (torch.nested.nested_tensor_from_jagged(values, offsets));
                "ragged", a numafeed.Ragged(values, offsets). None
                (default): "njt" where this torch has it, else "ragged".
                With output="numpy" it is always a Ragged. Either way
                zero-copy, holding the batch like any tensor of it. A str
                field comes out as a list of Python str.
    pad         {field: (length, value)} (or {field: length}, value 0): that
                variable field comes out as a pair (padded, lengths) instead:
                padded [records, length] of its dtype on the batch's device,
                each record's elements then `value`; a record longer than
                `length` truncated to its first `length` elements; lengths
                int64, each min(record's length, length). Computed with
                tensor operations (one scatter), without waiting for the
                device.
    epochs      how many epochs one ``for`` loop over the loader runs: 1
                (default, as torch's DataLoader), any count, or None: one
                stream of batches that never ends, epoch after epoch, for
                loops that count steps, not epochs.
    return_ids  yield (batch, record_ids): each record's index in the dataset
                (int64, host, a copy that does not hold the batch's slot; a
                numpy array with output="dlpack").
    io          how shards are read: "auto" (mmap for page-cache-resident
                data, else io_uring, else pread), "io_uring", "pread" or
                "mmap".
    decode      where zstd blocks are decoded: "auto" (the pool's cores:
                the GPU must be asked for, docs/loader.md says why),
                "cpu", or "gpu" (NVIDIA's nvCOMP 6 decodes on the GPU - pip
                install numafeed[gpu] - or a NumafeedError saying why it
                cannot). stats()["pool"]["decode"] and ["decode_why"] say
                which and why.
    node        use this NUMA node (0 to 2**31-1) instead of the one sysfs
                reports.
    follow_symlinks
                let symbolic links in the dataset directory lead outside it
                (default False: such a link is an error naming it).
    max_ring_bytes
                the most bytes the ring of batch slots may take (None or 0:
                4 GiB); a prefetch that does not fit is a NumafeedError
                naming it.
    check_ranks with torch.distributed initialised, check at creation and
                at every epoch that all ranks agree on the dataset, seed,
                batch size and epoch; a clear error otherwise.
    pin_memory  host batches only (device="cpu"): register the ring with
                CUDA, as torch's DataLoader(pin_memory=True) pins its
                batches, so that .to("cuda", non_blocking=True) of a batch,
                or nvJPEG reading JPEG bytes from it, is DMA from
                page-locked memory. Without a usable GPU the ring stays
                unregistered and stats()["pool"]["notes"] says why.
                stats()["pool"]["registered"] says whether it is.

    Integer arguments are taken exactly: out of range is a ValueError naming
    the argument and its range, a bool or a float a TypeError.

    Iterating yields one field's value for a one-field dataset, else a dict
    of field name -> value: a fixed field's tensor shaped [records, *field
    shape] with the dataset's dtype; a variable field's nested tensor,
    Ragged or (padded, lengths) pair (ragged, pad); a str field's list of
    str. Each ``for`` runs `epochs` epochs (one by default) on the same
    persistent pool: epoch 0, then 1, ...; ``set_epoch(e)`` chooses the
    next one, ``state_dict()`` and ``load_state_dict()`` resume exactly
    mid-epoch. A loop left early (break, an exception) ends its epoch, as
    with torch's DataLoader; with epochs=None there is no end to reach, and
    the next loop goes on with the next batch.

    Threads: a Loader is used by one thread at a time. While one thread has
    a loop open (from ``iter()`` until the loop ends or the iterator is
    dropped), iterating, stepping its iterator, set_epoch or load_state_dict
    from another thread raise RuntimeError: create one Loader per thread.
    len(), state_dict(), stats() and close() may be called from any thread.

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
                 drop_last=False, threads=None, prefetch=None, shuffle_window=None, rank=None,
                 world_size=None, timeout=None, output="torch", ragged=None, pad=None,
                 epochs=1, return_ids=False, io="auto", node=None, follow_symlinks=False,
                 max_ring_bytes=None, check_ranks=True, verbose=False, decode="auto",
                 pin_memory=False):
        self._c = None
        path = os.fspath(path)
        batch_size = int_arg("batch_size", batch_size, 1, U32)
        Converter.check_output(output)
        self._epochs = int_arg("epochs", epochs, 1, U64, none=True)
        threads = int_arg("threads", threads, 1, 256, none=True)
        prefetch = int_arg("prefetch", prefetch, 2, U32, none=True)
        shuffle_window = int_arg("shuffle_window", shuffle_window, 0, 1 << 24, none=True)
        max_ring_bytes = int_arg("max_ring_bytes", max_ring_bytes, 0, U64, none=True)
        node = int_arg("node", node, 0, _INT_MAX, none=True)
        seed = int_arg("seed", seed, 0, U64)
        self._timeout = seconds_arg("timeout", timeout)
        launcher = _Launcher()
        self._ordinal, c_device = _resolve_device(device, launcher, output)
        if output == "numpy" and c_device == _DEVICE_CUDA:
            raise ValueError(f"output='numpy' needs host batches: device='cpu', not {device!r}")
        rank, world_size = _resolve_ranks(rank, world_size, launcher)
        # read as the loader reads it (numafeed_dataset_manifest)
        manifest = _numafeed.dataset_manifest(path, follow_symlinks=bool(follow_symlinks))
        self._conv = Converter(output, ragged, pad, manifest_kinds(manifest))
        self._path = path
        self._args = dict(
            gpu=self._ordinal, device=c_device, shuffle=bool(shuffle), seed=seed,
            drop_last=bool(drop_last), threads=threads or 0, prefetch=prefetch or 0,
            shuffle_window=shuffle_window or 0, rank=rank, world_size=world_size, io=io,
            node=-1 if node is None else node, follow_symlinks=bool(follow_symlinks),
            max_ring_bytes=max_ring_bytes or 0, verbose=bool(verbose), decode=decode,
            pin_memory=bool(pin_memory))
        self._batch_size = batch_size
        self._return_ids = return_ids
        self._check = check_ranks
        self._fingerprint = _fingerprint(manifest)
        self._epoch = 0      # the epoch the next loop runs
        self._batch = 0      # batches of it already delivered
        self._c_pos = None   # (epoch, batch) the C loader delivers next
        self._lock = threading.Lock()  # guards _iteration's check and change
        self._iteration = None  # weakref to the open _Loop, if any
        self._t0 = time.monotonic()
        self._open(0, 0)
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

    def _same_thread(self):
        """RuntimeError when another thread has an epoch of this loader open."""
        it = self._iteration() if self._iteration is not None else None
        if it is not None and it.is_open() and it.thread != threading.get_ident():
            raise RuntimeError(_IN_USE)

    def _check_ranks(self, epoch):
        dist = _dist() if self._check else None
        if dist is None or dist.get_world_size() < 2:
            return
        mine = self.state_dict()
        del mine["rank"]  # the one thing ranks do not share
        mine.update(epoch=epoch, batch=None if epoch is None else self._batch)
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
        with self._lock:
            self._same_thread()
            self._epoch, self._batch = epoch, 0

    def state_dict(self):
        """Where the iteration stands: load it into a Loader over the same
        dataset and configuration to continue with exactly the next batch."""
        return dict(epoch=self._epoch, batch=self._batch, seed=self._args["seed"],
                    shuffle=self._args["shuffle"], shuffle_window=self._args["shuffle_window"],
                    drop_last=self._args["drop_last"],
                    batch_size=self._batch_size, rank=self._args["rank"],
                    world_size=self._args["world_size"], dataset=self._fingerprint)

    def load_state_dict(self, state):
        """Continue from a state_dict(): the next loop starts at its batch."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: state must be a dict from Loader.state_dict(), "
                            f"not {type(state).__name__}")
        for key in ("epoch", "batch"):
            if key not in state:
                raise ValueError(f"load_state_dict: the state has no {key!r}; pass a dict "
                                 "from Loader.state_dict()")
        epoch = int_arg("load_state_dict: state['epoch']", state["epoch"], 0, U64)
        batch = int_arg("load_state_dict: state['batch']", state["batch"], 0, U64)
        mine = self.state_dict()
        for key in ("seed", "shuffle", "shuffle_window", "drop_last", "batch_size", "world_size",
                    "dataset"):
            if key in state and state[key] != mine[key]:
                raise ValueError(
                    f"load_state_dict: the state has {key}={state[key]!r}, this loader "
                    f"{mine[key]!r}; resuming would not continue the same sequence")
        n = len(self)
        if batch > n:
            raise ValueError(f"load_state_dict: batch {batch} of epoch {epoch} is out of range "
                             f"(an epoch has {n} batches)")
        if batch == n:  # saved after the last batch, before the loop noticed the end
            epoch, batch = epoch + 1, 0
        with self._lock:
            self._same_thread()
            self._epoch, self._batch = epoch, batch

    # ---- iteration -------------------------------------------------------

    def __iter__(self):
        self._live()
        with self._lock:  # two threads starting at once: one of them is told
            self._same_thread()
            it = _Loop(self, self._epoch, self._epochs)
            self._iteration = weakref.ref(it)
        try:
            if self._c_pos != (it.epoch, self._batch):
                self._open(it.epoch, self._batch)
            self._check_ranks(it.epoch)
        except BaseException:
            it.close()
            raise
        it.c = self._c
        return it

    def _convert(self, b):
        fields = b.fields
        field = self._conv.field
        if len(fields) == 1:
            data = field(fields[0])
        else:
            data = {f.name: field(f) for f in fields}
        if self._return_ids:
            return data, self._conv.ids(b.record_ids)
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


class _Loop:
    """What ``for batch in loader`` steps: `epochs` epochs of a Loader (None:
    every epoch from the first on, without end). It holds the loader for the
    thread that made it until it ends, is closed or is dropped; another
    thread stepping it gets RuntimeError."""

    def __init__(self, loader, epoch, epochs):
        self.loader, self.epoch = loader, epoch
        self.left = epochs  # epochs to end, this one included; None: no end
        self.thread = threading.get_ident()
        self.c = None  # the C loader, once positioned
        self._open = True
        self._started = False

    def is_open(self):
        return self._open

    def __iter__(self):
        return self

    def __next__(self):
        if not self._open:
            raise StopIteration
        if threading.get_ident() != self.thread:
            raise RuntimeError(_IN_USE)
        self._started = True
        L = self.loader
        try:
            b = self._next_batch(L)
        except BaseException:
            self.close()
            raise
        if b is None:
            self._end(finished=True)
            raise StopIteration
        L._batch = b.index + 1
        L._c_pos = (self.epoch, b.index + 1)
        try:
            return L._convert(b)
        except BaseException:
            self.close()
            raise

    def _next_batch(self, L):
        """The next batch, across as many epoch ends as this loop has left;
        None at the last."""
        while True:
            b = self.c.next(timeout=-1 if L._timeout is None else L._timeout)
            if b is not None:
                if b.epoch != self.epoch:  # cannot happen: say so if it does
                    raise _numafeed.error(-errno.EPROTO, f"numafeed.Loader: internal: a batch "
                                          f"of epoch {b.epoch} in epoch {self.epoch}")
                return b
            if self.left is not None:
                self.left -= 1
                if self.left == 0:
                    return None
            # the C loader goes on into the next epoch by itself
            self.epoch += 1
            L._epoch, L._batch, L._c_pos = self.epoch, 0, (self.epoch, 0)
            L._check_ranks(self.epoch)

    def close(self):
        """Stop here, as leaving a loop early does."""
        self._end(finished=False)

    def _end(self, finished):
        if not self._open:
            return
        self._open = False
        if not self._started:  # never stepped: the loader stays where it was
            return
        if self.left is None:  # a stream has no epoch to end: the next loop goes on
            return
        L = self.loader
        L._epoch, L._batch = self.epoch + 1, 0
        if finished:
            L._c_pos = (self.epoch + 1, 0)

    def __del__(self):
        self._end(finished=False)
