# SPDX-License-Identifier: Apache-2.0
"""numafeed.pack: write a dataset from arrays, or from any iterable of
samples, through the C writer."""
import errno
import os
from collections.abc import Mapping

import numpy as np

from . import _numafeed
from ._args import U32, U64, int_arg
from ._numafeed import NumafeedError
from ._samples import Field, as_array, conform, infer, infer_fixed, parse_fields

# zstd's levels (ZSTD_minCLevel() .. ZSTD_maxCLevel() since zstd 1.4); 0 means 3
_LEVELS = (-(1 << 17), 22)
_MAX_RECORD = 256 << 20  # the format's block cap, the most max_record_bytes may be
_BAR_STEP = 256  # records between progress bar updates on the per-record path


def pack(out_dir, data, fields=None, *, name="data", codec="zstd", level=3, block_bytes=None,
         shard_bytes=None, max_record_bytes=None, force=False, progress=True, total=None,
         chunk_records=None):
    """Write a numafeed dataset to out_dir and return a summary dict.

    data is one of:
      - a numpy array (or torch tensor) of N records: one field named `name`,
        each record data[i];
      - a dict of field name -> array of N records (the same N);
      - an iterable of samples, each a dict of field name -> value: rows of
        a HuggingFace dataset, samples of a MosaicML StreamingDataset,
        plain dicts. A value is bytes, str, a Python int or float, a list
        of numbers, a numpy array or scalar, or a torch tensor;
      - an iterable of records, each one array (the field `name`), all of
        the first's shape: fixed records.

    fields (an iterable of samples only): the layout, instead of inferring
    it from the first sample: a list of (name, dtype) or (name, dtype,
    shape), or a dict of name -> dtype or (dtype, shape). dtype: a name
    ("int32", "bfloat16", ...), a numpy or torch dtype, or "bytes" / "str";
    shape: () for a scalar (the default), a tuple for a fixed array, None
    or -1 for a 1-D array whose length varies. Samples may then hold other
    keys, which are left out.

    Without fields, the first sample's values give them: bytes -> bytes,
    str -> str, a Python int or float -> an int64 or float64 scalar, a 0-d
    array -> a scalar, a 1-D array (or list of numbers) -> a 1-D array of
    its dtype whose length varies, an array of 2 or more dimensions ->
    fixed with the first sample's shape. A fixed 1-D field is said in
    fields. Every later sample has the same keys and values that fit: a
    Python number or list is converted to the field's dtype when nothing
    changes (an int in range, no float into an integer field), an array of
    another dtype only where the cast loses nothing; anything else is a
    TypeError or ValueError naming the sample (and its "__key__" or "key"),
    and the field.

    dtypes: uint8/16/32/64, int8/16/32/64, float16/32/64 and bfloat16 (a
    torch.bfloat16 tensor, or ml_dtypes' numpy bfloat16), stored
    little-endian. codec "zstd" (level -131072 to 22; None or 0: 3) or
    "none"; block_bytes (1 to 256 MiB; None or 0: 256 KiB) is the unit of
    reading and decoding, shard_bytes (None or 0: 1 GiB) the shard file
    size. max_record_bytes (1 to 256 MiB; None or 0: 64 MiB) refuses a
    larger sample with NumafeedError (-EFBIG) naming it; it also bounds
    the loader's batches. Writing is atomic: on any error nothing appears
    under out_dir. force=True replaces an existing dataset. progress shows
    a tqdm bar (total: the record count, when data is an iterable that has
    no len()). chunk_records (default: 16 MiB's worth) is how many fixed
    records are laid out per call into the C writer. Integer options are
    taken exactly: out of range is a ValueError naming the option, a bool a
    TypeError.
    """
    out_dir = os.fspath(out_dir)
    level = int_arg("level", level, *_LEVELS, none=True)
    block_bytes = int_arg("block_bytes", block_bytes, 0, 256 << 20, none=True)
    shard_bytes = int_arg("shard_bytes", shard_bytes, 0, U64, none=True)
    max_record_bytes = int_arg("max_record_bytes", max_record_bytes, 0, _MAX_RECORD, none=True)
    chunk_records = int_arg("chunk_records", chunk_records, 1, U32, none=True)
    total = int_arg("total", total, 0, U64, none=True)
    if isinstance(data, dict) or hasattr(data, "__array__") or hasattr(data, "__dlpack__"):
        if fields is not None:
            raise ValueError("pack: fields= describes the samples of an iterable; arrays bring "
                             "their own dtypes and shapes")
        columns = _columns(data, name)
        layout = [Field(k, d, tuple(a.shape[1:])) for k, (a, d) in columns.items()]
        arrays = {k: a for k, (a, _) in columns.items()}
        total = next(iter(arrays.values())).shape[0]
        rows = None
    else:
        it = iter(data)
        try:
            first = next(it)
        except StopIteration:
            raise ValueError("pack: no records") from None
        layout = _layout(first, fields, name)
        if total is None and hasattr(data, "__len__"):
            total = len(data)
        rows = _Rows(layout, first, it, select=fields is not None)

    w = _numafeed.Writer(out_dir, [f.writer for f in layout], codec=codec, level=level or 0,
                         block_bytes=block_bytes or 0, shard_bytes=shard_bytes or 0,
                         force=bool(force), max_record_bytes=max_record_bytes or 0)
    bar = None
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="rec", unit_scale=True, disable=not progress,
                   desc=f"pack {os.path.basename(out_dir) or out_dir}")
    except ImportError:  # tqdm is a dependency; a bar is not worth failing for
        pass
    try:
        if rows is None:
            _append_arrays(w, _record_dtype(layout), arrays, total, chunk_records, bar)
        elif all(f.kind == "fixed" for f in layout):
            _append_rows(w, _record_dtype(layout), rows, chunk_records, bar)
        else:
            _add_rows(w, rows, max_record_bytes, bar)
        w.finish()
        summary = dict(path=out_dir, records=w.records, record_bytes=w.record_bytes,
                       bytes=w.bytes_written, shards=w.shards,
                       fields=[f.public for f in layout])
    finally:
        w.close()
        if bar is not None:
            bar.close()
    return summary


