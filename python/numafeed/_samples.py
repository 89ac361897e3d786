# SPDX-License-Identifier: Apache-2.0
"""The fields of a dataset numafeed.pack writes, and each value made into
what the C writer stores: from numpy arrays and torch tensors of every
dtype the format has, and from samples (dicts of bytes, str, Python
numbers, lists, arrays and tensors) with the fields inferred from the
first sample or given."""
import numbers

import numpy as np

# numafeed's dtype names and the numpy dtype whose bytes each is stored as.
# numpy has no bfloat16: its two bytes travel as uint16.
STORED = {n: np.dtype(n) for n in ("uint8", "int8", "uint16", "int16", "uint32", "int32",
                                   "uint64", "int64", "float16", "float32", "float64")}
STORED["bfloat16"] = np.dtype(np.uint16)
_NAMES = {dt: n for n, dt in STORED.items() if n != "bfloat16"}
_BYTES_LIKE = (bytes, bytearray, memoryview)
_TEXT = ("bytes", "str")


def _stored_name(dt):
    """numafeed's name for what np.dtype(dt) makes, in any byte order (values
    convert); None for anything else."""
    try:
        return _NAMES.get(np.dtype(dt).newbyteorder("="))
    except Exception:  # np.dtype refuses it, or it has no byte order to set
        return None


def as_array(name, value):
    """(a numpy array of the values as numafeed stores them, the dtype's name)
    from a numpy array or scalar, a torch tensor or anything numpy takes."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            import torch

            return value.view(torch.int16).numpy().view(np.uint16), "bfloat16"
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        raise TypeError(f"field {name!r}: not a numeric array")
    stored = _stored_name(arr.dtype)
    if stored is not None:
        return arr, stored
    # asked only of a dtype the table lacks: numpy computes a dtype's name
    # in Python, several times the cost of the rest of a sample's value
    if arr.dtype.name == "bfloat16":  # ml_dtypes' numpy bfloat16
        return arr.view(np.uint16), "bfloat16"
    raise TypeError(f"field {name!r}: dtype {arr.dtype} is not one numafeed stores "
                    f"({', '.join(sorted(STORED))})")


def _bfloat16_bits(a):
    """float values as bfloat16's bits (uint16), rounded to nearest even."""
    u = np.array(a, dtype=np.float32, order="C").view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


class Field:
    """One field of a layout: kind "fixed" (dtype, shape), "array" (a 1-D
    array of dtype whose length varies), "bytes" or "str". stored: the
    little-endian numpy dtype its values are written as (None for bytes and
    str), made once for every value of every sample."""

    __slots__ = ("name", "dtype", "shape", "kind", "stored")

    def __init__(self, name, dtype, shape):
        self.name, self.dtype, self.shape = name, dtype, shape
        self.kind = dtype if dtype in _TEXT else ("array" if shape is None else "fixed")
        self.stored = None if dtype in _TEXT else STORED[dtype].newbyteorder("<")

    @property
    def public(self):
        """(name, dtype, shape), shape None for every variable field: what
        pack returns and its fields= takes back."""
        return (self.name, self.dtype, self.shape)

    @property
    def writer(self):
        """(name, dtype, shape) as the C writer and the manifest spell it."""
        if self.kind in _TEXT:
            return (self.name, self.dtype, ())
        return (self.name, self.dtype, (-1,) if self.shape is None else self.shape)

    def describe(self):
        if self.kind in _TEXT:
            return self.kind
        if self.shape is None:
            return f"a variable-length 1-D {self.dtype} array"
        return f"{self.dtype}{list(self.shape)}"


def _dtype_arg(name, dt):
    """A dtype given in fields=: numafeed's name, a numpy dtype, a torch
    dtype, or bytes / str (the Python types or their names)."""
    if dt in (bytes, str):
        return dt.__name__
    text = str(dt)
    if text.startswith("torch."):
        text = text[6:]
    if text in STORED or text in _TEXT:
        return text
    stored = _stored_name(dt)
    if stored is None:
        raise TypeError(f"fields: field {name!r}: dtype {dt!r} is not one numafeed stores "
                        f"({', '.join(sorted(STORED))}; or bytes, str)")
    return stored


def _shape_arg(name, dtype, shape):
    """A shape given in fields=: () a scalar, a tuple of dimensions >= 1, or
    None / -1 / (-1,) a 1-D array whose length varies."""
    if dtype in _TEXT:
        if shape not in (None, (), [], -1, (-1,), [-1]):
            raise ValueError(f"fields: field {name!r} is {dtype}, which has no shape (its "
                             f"length varies); not {shape!r}")
        return None
    if shape is None or shape == -1 or (isinstance(shape, (tuple, list)) and
                                        list(shape) == [-1]):
        return None
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"fields: field {name!r}: shape must be a tuple of dimensions, or "
                        f"None / -1 for a 1-D array whose length varies; not {shape!r}") from None
    if any(d < 1 for d in dims):
        raise ValueError(f"fields: field {name!r}: shape {shape!r} has a dimension below 1 "
                         "(-1 only alone, for a 1-D array whose length varies)")
    return dims


