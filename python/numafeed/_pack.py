# SPDX-License-Identifier: Apache-2.0
"""numafeed.pack: write a dataset from numpy arrays through the C writer."""
import os

import numpy as np

from . import _numafeed
from ._args import U32, U64, int_arg

# numafeed's dtype names and the numpy dtype whose bytes each is stored as.
# numpy has no bfloat16: its two bytes travel as uint16.
_STORED = {n: np.dtype(n) for n in ("uint8", "int8", "uint16", "int16", "uint32", "int32",
                                    "uint64", "int64", "float16", "float32", "float64")}
_STORED["bfloat16"] = np.dtype(np.uint16)
_NAMES = {dt: n for n, dt in _STORED.items() if n != "bfloat16"}
# zstd's levels (ZSTD_minCLevel() .. ZSTD_maxCLevel() since zstd 1.4); 0 means 3
_LEVELS = (-(1 << 17), 22)


def _dtype_name(name, dt):
    try:
        return _NAMES[np.dtype(dt).newbyteorder("=")]  # any byte order: values convert
    except KeyError:
        raise TypeError(f"field {name!r}: dtype {dt} is not one numafeed stores "
                        f"({', '.join(sorted(_STORED))})") from None


def _as_array(name, value):
    """(a numpy array of the values as numafeed stores them, the dtype's name)."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            import torch

            return value.view(torch.int16).numpy().view(np.uint16), "bfloat16"
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        raise TypeError(f"field {name!r}: not a numeric array")
    if arr.dtype.name == "bfloat16":  # ml_dtypes' numpy bfloat16
        return arr.view(np.uint16), "bfloat16"
    return arr, _dtype_name(name, arr.dtype)


class _Layout:
    """Fields (name, dtype, shape) and the packed little-endian record dtype,
    from the first record's (array, dtype name) per field."""

    def __init__(self, first, per_record):
        self.names = list(first)
        if not self.names:
            raise ValueError("pack: a record needs at least one field")
        self.fields = []
        parts = []
        for name in self.names:
            arr, dname = first[name]
            shape = tuple(arr.shape if per_record else arr.shape[1:])
            self.fields.append((name, dname, shape))
            parts.append((name, _STORED[dname].newbyteorder("<"), shape))
        self.record = np.dtype(parts)  # packed: numpy adds no padding by default
        self.single = len(self.names) == 1
        self.by_name = {n: (d, s) for n, d, s in self.fields}

    def check(self, name, arr, dname, per_record, where):
        want = self.by_name.get(name)
        if want is None:
            raise ValueError(f"pack: {where} has field {name!r}, the first record has "
                             f"{self.names}")
        shape = tuple(arr.shape if per_record else arr.shape[1:])
        if shape != want[1] or dname != want[0]:
            raise ValueError(f"pack: {where}, field {name!r} is {dname}{list(shape)}, the "
                             f"first record's is {want[0]}{list(want[1])}")


