"""The local asset cache: content-addressed blobs by sha256, plus a per-model view."""
from __future__ import annotations

import hashlib
import os

from .errors import UsageError

CHUNK = 1 << 20


def hash_file(path: str | os.PathLike) -> tuple[str, int]:
    """Streamed sha256 and size of a file (never reads the whole file into memory)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as fh:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                digest.update(view[:n])
                size += n
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory; give a file to hash") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    return digest.hexdigest(), size
