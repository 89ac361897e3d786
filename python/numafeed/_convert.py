# SPDX-License-Identifier: Apache-2.0
"""What a batch's fields become in Python: the Loader's output, ragged and
pad choices, checked once at creation and applied to every batch."""
import errno
import json
import numbers

from . import _numafeed
from ._args import U32, int_arg
from ._ragged import Ragged

_OUTPUTS = ("torch", "numpy", "dlpack")
_RAGGED = ("njt", "ragged")
# What to store instead of an unsigned field wider than 8 bits, for a torch
# that cannot take one through DLPack (one without torch.uint16 and its kin)
_WIDER = {"uint16": "int32", "uint32": "int64", "uint64": "int64, if the values fit"}


def _kind(field):
    """A manifest field's kind, as Field.kind spells it."""
    if field.get("dtype") in ("bytes", "str"):
        return field["dtype"]
    return "array" if field.get("shape") == [-1] else "fixed"


def manifest_kinds(text):
    """{field name: kind} from manifest.json's bytes; None when they do not
    parse (the C loader then says what is wrong with them)."""
    try:
        return {f["name"]: _kind(f) for f in json.loads(text)["fields"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Converter:
    """Turns a batch's Fields into the output's arrays.

    output  "torch", "numpy" or "dlpack" (the Fields themselves).
    ragged  how a variable field comes out with output="torch": "njt" (a
            nested tensor of the jagged layout) or "ragged" (numafeed.Ragged);
            None: "njt" where this torch has nested_tensor_from_jagged.
            numpy's is always a Ragged.
    pad     {field: (length, value)} or {field: length} (value 0): that
            variable field as (padded [records, length], lengths).
    kinds   {field: kind} of the dataset, to check pad against (None: not
            known).
    """

    @staticmethod
    def check_output(output):
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, not {output!r}")

    def __init__(self, output, ragged, pad, kinds):
        self.check_output(output)
        self.output = output
        self.torch = None
        self.from_dlpack = None
        self.njt = None  # torch.nested.nested_tensor_from_jagged, where torch has it
        if output == "torch":
            try:
                import torch
            except ImportError as e:
                raise ImportError("numafeed.Loader(output='torch') needs torch: install it, or "
                                  "pass output='numpy' for numpy arrays (host batches) or "
                                  "output='dlpack' for any DLPack consumer", name="torch") from e
            self.torch = torch
            self.from_dlpack = torch.from_dlpack
            self.njt = getattr(getattr(torch, "nested", None), "nested_tensor_from_jagged", None)
        elif output == "numpy":
            import numpy

            self.from_dlpack = numpy.from_dlpack
        self.ragged = self._check_ragged(ragged)
        self.pad = self._check_pad(pad, kinds)

    def _check_ragged(self, ragged):
        if ragged is not None and ragged not in _RAGGED:
            raise ValueError(f"ragged must be None, 'njt' or 'ragged', not {ragged!r}")
        if self.output != "torch":
            if ragged == "njt":
                raise ValueError(f"ragged='njt' (torch's nested tensors) needs output='torch', "
                                 f"not output={self.output!r}")
            return "ragged"
        if ragged == "njt" and self.njt is None:
            raise ValueError(f"ragged='njt': this torch ({self.torch.__version__}) has no "
                             "torch.nested.nested_tensor_from_jagged; upgrade torch, or pass "
                             "ragged='ragged' for numafeed.Ragged")
        return ragged or ("ragged" if self.njt is None else "njt")

    def _check_pad(self, pad, kinds):
        if not pad:
            return {}
        if not hasattr(pad, "items"):
            raise TypeError(f"pad must be a dict of field name -> (length, value), not "
                            f"{type(pad).__name__}")
        if self.output == "dlpack":
            raise ValueError("pad= needs output='torch' or 'numpy': output='dlpack' gives the "
                             "fields as they are")
        out = {}
        for name, spec in pad.items():
            kind = kinds.get(name, "") if kinds is not None else "array"
            if not kind:
                raise ValueError(f"pad: the dataset has no field {name!r} (its fields: "
                                 f"{', '.join(kinds)})")
            if kind not in ("array", "bytes"):
                raise ValueError(f"pad: field {name!r} is {kind}; only a variable array or "
                                 "bytes field is padded")
            to, value = spec if isinstance(spec, (tuple, list)) else (spec, 0)
            to = int_arg(f"pad[{name!r}] length", to, 1, U32)
            if isinstance(value, bool) or not isinstance(value, numbers.Number):
                raise TypeError(f"pad[{name!r}] value must be a number, not {value!r}")
            out[name] = (to, value)
        return out

    def field(self, f):
        """One Field as the output's array, Ragged, nested tensor, list of str
        or (padded, lengths) pair."""
        if self.output == "dlpack":
            return f
        if f.kind == "fixed":
            return self.array(f)
        if f.kind == "str":
            return f.tolist()
        values, offsets = self.array(f), self.array(f.offsets)
        pad = self.pad.get(f.name)
        if pad is not None:
            return Ragged(values, offsets).pad(value=pad[1], to=pad[0])
        if self.ragged == "njt":
            return self.njt(values, offsets)
        return Ragged._with_bounds(values, offsets, self.array(f.host_offsets))

    def ids(self, f):
        """The record ids Field as a copy (8 bytes a record): keeping ids
        must not keep the slot. numpy's for output="dlpack"."""
        if self.output == "torch":
            return self.from_dlpack(f).clone()
        import numpy

        return numpy.from_dlpack(f).copy()

    def array(self, f):
        if self.from_dlpack is None:
            return f
        try:
            return self.from_dlpack(f)
        except (RuntimeError, TypeError, BufferError) as e:
            if self.output != "torch" or f.dtype not in _WIDER:
                raise
            raise _numafeed.error(
                -errno.ENOTSUP,
                f"field {f.name!r} is {f.dtype}, which this torch "
                f"({self.torch.__version__}) cannot take through DLPack ({e}): "
                f"pass output='numpy', or store the field as {_WIDER[f.dtype]} at pack "
                "time") from e
