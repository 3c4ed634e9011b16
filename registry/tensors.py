"""Parameter tables of checkpoint files: (name, shape, dtype) per entry, read without loading tensors
where the format allows.

A safetensors file is an 8-byte little-endian header length, a JSON header, then the tensor bytes.
`safetensors_table` reads the header only and refuses, with one sentence, a header that is not what
the format promises: a length past the end of the file or over MAX_HEADER, text that is not a UTF-8
JSON object, a duplicated name, an unknown dtype, a shape that is not a list of non-negative
integers, data offsets outside the data area, a byte span that does not match shape x dtype, spans
that overlap or leave holes. Only then does MindSpore read the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass

from .errors import LoadError

MAX_HEADER = 100 * 2**20  # the reference implementation's limit
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


@dataclass(frozen=True)
class TableEntry:
    """One checkpoint entry as the table knows it: no data."""

    name: str
    shape: tuple[int, ...]
    dtype: str


class _Bad(Exception):
    pass


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _Bad(f"the name {key!r} appears twice")
        seen[key] = value
    return seen


def safetensors_table(path: str | os.PathLike, source: str) -> dict[str, TableEntry]:
    """The entries of a safetensors file by name, from its header; LoadError for a header that lies."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            return _parse(fh, size)
    except _Bad as why:
        raise LoadError(
            f"{source} has an invalid safetensors header ({why}): the file is damaged or not a "
            "safetensors file; check the card's asset-link and file-format"
        ) from None
    except OSError as exc:
        raise LoadError(f"{source} cannot be read ({exc.strerror or exc})") from None


def _parse(fh, size: int) -> dict[str, TableEntry]:
    if size < 8:
        raise _Bad(f"the file has {size} bytes, fewer than the 8 of the header length")
    (length,) = struct.unpack("<Q", fh.read(8))
    if length > size - 8 or length > MAX_HEADER:
        raise _Bad(
            f"the header length {length:,} runs past the end of the {size:,}-byte file"
            if length > size - 8
            else f"the header length {length:,} is over the {MAX_HEADER:,}-byte limit"
        )
    try:
        header = json.loads(fh.read(length).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise _Bad(f"the header is not UTF-8 JSON: {exc}") from None
    except RecursionError:  # `[[[[...` nested past the interpreter's limit: no header nests more than 3 deep
        raise _Bad("the header nests too deeply to be a tensor table") from None
    if not isinstance(header, dict):
        raise _Bad("the header is not a JSON object")
    data_size = size - 8 - length
    table, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise _Bad("__metadata__ is not a mapping of strings")
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _Bad(f"entry {name!r} does not have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise _Bad(f"entry {name!r} has the unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise _Bad(f"entry {name!r} has the shape {shape!r}, not a list of non-negative integers")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise _Bad(f"entry {name!r} has data_offsets {offsets!r}, not two integers")
        if not 0 <= offsets[0] <= offsets[1] <= data_size:
            raise _Bad(f"entry {name!r} has data_offsets {offsets!r} outside the {data_size:,} bytes of data")
        want = math.prod(shape) * DTYPE_BYTES[dtype]
        if offsets[1] - offsets[0] != want:
            raise _Bad(f"entry {name!r} spans {offsets[1] - offsets[0]:,} bytes but {dtype} x {shape} needs {want:,}")
        spans.append((offsets[0], offsets[1], name))
        table[name] = TableEntry(name, tuple(shape), dtype)
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise _Bad(
                f"entry {name!r} starts at byte {begin:,}, "
                + ("inside the previous entry" if begin < end else f"leaving a hole after byte {end:,}")
            )
        end = stop
    if end != data_size:
        raise _Bad(f"the entries cover {end:,} of the {data_size:,} data bytes")
    return table