def _columns(data, name):
    """{field: (array of N records, dtype name)} from an array or a dict of
    arrays."""
    if not isinstance(data, dict):
        arr, dname = as_array(name, data)
        if arr.ndim == 0:
            raise ValueError("pack: a single array needs a first (record) dimension")
        return {name: (arr, dname)}
    arrays = {k: as_array(k, v) for k, v in data.items()}
    if not arrays:
        raise ValueError("pack: a record needs at least one field")
    counts = {k: (a.shape[0] if a.ndim else None) for k, (a, _) in arrays.items()}
    if any(c is None for c in counts.values()) or len(set(counts.values())) != 1:
        raise ValueError(f"pack: every array needs the same record count (first "
                         f"dimension); got {counts}")
    return arrays


def _layout(first, fields, name):
    """The Fields of an iterable: fields= parsed, else inferred from the
    first sample (a bare array: one fixed field `name`)."""
    if fields is not None:
        return parse_fields(fields)
    if not isinstance(first, Mapping):
        return [infer_fixed(name, first)]
    if not first:
        raise ValueError("pack: a record needs at least one field")
    layout = []
    for key, value in first.items():
        if not isinstance(key, str):
            raise TypeError(f"pack: {_where(0, first)} has key {key!r}; field names are str")
        try:
            layout.append(infer(key, value))
        except (TypeError, ValueError) as e:
            raise type(e)(f"pack: {_where(0, first)}, field {key!r}: {e}") from None
    return layout


def _where(index, sample):
    """How an error names a sample: its index, and its key if it has one."""
    if not isinstance(sample, Mapping):
        return f"record {index}"
    for k in ("__key__", "key"):
        key = sample.get(k)
        if isinstance(key, (str, bytes, int)):
            text = repr(key)
            return f"sample {index} ({k} {text[:60] + '...' if len(text) > 60 else text})"
    return f"sample {index}"


