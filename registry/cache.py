"""The local asset cache: content-addressed blobs by sha256, plus a per-model view.

Layout under HOME ($REGISTRY_HOME, else the platform's user cache dir):

    blobs/sha256/<aa>/<digest>         a verified asset, read-only (0o444), named by its sha256
    blobs/sha256/<aa>/<digest>.stamp   JSON {sha256, size, mtime_ns, ino} written right after verification
    partial/<key>.part                 bytes received so far for a download in progress or interrupted
    partial/<key>.json                 {url, etag, last_modified, size}: what the partial bytes came from
                                       (If-Range validator for resuming them)
    partial/<key>.ranges               {url, validator, size, chunk, done}: the chunks a parallel-range
                                       download completed (ranges.py)
    partial/<key>.<node>-<pid>-<thread>.part  without locks (see locking): each download's own partial
                                       file (node: this kernel boot and pid namespace, see `node`), with
                                       its .json and .ranges records beside it
    locks/<digest>.lock                one file lock per blob: one process downloads, the others wait
    locks/<key>.lock                   ... and per download (see download_key)
    locks/model-<sha256 of id>.lock    serializes updates of one model view
    models/<id>/<filename>             the human view: relative symlinks to blobs (hardlink, else copy, where
                                       symlinks are not possible), named by the asset's file name
    models/<id>/.view.json             {id, files: {filename: {sha256, size, format, url, stamp}}, card}: what the
                                       view holds; stamp, [size, mtime_ns, ino], copies the blob's stamp as it was
                                       when linked, so a warm pull checks a blob with one stat (Cache.warm);
                                       card, what the last pull learnt from the card's bytes (catalog.Entry.record:
                                       their sha256, assets, cosmetic problems), so that a warm pull of the same
                                       bytes neither parses nor checks them; trusted only in a record file of this
                                       user's that others cannot write (_own)

A download's key is the digest the card gives; when the card gives only a sha256 prefix (8 to 63 hex
digits), which cannot name a blob, it is `<prefix>-<sha256 of the asset's link, 16 hex>`: the blob is then
committed under the full digest computed, and found again through the model view that records it
(`view_digest`), else as the one blob whose name starts with the prefix that another model's view records
for the same link (`prefix_digest`; two candidates, another link or another size mean a download).

Invariants: a blob path only ever holds bytes whose sha256 is its name (they are written to a partial file,
fsynced, verified and renamed; a reader never sees half a file). That fsync is the only one a download
needs: stamps, view records and partial records are replaced by rename without fsync, since losing one in
a crash costs a re-hash, a re-link or a restart, never trust (a stamp that does not match is ignored).

Lock modes (`Cache.locking`, REGISTRY_LOCKS): with lock files, one process downloads a blob and the others
wait for it; without (`none`, or `auto` on NFS/Lustre/SMB/9p/BeeGFS or when locks fail with ENOLCK/ENOSYS),
every process downloads into its own partial file, the first verified one gets the blob's name (never
replaced), and sweeps and prunes remove only temporary and partial files older than STALE (an hour); an
interrupted download is resumed by the process that adopts its partial file (adopt_partial: by rename,
once no live process writes it; live ones touch theirs every HEARTBEAT seconds). A blob whose stat still matches its stamp
is trusted without reading it; any other blob is re-hashed before use, and `registry cache verify` re-hashes
them all. (`registry.load` re-hashes the bytes it parses whatever the stamp says: see loader.py.)

Others may be able to write inside HOME (a shared cache, a home under /tmp), so:
- the cache never follows a symbolic link it did not create: partial and temporary files are opened with
  O_NOFOLLOW (new ones with O_EXCL), directories under HOME are opened component by component with
  O_NOFOLLOW and view files are changed relative to that directory descriptor; a symlink where a cache
  directory should be is refused with a sentence, never written through;
- nothing outside HOME is ever deleted or renamed: names read from records are plain file names (no `/`,
  `..`, control characters), and every record (.view.json, stamps, partial metadata) is untrusted input:
  a malformed one is ignored (or its bad entries dropped), never a crash;
- a verified, cached blob whose view is current is used without writing anything (a read-only cache works
  for `pull --offline` and `load`); when HOME is group- or other-writable (shared), the directories and lock
  files the cache creates get the same write permissions, so every user of it can take the locks;
- temporary files (`.NAME.PID.THREAD.tmp`) a killed process left are removed under the lock that guards
  their writer: view ones by the next link or `rm`, stamp and partial-metadata ones by the next fetch of that
  blob or `cache prune`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import NotFoundError, RegistryError, UsageError
from .names import SHA256_RE, ShortNames, check_name
from .text import mask_passwords

try:
    import fcntl
except ImportError:  # Windows: filelock's locks
    fcntl = None

CHUNK = 1 << 20
VIEW_FILE = ".view.json"
WAIT_NOTICE = 1.0  # seconds of waiting for a lock before on_wait is told
STALE = 3600.0  # without locks, a temporary or partial file untouched this long belongs to no live process
# Without locks, a live download touches its partial files every HEARTBEAT seconds whatever it is doing
# (receiving, waiting to retry, hashing a resumed prefix: transfer._Heartbeat), so one of another machine
# untouched for RESUME_AFTER (12 missed beats: a stalled scheduler or a file-server hiccup is not death)
# belongs to no live process and may be adopted to resume it (Cache.adopt_partial).
HEARTBEAT = 5.0
RESUME_AFTER = 60.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TMP = re.compile(r"\.(.+)\.\d+(?:\.\d+)?\.tmp")  # .NAME.PID[.THREAD].tmp, as write_atomic names them
_OWNER = re.compile(r"([0-9a-f]{12})-(\d+)-(\d+)")  # NODE-PID-THREAD: who writes a lock-free partial file


def hash_file(path: str | os.PathLike, length: int | None = None, digest=None, copy_to=None) -> tuple[str, int]:
    """Streamed sha256 and size of a file, or of its first `length` bytes (never the whole file in memory).

    `digest`: a hashlib object to continue (it is updated in place); `copy_to`: a binary file that receives
    the very bytes hashed (see verified_copy).
    """
    digest = hashlib.sha256() if digest is None else digest
    size = 0
    try:
        with open(path, "rb", buffering=0) as fh:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while length is None or size < length:
                want = CHUNK if length is None else min(CHUNK, length - size)
                n = fh.readinto(view[:want])
                if not n:
                    break
                digest.update(view[:n])
                if copy_to is not None:
                    try:
                        copy_to.write(view[:n])  # a buffered file: all of it, or an error
                    except OSError as exc:
                        raise UsageError(
                            f"cannot write a copy of {path} to {copy_to.name}: {exc.strerror or exc}; "
                            "free some space there or set TMPDIR to a roomier directory"
                        ) from None
                size += n
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory; give a file to hash") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    return digest.hexdigest(), size


_VERIFIED_DIR = re.compile(r"registry-verified-(\d+)-.+")
_ROOM = 1 << 20  # left free beside a private copy


def _private_parent(need: int) -> str:
    """Where a private copy of `need` bytes goes: /dev/shm (RAM) when it has room, else the temporary
    directory (TMPDIR). A small /dev/shm (64 MiB in a default container) must not cut a copy short."""
    tried = []
    for parent in ("/dev/shm", tempfile.gettempdir()):
        try:
            if not (os.path.isdir(parent) and os.access(parent, os.W_OK)):
                continue
            st = os.statvfs(parent)
        except (OSError, AttributeError):  # no statvfs (Windows): the temporary directory it is
            return tempfile.gettempdir()
        if st.f_bavail * st.f_frsize >= need + _ROOM:
            return parent
        tried.append(f"{parent} ({st.f_bavail * st.f_frsize:,} bytes free)")
    raise UsageError(
        f"no room for a private copy of {need:,} bytes to verify and load (tried {', '.join(tried)}): "
        "free some space or set TMPDIR to a roomier directory"
    )


def _alive(pid: int) -> bool:
    """Whether process `pid` of this machine may be running (only a definite "no such process" says not;
    where that cannot be asked without harm, as on Windows, it may)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # another user's process, or not a pid
        return True
    return True