def parse_fields(fields):
    """fields= of pack: [(name, dtype), (name, dtype, shape), ...] or
    {name: dtype or (dtype, shape)}; as Fields, in order."""
    items = list(fields.items()) if hasattr(fields, "items") else list(fields)
    out = []
    for item in items:
        if hasattr(fields, "items"):
            name, spec = item
            spec = spec if isinstance(spec, (tuple, list)) else (spec,)
        else:
            if not isinstance(item, (tuple, list)) or not 2 <= len(item) <= 3:
                raise TypeError(f"fields: each field is (name, dtype) or (name, dtype, shape), "
                                f"not {item!r}")
            name, spec = item[0], tuple(item[1:])
        if not isinstance(name, str):
            raise TypeError(f"fields: a field's name is a str, not {name!r}")
        dtype = _dtype_arg(name, spec[0])
        out.append(Field(name, dtype, _shape_arg(name, dtype, spec[1] if len(spec) > 1 else ())))
    if not out:
        raise ValueError("fields: a dataset needs at least one field")
    if len({f.name for f in out}) != len(out):
        raise ValueError(f"fields: a name given twice in {[f.name for f in out]}")
    return out


def _python_array(value):
    """A Python number or (nested) list of numbers as numpy, or None for
    anything else."""
    if isinstance(value, (numbers.Integral, float, list, tuple)) and not isinstance(
            value, np.generic):
        a = np.asarray(value)
        if a.dtype.kind == "b":
            a = a.astype(np.int64)  # a Python bool is an int
        if a.dtype.kind not in "iuf" and a.size:
            raise TypeError(f"not numbers of one dtype ({type(value).__name__}: an int beyond "
                            "64 bits, a str among numbers, rows of different lengths?)")
        return a
    return None


def infer(name, value):
    """The Field the first sample's value makes (docs/python.md):
    bytes -> bytes, str -> str, a Python int / float -> an int64 / float64
    scalar, a 0-d array -> a scalar, a 1-D array or list -> a variable-length
    array of its dtype, 2 or more dimensions -> fixed with this shape."""
    if isinstance(value, _BYTES_LIKE):
        return Field(name, "bytes", None)
    if isinstance(value, str):
        return Field(name, "str", None)
    if value is None:
        raise TypeError("None has no dtype: give the field in fields=")
    a = _python_array(value)
    if a is not None:
        if a.size == 0:
            raise TypeError("an empty list has no dtype: give the field in fields=")
        dtype = "float64" if a.dtype.kind == "f" else "int64"
        if a.dtype.kind == "u" and a.max() > np.iinfo(np.int64).max:
            dtype = "uint64"
    else:
        a, dtype = as_array(name, value)
    if a.ndim == 1:
        return Field(name, dtype, None)
    return Field(name, dtype, tuple(a.shape))


def infer_fixed(name, value):
    """The Field a bare array record makes: fixed, its own shape."""
    a, dtype = as_array(name, value)
    return Field(name, dtype, tuple(a.shape))


def _to_dtype(a, dtype):
    """Python numbers as dtype, refusing what would change them."""
    target = STORED[dtype]
    if a.size == 0:
        return np.zeros(a.shape, target)
    if dtype == "bfloat16":
        return _bfloat16_bits(a)
    if target.kind in "iu":
        if a.dtype.kind == "f":
            raise ValueError(f"floats do not go into an integer field ({dtype})")
        info = np.iinfo(target)
        # a scalar's bounds without a reduction: most samples' ints are scalars
        lo, hi = (a.item(), a.item()) if a.ndim == 0 else (a.min(), a.max())
        if lo < info.min or hi > info.max:
            raise ValueError(f"a value outside {dtype}'s range {info.min}..{info.max}")
    return a.astype(target)


def conform(field, value):
    """value as field stores it: bytes for bytes and str fields, else a
    C-contiguous little-endian numpy array of the field's shape (a variable
    array: 1-D). TypeError or ValueError saying what does not fit."""
    if field.kind == "bytes":
        if isinstance(value, _BYTES_LIKE):
            return bytes(value)
        raise TypeError(f"a bytes field takes bytes, bytearray or memoryview, not "
                        f"{type(value).__name__}")
    if field.kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"a str field takes str, not {type(value).__name__}")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"not encodable as UTF-8 ({e})") from None
    if isinstance(value, (str,) + _BYTES_LIKE) or value is None:
        raise TypeError(f"the field is {field.describe()}, not {type(value).__name__}")
    a = _python_array(value)
    if a is not None:
        a = _to_dtype(a, field.dtype)
    else:
        a, dtype = as_array(field.name, value)
        if dtype != field.dtype:
            safe = "bfloat16" not in (dtype, field.dtype) and np.can_cast(
                a.dtype, STORED[field.dtype], "safe")
            if not safe:
                raise ValueError(f"dtype {dtype}, the field's is {field.dtype} (a value of "
                                 f"another dtype goes in only where the cast loses nothing)")
            a = a.astype(STORED[field.dtype])
    if field.shape is None:
        if a.ndim != 1:
            raise ValueError(f"shape {list(a.shape)}; the field is {field.describe()}")
    elif a.shape != field.shape:
        raise ValueError(f"{field.dtype}{list(a.shape)}, the field is {field.describe()}")
    # np.ascontiguousarray would make a scalar 1-D, which numpy 2 refuses
    # to store into a scalar field
    a = np.asarray(a, dtype=field.stored)
    return a if a.flags.c_contiguous else a.copy(order="C")
