"""One large asset fetched as parallel byte ranges into one file, hashed in order as it arrives.

    rf = RangedFile(out, total, chunk, done)   # out: the partial file (Cache.open_partial), preallocated
    rf.start()                                 # hashes the chunks already on disk from an earlier run
    rf.write(i, pos, view)                     # from any worker thread: bytes of chunk i at offset pos
    rf.complete, rf.digest()                   # once every chunk is written

The file is cut into chunks (`Settings.range_chunk`, whose last one is shorter); the transfer engine
(transfer.Engine._ranged) gives them to N connections in order. The sha256 is computed in file order
without a second read of the file: a hashing cursor belongs to the chunk it is in ("the owner"); the
owner's worker hashes each buffer it receives straight from memory, the other workers only write theirs
with pwrite. When the owner's chunk is done, the cursor moves on and reads back from the file (the page
cache, as those bytes were just written) only the bytes that arrived ahead of it, out of order, until it
meets the next chunk's worker, which then hashes its own buffers. Since chunks are handed out in order,
what is read back stays within about N chunks of the cursor.

Resume across runs: `partial/<key>.ranges` (see Sidecar) records the chunks completely written, the
validator (strong ETag or Last-Modified) and size they came from, and the chunk size. It is untrusted
input: anything malformed, for another URL, validator, size or chunk size, or beside a partial file of
the wrong size, is ignored and the download starts over. Chunks recorded are hashed from disk at start;
if a recorded chunk turns out wrong (a crash lost its bytes), the sha256 mismatch discards the partial
and the engine downloads once more from scratch, as for any resumed download.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .cache import _read_json, write_atomic

BUF = 1 << 20  # read-back buffer


def plan(total: int, chunk: int) -> list[tuple[int, int]]:
    """The chunks of a file of `total` bytes: [start, end) pairs of `chunk` bytes (the last one shorter)."""
    return [(start, min(total, start + chunk)) for start in range(0, total, chunk)]


@dataclass(frozen=True)
class Sidecar:
    """What `partial/<key>.ranges` records: the partial's origin and the chunks completely written."""

    url: str  # masked (no password)
    validator: str
    size: int
    chunk: int

    def read(self, path: Path) -> set[int]:
        """The chunk numbers recorded as done in `path`, if it describes this very download; else none."""
        data = _read_json(path, limit=1 << 20)
        if not isinstance(data, dict) or [data.get(k) for k in ("url", "validator", "size", "chunk")] != [
            self.url,
            self.validator,
            self.size,
            self.chunk,
        ]:
            return set()
        done = data.get("done")
        count = len(plan(self.size, self.chunk))
        if not isinstance(done, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < count for i in done
        ):
            return set()
        return set(done)

    def write(self, path: Path, done) -> None:
        # Not fsynced: a record lost in a crash only costs re-downloading those chunks.
        write_atomic(
            path,
            json.dumps(
                {
                    "url": self.url,
                    "validator": self.validator,
                    "size": self.size,
                    "chunk": self.chunk,
                    "done": sorted(done),
                }
            ).encode(),
            durable=False,
        )


class RangedFile:
    """A preallocated partial file written by several threads at chunk offsets, hashed in order (module doc)."""

    def __init__(self, out, total: int, chunk: int, done: set[int] = frozenset(), digest=None, prefix: int = 0):
        import hashlib

        self.fd = out.fileno()
        self.total = total
        self.chunks = plan(total, chunk)
        # prefix: bytes from offset 0 already in the file (what the first stream brought before ranges began)
        self.filled = [
            end if i in done or end <= prefix else max(start, min(prefix, end))
            for i, (start, end) in enumerate(self.chunks)
        ]
        self.done = [i in done or end <= prefix for i, (_, end) in enumerate(self.chunks)]
        self.cursor = 0  # bytes hashed so far; moved only by the owner's thread
        self.owner: int | None = None  # the chunk whose worker hashes its buffers itself
        self.complete = False
        self.read_back = 0  # bytes hashed by reading the file (resumed, or arrived out of order)
        self._h = digest or hashlib.sha256()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Hash what is already on disk (resumed chunks) and hand the cursor to the first chunk to fetch."""
        self._pass_on(0)

    def done_chunks(self) -> set[int]:
        with self._lock:
            return {i for i, d in enumerate(self.done) if d}

    def write(self, i: int, pos: int, view: memoryview) -> None:
        """Write bytes of chunk `i` at `pos` (the chunk's next offset); hash them if chunk i owns the cursor."""
        n = len(view)
        data = view
        while data:
            data = data[os.pwrite(self.fd, data, pos + n - len(data)) :]
        with self._lock:
            self.filled[i] = pos + n
            last = pos + n == self.chunks[i][1]
            self.done[i] = last
            mine = self.owner == i
        if mine:
            self._hash_file(pos)  # bytes of this chunk written before the cursor reached it
            self._h.update(view)
            self.cursor = pos + n
            if last:
                self._pass_on(i + 1)

    def _pass_on(self, k: int) -> None:
        while True:
            with self._lock:
                if k == len(self.chunks):
                    self.owner, self.complete = None, True
                    return
                filled, done = self.filled[k], self.done[k]
                if self.cursor == filled and not done:
                    self.owner = k  # its worker hashes from here on (it reads back nothing more)
                    return
            self._hash_file(filled)
            if done:
                k += 1

    def _hash_file(self, end: int) -> None:
        """Hash the file from the cursor to `end`, reading it back (page cache)."""
        if self.cursor >= end:
            return
        buf = bytearray(min(BUF, end - self.cursor))
        view = memoryview(buf)
        while self.cursor < end:
            n = (
                os.preadv(self.fd, [view[: min(len(buf), end - self.cursor)]], self.cursor)
                if hasattr(os, "preadv")
                else self._pread_into(view[: min(len(buf), end - self.cursor)])
            )
            if not n:
                raise OSError(f"the partial file ends at {self.cursor} of {self.total} bytes")
            self._h.update(view[:n])
            self.cursor += n
            self.read_back += n

    def _pread_into(self, view: memoryview) -> int:
        data = os.pread(self.fd, len(view), self.cursor)
        view[: len(data)] = data
        return len(data)

    def digest(self):
        """The hashlib object (complete once `complete`)."""
        return self._h
