"""The transfer engine and `pull`: every asset of a card, verified by sha256, into the cache.

    pull("ssd_v1_coco2017") -> [Pulled(entry, asset, path, blob, downloaded), ...]

`Pulled.path` is the file in the model's view of the cache, `HOME/models/<id>/<filename>` (a link to the
blob); read the asset there. `Pulled.blob` is the content-addressed blob itself.

How one asset gets into the cache (see cache.py for the layout):
- warm path: a blob whose stat matches its verification stamp is used as is: no network, no hashing, and
  `requests` is not even imported;
- otherwise, under the blob's file lock (N processes pulling the same asset download it once), the link
  (after mirror rewriting) is streamed into `partial/<digest>.part` in 1 MiB reads, each buffer hashed as it
  arrives (in a helper thread, so hashing overlaps reading and writing; hashlib releases the GIL) and
  written; the file is fsynced, its sha256 compared with the card's, and only then renamed into place;
- an interrupted download keeps its partial file and the response's validator (ETag, else Last-Modified);
  the next attempt, in this process or a later one, asks for the rest with `Range` + `If-Range` and only
  hashes the bytes already on disk; a server that answers 200 instead of 206 restarts the file cleanly;
- a host name that does not resolve fails at once (http.unresolved_host), naming the host;
- connection errors, timeouts, HTTP 5xx and 429 are retried with exponential backoff and jitter (honouring
  Retry-After up to MAX_RETRY_AFTER, 300 s; a server asking for a longer wait fails the pull at once, saying
  so, rather than leaving it silent for minutes); other 4xx fail at once;
- `file://` links are copied through the same streaming and verification code; they must name regular files
  (a FIFO or a device would block or never end).
- an asset of at least REGISTRY_RANGE_THRESHOLD bytes whose first response offers byte ranges and a strong
  validator, and whose first 2 MiB come slowly (_Probe), continues as REGISTRY_CONNECTIONS parallel ranges
  (ranges.py; Engine._ranged): same limits, same verification and commit, resumable per chunk; one stream
  again when the ranges are not honoured;
- a warm pull (every asset cached, trusted by its stamp and in the model's view) reads the view record
  once and returns without a lock, a thread or the engine (Cache.warm); when that record says what the last
  pull learnt from the very same card bytes (Entry.record: sha256 of the bytes, where they were read, the
  rules' digest), the card is not parsed or checked either: its assets and cosmetic problems come from the
  record (the same warnings, once per pull). Any mismatch, or a record that is malformed or not this user's,
  takes the full path, which writes the record afresh;
- the files of one pull are put in the view with one record write (Engine.place_all, Cache.link_all).

sha256 prefixes: an asset whose card gives 8 to 63 hex digits (catalog.Asset.is_prefix) is streamed the
same way; its partial file and lock are named by `Cache.download_key` (the prefix cannot name a blob), the
file is accepted when its sha256 starts with the prefix and committed as the blob of the full digest computed,
and later pulls find it through the model's view, which records that digest, or as the one cached blob
whose name starts with the prefix that another card pulled from the same link. A PrefixWarning says once per
pull that a prefix catches corruption but not a hostile server; `Settings.require_full_sha256`
(REGISTRY_REQUIRE_FULL_SHA256, `--require-full-sha256`) refuses such assets instead.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import hashlib
import json
import logging
import os
import queue
import random
import stat
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from . import ranges
from . import settings as _settings
from .cache import (
    HEARTBEAT,
    VIEW_FILE,
    Cache,
    CacheLockError,
    _create_exclusive,
    _read_json,
    hash_file,
    touch,
    write_atomic,
)
from .catalog import Asset, Entry, Registry, resolve
from .errors import (
    CardError,
    IntegrityError,
    NotFoundError,
    OfflineError,
    PrefixWarning,
    RegistryError,
    TransferError,
)
from .http import SpeedGuard as _SpeedGuard
from .http import http_session, network_reason, unresolved_host
from .http import status_hint as _status_hint
from .text import mask_passwords

_log = logging.getLogger("registry")  # the CLI shows these on stderr; the library never prints
CHUNK = 1 << 20  # read size: large reads keep per-call overhead negligible next to the copy itself
DEPTH = 4  # buffers in flight between the reading thread and the hashing thread
MAX_DELAY = 30.0  # cap of the exponential backoff
MAX_RETRY_AFTER = 300.0  # longest Retry-After we wait for; longer ones fail at once (module doc)
WRITEBACK = 32 << 20  # start writing received bytes to disk every 32 MiB, so the final fsync is short
PROBE = 2 << 20  # parallel ranges: bytes of a large asset's first stream that measure the server (_Probe)
FAST = 150e6  # ... bytes/s above which one stream is used: more connections would only compete for the CPU
BUSY = 0.5  # ... or the share of a CPU its thread used (the network was not what it waited for)


@dataclass(frozen=True)
class Pulled:
    entry: Entry
    asset: Asset
    path: Path  # the asset in the model view: HOME/models/<id>/<filename>
    blob: Path  # HOME/blobs/sha256/<aa>/<digest>
    downloaded: bool  # False when it came from the cache

    @property
    def sha256(self) -> str:
        """The file's whole sha256 (the blob's name), also when the card gives only a prefix."""
        return self.blob.name


def apply_mirrors(url: str, mirrors: Iterable[tuple[str, str]]) -> str:
    """Rewrite the longest matching FROM prefix to its TO (later pairs win ties: --mirror over the env var)."""
    best = None
    for src, dst in mirrors:
        if url.startswith(src) and (best is None or len(src) >= len(best[0])):
            best = (src, dst)
    return best[1] + url[len(best[0]) :] if best else url


def pull(
    name_or_entry: str | os.PathLike | Entry,
    *,
    registry: str | os.PathLike | Registry | None = None,
    formats: Iterable[str] | None = None,
    assets: Iterable[Asset] | None = None,
    force: bool = False,
    settings: _settings.Settings | None = None,
    progress: bool | None = None,
    mindspore_version: str | None = None,
) -> list[Pulled]:
    """Download (or find in the cache) the assets of a card, verified, and return where they are.

    formats: only assets of these file-formats; assets: only these assets of the card (from
    `entry.assets`, e.g. the one a loader chose); force: download again even if cached;
    progress: show a progress bar (None: settings.progress, else only when stderr is a terminal);
    mindspore_version: picks among the cards of a short name (catalog.resolve).
    """
    settings = settings or _settings.current()
    entry = (
        name_or_entry
        if isinstance(name_or_entry, Entry)
        else resolve(name_or_entry, registry, mindspore_version=mindspore_version, settings=settings)
    )
    cache = Cache.from_settings(settings)
    wanted = None if assets is None else {a.index for a in assets}
    blobs, adopted, names = None, False, None
    if not force and entry.raw is not None:
        # The view may record what an earlier pull learnt from these very card bytes (Entry.record): then
        # the card is neither parsed nor checked, and its files are checked as below, in the same read.
        def from_record(card: dict | None):
            nonlocal adopted, names
            adopted = entry.adopt(card)
            chosen = _chosen(entry, formats, wanted, quiet=True) if adopted else []
            if not chosen:
                return None  # the full path says what is wrong
            names = _view_names(entry.assets)  # the adopted assets: what the full path below uses too
            return _warm_files(names, chosen)

        blobs = cache.warm(entry.id, from_record)
    entry.require_sound()
    assets = _chosen(entry, formats, wanted)
    _check_prefixes(entry, assets, settings)
    if names is None:  # from all assets, so a file keeps its name whatever --format selects
        names = _view_names(entry.assets)
    if not force and blobs is None and not adopted:  # all cached and in the view: no lock, no thread, no engine
        blobs = cache.warm(entry.id, _warm_files(names, assets))
        if blobs is not None and (record := entry.record()) is not None:
            cache.record_card(entry.id, record)  # once after a change of the card: the next pulls skip it
    if blobs is not None:
        where = cache.model_dir(entry.id)
        return [Pulled(entry, a, where / names[a.index], blobs[names[a.index]], False) for a in assets]
    engine = Engine(settings, progress=progress, label=entry.name)
    done: dict[int, tuple[Path, bool]] = {}  # asset index -> (blob, downloaded), in the view
    try:
        todo, again = assets, force
        while todo:
            fetched: list[tuple[Asset, Path, bool]] = []

            def one(asset: Asset, again=again, fetched=fetched) -> None:
                blob, downloaded = engine.fetch(asset, entry, force=again)
                view = dict(size=os.lstat(blob).st_size, file_format=asset.file_format, url=asset.url)
                if not downloaded and engine.cache.view_current(entry.id, names[asset.index], blob.name, **view):
                    done[asset.index] = (blob, False)  # nothing to write: a read-only cache serves it as it is
                else:
                    fetched.append((asset, blob, downloaded))

            try:
                _run_all(one, todo, settings.jobs)
            except BaseException:  # what was fetched goes into the view all the same; the first error is raised
                engine.place_all(entry, [(a, names[a.index], b) for a, b, _ in fetched], quiet=True)
                raise
            gone = engine.place_all(entry, [(a, names[a.index], b) for a, b, _ in fetched])
            done.update((a.index, (b, d)) for a, b, d in fetched if a not in gone)
            todo, again = gone, False  # a prune removed these blobs since fetch returned: fetch them again
    finally:
        engine.close()
    if (record := entry.record()) is not None:
        cache.record_card(entry.id, record)  # usually written with the files already (Engine.place_all)
    where = cache.model_dir(entry.id)
    return [Pulled(entry, a, where / names[a.index], *done[a.index]) for a in assets]


def _check_prefixes(entry: Entry, assets: list[Asset], settings: _settings.Settings) -> None:
    """Refuse sha256 prefixes when full digests are required; else say once what a prefix is worth."""
    prefixed = [a for a in assets if a.is_prefix]
    if not prefixed:
        return
    first = prefixed[0]
    if settings.require_full_sha256:
        raise CardError(
            f"card {entry.id} gives only the {len(first.sha256)}-hex-digit sha256 prefix {first.sha256} for "
            f"asset {first.index + 1} ({first.filename}) and full digests are required "
            "(REGISTRY_REQUIRE_FULL_SHA256 or --require-full-sha256): ask the publisher for the whole sha256"
        )
    shown = ", ".join(f"{a.filename} ({a.sha256})" for a in prefixed)
    warnings.warn(
        f"card {entry.id} gives only sha256 prefixes for {shown}: the download is checked against the "
        "prefix, which catches corruption but not a hostile server or mirror "
        "(REGISTRY_REQUIRE_FULL_SHA256=1 refuses such assets)",
        PrefixWarning,
        stacklevel=3,
    )


def _chosen(entry: Entry, formats: Iterable[str] | None, wanted: set[int] | None, quiet: bool = False) -> list[Asset]:
    """The assets a pull takes: those of `formats` (all without), or the card's assets of index `wanted`.
    Raises CardError or NotFoundError as a pull does, or with `quiet` returns [] instead."""
    if wanted is not None:
        return [a for a in entry.assets if a.index in wanted]
    try:
        assets = entry.select_assets(formats)
    except NotFoundError:
        if quiet:
            return []
        raise
    if not assets and not quiet:
        raise CardError(f"card {entry.id} lists no assets (no `asset:` list): there is nothing to pull")
    return assets


def _warm_files(names: dict[int, str], assets: list[Asset]) -> dict[str, tuple[str, str, str]]:
    """What Cache.warm checks for these assets, named in the view by `names` (_view_names of the card's
    assets): {view file name: (sha256, file-format, url)}."""
    return {names[a.index]: (a.sha256, a.file_format, a.url) for a in assets}


def _view_names(assets: list[Asset]) -> dict[int, str]:
    """Each asset's file name in the view; a name two different blobs would share gets a digest prefix."""
    names, used = {}, {VIEW_FILE: None}  # the view's own record is not a name an asset may take
    for a in assets:
        name = a.filename
        if used.get(name, a.sha256) != a.sha256:
            name = f"{a.sha256[:12]}-{name}"
        used.setdefault(name, a.sha256)
        names[a.index] = name
    return names