@functools.cache
def node() -> str:
    """12 hex digits naming this kernel boot and pid namespace: a process id in a partial file's name is
    asked about (`_alive`) only where the name says it was given. Two containers with one hostname
    share no pid namespace, so the hostname alone would not do."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(open(path).read().strip() if "boot_id" in path else str(os.stat(path).st_ino))
        except OSError:
            pass
    if not parts:  # no /proc: the host's name is all there is
        import platform

        parts.append(platform.node())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _sweep_verified(parent: str) -> None:
    """Remove private copies whose process is gone (killed while loading). Only our own directories, by
    lstat (a symlink planted there is left alone); a live process's copy is never touched."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        m = _VERIFIED_DIR.fullmatch(name)
        if not m or _alive(int(m.group(1))):
            continue
        path = os.path.join(parent, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def verified_copy(blob: Path, digest: str, name: str):
    """A private copy of `blob`, named `name`, made of the bytes hashed while they were copied: yields its
    path when they match `digest`, else None. The copy lives in a fresh 0700 directory (in RAM under
    /dev/shm when it has room for it, else in TMPDIR) and is removed afterwards, or by the next call once
    a killed process left it. So what a parser reads next is exactly what was verified, whatever happens
    to the blob meanwhile (bit rot, a writer with access to the cache)."""
    try:
        size = os.stat(blob).st_size
    except OSError as exc:
        raise UsageError(f"{blob}: cannot read the file: {exc.strerror or exc}") from None
    parent = _private_parent(size)
    _sweep_verified(parent)
    with tempfile.TemporaryDirectory(prefix=f"registry-verified-{os.getpid()}-", dir=parent) as tmp:
        target = Path(tmp) / name
        with open(target, "xb") as out:
            actual, copied = hash_file(blob, copy_to=out)
            try:
                out.flush()
            except OSError as exc:
                raise UsageError(
                    f"cannot write a copy of {blob} to {target}: {exc.strerror or exc}; "
                    "free some space there or set TMPDIR to a roomier directory"
                ) from None
        if os.path.getsize(target) != copied:  # never hand a parser a copy cut short
            raise UsageError(f"the private copy {target} of {blob} is incomplete: free some space there or set TMPDIR")
        yield target if actual == digest else None


def _sweep_tmp(dir_fd: int, stem: str | None = None, age: float = 0.0) -> None:
    """Remove temporary files a killed process left in a directory (those of `stem` only, if given). Call
    with the lock their writer holds: any found then belongs to no running process (without locks, only
    those older than `age` seconds, see Cache.stale_age). unlink never follows a symlink, and names are
    taken relative to the directory's descriptor."""
    for name in os.listdir(dir_fd):
        m = _TMP.fullmatch(name)
        if m and (stem is None or m.group(1).split(".", 1)[0] == stem) and (not age or _older(name, age, dir_fd)):
            try:
                os.unlink(name, dir_fd=dir_fd)
            except OSError:
                pass


def touch(path: str | os.PathLike) -> None:
    """Set `path`'s mtime to now (the file server's clock), never through a symlink where the platform can
    tell (utimensat); OSError when it is gone."""
    os.utime(path, follow_symlinks=os.utime not in os.supports_follow_symlinks)


def _older(name: str | os.PathLike, age: float, dir_fd: int | None = None) -> bool:
    try:
        return time.time() - os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime > age
    except OSError:
        return False


def _create_exclusive(name: str | os.PathLike, mode: int = 0o644, dir_fd: int | None = None) -> int:
    """A new file opened for writing, never through a symlink planted at its name (one found there, or a
    stale file, is removed first: the name is ours)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(name, dir_fd=dir_fd)
        return os.open(name, flags, mode, dir_fd=dir_fd)


def write_atomic(path: Path, data: bytes, dir_fd: int | None = None, durable: bool = True) -> None:
    """Replace `path` with `data` so that a reader sees the old file or the new one, never a part.
    With `dir_fd`, `path` is a name in that directory (see Cache.open_dir). durable=False skips the fsync:
    for records whose loss in a crash costs only work (a stamp, a resume record, a view entry), never trust."""
    if dir_fd is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp_name, name = (tmp.name, path.name) if dir_fd is not None else (tmp, path)
    try:
        fd = _create_exclusive(tmp_name, dir_fd=dir_fd)
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        try:
            os.unlink(tmp_name, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _read_json(path: Path | str, dir_fd: int | None = None, limit: int = 16 << 20) -> dict | None:
    """A cache record, or None when it is missing, not a regular file (a symlink is not followed), too
    large, or not a JSON object."""
    return _read_json_stat(path, dir_fd, limit)[0]


def _read_json_stat(path: Path | str, dir_fd: int | None = None, limit: int = 16 << 20):
    """(_read_json's record, the stat of the file it was read from) or (None, None)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    except OSError:
        return None, None
    try:
        with open(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None, None
            data = json.loads(fh.read(limit + 1)[: limit + 1])
    except (OSError, ValueError, RecursionError):
        return None, None
    return (data, st) if isinstance(data, dict) else (None, None)


def _own(st: os.stat_result | None) -> bool:
    """Whether a record file was written by this user (or root) and only they can change it: then what it
    says of a card may stand for that card (Cache.warm). In a shared cache another user's record may not."""
    uid = getattr(os, "getuid", None)
    return (
        st is not None
        and uid is not None
        and st.st_uid in (uid(), 0)
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def plain_name(name) -> bool:
    """Whether `name` from a record can only name a file inside its directory."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and not _CONTROL.search(name)
        and len(name.encode("utf-8", "replace")) <= 255
    )


def _view_files(data: dict | None) -> dict[str, dict]:
    """The well-formed entries of a view record: plain file names mapped to {sha256, size, format, url}, plus
    stamp ([size, mtime_ns, ino] of the blob when it was linked) where the record has a well-formed one."""
    files = data.get("files") if isinstance(data, dict) else None
    out = {}
    for name, rec in files.items() if isinstance(files, dict) else ():
        if (entry := _view_file(name, rec)) is not None:
            out[name] = entry
    return out


def _view_file(name, rec) -> dict | None:
    """One entry of a view record as _view_files keeps it, or None when it is not well-formed (a warm pull
    checks only the entries it wants)."""
    if not (plain_name(name) and name != VIEW_FILE and isinstance(rec, dict)):
        return None
    digest, size = rec.get("sha256"), rec.get("size")
    if not (isinstance(digest, str) and SHA256_RE.match(digest)):
        return None
    out = {
        "sha256": digest,
        "size": size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0,
        "format": rec.get("format") if isinstance(rec.get("format"), str) else "",
        "url": rec.get("url") if isinstance(rec.get("url"), str) else "",
    }
    seen = rec.get("stamp")
    if (
        isinstance(seen, list)
        and len(seen) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in seen)
    ):
        out["stamp"] = seen
    return out


def _view_json(model_id: str, files: dict, card: dict | None) -> bytes:
    """A view record's bytes: {id, files, card} (card: see Cache.record_card, left out when None). Without
    indentation, so that the C encoder writes it."""
    data = {"id": model_id, "files": files}
    if card is not None:
        data["card"] = card
    return json.dumps(data, sort_keys=True).encode()


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def human_size(n: int) -> str:
    """`n` bytes as text in B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ViewFile:
    model: str
    filename: str
    sha256: str
    size: int
    format: str
    url: str


class _Report:
    def as_json(self) -> dict:
        """The report as `registry cache ... --json` writes it."""
        return asdict(self)


@dataclass
class CacheListing(_Report):
    """`Cache.ls()`: the cached models with their files, and the blob and partial-download totals."""

    home: str
    models: list = field(
        default_factory=list
    )  # {"id", "files": [{filename, sha256, size, format, path, present}], "size"}
    blobs: dict = field(default_factory=dict)  # {"count", "size"}
    unreferenced: list = field(default_factory=list)  # {"sha256", "size"} of blobs no view uses
    partial: dict = field(default_factory=dict)  # {"count", "size"}


@dataclass
class VerifyReport(_Report):
    """`Cache.verify()`: blobs re-hashed, those that did not match (removed), view files without a blob."""

    checked: int = 0
    size: int = 0
    bad: list = field(default_factory=list)  # {"sha256", "actual", "size", "removed"}
    missing: list = field(default_factory=list)  # {"model", "filename", "sha256"}

    @property
    def ok(self) -> bool:
        return not self.bad and not self.missing


@dataclass
class PruneReport(_Report):
    """`Cache.prune()`: what was removed (with dry_run: what would be) and the bytes freed."""

    removed_blobs: list = field(default_factory=list)
    removed_partial: list = field(default_factory=list)
    freed: int = 0
    dry_run: bool = False


@dataclass
class RemoveReport(_Report):
    """`Cache.rm(name)`: the model removed, the blobs only it used, the bytes freed."""

    id: str
    removed_blobs: list = field(default_factory=list)
    freed: int = 0


class CacheLockError(RegistryError):
    """A lock file that cannot be taken (a read-only or foreign cache, a planted symlink, a timeout)."""

    exit_code = 2


class LockBusy(CacheLockError):
    """The lock is held by another process and the caller would not wait."""


class _Lock:
    """An exclusive lock on a lock file, with our errors and a report when another process holds it (see
    Cache.on_wait). Where fcntl exists, a waiter blocks in flock() in a helper thread (woken by the kernel the
    moment the lock is free, no polling) while the caller waits for it with the timeout; elsewhere filelock."""

    def __init__(self, cache: Cache, path: Path, timeout: float, what: str):
        self.cache, self.path, self.timeout, self.what = cache, path, timeout, what
        self._fd: int | None = None
        self._file_lock = None
        if fcntl is None:
            from filelock import FileLock

            kwargs = {"mode": 0o666} if cache.shared() else {}
            self._file_lock = FileLock(str(path), timeout=timeout, **kwargs)

    def _open(self) -> int:
        mode = 0o666 if self.cache.shared() else 0o644
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
        except OSError as exc:
            raise self.cache.write_error(self.path, exc, "take the lock") from None
        if mode == 0o666:
            try:
                os.fchmod(fd, mode)  # through umask, so that every user of a shared cache can take it
            except OSError:
                pass
        return fd

    def _filelock(self, timeout: float) -> bool:
        from filelock import Timeout

        try:
            self._file_lock.acquire(timeout=timeout)
            return True
        except Timeout:
            return False
        except OSError as exc:
            raise self.cache.write_error(self.path, exc, "take the lock") from None

    def _try(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        if self._file_lock is not None:
            return self._filelock(0)
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOLCK, errno.ENOSYS) and self.cache.locks == "auto":
                self.cache.untrusted_locks(f"the file system refuses locks ({exc.strerror})")
                return True  # from now on this cache works without locks (Cache.locking)
            raise self.cache.write_error(self.path, exc, "take the lock") from None
        self._fd = fd
        return True

    def _wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds (negative: no limit) for the lock; whether it was taken."""
        if self._file_lock is not None:
            return self._filelock(timeout)
        fd = self._open()
        state = {"error": None, "abandoned": False}
        taken = threading.Event()
        guard = threading.Lock()

        def block() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # returns when the holder releases it (or dies)
            except OSError as exc:
                state["error"] = exc
            with guard:
                if state["abandoned"]:  # the caller gave up meanwhile: let the lock go at once
                    os.close(fd)
                    return
                taken.set()

        threading.Thread(target=block, name="lock-wait", daemon=True).start()
        got = taken.wait(None if timeout < 0 else timeout)
        with guard:
            if not got and not taken.is_set():
                state["abandoned"] = True
                return False
        if state["error"] is not None:
            os.close(fd)
            raise self.cache.write_error(self.path, state["error"], "take the lock")
        self._fd = fd
        return True

    def acquire(self, timeout: float | None = None) -> None:
        timeout = self.timeout if timeout is None else timeout
        if self._try():
            return
        if timeout == 0:  # REGISTRY_LOCK_TIMEOUT=0, or a prune that only takes idle locks
            raise LockBusy(
                f"the lock of {self.what} ({self.path}) is held by another process; try again later, "
                "or set REGISTRY_LOCK_TIMEOUT to wait for it"
            )
        began = time.monotonic()
        notify = self.cache.on_wait
        grace = WAIT_NOTICE if timeout < 0 else min(WAIT_NOTICE, timeout)
        if self._wait(grace):  # a short wait (another thread of this pull linking the same view) is not worth a word
            return
        if notify:
            limit = f"; giving up after {timeout:g} s (REGISTRY_LOCK_TIMEOUT)" if timeout >= 0 else ""
            notify(f"waiting for another process that holds the lock of {self.what} ({self.path}){limit}")
        if not self._wait(timeout if timeout < 0 else max(0.0, timeout - grace)):
            raise CacheLockError(
                f"gave up waiting for the lock of {self.what} ({self.path}) after {timeout:g} s: "
                "another process still holds it; try again later, or raise "
                "REGISTRY_LOCK_TIMEOUT"
            )
        if notify:
            notify(f"waited {time.monotonic() - began:.1f} s for the lock of {self.what}")

    def release(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
        elif self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class _NoLock:
    """REGISTRY_LOCKS=none: nothing to take (see Cache.locking)."""

    def acquire(self, timeout: float | None = None) -> None:
        pass

    def release(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


# statfs f_type of file systems where flock/fcntl locks are not to be trusted across machines: NFS (local
# flock emulation or lockd may be absent), Lustre (without -o flock: ENOSYS, with -o localflock: local
# only), CIFS/SMB and SMB2, 9p (VM and WSL shares), BeeGFS.
UNTRUSTED_LOCK_FS = {
    0x6969: "nfs",
    0x0BD00BD0: "lustre",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x517B: "smb",
    0x01021997: "9p",
    0x19830326: "beegfs",
}


def fs_type(path: Path) -> int | None:
    """statfs(2)'s f_type of the file system holding `path` (Linux only; None elsewhere or on failure)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(256)  # struct statfs begins with f_type (a long)
        if libc.statfs(os.fsencode(path), buf) != 0:
            return None
        return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
    except (OSError, AttributeError, ValueError):
        return None


def _refuses_locks(directory: Path) -> str | None:
    """The reason when flock on `directory` fails with ENOLCK or ENOSYS (a file system without lock
    support), else None. A shared lock on a read-only descriptor: nothing is created or written."""
    if fcntl is None:
        return None
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.ENOSYS):
            return exc.strerror or os.strerror(exc.errno)
        return None  # busy (someone holds it exclusively) or another refusal: locks do exist here
    finally:
        os.close(fd)  # closing releases the lock
    return None


class Cache:
    def __init__(self, home: str | os.PathLike, *, lock_timeout: float = -1, on_wait=None, locks: str = "auto"):
        self.home = Path(home).expanduser()
        self.lock_timeout = lock_timeout  # seconds to wait for another process's lock; negative: no limit
        self.on_wait = on_wait  # called with a sentence when a lock is held by another process, and when it came
        self.locks = locks  # REGISTRY_LOCKS: auto, file or none (see locking)
        self._locking: str | None = None
        self._why = ""

    @classmethod
    def from_settings(cls, settings=None, on_wait=None) -> Cache:
        from .settings import current

        settings = settings or current()
        return cls(settings.home, lock_timeout=settings.lock_timeout, on_wait=on_wait, locks=settings.locks)

    # ----------------------------------------------------------------- lock modes

    def locking(self) -> bool:
        """Whether this cache uses lock files (see lock_mode). Without locks each download writes its own
        partial file (a unique name), the first verified rename of it to the blob wins (a blob already there
        is never replaced), records are replaced by rename only, and nothing another process may be writing
        is swept (only files older than STALE); an interrupted download is resumed by adopting its partial
        file once no live process writes it (adopt_partial)."""
        return self.lock_mode()[0] != "none"

    def lock_mode(self) -> tuple[str, str]:
        """The lock mode in force, `file` or `none`, and why. `none` with REGISTRY_LOCKS=none, and with auto on
        a file system whose locks cannot be trusted across machines (UNTRUSTED_LOCK_FS, by statfs f_type) or
        that refuses them (ENOLCK, ENOSYS: a shared flock of the cache directory is tried, which writes
        nothing; a lock file refused later switches too, see _Lock._try)."""
        if self._locking is None:
            if self.locks != "auto":
                self._locking, self._why = self.locks, f"REGISTRY_LOCKS={self.locks}"
            else:
                where = self.home
                while not where.exists() and where.parent != where:
                    where = where.parent
                kind = UNTRUSTED_LOCK_FS.get(fs_type(where))
                if kind:
                    self.untrusted_locks(f"the cache is on {kind}, whose locks are not trusted across machines")
                elif refused := _refuses_locks(where):
                    self.untrusted_locks(f"the file system refuses locks ({refused})")
                else:
                    self._locking, self._why = "file", "flock works on its file system"
        return self._locking, self._why

    def untrusted_locks(self, why: str) -> None:
        if self._locking == "none":  # said once (threads of one pull may each meet a refused lock)
            return
        self._locking, self._why = "none", why
        import logging

        logging.getLogger("registry").info("cache %s: working without locks (REGISTRY_LOCKS=none): %s", self.home, why)

    def stale_age(self) -> float:
        """How old a temporary or partial file must be before a sweep or prune removes it: 0 with locks (the
        lock says nobody writes it), else STALE seconds."""
        return 0.0 if self.locking() else STALE

    # ----------------------------------------------------------------- paths

    def blob_path(self, digest: str) -> Path:
        return self.home / "blobs" / "sha256" / digest[:2] / digest

    def stamp_path(self, digest: str) -> Path:
        return self.blob_path(digest).with_name(digest + ".stamp")

    def partial_path(self, digest: str) -> Path:
        return self.home / "partial" / f"{digest}.part"

    def partial_meta_path(self, digest: str) -> Path:
        return self.home / "partial" / f"{digest}.json"

    def ranges_path(self, digest: str) -> Path:
        """The record of the chunks a parallel-range download has completed (ranges.Sidecar)."""
        return self.home / "partial" / f"{digest}.ranges"

    @staticmethod
    def download_key(sha256: str, url: str) -> str:
        """What names an asset's partial file and download lock: its digest, or for a prefix the prefix and
        a hash of its link (no dots: `prune` reads the key back from the partial file's name)."""
        if len(sha256) == 64:
            return sha256
        return f"{sha256}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"

    def view_digest(self, model_id: str, prefix: str, url: str) -> str | None:
        """The full digest that model `model_id`'s view records for the asset at `url` whose card gives the
        sha256 prefix `prefix`; None if the view has no such file or the record is not this user's (_own)."""
        try:
            data, st = _read_json_stat(self.model_dir(model_id) / VIEW_FILE)
        except UsageError:  # not a model id the cache can hold
            return None
        if not _own(st):  # in a shared cache, another user's record would name any blob matching the prefix
            return None
        files = data.get("files") if isinstance(data.get("files"), dict) else {}
        for rec in files.values():
            digest = rec.get("sha256") if isinstance(rec, dict) else None
            if isinstance(digest, str) and len(digest) == 64 and digest.startswith(prefix) and rec.get("url") == url:
                return digest
        return None

    def prefix_digest(self, prefix: str, url: str, size: int | None = None) -> str | None:
        """The full digest of the one cached blob whose name starts with sha256 prefix `prefix`, when another
        model's view records it for the same asset link `url` (and its size is `size`, when the card gives
        one); else None, also when two blobs start with the prefix (it names neither for sure: download).
        One blob directory is read (blobs/sha256/<first two hex digits>), then the view records; the blob
        is checked as any other (lookup) before use.

        Why the same link: a prefix is matched with 2^32 tries, so a card of any registry could otherwise
        plant a file under a full digest starting with another card's prefix and have it used instead of
        what that card's link serves. A blob recorded for this link was verified as the bytes it served."""
        try:
            names = os.listdir(self.home / "blobs" / "sha256" / prefix[:2])
        except OSError:
            return None
        found = [n for n in names if len(n) == 64 and n.startswith(prefix) and SHA256_RE.match(n)]
        if len(found) != 1:
            return None
        try:
            if size is not None and os.lstat(self.blob_path(found[0])).st_size != size:
                return None
        except OSError:
            return None
        links = (url, mask_passwords(url))
        for _, directory, files in self.views():
            if any(rec["sha256"] == found[0] and rec["url"] in links for rec in files.values()):
                # read again with its owner: in a shared cache only a record of this user's vouches (_own)
                data, st = _read_json_stat(directory / VIEW_FILE)
                if _own(st) and any(
                    rec["sha256"] == found[0] and rec["url"] in links for rec in _view_files(data).values()
                ):
                    return found[0]
        return None

    def model_dir(self, model_id: str) -> Path:
        """HOME/models/<id>: the model's view directory (raises UsageError for a bad id)."""
        return self.home.joinpath("models", *check_name(model_id).split("/"))

    def lock(self, digest: str, timeout: float | None = None) -> _Lock:
        return self._lock(f"{digest}.lock", timeout, f"blob {digest[:12]}")

    def model_lock(self, model_id: str, timeout: float | None = None) -> _Lock:
        return self._lock(
            f"model-{hashlib.sha256(model_id.encode()).hexdigest()[:32]}.lock", timeout, f"model {model_id}"
        )

    def _lock(self, name: str, timeout: float | None, what: str) -> _Lock | _NoLock:
        if not self.locking():
            return _NoLock()
        locks = self.home / "locks"
        self._mkdir(locks)
        return _Lock(self, locks / name, self.lock_timeout if timeout is None else timeout, what)

    def shared(self) -> bool:
        """Whether HOME is group- or other-writable: then what the cache creates is too (module doc)."""
        try:
            return bool(os.stat(self.home).st_mode & (stat.S_IWGRP | stat.S_IWOTH))
        except OSError:
            return False

    def write_error(self, path: Path, exc: OSError, doing: str = "write") -> RegistryError:
        """The sentence for a cache write that failed: the advice depends on why."""
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            advice = (
                f"the cache {self.home} is not writable by you: ask its owner to pull the model (then it is "
                "used read-only), make it group-writable for a shared cache, or set REGISTRY_HOME to a "
                "directory of yours"
            )
        elif exc.errno == errno.ELOOP:
            reason, advice = (
                "it is a symbolic link, which the cache never creates",
                "remove it (someone else planted it)",
            )
        elif exc.errno == errno.ENAMETOOLONG:
            advice = "the file name is too long for this file system: report it to the card's publisher"
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
            advice = "free some space or set REGISTRY_HOME to another disk"
        else:
            advice = "check the disk, or set REGISTRY_HOME to another directory"
        kind = CacheLockError if doing == "take the lock" else RegistryError
        return kind(f"cannot {doing} {path}: {reason}; {advice}", exit_code=2)

    def open_dir(self, path: Path, create: bool = True) -> int:
        """A descriptor of directory `path` inside HOME, opened component by component without following a
        symlink (created where missing when `create`). Close it with os.close."""
        rel = path.relative_to(self.home).parts
        if ".." in rel:
            raise UsageError(f"{path} is not inside the cache {self.home}")
        try:
            try:
                fd = os.open(self.home, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except FileNotFoundError:  # made only when missing: a mkdir per call was a syscall per cache file
                if not create:
                    raise
                self.home.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.home, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise UsageError(
                f"cannot create the cache directory {self.home}: {exc.strerror or exc}; "
                "set REGISTRY_HOME to a writable directory"
            ) from None
        shared = self.shared()
        where = self.home
        try:
            for part in rel:
                where = where / part
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                        if shared:  # others must be able to create files here too (umask would stop them)
                            os.chmod(part, stat.S_IMODE(os.fstat(fd).st_mode), dir_fd=fd)
                    except FileExistsError:
                        pass
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise RegistryError(
                    f"cache directory {where} is a symbolic link or not a directory, which the cache "
                    "never creates: remove it (someone else may have planted it)",
                    exit_code=2,
                ) from None
            if isinstance(exc, FileNotFoundError):
                raise
            raise self.write_error(where, exc, "create the cache directory") from None
        return fd

    def _mkdir(self, path: Path) -> None:
        os.close(self.open_dir(path))

    # ----------------------------------------------------------------- blobs

    def trusted(self, digest: str) -> Path | None:
        """The blob's path if it is a regular file whose stat matches the stamp written when it was verified."""
        return self.blob_path(digest) if self._stamped(digest) is not None else None

    def _stamped(self, digest: str) -> list[int] | None:
        """[size, mtime_ns, ino] of the blob if it is a regular file whose stat matches its stamp."""
        try:
            st = os.lstat(self.blob_path(digest))
        except OSError:
            return None
        stamp = _read_json(self.stamp_path(digest))
        seen = [st.st_size, st.st_mtime_ns, st.st_ino]
        if (
            stat.S_ISREG(st.st_mode)
            and stamp
            and stamp.get("sha256") == digest
            and [stamp.get("size"), stamp.get("mtime_ns"), stamp.get("ino")] == seen
        ):
            return seen
        return None

    def lookup(self, digest: str) -> Path | None:
        """The blob's path if it is cached and intact: trusted by its stamp, else re-hashed (and restamped,
        or removed when its bytes are wrong). Call with the blob's lock held."""
        path = self.trusted(digest)
        if path is not None:
            return path
        path = self.blob_path(digest)
        if not os.path.lexists(path):
            return None
        return path if self.verify_blob(digest) else None

    def verify_blob(self, digest: str) -> bool:
        """Re-hash a blob: stamp it when intact, remove it (and its stamp) when not."""
        path = self.blob_path(digest)
        try:
            regular = stat.S_ISREG(os.lstat(path).st_mode)  # a symlink or a FIFO is not a blob: never read it
        except OSError:
            regular = False
        if regular and hash_file(path)[0] == digest:
            self._stamp(digest)
            return True
        self._remove_blob(digest)
        return False

    def _stamp(self, digest: str) -> None:
        try:
            st = os.lstat(self.blob_path(digest))
            write_atomic(
                self.stamp_path(digest),
                json.dumps(
                    {
                        "sha256": digest,
                        "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                        "ino": st.st_ino,
                        "verified": time.time(),
                    }
                ).encode(),
                durable=False,
            )  # lost in a crash: the blob is re-hashed
        except OSError:  # e.g. a full disk: the blob is verified; without a stamp it is only re-hashed next time
            pass

    def open_partial(self, digest: str, resume: bool):
        """The partial file of `digest` for writing (unbuffered), never through a symlink: resume=True opens
        the bytes already there (None if there are none usable), else starts a new, empty file."""
        part = self.partial_path(digest)
        self._mkdir(part.parent)
        if resume:
            try:
                fd = os.open(part, os.O_RDWR | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                return None
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                out = open(fd, "r+b", buffering=0)
                out.path = part  # for messages: the descriptor has no name
                return out
            os.close(fd)  # a hard link to a file elsewhere: not ours to write
            return None
        try:
            fd = _create_exclusive(part, 0o644)
        except OSError as exc:
            raise self.write_error(part, exc, "write the cache file") from None
        out = open(fd, "wb", buffering=0)
        out.path = part
        return out

    @staticmethod
    def own_key(key: str) -> str:
        """Without locks: what names this process and thread's partial files for download `key`:
        `<key>.<node>-<pid>-<thread>` (node: see `node`; no other dot, as prune reads the key back)."""
        return f"{key}.{node()}-{os.getpid()}-{threading.get_ident()}"

    def adopt_partial(self, key: str, mine: str) -> int:
        """Without locks: make an interrupted download of `key` that no live process writes this thread's
        own (named `mine`, see own_key), so that the resume of a locked cache continues it; the bytes
        adopted (0: none). No live process writes it when its name says this machine (node) and its pid is
        gone, or, for another machine's, when it is untouched for RESUME_AFTER seconds, measured against the
        mtime of a file created now on the same file system (a client's clock may differ from the server's).
        Only regular files of this user's, with one link, are adopted, the largest first; the claim is a
        rename (atomic, on NFS too), so of processes adopting one file only one succeeds, the others find it
        gone and go on. The partial's validator record (.json, .ranges) follows it. The bytes must still
        prove themselves: the server's validator (If-Range) and the sha256 of the whole file."""
        pdir = self.home / "partial"
        own = self.partial_path(mine)
        try:
            if os.lstat(own).st_size:
                return 0  # this very name's (a pid used again): the usual resume continues it
        except OSError:
            pass
        try:
            self._mkdir(pdir)
            fd = _create_exclusive(own)
            try:
                now = os.fstat(fd).st_mtime  # the file server's "now"
            finally:
                os.close(fd)
            names = os.listdir(pdir)
        except (OSError, RegistryError):
            return 0
        uid = os.getuid() if hasattr(os, "getuid") else None
        found = []
        for name in names:
            m = (
                _OWNER.fullmatch(name[len(key) + 1 : -5])
                if name.startswith(f"{key}.") and name.endswith(".part")
                else None
            )
            if m is None or name == own.name:
                continue
            try:
                st = os.lstat(pdir / name)
            except OSError:
                continue
            if not (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size and uid in (None, st.st_uid)):
                continue
            if _alive(int(m.group(2))) if m.group(1) == node() else now - st.st_mtime <= RESUME_AFTER:
                continue  # a live process's (this machine), or one touched lately (another machine)
            found.append((st.st_size, name))
        for size, name in sorted(found, reverse=True):
            try:
                touch(pdir / name)  # fresh before it is renamed: never taken for abandoned once ours
                os.replace(pdir / name, own)
            except OSError:  # another process adopted it first
                continue
            theirs = name[:-5]
            for suffix in (".json", ".ranges"):
                try:
                    os.replace(pdir / (theirs + suffix), pdir / (mine + suffix))
                except OSError:
                    with contextlib.suppress(OSError):
                        os.unlink(pdir / (mine + suffix))  # never another download's record beside these bytes
            import logging

            logging.getLogger("registry").info(
                "resuming the interrupted download %s (%d bytes) of another process", name, size
            )
            return size
        with contextlib.suppress(OSError):
            os.unlink(own)  # nothing adopted: the download creates its file when it begins
        return 0

    def sweep_partial_tmp(self, digest: str) -> None:
        """Remove the temporary files a killed writer of this blob's stamp or partial metadata left. Call with
        the blob's lock held."""
        for directory in (self.partial_path(digest).parent, self.blob_path(digest).parent):
            try:
                fd = self.open_dir(directory, create=False)
            except (OSError, RegistryError):
                continue
            try:
                _sweep_tmp(fd, digest, self.stale_age())
            finally:
                os.close(fd)

    def commit(self, source: Path, digest: str) -> Path:
        """Move a verified, fsynced file into the cache as blob `digest` (atomic rename), then stamp it."""
        target = self.blob_path(digest)
        self._mkdir(target.parent)
        try:
            fd = os.open(source, os.O_RDONLY | _NOFOLLOW)  # chmod by descriptor: never a file a symlink points to
            try:
                os.fchmod(fd, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            finally:
                os.close(fd)
            if self.locking():
                os.replace(source, target)  # in a sticky shared cache, another user's blob cannot be replaced
            elif not self._commit_first(source, target):
                return target  # another process committed the same verified bytes first: theirs stays
        except OSError as exc:
            raise self.write_error(target, exc, "write the blob") from None
        # No directory fsync: a rename lost in a crash leaves the partial, verified again by the next pull.
        self._stamp(digest)
        return target

    @staticmethod
    def _commit_first(source: Path, target: Path) -> bool:
        """Without locks: give the verified `source` the blob's name unless a blob is already there (link,
        which never replaces, then unlink; a plain rename where hard links are not supported). Whether it won."""
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            os.unlink(source)
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            if os.path.lexists(target):
                os.unlink(source)
                return False
            os.replace(source, target)
            return True
        os.unlink(source)
        return True

    def _remove_blob(self, digest: str) -> None:
        for p in (self.stamp_path(digest), self.blob_path(digest)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def blobs(self) -> Iterator[tuple[str, Path]]:
        root = self.home / "blobs" / "sha256"
        if not _is_dir(root):
            return
        for sub in sorted(root.iterdir()):
            if _is_dir(sub):
                for p in sorted(sub.iterdir()):
                    if SHA256_RE.match(p.name) and _is_file(p):
                        yield p.name, p

    def discard_partial(self, digest: str) -> None:
        for p in (self.partial_path(digest), self.partial_meta_path(digest), self.ranges_path(digest)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    # ----------------------------------------------------------------- model views

    def view_current(self, model_id: str, filename: str, digest: str, *, size: int, file_format: str, url: str) -> bool:
        """Whether the view already holds blob `digest` as `filename` with this record: nothing to write."""
        directory = self.model_dir(model_id)
        try:
            fd = self.open_dir(directory, create=False)
        except (OSError, RegistryError):
            return False
        try:
            record = {"sha256": digest, "size": size, "format": file_format, "url": mask_passwords(url)}
            data = _read_json(VIEW_FILE, dir_fd=fd)
            rec = dict(_view_files(data).get(filename) or {})
            seen = rec.pop("stamp", None)
            if seen != self._stamped(digest) and os.access(directory, os.W_OK):
                return False  # an older record (or blob): link records the stamp, for warm pulls to come
            return (
                isinstance(data, dict)
                and data.get("id") == model_id
                and rec == record
                and self._links_to(
                    fd, filename, self.blob_path(digest), os.path.relpath(self.blob_path(digest), directory)
                )
            )
        finally:
            os.close(fd)

    def warm(self, model_id: str, wanted) -> dict[str, Path] | None:
        """The blobs of a model whose view already holds every file of `wanted` ({filename: (sha256 or sha256
        prefix, file-format, url)}), each trusted by its stamp and linked: read from one view record, without
        a lock or a write. None as soon as one is missing or differs (then pull does the full work).

        `wanted` may also be a function of the card record the view keeps (`record_card`; None when it has
        none, or when the record file is not this user's, see _own) returning that dict, or None to stop.

        A blob whose lstat matches the stamp the view record copied when linking it is trusted on that one
        stat (the stamp's own file is read only when it does not match: an older record, a re-verified blob),
        and a symlinked view file with one readlink: the checks of `trusted` and `_links_to`, each call made once."""
        directory = self.model_dir(model_id)
        try:
            fd = self.open_dir(directory, create=False)
        except (OSError, RegistryError):
            return None
        try:
            data, st = _read_json_stat(VIEW_FILE, dir_fd=fd)
            if not isinstance(data, dict) or data.get("id") != model_id:
                return None
            if callable(wanted):
                card = data.get("card") if _own(st) else None
                wanted = wanted(card if isinstance(card, dict) else None)
                if wanted is None:
                    return None
            files = data.get("files")
            if not isinstance(files, dict):
                return None
            blobs = self.home / "blobs" / "sha256"
            into = os.path.relpath(blobs, directory)  # each view symlink holds into/<aa>/<digest>
            found = {}
            for filename, (digest, file_format, url) in wanted.items():
                rec = _view_file(filename, files.get(filename))
                if (
                    rec is None
                    or rec["format"] != file_format
                    or (rec["url"] != url and rec["url"] != mask_passwords(url))
                    or not (
                        rec["sha256"] == digest or (len(digest) < 64 and _own(st) and rec["sha256"].startswith(digest))
                    )  # which blob a prefix names is the record's word: only this user's (_own) is taken
                ):
                    return None
                full = rec["sha256"]
                blob = f"{blobs}{os.sep}{full[:2]}{os.sep}{full}"
                try:
                    st = os.lstat(blob)
                except OSError:
                    return None
                if st.st_size != rec["size"] or not (
                    (stat.S_ISREG(st.st_mode) and rec.get("stamp") == [st.st_size, st.st_mtime_ns, st.st_ino])
                    or self._stamped(full) == [st.st_size, st.st_mtime_ns, st.st_ino]
                ):
                    return None
                target = f"{into}{os.sep}{full[:2]}{os.sep}{full}"
                try:
                    linked = os.readlink(filename, dir_fd=fd) == target
                except OSError:  # not a symlink (a hardlink or a copy where symlinks are not possible), or missing
                    linked = self._links_to(fd, filename, Path(blob), target)
                if not linked:
                    return None
                found[filename] = blobs.joinpath(full[:2], full)  # cheaper than parsing the whole string again
            return found
        finally:
            os.close(fd)

    def link(
        self, model_id: str, filename: str, digest: str, *, size: int, file_format: str, url: str, card=None
    ) -> Path:
        """Put blob `digest` in model `model_id`'s view as `filename` and record it (and `card`, see
        record_card, when given). Call with the blob's lock held."""
        return self.link_all(model_id, [(filename, digest, size, file_format, url)], card=card)[0]

    def link_all(self, model_id: str, items: list[tuple[str, str, int, str, str]], card=None) -> list[Path]:
        """`link` for several files at once, (filename, digest, size, file-format, url) each: one model lock,
        one sweep and one view record written for all (per file, the record grew by a file each time: 50
        files wrote 50 records, 1,275 entries). Without the blobs' locks: a prune that removes one of them
        meanwhile is seen by the caller, which checks each blob under its lock once this returns (the record
        written first, a prune after that keeps them). A stamp read here may be outdated by a re-verification
        meanwhile: then warm reads the blob's stamp file instead, as for an older record."""
        directory = self.model_dir(model_id)
        records = {}
        for filename, digest, size, file_format, url in items:
            record = {"sha256": digest, "size": size, "format": file_format, "url": mask_passwords(url)}
            seen = self._stamped(digest)
            if seen is not None:
                record["stamp"] = seen
            records[filename] = record
        with self.model_lock(model_id):  # `rm` empties and removes the directory under this lock
            fd = self.open_dir(directory)
            try:
                _sweep_tmp(fd, age=self.stale_age())
                data, st = _read_json_stat(VIEW_FILE, dir_fd=fd)
                files = _view_files(data)
                kept = data.get("card") if data is not None and _own(st) else None  # never adopt another's
                kept = kept if isinstance(kept, dict) else None
                if (
                    any(files.get(name) != record for name, record in records.items())
                    or not isinstance(data, dict)
                    or data.get("id") != model_id
                    or (card is not None and kept != card)
                ):
                    files.update(records)
                    write_atomic(
                        directory / VIEW_FILE, _view_json(model_id, files, card or kept), dir_fd=fd, durable=False
                    )  # lost in a crash: the next pull links the files again
                for filename, digest, *_ in items:
                    blob = self.blob_path(digest)
                    target = os.path.relpath(blob, directory)
                    if not self._links_to(fd, filename, blob, target):
                        # Not named after the file: a name near the 255-byte limit must still leave room for it.
                        tmp = f".link.{os.getpid()}.{threading.get_ident()}.tmp"
                        try:
                            os.symlink(target, tmp, dir_fd=fd)
                        except (OSError, NotImplementedError):
                            try:
                                os.link(blob, tmp, dst_dir_fd=fd, follow_symlinks=False)
                            except OSError:
                                self._copy_into(blob, tmp, fd)
                        os.replace(tmp, filename, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError as exc:
                raise self.write_error(directory, exc, "write to the cache directory") from None
            finally:
                os.close(fd)
        return [directory / filename for filename, *_ in items]

    def record_card(self, model_id: str, card: dict) -> None:
        """Keep `card` (what a pull learnt from the card's bytes: catalog.Entry.record) in the model's view
        record, for the warm pulls to come (warm). Only in a view record of this user's (_own): another
        user's is left as it is, and so is a cache we cannot write; this costs a pull nothing but speed."""
        try:
            directory = self.model_dir(model_id)
            data, st = _read_json_stat(directory / VIEW_FILE)
            if (
                not (isinstance(data, dict) and _own(st))
                or data.get("card") == card
                or not os.access(directory, os.W_OK)
            ):
                return  # written with the files already, or not ours to write
            with self.model_lock(model_id):
                fd = self.open_dir(directory, create=False)
                try:
                    data, st = _read_json_stat(VIEW_FILE, dir_fd=fd)
                    if not (isinstance(data, dict) and data.get("id") == model_id and _own(st)):
                        return
                    if data.get("card") != card:
                        files = _view_files(data)
                        write_atomic(directory / VIEW_FILE, _view_json(model_id, files, card), dir_fd=fd, durable=False)
                finally:
                    os.close(fd)
        except (OSError, RegistryError):  # a lock or a directory we cannot take: the next pull parses the card again
            pass

    @staticmethod
    def _copy_into(blob: Path, name: str, dir_fd: int) -> None:
        out = _create_exclusive(name, 0o444, dir_fd=dir_fd)
        with open(blob, "rb") as src, open(out, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)

    @staticmethod
    def _links_to(dir_fd: int, filename: str, blob: Path, target: str) -> bool:
        try:
            st = os.stat(filename, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                return os.readlink(filename, dir_fd=dir_fd) == target
            b = os.lstat(blob)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (b.st_dev, b.st_ino)

    def views(self) -> list[tuple[str, Path, dict]]:
        """(model id, view directory, its well-formed files entries) for every model in the cache."""
        root = self.home / "models"
        found = []
        if not _is_dir(root):
            return found
        for dirpath, dirnames, filenames in os.walk(root):  # does not descend into symlinked directories
            dirnames.sort()
            if VIEW_FILE in filenames:
                files = _view_files(_read_json(Path(dirpath) / VIEW_FILE))
                model_id = Path(dirpath).relative_to(root).as_posix()
                found.append((model_id, Path(dirpath), files))
        return sorted(found)

    def view_files(self) -> list[ViewFile]:
        return [
            ViewFile(mid, fn, rec["sha256"], rec["size"], rec["format"], rec["url"])
            for mid, _, files in self.views()
            for fn, rec in sorted(files.items())
        ]

    def referenced(self) -> set[str]:
        return {vf.sha256 for vf in self.view_files()}

    def find_model(self, name: str) -> str:
        """The cached model a user means: a full id or the short name of exactly one cached model.
        Raises NotFoundError (unknown, with suggestions, or ambiguous) or UsageError (a bad name)."""
        name = check_name(name)
        ids = [mid for mid, _, _ in self.views()]
        if name in ids:
            return name
        names = ShortNames(ids)
        matches = names.matches(name)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise NotFoundError(
                f"model name {name!r} is ambiguous in the cache: use one of the full ids {', '.join(matches)}"
            )
        hint = names.hint(name, "`registry cache ls` lists the cached models")
        raise NotFoundError(f"no model {name!r} in the cache {self.home}{hint}")

    # ----------------------------------------------------------------- maintenance

    def ls(self) -> CacheListing:
        """The cached models and totals (a CacheListing)."""
        models = []
        for mid, directory, files in self.views():
            rows = []
            for fn, rec in sorted(files.items()):
                present = _is_file(self.blob_path(rec["sha256"])) and (directory / fn).exists()
                rows.append(
                    {
                        "filename": fn,
                        "sha256": rec["sha256"],
                        "size": rec["size"],
                        "format": rec["format"],
                        "path": str(directory / fn),
                        "present": present,
                    }
                )
            models.append({"id": mid, "files": rows, "size": sum(r["size"] for r in rows)})
        blobs = [(d, os.lstat(p).st_size) for d, p in self.blobs()]
        refs = self.referenced()
        pdir = self.home / "partial"
        partial = [p for p in pdir.glob("*.part") if _is_file(p)] if _is_dir(pdir) else []
        return CacheListing(
            str(self.home),
            models,
            {"count": len(blobs), "size": sum(s for _, s in blobs)},
            [{"sha256": d, "size": s} for d, s in blobs if d not in refs],
            {"count": len(partial), "size": sum(os.lstat(p).st_size for p in partial)},
        )

    def verify(self) -> VerifyReport:
        """Re-hash every blob (removing bad ones) and check that every view file points at a cached blob."""
        checked, total, bad = 0, 0, []
        for digest, path in list(self.blobs()):
            held: _Lock | None = self.lock(digest)
            try:
                held.acquire()
            except LockBusy:
                raise
            except CacheLockError:  # a cache this user cannot write (another's, read-only): check, repair nothing
                held = None
            try:
                if not _is_file(path):
                    continue
                actual, size = hash_file(path)
                checked += 1
                total += size
                if actual == digest:
                    if held is not None:
                        self._stamp(digest)
                else:
                    bad.append({"sha256": digest, "actual": actual, "size": size, "removed": held is not None})
                    if held is not None:
                        self._remove_blob(digest)
            finally:
                if held is not None:
                    held.release()
        broken = [
            {"model": vf.model, "filename": vf.filename, "sha256": vf.sha256}
            for vf in self.view_files()
            if not _is_file(self.blob_path(vf.sha256))
        ]
        return VerifyReport(checked, total, bad, broken)

    def _try_lock(self, digest: str) -> _Lock | None:
        """The blob's lock if no other process holds it right now, else None."""
        lock = self.lock(digest, timeout=0)
        try:
            lock.acquire()
        except LockBusy:  # a pull is using this blob right now
            return None
        return lock

    def _remove_unreferenced(self, digests, dry_run: bool = False) -> tuple[list[str], int]:
        """Remove blobs no view references, each under its lock, re-checking the views under the lock
        (with `dry_run`, only say which and how many bytes)."""
        removed, freed = [], 0
        for digest in digests:
            lock = self._try_lock(digest)
            if lock is None:
                continue
            try:
                if digest in self.referenced():
                    continue
                path = self.blob_path(digest)
                size = os.lstat(path).st_size if os.path.lexists(path) else 0
                if os.path.lexists(path) or os.path.lexists(self.stamp_path(digest)):
                    if not dry_run:
                        self._remove_blob(digest)
                    removed.append(digest)
                    freed += size
            finally:
                lock.release()
        return removed, freed

    def prune(self, dry_run: bool = False) -> PruneReport:
        """Remove blobs no model view uses, partial downloads no process is writing, and temporary files
        killed processes left; returns a PruneReport. With `dry_run`, nothing is removed: the report says
        what would be."""
        refs = self.referenced()
        removed, freed = self._remove_unreferenced([d for d, _ in self.blobs() if d not in refs], dry_run)
        partials = []
        pdir = self.home / "partial"
        if _is_dir(pdir):
            names = sorted(p.name for p in pdir.iterdir())
            for name in names:
                stem = _TMP.fullmatch(name).group(1) if _TMP.fullmatch(name) else name
                digest = stem.split(".", 1)[0]
                if not SHA256_RE.match(digest):
                    continue
                lock = self._try_lock(digest)
                if lock is None:  # a download in progress holds it
                    continue
                try:
                    p = pdir / name
                    if self.stale_age() and not _older(p, self.stale_age()):
                        continue  # without locks, a recent partial may be another process's download
                    if os.path.lexists(p):
                        freed += os.lstat(p).st_size
                        if not dry_run:
                            p.unlink()
                        partials.append(name)
                finally:
                    lock.release()
        blobs = self.home / "blobs" / "sha256"
        for sub in sorted(blobs.iterdir()) if _is_dir(blobs) and not dry_run else ():
            for p in sorted(sub.iterdir()) if _is_dir(sub) else ():
                m = _TMP.fullmatch(p.name)
                if p.name.endswith(".stamp") and not os.path.lexists(p.with_name(p.name[:-6])):
                    p.unlink(missing_ok=True)  # a stamp left by a blob removed by hand
                elif m and SHA256_RE.match(m.group(1).split(".", 1)[0]):
                    lock = self._try_lock(m.group(1).split(".", 1)[0])
                    if lock is not None and self.stale_age() and not _older(p, self.stale_age()):
                        lock.release()  # without locks, a recent one may be another process's stamp in progress
                    elif lock is not None:  # a stamp being written by a process killed halfway
                        try:
                            p.unlink(missing_ok=True)
                        finally:
                            lock.release()
        return PruneReport(removed, partials, freed, dry_run)

    def rm(self, name: str) -> RemoveReport:
        """Remove a model's view, then the blobs no other view uses. Only plain names read from the view
        record are removed, relative to the view directory (opened without following symlinks)."""
        model_id = self.find_model(name)
        directory = self.model_dir(model_id)
        with self.model_lock(model_id):
            try:
                fd = self.open_dir(directory, create=False)
            except FileNotFoundError:
                fd = None
            digests = []
            if fd is not None:
                try:
                    files = _view_files(_read_json(VIEW_FILE, dir_fd=fd))
                    digests = sorted({rec["sha256"] for rec in files.values()})
                    for fn in [*files, VIEW_FILE]:
                        try:
                            os.unlink(fn, dir_fd=fd)
                        except FileNotFoundError:
                            pass
                        except IsADirectoryError:  # not a view file, whatever the record says: leave it
                            pass
                    _sweep_tmp(fd, age=self.stale_age())
                finally:
                    os.close(fd)
            root = self.home / "models"
            d = directory
            while d != root and _is_dir(d) and not any(d.iterdir()):
                d.rmdir()  # rmdir removes only an empty directory, and never follows a symlink
                d = d.parent
        removed, freed = self._remove_unreferenced(digests)
        return RemoveReport(model_id, removed, freed)