class _Rows:
    """Each sample's values as the layout stores them, in field order, with
    its index: (index, sample, values)."""

    def __init__(self, layout, first, rest, select):
        self.layout, self.first, self.rest, self.select = layout, first, rest, select
        self.names = {f.name for f in layout}

    def __iter__(self):
        yield self._row(0, self.first)
        for i, sample in enumerate(self.rest, 1):
            yield self._row(i, sample)

    def _row(self, index, raw):
        sample = raw
        if not isinstance(raw, Mapping):
            if len(self.layout) != 1:
                raise TypeError(f"pack: {_where(index, raw)} is a {type(raw).__name__}, "
                                f"not a dict of the fields {sorted(self.names)}")
            sample = {self.layout[0].name: raw}
        missing = self.names - sample.keys()
        extra = set() if self.select else sample.keys() - self.names
        if missing or extra:
            what = "; ".join(s for s in (
                f"lacks {sorted(missing)}" if missing else "",
                f"has {sorted(map(str, extra))} the first sample has not" if extra else "") if s)
            raise ValueError(f"pack: {_where(index, sample)} {what} (the fields: "
                             f"{[f.name for f in self.layout]})")
        values = []
        for f in self.layout:
            try:
                values.append(conform(f, sample[f.name]))
            except (TypeError, ValueError) as e:
                raise type(e)(f"pack: {_where(index, raw)}, field {f.name!r}: {e}") from None
        return index, raw, values


def _record_dtype(layout):
    """The packed little-endian numpy dtype of a fixed record."""
    return np.dtype([(f.name, f.stored, f.shape) for f in layout])


def _chunk(rec_bytes, chunk):
    return chunk or max(1, (16 << 20) // max(rec_bytes, 1))


def _append(w, chunk, count):
    chunk = np.ascontiguousarray(chunk)
    w.append(chunk.ctypes.data, count)  # chunk stays alive for the call


def _append_arrays(w, record, arrays, n, chunk, bar):
    chunk = _chunk(record.itemsize, chunk)
    for i in range(0, n, chunk):
        j = min(n, i + chunk)
        if len(arrays) == 1:
            (name, arr), = arrays.items()
            part = np.ascontiguousarray(arr[i:j], dtype=record[name].base)
        else:
            part = np.empty(j - i, dtype=record)
            for k, arr in arrays.items():
                part[k] = arr[i:j]
        _append(w, part, j - i)
        if bar is not None:
            bar.update(j - i)


def _append_rows(w, record, rows, chunk, bar):
    """Fixed records, laid out chunk by chunk into one buffer."""
    chunk = _chunk(record.itemsize, chunk)
    buf = np.empty(chunk, dtype=record)
    columns = [buf[k] for k in record.names]  # views, made once rather than per record
    fill = 0
    for _, _, values in rows:
        for column, v in zip(columns, values):
            column[fill] = v
        fill += 1
        if fill == chunk:
            _append(w, buf, fill)
            if bar is not None:
                bar.update(fill)
            fill = 0
    if fill:
        _append(w, buf[:fill], fill)
        if bar is not None:
            bar.update(fill)


def _add_rows(w, rows, max_record_bytes, bar):
    """Records with variable fields, one Writer.add each."""
    pending = stored = 0
    for index, sample, values in rows:
        pieces = [v if isinstance(v, bytes) else (v.__array_interface__["data"][0], v.nbytes)
                  for v in values]
        try:
            w.add(pieces)  # values stays alive for the call
        except NumafeedError as e:
            if e.code != -errno.EFBIG:
                raise
            size = _size(values)
            limit = max_record_bytes or "64 MiB, the default"
            raise _numafeed.error(
                e.code, f"pack: {_where(index, sample)} is {size} bytes, more than "
                f"max_record_bytes ({limit}): pass a larger max_record_bytes= (at most "
                f"{_MAX_RECORD}, 256 MiB) or leave the sample out") from None
        stored = stored or _size(values)
        pending += 1
        if bar is not None and pending == _BAR_STEP:
            bar.update(pending)
            pending = 0
    if bar is not None and pending:
        bar.update(pending)
    if not stored:  # every block holds at least one byte (docs/format.md)
        raise ValueError("pack: every sample is 0 bytes (each field empty): a dataset needs at "
                         "least one byte to store")


def _size(values):
    """A record's bytes: its fields' together."""
    return sum(len(v) if isinstance(v, bytes) else v.nbytes for v in values)