def _run_all(fn: Callable[[Asset], Pulled], assets: list[Asset], jobs: int) -> list[Pulled]:
    if jobs <= 1 or len(assets) <= 1:
        return [fn(a) for a in assets]
    with ThreadPoolExecutor(max_workers=min(jobs, len(assets)), thread_name_prefix="pull") as pool:
        futures = [pool.submit(fn, a) for a in assets]
        errors = [f.exception() for f in futures]
    failed = [e for e in errors if e is not None]
    if failed:
        first = failed[0]
        if len(failed) > 1 and isinstance(first, RegistryError):
            first.message += f" ({len(failed) - 1} more asset(s) failed too)"
        raise first
    return [f.result() for f in futures]


# --------------------------------------------------------------------------- hashing beside the copy


class _Hasher:
    """sha256 of the bytes fed, computed in a helper thread (threaded=True) or inline.

    Buffers come from `buffer()`, are filled by the reader and handed over with `feed()`; the helper hashes
    them while the reader writes them to disk and reads the next one, then returns them to the pool.
    """

    def __init__(self, threaded: bool = True, size: int = CHUNK, depth: int = DEPTH):
        self._h = hashlib.sha256()
        self.size = 0  # bytes fed so far
        self.threaded = threaded
        self._error: BaseException | None = None
        self._alloc = size
        if threaded:
            # Buffers are made when first needed, and the thread started at the first feed: a 64 KiB asset
            # costs one buffer, not DEPTH MiB to zero (50 small assets spent most of their time there).
            self._free: queue.Queue = queue.Queue()
            self._spare = depth
            self._work: queue.Queue = queue.Queue()
            self._thread: threading.Thread | None = None
        else:
            self._buf: bytearray | None = None

    def _run(self) -> None:
        while True:
            item = self._work.get()
            try:
                if item is None:
                    return
                if isinstance(item[0], Path):
                    hash_file(item[0], item[1], self._h)
                else:
                    buf, n = item
                    try:
                        self._h.update(memoryview(buf)[:n])
                    finally:
                        self._free.put(buf)
            except BaseException as exc:  # reported to the reader at the next sync
                self._error = exc
            finally:
                self._work.task_done()

    def buffer(self) -> bytearray:
        if not self.threaded:
            if self._buf is None:
                self._buf = bytearray(self._alloc)
            return self._buf
        if self._spare and self._free.empty():
            self._spare -= 1
            return bytearray(self._alloc)
        return self._free.get()

    def _started(self) -> queue.Queue:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
            self._thread.start()
        return self._work

    def unused(self, buf: bytearray) -> None:
        if self.threaded:
            self._free.put(buf)

    def feed(self, buf: bytearray, n: int, last: bool = False) -> None:
        """Hash n bytes of buf; `last`: no more will come, so a file read in one buffer is hashed here
        without starting the thread (there would be nothing to overlap it with)."""
        self.size += n
        if self.threaded and not (last and self._thread is None):
            self._started().put((buf, n))
        else:
            self._h.update(memoryview(buf)[:n])
            self.unused(buf)

    def prefix(self, path: Path, n: int) -> None:
        """Hash the first n bytes of a file (a partial download resumed from disk)."""
        self.size += n
        if self.threaded:
            self._started().put((path, n))
        else:
            hash_file(path, n, self._h)

    def sync(self) -> None:
        if self.threaded:
            self._work.join()
            if self._error is not None:
                raise self._error

    def reset(self) -> None:
        self.sync()
        self._h = hashlib.sha256()
        self.size = 0

    def hexdigest(self) -> str:
        self.sync()
        return self._h.hexdigest()

    def adopt(self, digest, size: int) -> None:
        """Take the sha256 of `size` bytes computed elsewhere (ranges.RangedFile) as this hasher's."""
        self.reset()
        self._h, self.size = digest, size

    def close(self) -> None:
        if self.threaded and self._thread is not None and self._thread.is_alive():
            self._work.put(None)
            self._thread.join()


