# SPDX-License-Identifier: Apache-2.0
"""numafeed.Ragged: records of different lengths as one values array plus
offsets, the jagged layout of torch's nested tensors, over torch tensors
or numpy arrays, on the host or a GPU."""
import operator


def _is_torch(x):
    return type(x).__module__.startswith("torch")


class Ragged:
    """Records of different lengths: record i is
    ``values[offsets[i]:offsets[i + 1]]``.

    Ragged(values, offsets)

    values   a 1-D torch tensor or numpy array, every record's elements back
             to back.
    offsets  records + 1 int64 element offsets into values, offsets[0] = 0,
             non-decreasing, of the same library (and, for torch, on the
             same device) as values.

    ``len(r)`` is the number of records, ``r[i]`` a view of record i's
    values (negative i counts from the end; a slice ``r[a:b]`` is a Ragged
    of those records sharing values), and iterating gives each record's
    view in turn. Nothing is copied but ``lengths()`` and ``pad()``.

    Record bounds are read from host offsets: with offsets on a GPU they
    are copied to the host once, on the first ``r[i]`` (a Ragged from the
    Loader already has them, from the batch's slot).
    """

    __slots__ = ("values", "offsets", "_bounds", "_host_offsets")

    def __init__(self, values, offsets):
        if _is_torch(values) != _is_torch(offsets):
            raise TypeError("Ragged: values and offsets must both be torch tensors or both "
                            f"numpy arrays, not {type(values).__name__} and "
                            f"{type(offsets).__name__}")
        if len(values.shape) != 1 or len(offsets.shape) != 1 or offsets.shape[0] < 1:
            raise ValueError(f"Ragged: values must be 1-D and offsets 1-D with at least one "
                             f"entry; got shapes {tuple(values.shape)} and "
                             f"{tuple(offsets.shape)}")
        self.values = values
        self.offsets = offsets
        self._bounds = None  # offsets as a host list of ints, once needed
        self._host_offsets = None  # where to read them from, if not offsets

    @classmethod
    def _with_bounds(cls, values, offsets, host_offsets):
        """A Ragged whose record bounds come from host_offsets (the same
        offsets in host memory), so indexing never waits for a device."""
        r = cls(values, offsets)
        r._host_offsets = host_offsets
        return r

    def _host(self):
        if self._bounds is None:
            o = self._host_offsets if self._host_offsets is not None else self.offsets
            self._bounds = (o.cpu() if _is_torch(o) else o).tolist()
            self._host_offsets = None
        return self._bounds

    def __len__(self):
        return self.offsets.shape[0] - 1

    def __getitem__(self, i):
        b = self._host()
        n = len(b) - 1
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if step != 1:
                raise ValueError("Ragged: a slice of records takes step 1")
            stop = max(start, stop)
            lo, hi = b[start], b[stop]
            r = Ragged(self.values[lo:hi], self.offsets[start:stop + 1] - lo)
            r._bounds = [x - lo for x in b[start:stop + 1]]
            return r
        k = operator.index(i)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"Ragged: record {i} of {n}")
        return self.values[b[k]:b[k + 1]]

    def __iter__(self):
        b = self._host()
        v = self.values
        for k in range(len(b) - 1):
            yield v[b[k]:b[k + 1]]

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def device(self):
        """torch: the values' device; numpy: "cpu"."""
        return self.values.device if _is_torch(self.values) else "cpu"

    def lengths(self):
        """Each record's length in elements: int64, where offsets are."""
        o = self.offsets
        return o[1:] - o[:-1]

    def pad(self, value=0, to=None):
        """(padded, lengths): padded a dense [records, L] array of values'
        dtype on values' device, record i's elements first and `value`
        after them; lengths the int64 count of each record's elements in
        it. L is `to`, or the longest record's length when to is None. A
        record longer than `to` is truncated to its first `to` elements
        (lengths then says `to`). Done with whole-array operations (one
        scatter), never a loop over records; with torch on a GPU it queues
        work without waiting for it, except that to=None reads the longest
        length from host offsets."""
        n = len(self)
        lengths = self.lengths()
        if to is None:
            import numpy as np

            width = int(np.diff(np.asarray(self._host())).max(initial=0))
        else:
            width = operator.index(to)
            if width < 0:
                raise ValueError(f"Ragged.pad: to must be >= 0, not {to}")
        if _is_torch(self.values):
            return _pad_torch(self.values, self.offsets, lengths, n, width, value)
        return _pad_numpy(self.values, self.offsets, lengths, n, width, value)

    def __repr__(self):
        return (f"numafeed.Ragged({len(self)} records, {self.values.shape[0]} values of "
                f"{self.dtype}, device={self.device})")


# Both scatters write every element of record r at column p = its place in
# the record, into a row one column wider than asked: elements at or past
# `width` all land in that last column, which is cut off. So truncation
# needs no mask, and no step waits for the device to count anything.

def _pad_torch(values, offsets, lengths, n, width, value):
    import torch

    total = values.shape[0]
    dev = values.device
    rows = torch.repeat_interleave(torch.arange(n, device=dev), lengths, output_size=total)
    cols = torch.arange(total, device=dev) - offsets[:-1][rows]
    cols = torch.clamp(cols, max=width)
    out = torch.full((n, width + 1), value, dtype=values.dtype, device=dev)
    out[rows, cols] = values
    return out[:, :width].contiguous(), torch.clamp(lengths, max=width)


def _pad_numpy(values, offsets, lengths, n, width, value):
    import numpy as np

    total = values.shape[0]
    rows = np.repeat(np.arange(n), lengths)
    cols = np.minimum(np.arange(total) - offsets[:-1][rows], width)
    out = np.full((n, width + 1), value, dtype=values.dtype)
    out[rows, cols] = values
    return np.ascontiguousarray(out[:, :width]), np.minimum(lengths, width)