def pack(out_dir, data, *, name="data", codec="zstd", level=3, block_bytes=None,
         shard_bytes=None, force=False, progress=True, total=None, chunk_records=None):
    """Write a numafeed dataset to out_dir and return a summary dict.

    data is one of:
      - a numpy array (or torch tensor) of N records: one field named `name`,
        each record data[i];
      - a dict of field name -> array of N records (the same N);
      - an iterable of records, each a dict of field name -> array (or one
        array, the field `name`), all records of the same shapes and dtypes.

    dtypes: uint8/16/32/64, int8/16/32/64, float16/32/64 and bfloat16 (a
    torch.bfloat16 tensor, or ml_dtypes' numpy bfloat16), stored
    little-endian. codec "zstd" (level -131072 to 22; None or 0: 3) or
    "none"; block_bytes (1 to 256 MiB; None or 0: 256 KiB) is the unit of
    reading and decoding, shard_bytes (None or 0: 1 GiB) the shard file
    size. Writing is atomic: on any error nothing appears under out_dir.
    force=True replaces an existing dataset. progress shows a tqdm bar
    (total: the record count, when data is an iterable that has no len()).
    chunk_records (default: 16 MiB's worth) is how many records are laid
    out per call into the C writer. Integer options are taken exactly: out
    of range is a ValueError naming the option, a bool a TypeError.
    """
    out_dir = os.fspath(out_dir)
    level = int_arg("level", level, *_LEVELS, none=True)
    block_bytes = int_arg("block_bytes", block_bytes, 0, 256 << 20, none=True)
    shard_bytes = int_arg("shard_bytes", shard_bytes, 0, U64, none=True)
    chunk_records = int_arg("chunk_records", chunk_records, 1, U32, none=True)
    total = int_arg("total", total, 0, U64, none=True)
    if isinstance(data, dict):
        arrays = {k: _as_array(k, v) for k, v in data.items()}
        counts = {k: (a.shape[0] if a.ndim else None) for k, (a, _) in arrays.items()}
        if any(c is None for c in counts.values()) or len(set(counts.values())) != 1:
            raise ValueError(f"pack: every array needs the same record count (first "
                             f"dimension); got {counts}")
        n = next(iter(counts.values()))
        layout = _Layout(arrays, per_record=False)
        source = ("arrays", {k: a for k, (a, _) in arrays.items()}, n)
    elif hasattr(data, "__array__") or hasattr(data, "__dlpack__"):
        arr, dname = _as_array(name, data)
        if arr.ndim == 0:
            raise ValueError("pack: a single array needs a first (record) dimension")
        n = arr.shape[0]
        layout = _Layout({name: (arr, dname)}, per_record=False)
        source = ("arrays", {name: arr}, n)
    else:
        it = iter(data)
        try:
            first = next(it)
        except StopIteration:
            raise ValueError("pack: no records") from None
        first = first if isinstance(first, dict) else {name: first}
        layout = _Layout({k: _as_array(k, v) for k, v in first.items()}, per_record=True)
        if total is None and hasattr(data, "__len__"):
            total = len(data)
        source = ("records", (first, it), total)

    rec_bytes = layout.record.itemsize
    if chunk_records is None:
        chunk_records = max(1, (16 << 20) // max(rec_bytes, 1))
    w = _numafeed.Writer(out_dir, layout.fields, codec=codec, level=level or 0,
                         block_bytes=block_bytes or 0, shard_bytes=shard_bytes or 0,
                         force=bool(force))
    bar = None
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=source[2], unit="rec", unit_scale=True, disable=not progress,
                   desc=f"pack {os.path.basename(out_dir) or out_dir}")
    except ImportError:  # tqdm is a dependency; a bar is not worth failing for
        pass
    try:
        if source[0] == "arrays":
            _append_arrays(w, layout, source[1], source[2], chunk_records, bar)
        else:
            _append_records(w, layout, *source[1], chunk_records, bar)
        w.finish()
        summary = dict(path=out_dir, records=w.records, record_bytes=w.record_bytes,
                       bytes=w.bytes_written, shards=w.shards, fields=layout.fields)
    finally:
        w.close()
        if bar is not None:
            bar.close()
    return summary


def _append(w, chunk, count):
    chunk = np.ascontiguousarray(chunk)
    w.append(chunk.ctypes.data, count)  # chunk stays alive for the call


def _append_arrays(w, layout, arrays, n, chunk, bar):
    for i in range(0, n, chunk):
        j = min(n, i + chunk)
        if layout.single:
            (name, arr), = arrays.items()
            part = np.ascontiguousarray(arr[i:j], dtype=layout.record[name].base)
        else:
            part = np.empty(j - i, dtype=layout.record)
            for k, arr in arrays.items():
                part[k] = arr[i:j]
        _append(w, part, j - i)
        if bar is not None:
            bar.update(j - i)


def _append_records(w, layout, first, it, chunk, bar):
    buf = np.empty(chunk, dtype=layout.record)
    fill = 0
    index = 0

    def put(rec):
        nonlocal fill, index
        rec = rec if isinstance(rec, dict) else {layout.names[0]: rec}
        if len(rec) != len(layout.names):
            raise ValueError(f"pack: record {index} has fields {sorted(rec)}, the first "
                             f"record has {sorted(layout.names)}")
        for k, v in rec.items():
            arr, dname = _as_array(k, v)
            layout.check(k, arr, dname, True, f"record {index}")
            buf[k][fill] = arr
        fill += 1
        index += 1
        if fill == chunk:
            flush()

    def flush():
        nonlocal fill
        if fill:
            _append(w, buf[:fill], fill)
            if bar is not None:
                bar.update(fill)
            fill = 0

    put(first)
    for rec in it:
        put(rec)
    flush()