# --------------------------------------------------------------------------- the engine


class _Retry(Exception):
    """A failure worth another attempt; `cause` says what happened, `wait` is the server's Retry-After."""

    def __init__(self, cause: str, wait: float | None = None):
        super().__init__(cause)
        self.cause = cause
        self.wait = wait
        self.counted = False  # set when the response's size had reached the progress bar


class _UseRanges(Exception):
    """A first response says the asset is large and the server serves ranges: fetch it in parallel."""

    def __init__(self, total: int, validator: str, probed: bool = False):
        super().__init__(total, validator)
        self.total, self.validator = total, validator
        self.probed = probed  # the partial holds the bytes the probe received (from offset 0)


class _RangesRefused(Exception):
    """The server does not serve consistent byte ranges of one file: download it as one stream instead."""


class _DiskError(RegistryError):
    exit_code = 2


def _hopeless(exc: RegistryError) -> RegistryError:
    """Mark an error after which the partial file can never become the asset: it is deleted."""
    exc.discard = True
    return exc


def part_name(out) -> Path | str:
    return getattr(out, "path", None) or out.name


class _Probe(_SpeedGuard):
    """The speed guard of a large asset's first stream, which also measures it: after PROBE bytes, unless the
    connection brings more than FAST bytes/s or its thread was busy BUSY of the time (then it was not waiting
    for the network, and more connections would only compete for the CPU), it raises _UseRanges, once the
    bytes received are written, and the rest comes as parallel ranges."""

    def __init__(self, settings: _settings.Settings, total: int, validator: str):
        super().__init__(settings)
        self.total, self.validator = total, validator
        self.seen, self.began, self.decided = 0, None, False

    def slow(self, n: int) -> str | None:
        if not self.decided:
            if self.began is None:
                self.began = (time.monotonic(), time.thread_time())
            self.seen += n
            if self.seen >= PROBE:
                self.decided = True
                wall = max(1e-6, time.monotonic() - self.began[0])
                rate, busy = self.seen / wall, (time.thread_time() - self.began[1]) / wall
                if rate < FAST and busy < BUSY:
                    raise _UseRanges(self.total, self.validator, probed=True)
        return super().slow(n)


class _Progress:
    def __init__(self, enabled: bool, label: str):
        self._bar = None
        self._lock = threading.Lock()
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=label, dynamic_ncols=True, leave=True
            )

    def add_total(self, n: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.total += n
                self._bar.refresh()

    def update(self, n: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _Heartbeat:
    """Without locks: touches a download's partial files every HEARTBEAT seconds while it runs, whatever it
    is doing (waiting to retry, hashing a resumed prefix), so that no other process takes them for
    abandoned (Cache.adopt_partial, which waits RESUME_AFTER) while this one lives."""

    def __init__(self, paths: list[Path]):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(paths,), name="heartbeat", daemon=True)

    def _beat(self, paths: list[Path]) -> None:
        while not self._stop.wait(HEARTBEAT):
            for p in paths:
                with contextlib.suppress(OSError):  # not yet created, or already committed
                    touch(p)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Engine:
    """Downloads blobs into a cache: one per pull() call, shared by its worker threads."""

    def __init__(
        self,
        settings: _settings.Settings,
        *,
        progress: bool | None = None,
        label: str = "pull",
        threaded_hash: bool = True,
    ):
        self.settings = settings
        self.cache = Cache.from_settings(settings, on_wait=_log.warning)
        self.threaded_hash = threaded_hash
        show = progress if progress is not None else settings.progress
        if show is None:
            show = sys.stderr.isatty()
        self.progress = _Progress(bool(show), label)
        self._local = threading.local()
        self._sessions: list = []

    def close(self) -> None:
        self.progress.close()
        for s in self._sessions:
            s.close()

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:  # one per worker thread: requests sessions are not thread-safe
            session = self._local.session = http_session(self.settings)
            self._sessions.append(session)
        return session

    # ------------------------------------------------------------------ one blob

    def fetch(self, asset: Asset, entry: Entry | None = None, *, force: bool = False) -> tuple[Path, bool]:
        """The blob of `asset`, from the cache or downloaded and verified: (path, downloaded).

        The blob's name is the file's whole sha256; for a prefix asset the cached blob is found through
        the view of `entry`'s model, else as the one cached blob whose name starts with the prefix that
        another card pulled from the same link (by its whole digest, say: Cache.prefix_digest)."""
        digest = asset.sha256

        def known() -> str | None:  # the whole digest, if known
            if not asset.is_prefix:
                return digest
            seen = self.cache.view_digest(entry.id, digest, asset.url) if entry is not None else None
            return seen or self.cache.prefix_digest(digest, asset.url, asset.size)

        full = None if force else known()
        if full:
            blob = self.cache.trusted(full)
            if blob is not None:
                return blob, False
        what = f"asset {asset.index + 1} of {entry.id}" if entry is not None else "asset"
        if (
            entry is not None
            and urlsplit(entry.source).scheme in ("http", "https")
            and urlsplit(asset.url).scheme.lower() == "file"
        ):
            raise TransferError(
                f"{what} links the local file {asset.url}, but the card comes from the remote registry "
                f"{entry.source}: a remote card may not copy files of this machine; refusing it"
            )
        key = self.cache.download_key(digest, asset.url)  # names the partial and the download's lock
        lock = self.cache.lock(key)
        try:
            lock.acquire()
        except CacheLockError:
            blob = (
                self.cache.blob_path(full) if full else None
            )  # a cache we cannot write: an intact blob is still usable
            if (
                not force
                and blob is not None
                and os.path.isfile(blob)
                and not os.path.islink(blob)
                and hash_file(blob)[0] == full
            ):
                return blob, False
            raise
        shared = key
        if not self.cache.locking():  # each process and thread its own partial (Cache.locking)
            key = self.cache.own_key(key)
        try:
            self.cache.sweep_partial_tmp(shared)  # left by a process killed while writing a stamp or metadata
            full = None if force else known()
            if full:
                # another process may have just downloaded it; lookup re-hashes under the blob's own lock
                with self.cache.lock(full) if full != key else _held():
                    blob = self.cache.lookup(full)
                if blob is not None:
                    return blob, False
            if self.settings.offline:
                raise OfflineError(
                    f"offline mode: {what} ({asset.filename}, sha256 {digest[:12]}) is not in the cache "
                    f"{self.cache.home}; pull it once with the network on (unset REGISTRY_OFFLINE)"
                )
            url = apply_mirrors(asset.url, self.settings.mirrors)
            if key == shared:
                blob = self._download(url, digest, what, key, asset.size)
            else:
                # Without locks: resume what a dead process left (a file:// copy never resumes), and show
                # meanwhile that this one lives.
                adopted = urlsplit(url).scheme.lower() in ("http", "https") and self.cache.adopt_partial(shared, key)
                records = [self.cache.partial_meta_path(key), self.cache.ranges_path(key)]
                with _Heartbeat([self.cache.partial_path(key), *records]):
                    blob = self._download(url, digest, what, key, asset.size, adopted=bool(adopted))
            if asset.is_prefix and entry is not None:
                # Recorded in the view before the download's lock is released, so that a process waiting
                # on it finds the blob (known()) instead of downloading it again.
                self.place(entry, asset, _view_names(entry.assets)[asset.index], blob)
            return blob, True
        finally:
            lock.release()

    def place_all(self, entry: Entry, items: list[tuple[Asset, str, Path]], quiet: bool = False) -> list[Asset]:
        """Put each (asset, filename, blob) in the view of `entry`'s model, with one record written for all
        (Cache.link_all); returns the assets whose blob a prune removed meanwhile (to be fetched again).
        `quiet`: an error is on its way, so one of this placing is not raised instead of it."""
        if not items:
            return []
        try:
            present, gone = [], []
            for asset, filename, blob in items:
                try:
                    present.append((asset, filename, blob, os.lstat(blob).st_size))
                except FileNotFoundError:
                    gone.append(asset)
            self.cache.link_all(
                entry.id,
                [(name, blob.name, size, asset.file_format, asset.url) for asset, name, blob, size in present],
                card=entry.record(),
            )
            for asset, _, blob, _ in present:
                with self.cache.lock(
                    blob.name
                ):  # prune removes unreferenced blobs under it: this one is now referenced
                    if not os.path.lexists(blob):
                        gone.append(asset)
            return gone
        except (OSError, RegistryError):
            if quiet:
                return []
            raise

    def place(self, entry: Entry, asset: Asset, filename: str, blob: Path) -> Path | None:
        """Put `blob` in the view of `entry`'s model as `filename`; None when it is gone (a prune removed it)."""
        with self.cache.lock(blob.name):  # prune and rm remove blobs under this lock
            if not blob.exists():
                return None
            return self.cache.link(
                entry.id,
                filename,
                blob.name,
                size=blob.stat().st_size,
                file_format=asset.file_format,
                url=asset.url,
                card=entry.record(),
            )

    def _download(
        self,
        url: str,
        digest: str,
        what: str,
        key: str | None = None,
        declared: int | None = None,
        adopted: bool = False,
    ) -> Path:
        """Download `url` into the cache as the blob of its sha256, which must be `digest` or, when `digest` is
        a prefix, start with it. `key` names the partial file and lock (default: the digest itself);
        `declared`: the card's asset-size, if any; `adopted`: the partial file is another process's
        (Cache.adopt_partial), so its bytes are hashed again from disk before the commit."""
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https", "file"):
            raise TransferError(f"{what} has link {url}, which is not an http(s) or file URL: fix its asset-link")
        key = key or digest
        part = self.cache.partial_path(key)
        self.cache._mkdir(part.parent)
        hasher = _Hasher(self.threaded_hash)
        try:
            return self._download_into(url, scheme, part, digest, what, hasher, key, declared, adopted)
        except RegistryError as exc:
            if getattr(exc, "discard", False):  # a body that can never be valid, or a disk that could not hold it
                self.cache.discard_partial(key)
            raise
        finally:
            hasher.close()

    def _download_into(
        self,
        url: str,
        scheme: str,
        part: Path,
        digest: str,
        what: str,
        hasher: _Hasher,
        key: str,
        declared: int | None,
        adopted: bool = False,
    ) -> Path:
        for final in (False, True):
            self._local.encoding = None
            if scheme == "file":
                resumed = self._copy_file(url, part, hasher, what, declared)
            else:
                self._local.one_stream = False
                try:
                    resumed = self._http(url, part, key, hasher, what, declared)
                except _UseRanges as use:  # a large asset on a server serving ranges: in parallel
                    resumed = self._ranged(url, part, key, hasher, what, declared, use.total, use.validator, use.probed)
                    if resumed is None:  # the server did not honour them after all
                        self._local.one_stream = True
                        resumed = self._http(url, part, key, hasher, what, declared)
            actual = hasher.hexdigest()
            sound = actual == digest or (len(digest) < 64 and actual.startswith(digest))
            check, adopted = sound and adopted, False  # the adopted bytes are those of the first round only
            if check and self._own_copy(part) != actual:
                # Bytes on disk other than those hashed as they came: a process that only looked dead still
                # writes the adopted file. Not ours to commit: one clean download of our own.
                _log.warning("%s: the resumed partial file %s changed while downloading; starting over", url, part)
                self.cache.discard_partial(key)
                hasher.reset()
                continue
            if sound:
                try:
                    with self.cache.lock(actual) if actual != key else _held():  # prune removes blobs under it
                        blob = self.cache.commit(part, actual)
                except RegistryError as exc:
                    raise _hopeless(exc) from None
                self.cache.partial_meta_path(key).unlink(missing_ok=True)
                self.cache.ranges_path(key).unlink(missing_ok=True)
                return blob
            size = hasher.size
            self.cache.discard_partial(key)
            hasher.reset()
            if not resumed or final:
                encoding = self._local.encoding
                why = (
                    f"the server sent it with Content-Encoding: {encoding} although asked for identity, and bodies "
                    "are kept as sent, never decoded"
                    if encoding
                    else "the file differs from the one the card names"
                )
                expected = digest if len(digest) == 64 else f"a sha256 starting with {digest}"
                raise IntegrityError(
                    f"sha256 mismatch for {url} ({what}): expected {expected}, got {actual}; "
                    f"the {size} bytes were discarded ({why})"
                )
            # Bytes resumed from an earlier response may not belong with the rest: one clean download.
        raise AssertionError("unreachable")

    def _own_copy(self, part: Path) -> str:
        """Replace the adopted file `part` with a fresh, fsynced copy of its bytes; their sha256. A writer on
        another machine that only looked dead keeps its descriptor of the adopted inode: it writes into the
        discarded one, never into the blob committed."""
        fresh = part.with_name(f".{part.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(_create_exclusive(fresh), "wb") as out:
                digest = hash_file(part, copy_to=out)[0]
                out.flush()
                os.fsync(out.fileno())
            os.replace(fresh, part)
        except OSError as exc:  # a full disk, say: one sentence, not an internal error
            raise self.cache.write_error(fresh, exc, "copy the resumed partial file") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(fresh)
        return digest

    # ------------------------------------------------------------------ sizes and space

    def _limit(self, url: str, what: str, declared: int | None, server: int | None) -> int:
        """The most bytes the body may have: the card's asset-size, else the server's length, else the
        REGISTRY_MAX_ASSET_SIZE cap. A body that cannot match the card is refused before a byte is written."""
        if declared is not None:
            if server is not None and server != declared:
                raise _hopeless(
                    IntegrityError(
                        f"{url} ({what}) is {server:,} bytes by the server's account, but the card's asset-size is "
                        f"{declared:,}: refusing it (nothing kept); the file differs from the one the card names"
                    )
                )
            return declared
        cap = self.settings.max_asset_size
        if server is not None and server > cap:
            raise _hopeless(
                TransferError(
                    f"{url} ({what}) is {server:,} bytes, over REGISTRY_MAX_ASSET_SIZE ({cap:,}); nothing was kept: "
                    "raise the setting if the asset is really that large (the card's asset-size avoids the cap)"
                )
            )
        return server if server is not None else cap

    def _too_big(self, url: str, what: str, declared: int | None, limit: int):
        if declared is not None:
            return _hopeless(
                IntegrityError(
                    f"{url} ({what}) sent more than the card's asset-size of {declared:,} bytes: "
                    "refused at once and discarded (the file differs from the one the card names)"
                )
            )
        if limit == self.settings.max_asset_size:
            return _hopeless(
                TransferError(
                    f"{url} ({what}) sent more than REGISTRY_MAX_ASSET_SIZE ({limit:,} bytes) "
                    "without declaring its size; discarded: give the card an asset-size, or "
                    "raise the setting if the asset is really that large"
                )
            )
        return _hopeless(TransferError(f"{url} ({what}) sent more than the {limit:,} bytes it declared; discarded"))

    def _check_space(self, part: Path, need: int) -> None:
        """Refuse to start writing `need` bytes that the disk cannot hold."""
        try:
            st = os.statvfs(part.parent)
        except (OSError, AttributeError):  # no statvfs (Windows): the write itself will say
            return
        free = st.f_bavail * st.f_frsize
        if need > free:
            raise _hopeless(
                _DiskError(
                    f"the cache {self.cache.home} has {free:,} bytes free, and the asset needs "
                    f"{need:,} more: free some space or set REGISTRY_HOME to another disk"
                )
            )

    # ------------------------------------------------------------------ streaming

    def _stream(
        self, read_some, out, hasher: _Hasher, limit: int | None = None, too_big=None, guard: _SpeedGuard | None = None
    ) -> int:
        """Copy from `read_some` (readinto-like, may return short counts, 0 at the end) to `out`, feeding the
        hasher; returns bytes copied. Bytes received before a failure are still written and hashed, so the
        partial file holds everything that arrived. `limit`: the most bytes the file may reach (one byte
        more raises too_big() before it is written); `guard`: fails a transfer slower than the speed limit."""
        got = flushed = 0
        start = out.tell()
        progress = self.progress.update
        while True:
            buf = hasher.buffer()
            view = memoryview(buf)
            if limit is not None:  # read at most one byte past the limit: enough to know it is exceeded
                view = view[: max(1, min(len(buf), limit - start - got + 1))]
            n, end, failure = 0, False, None
            try:
                while n < len(view):
                    k = read_some(view[n:])
                    if not k:
                        end = True
                        break
                    n += k
                    if guard is not None and (cause := guard.slow(k)):
                        failure = _Retry(cause)  # raised once the bytes received are written
                        break
            except BaseException as exc:
                failure = exc
            if limit is not None and start + got + n > limit:
                hasher.unused(buf)
                raise too_big()
            if not n:
                hasher.unused(buf)
            else:
                hasher.feed(buf, n, last=end)  # hashed by the helper while this thread writes the same bytes
                data = view[:n]
                try:
                    while data:
                        data = data[out.write(data) :]
                except OSError as exc:
                    raise _hopeless(self.cache.write_error(part_name(out), exc, "write the cache file")) from None
                got += n
                progress(n)
                if got - flushed >= WRITEBACK:
                    _start_writeback(out.fileno(), start + flushed, got - flushed)
                    flushed = got
            if failure is not None:
                raise failure
            if end:
                return got

    def _finish_file(self, out) -> None:
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise _hopeless(self.cache.write_error(part_name(out), exc, "write the cache file")) from None

    def _copy_file(self, url: str, part: Path, hasher: _Hasher, what: str, declared: int | None) -> bool:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise TransferError(f"{what} has link {url} on another host: file:// links must be local paths")
        source = url2pathname(unquote(parts.path))
        hasher.reset()
        try:
            if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO blocks forever, /dev/zero fills the disk
                raise TransferError(f"cannot read {source} ({what}): not a regular file; check its asset-link")
            src = open(source, "rb", buffering=0)
        except OSError as exc:
            raise TransferError(f"cannot read {source} ({what}): {exc.strerror or exc}; check its asset-link") from None
        try:
            size = os.fstat(src.fileno()).st_size  # a sparse file may claim terabytes: checked like a body
            limit = self._limit(url, what, declared, size)
            self._check_space(part, limit)
            out = self.cache.open_partial(part.name.removesuffix(".part"), resume=False)
        except BaseException:
            src.close()
            raise
        with src, out:
            self.progress.add_total(size)
            try:
                self._stream(src.readinto, out, hasher, limit, lambda: self._too_big(url, what, declared, limit))
            except OSError as exc:
                raise TransferError(f"cannot read {source} ({what}): {exc.strerror or exc}") from None
            self._finish_file(out)
        return False

    # ------------------------------------------------------------------ HTTP

    def _resume_point(self, part: Path, digest: str, url: str) -> tuple[int, str | None, int | None]:
        """(bytes of the partial file that can be resumed, their validator, the full size if known)."""
        try:
            st = os.lstat(part)
        except FileNotFoundError:
            return 0, None, None
        have = st.st_size if stat.S_ISREG(st.st_mode) else 0  # a symlink planted there is not our partial
        meta = _read_json(self.cache.partial_meta_path(digest))
        if not isinstance(meta, dict) or meta.get("url") != mask_passwords(url):
            return 0, None, None
        validator = meta.get("etag") or meta.get("last_modified")
        total = meta.get("size")
        if not isinstance(validator, str) or not have or (isinstance(total, int) and have > total):
            return 0, None, None
        return have, validator, total if isinstance(total, int) else None

    def _http(
        self, url: str, part: Path, digest: str, hasher: _Hasher, what: str = "asset", declared: int | None = None
    ) -> bool:
        """Download `url` into `part` with retries and resume; returns whether bytes from an earlier response
        were kept (resumed)."""
        s = self.settings
        attempts = max(0, s.retries) + 1
        counted = False  # whether this download's size is already in the progress bar
        for attempt in range(1, attempts + 1):
            offset, validator, total = self._resume_point(part, digest, url)
            if hasher.size != offset:
                hasher.reset()
                if offset:
                    hasher.prefix(part, offset)
            if offset and total == offset:
                return True  # complete on disk already (interrupted before the rename): just verify it
            try:
                return self._http_attempt(url, part, digest, hasher, offset, validator, counted, what, declared)
            except _Retry as retry:
                counted = counted or retry.counted
                if attempt == attempts:
                    raise TransferError(
                        f"could not download {url} after {attempts} attempt{'s' * (attempts > 1)}: {retry.cause}"
                    ) from None
                time.sleep(retry.wait if retry.wait is not None else self._backoff(attempt))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        delay = min(MAX_DELAY, self.settings.backoff * 2 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)  # jitter: processes that failed together retry apart

    def _open(self, url: str, headers: dict, method: str = "GET"):
        """The response to a streamed request (status below 500, not 429); failures worth another attempt
        raise _Retry, the others TransferError."""
        import requests

        s = self.settings
        try:
            resp = self._session().request(
                method, url, headers=headers, stream=True, timeout=(s.connect_timeout, s.read_timeout)
            )
        except requests.exceptions.SSLError as exc:
            raise TransferError(f"could not download {url}: TLS error ({network_reason(exc)})") from None
        except requests.exceptions.ConnectTimeout:
            raise _Retry(f"no connection within {s.connect_timeout:g} s (connect timeout)") from None
        except requests.exceptions.ReadTimeout:
            raise _Retry(f"no response within {s.read_timeout:g} s (read timeout)") from None
        except requests.exceptions.TooManyRedirects:
            raise TransferError(f"could not download {url}: too many redirects") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            unknown = unresolved_host(exc)
            if unknown:  # a name that does not resolve now will not in a few seconds either: no retry
                raise TransferError(
                    f"could not download {url}: the host {urlsplit(url).hostname} does not resolve ({unknown}); "
                    "check the host in the link, REGISTRY_URL, the mirrors (--mirror, REGISTRY_MIRRORS) and "
                    "the network"
                ) from None
            raise _Retry(network_reason(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise TransferError(f"could not download {url}: {network_reason(exc)}") from None
        status = resp.status_code
        if status == 429 or status >= 500:
            cause = f"HTTP {status} {resp.reason or ''}".strip()
            wait = _retry_after(resp.headers.get("Retry-After"))
            resp.close()
            if wait is not None and wait > MAX_RETRY_AFTER:
                raise TransferError(
                    f"could not download {url}: {cause}, and the server asks to wait {wait:.0f} s "
                    f"before retrying (more than the {MAX_RETRY_AFTER:g} s we wait): try again later"
                )
            raise _Retry(cause, wait)
        return resp

    def _http_attempt(
        self,
        url: str,
        part: Path,
        digest: str,
        hasher: _Hasher,
        offset: int,
        validator: str | None,
        counted: bool,
        what: str = "asset",
        declared: int | None = None,
    ) -> bool:
        s = self.settings
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = validator
        resp = self._open(url, headers)
        with resp:
            status = resp.status_code
            if status == 416 and offset:
                self.cache.discard_partial(digest)  # the partial is longer than the file now is
                raise _Retry("the server refused to resume (HTTP 416); starting over", 0)
            if status not in (200, 206):
                raise TransferError(
                    f"could not download {url}: the server answered HTTP {status} {resp.reason or ''}"
                    f"{_status_hint(status, url, s)}".rstrip()
                )
            # The body is stored as sent, never decoded (a .gz asset keeps its bytes and its sha256), so the
            # length that counts is the Content-Length of those bytes.
            encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
            encoded = encoding not in ("", "identity")
            self._local.encoding = encoding if encoded else None
            length = _int(resp.headers.get("Content-Length"))
            if status == 206:
                start, total = _content_range(resp.headers.get("Content-Range", ""))
                if start != offset:
                    self.cache.discard_partial(digest)
                    raise _Retry(f"the server sent a range starting at {start}, not {offset}; starting over", 0)
                kept = True
            else:  # 200: the whole file (no Range support, or If-Range says it changed): start over
                if offset:
                    hasher.reset()
                    if counted:
                        self.progress.update(-offset)
                offset, total, kept = 0, length, False
                validator = self._rangeable(resp, total, encoded)
                if validator and (PROBE <= 0 or os.path.lexists(self.cache.ranges_path(digest))):
                    raise _UseRanges(total, validator)  # chunks of an earlier run to resume: no probe
                self._write_meta(digest, url, resp.headers, total, encoded)
            limit = self._limit(url, what, declared, total)
            if limit != s.max_asset_size or declared is not None:
                self._check_space(part, limit - offset)
            if not counted:
                self.progress.add_total(total or declared or 0)
                self.progress.update(offset)
            try:
                guard = _Probe(s, total, validator) if status == 200 and validator else None
                return self._receive(
                    resp,
                    part,
                    hasher,
                    offset,
                    total,
                    encoded,
                    kept,
                    digest,
                    limit,
                    lambda: self._too_big(url, what, declared, limit),
                    guard,
                )
            except _Retry as retry:
                retry.counted = True
                raise

    def _receive(
        self,
        resp,
        part: Path,
        hasher: _Hasher,
        offset: int,
        total: int | None,
        encoded: bool,
        kept: bool,
        digest: str,
        limit: int,
        too_big,
        guard=None,
    ) -> bool:
        s = self.settings
        out = self.cache.open_partial(digest, resume=bool(offset))
        if out is None:  # the bytes to resume are gone or not a file of ours
            raise _Retry("the partial download disappeared; starting over", 0)
        with out:
            out.seek(offset)
            out.truncate()
            reader = _body_reader(resp)
            try:
                got = self._stream(reader, out, hasher, limit, too_big, guard or _SpeedGuard(s))
            except Exception as exc:
                raise _read_failure(exc, s.read_timeout) from None
            if total is not None and offset + got < total:
                raise _Retry(f"the connection closed after {offset + got} of {total} bytes")
            _keep_alive(resp, reader)
            self._finish_file(out)
        return kept

    # ------------------------------------------------------------------ parallel ranges (ranges.py)

    def _rangeable(self, resp, total: int | None, encoded: bool) -> str | None:
        """The strong validator to fetch ranges with, when this 200 response of a first request says the
        asset is large enough for parallel ranges and the server serves them (Accept-Ranges); else None."""
        s = self.settings
        h = resp.headers
        etag = h.get("ETag")
        validator = etag if etag and not etag.startswith("W/") else h.get("Last-Modified")
        if (
            s.connections <= 1
            or getattr(self._local, "one_stream", False)
            or encoded
            or total is None
            or total < max(1, s.range_threshold)
            or h.get("Accept-Ranges", "").strip().lower() != "bytes"
        ):
            return None
        return validator or None

    def _ranged(
        self,
        url: str,
        part: Path,
        key: str,
        hasher: _Hasher,
        what: str,
        declared: int | None,
        total: int,
        validator: str,
        probed: bool = False,
    ) -> bool | None:
        """Download a large asset of `total` bytes as REGISTRY_CONNECTIONS parallel ranges (ranges.py); whether
        chunks of an earlier run were kept, or None when the server does not honour the ranges (then nothing
        of this attempt is kept and the caller downloads it as one stream)."""
        s = self.settings
        self._limit(url, what, declared, total)  # the card's asset-size and REGISTRY_MAX_ASSET_SIZE, before any byte
        self.cache.partial_meta_path(key).unlink(missing_ok=True)  # the chunks record (sidecar) says it all
        sidecar = ranges.Sidecar(mask_passwords(url), validator, total, s.range_chunk)
        where = self.cache.ranges_path(key)
        done = sidecar.read(where)
        prefix = 0
        out = self.cache.open_partial(key, resume=True) if done or probed else None
        if out is not None and probed and not done:
            prefix = os.fstat(out.fileno()).st_size  # what the first stream brought before the probe decided
            self._preallocate(out, part, total)
        elif out is not None and os.fstat(out.fileno()).st_size != total:
            out.close()
            out = None
        if out is None:
            done, prefix = set(), 0
            self.cache.discard_partial(key)
            self._check_space(part, total)
            self.cache.open_partial(key, resume=False).close()  # created empty, never through a symlink ...
            out = self.cache.open_partial(key, resume=True)  # ... and opened read-write: the cursor reads back
            if out is None:
                raise _RangesRefused("the new partial file disappeared")
            self._preallocate(out, part, total)
        with out:
            rf = ranges.RangedFile(out, total, s.range_chunk, done, prefix=prefix)
            if not probed:  # else the first stream counted the total and its bytes already
                self.progress.add_total(total)
                self.progress.update(sum(e - b for i, (b, e) in enumerate(rf.chunks) if i in done))
            try:
                rf.start()
                self._fetch_chunks(url, rf, validator, [i for i, d in enumerate(rf.done) if not d])
            except _RangesRefused as exc:
                _log.info("%s: %s; downloading it as one stream", url, exc)
                self.progress.add_total(-total)  # counted again by the one stream
                self.cache.discard_partial(key)
                return None
            except BaseException:
                with contextlib.suppress(OSError):
                    sidecar.write(where, rf.done_chunks())  # the next run resumes these chunks
                raise
            self._finish_file(out)
        with contextlib.suppress(OSError):
            sidecar.write(where, rf.done_chunks())  # all done: a crash before the commit only re-verifies
        hasher.adopt(rf.digest(), total)
        return bool(done)

    def _preallocate(self, out, part: Path, total: int) -> None:
        try:
            os.posix_fallocate(out.fileno(), 0, total)  # the space is ours before the next byte arrives
        except (OSError, AttributeError) as exc:
            if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                out.close()
                raise _hopeless(self.cache.write_error(part, exc, "write the cache file")) from None
            os.ftruncate(out.fileno(), total)  # no fallocate here (e.g. some network file systems)

    def _fetch_chunks(self, url: str, rf: ranges.RangedFile, validator: str, todo: list[int]) -> None:
        """Fetch chunks `todo` of `rf` over up to REGISTRY_CONNECTIONS connections, in order of the file."""
        s = self.settings
        pending = iter(todo)
        take = threading.Lock()
        failed: list[BaseException] = []
        guard, guard_lock = _SpeedGuard(s), threading.Lock()  # the speed limit applies to the whole transfer

        def slow(n: int) -> str | None:
            with guard_lock:
                return guard.slow(n)

        def worker() -> None:
            while not failed:
                with take:
                    i = next(pending, None)
                if i is None:
                    return
                try:
                    self._fetch_chunk(url, rf, i, validator, slow, failed)
                except BaseException as exc:
                    failed.append(exc)

        threads = [
            threading.Thread(target=worker, name=f"range-{n}", daemon=True)
            for n in range(min(s.connections, len(todo)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            refused = [e for e in failed if isinstance(e, _RangesRefused)]
            raise refused[0] if refused else failed[0]
        if not rf.complete:
            raise TransferError(f"could not download {url}: the ranges did not cover the file")  # a bug, not a server

    def _fetch_chunk(self, url: str, rf: ranges.RangedFile, i: int, validator: str, slow, failed: list) -> None:
        s = self.settings
        start, end = rf.chunks[i]
        attempts = max(0, s.retries) + 1
        buf = bytearray(CHUNK)
        for attempt in range(1, attempts + 1):
            pos = rf.filled[i]  # a retry asks only for what this chunk still lacks
            try:
                resp = self._open(
                    url, {"Accept-Encoding": "identity", "Range": f"bytes={pos}-{end - 1}", "If-Range": validator}
                )
                with resp:
                    self._check_range(url, resp, pos, end, rf.total, validator)
                    read_some = _body_reader(resp)
                    while pos < end and not failed:
                        view = memoryview(buf)[: min(CHUNK, end - pos)]
                        n, cause = 0, None
                        try:
                            while n < len(view):
                                k = read_some(view[n:])
                                if not k:
                                    break
                                n += k
                                cause = slow(k)
                                if cause:
                                    break
                        except Exception as exc:
                            cause = _read_failure(exc, s.read_timeout)
                            if not isinstance(cause, _Retry):
                                raise
                        if n:
                            try:
                                rf.write(i, pos, view[:n])
                            except OSError as exc:
                                raise _hopeless(
                                    self.cache.write_error(self.cache.home / "partial", exc, "write the cache file")
                                ) from None
                            pos += n
                            self.progress.update(n)
                        if isinstance(cause, _Retry):
                            raise cause
                        if cause:
                            raise TransferError(f"could not download {url}: {cause}")
                        if n < len(view):
                            raise _Retry(
                                f"the connection closed after {pos - start} of {end - start} bytes "
                                f"of the range at {start}"
                            )
                _start_writeback(rf.fd, start, end - start)  # as _stream does: the final fsync finds little to do
                return
            except _Retry as retry:
                if attempt == attempts or failed:
                    raise TransferError(
                        f"could not download {url} after {attempt} attempt{'s' * (attempt > 1)} "
                        f"at byte {pos}: {retry.cause}"
                    ) from None
                time.sleep(retry.wait if retry.wait is not None else self._backoff(attempt))

    @staticmethod
    def _check_range(url: str, resp, pos: int, end: int, total: int, validator: str) -> None:
        """A 206 for exactly bytes pos..end-1 of the same file, else _RangesRefused (or TransferError)."""
        status = resp.status_code
        if status == 200:
            raise _RangesRefused(
                "the server answered a range request with the whole file (it ignores Range, or "
                "the file changed since the first request)"
            )
        if status != 206:
            raise _RangesRefused(f"the server answered a range request with HTTP {status}")
        h = resp.headers
        first, whole = _content_range(h.get("Content-Range", ""))
        etag = h.get("ETag")
        if first != pos or whole != total or _int(h.get("Content-Length")) != end - pos:
            raise _RangesRefused(f"the server sent {h.get('Content-Range')!r} for bytes {pos}-{end - 1} of {total}")
        if (etag and validator.startswith('"') and etag != validator) or h.get(
            "Content-Encoding", "identity"
        ).strip().lower() not in ("", "identity"):
            raise _RangesRefused("the file changed between ranges (another ETag)")

    def _write_meta(self, digest: str, url: str, headers, total: int | None, encoded: bool) -> None:
        """Record what the partial bytes are (before writing them), so a later process can resume them."""
        path = self.cache.partial_meta_path(digest)
        etag = headers.get("ETag")
        if etag and etag.startswith("W/"):
            etag = None  # If-Range needs a strong validator
        meta = {"url": mask_passwords(url), "etag": etag, "last_modified": headers.get("Last-Modified"), "size": total}
        if encoded or not (meta["etag"] or meta["last_modified"]):
            path.unlink(missing_ok=True)  # nothing to validate a resume with: a later attempt starts over
            return
        try:
            write_atomic(path, json.dumps(meta).encode(), durable=False)  # lost in a crash: no resume, no harm
        except OSError:  # without it the partial is not resumed by a later process: not worth failing the pull
            path.unlink(missing_ok=True)


_held = contextlib.nullcontext  # a lock the caller already holds


def _read_failure(exc: Exception, read_timeout: float) -> Exception:
    """What a failure while reading a body becomes: network and protocol errors (requests, urllib3,
    http.client, OSError) are worth another attempt; anything else is raised as it is."""
    import requests

    if isinstance(exc, (OSError, requests.exceptions.RequestException)) or exc.__class__.__module__.split(".")[0] in (
        "urllib3",
        "http",
    ):
        return _Retry(network_reason(exc, read_timeout))
    return exc


def _writeback_starter():
    """Linux's sync_file_range(SYNC_FILE_RANGE_WRITE): start writing a file range to disk without waiting, so
    the fsync before the commit finds little left to do. None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
        fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    except (OSError, AttributeError):
        return None

    def start(fd: int, offset: int, length: int) -> None:
        fn(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE; a failure only means the fsync does the work

    return start


_sync_range = _writeback_starter()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    if _sync_range is not None:
        _sync_range(fd, offset, length)


def _keep_alive(resp, read_some) -> None:
    """Hand the connection of a response whose body `read_some` (_body_reader) read to its very end back to
    the session's pool, for the next asset: read past http.client, the body looks unread to urllib3, which
    would close the connection (a new connection per asset: 50 small assets made 50 connections). Anything
    unexpected leaves it to be closed, as before."""
    response = getattr(read_some, "response", None)
    if response is None or read_some.remaining() != 0:
        return
    with contextlib.suppress(Exception):
        response.length = 0  # what http.client would have counted had it read the bytes itself
        response.read()  # reads nothing; marks the response complete, so the connection can send again
        if response.isclosed():
            resp.raw.release_conn()


def _body_reader(resp):
    """readinto-like reader of the response body as sent (a Content-Encoding is never decoded). For a body
    of known length it reads the socket's buffered stream with readinto1 (one recv per call, no extra copy,
    and no bytes lost inside a read that fails halfway); otherwise http.client's read1 (chunked bodies:
    returns what one read brought, so the speed limit sees a trickle)."""
    response = getattr(resp.raw, "_fp", None)  # urllib3 wraps an http.client.HTTPResponse
    sock_file = getattr(response, "fp", None)
    if (
        response is not None
        and not getattr(response, "chunked", True)
        and isinstance(getattr(response, "length", None), int)
        and hasattr(sock_file, "readinto1")
    ):
        remaining = response.length

        def read_some(view):
            nonlocal remaining
            if remaining <= 0:
                return 0
            n = sock_file.readinto1(view[:remaining] if remaining < len(view) else view)
            remaining -= n
            return n

        read_some.response = response  # for _keep_alive
        read_some.remaining = lambda: remaining
        return read_some
    read1 = getattr(response, "read1", None)
    if read1 is None:  # not urllib3 over http.client: urllib3's own reader, still without decoding

        def read1(n):
            return resp.raw.read(n, decode_content=False)

    def read_some(view):
        data = read1(len(view))
        view[: len(data)] = data
        return len(data)

    return read_some


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _content_range(value: str) -> tuple[int | None, int | None]:
    # "bytes START-END/TOTAL" (TOTAL may be "*")
    try:
        unit, _, rest = value.strip().partition(" ")
        span, _, total = rest.partition("/")
        return int(span.split("-")[0]), (None if total.strip() == "*" else int(total))
    except ValueError:
        return None, None


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds from now (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when - time.time())
