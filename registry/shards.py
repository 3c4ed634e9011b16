"""The sharded index: a small root naming content-addressed shards, so a client fetches only what it needs.

`registry index DIR` writes, besides `DIR/index.json` (written only up to SINGLE_FILE_MAX_CARDS cards):

    DIR/index/root.json                 small; revalidated by ETag on each process's first use
    DIR/index/shards/<sha256>.json      shards (and pages, below), named by the sha256 of their bytes: immutable

A card lies in bucket `bucket_of(short name, buckets)` (the first 4 bytes of the sha256 of its short name,
the last part of its id, modulo the number of buckets, a power of two), so a full id and its short name,
and every card sharing that short name, are in one shard: one fetch resolves either. A shard
(schemas/index-shard.schema.json) is an index.json document holding only its bucket's records,
`{"format": 1, "cards": [...]}`, sorted by id.

Root (schemas/index-root.schema.json), in one of two formats:

- format 1, up to FLAT_MAX_SHARDS buckets (about 130,000 cards: every registry that also has an index.json,
  so a client that reads only format 1 roots reads all of those): the root lists every shard,
    {"format": 1, "kind": "registry-index-root", "bucket-hash": "sha256-short-name",
     "counts": {...as index.json...}, "shards": [{"sha256": "<hex>", "cards": 312}, ...]}
- format 2, above that: a listing of every shard would grow with the registry (217 KB at 1M cards, fetched
  and parsed by every lookup), so the root lists pages of PAGE_SHARDS shard entries each
  (schemas/index-page.schema.json), and a lookup fetches root, one page and one shard, a few KB plus one
  shard at any size:
    {"format": 2, "kind": "registry-index-root", "bucket-hash": "sha256-short-name", "counts": {...},
     "buckets": 2048, "page-shards": 64, "pages": [{"sha256": "<hex>", "cards": 31240}, ...]}
    page p: {"format": 2, "kind": "registry-index-page", "first": p * 64, "shards": [{"sha256", "cards"}, ...]}
  Bucket b's shard is entry b % page-shards of page b // page-shards. Pages live beside the shards.

Clients (`open_remote`) keep the root under the registry's cache directory with its ETag, and each shard and
page under `shards/<sha256>.json` once its bytes matched the digest that named it; a cached file is hashed
again when read (a fraction of a millisecond for a shard), so it is written without an fsync. A shard or
page whose bytes differ from that digest is refused (IntegrityError, exit 4) and not kept. A registry without
`index/root.json` is read from its `index.json` as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

from .cache import write_atomic
from .errors import IntegrityError, OfflineError, RegistryWarning, TransferError, UsageError
from .index import parse_index
from .names import SHA256_RE, ShortNames, short_name
from .text import mask_passwords

_log = logging.getLogger("registry")
FORMAT = 2  # the newest root format; format 1 (every shard in the root) is still written up to FLAT_MAX_SHARDS
FORMATS = (1, 2)
KIND = "registry-index-root"
PAGE_KIND = "registry-index-page"
PAGE_SHARDS = 64  # shard entries a page: at 1M cards (2,048 shards) a 3.7 KB root and 32 pages of 6 KB
FLAT_MAX_SHARDS = 256  # a format 1 root of 256 shards is 27 KB; it covers SINGLE_FILE_MAX_CARDS (below)
BUCKET_HASH = "sha256-short-name"
ROOT_PATH = "index/root.json"
SHARD_DIR = "index/shards"
CARDS_PER_SHARD = 512  # ~400 KB a shard for corpus-like cards: one lookup fetches ~0.5 MB at any size
SUGGEST_MAX_CARDS = 20_000  # an unknown name fetches every shard for suggestions only up to this size
SINGLE_FILE_MAX_CARDS = 100_000  # above this, index.json (~80 MB) is not written: clients read the shards
MAX_ROOT_BYTES = 32 << 20
MAX_SHARD_BYTES = 64 << 20


def bucket_of(name: str, buckets: int) -> int:
    """The bucket of a short name (or of a full id: its last part) among `buckets`."""
    # surrogatepass: a name from argv with undecodable bytes lies in some bucket (and matches no id there)
    digest = hashlib.sha256(short_name(name).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % buckets


def shard_count(cards: int) -> int:
    """A power of two giving about CARDS_PER_SHARD cards a shard."""
    n = 1
    while n * CARDS_PER_SHARD < cards:
        n *= 2
    return n


def _dumps(data) -> bytes:
    # Compact: shards are read by programs; the deterministic key order keeps their names stable.
    return (json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- writing


def _entries(blobs: list[bytes], files: dict[str, bytes], counts: list[int]) -> list[dict]:
    """The {sha256, cards} entries naming `blobs`, each added to `files` under its digest."""
    entries = []
    for blob, n in zip(blobs, counts):
        sha = hashlib.sha256(blob).hexdigest()
        files[sha] = blob
        entries.append({"sha256": sha, "cards": n})
    return entries


def build_shards(records, counts: dict, buckets: int | None = None) -> tuple[bytes, dict[str, bytes]]:
    """(root bytes, {sha256: bytes of a shard or page}) for index records (as index.build_index gives them,
    sorted by id): a format 1 root up to FLAT_MAX_SHARDS buckets, else format 2 with pages."""
    records = list(records) if not isinstance(records, list) else records
    n = buckets or shard_count(len(records))
    parts: list[list[dict]] = [[] for _ in range(n)]
    for r in records:
        parts[bucket_of(r["id"], n)].append(r)
    files: dict[str, bytes] = {}
    shards = _entries([_dumps({"format": 1, "cards": part}) for part in parts], files, list(map(len, parts)))
    head = {"kind": KIND, "bucket-hash": BUCKET_HASH, "counts": counts}
    if n <= FLAT_MAX_SHARDS:
        root = {"format": 1, **head, "shards": shards}
    else:
        size = PAGE_SHARDS
        groups = [shards[i : i + size] for i in range(0, n, size)]
        pages = [_dumps({"format": 2, "kind": PAGE_KIND, "first": i * size, "shards": g}) for i, g in enumerate(groups)]
        page_cards = [sum(e["cards"] for e in g) for g in groups]
        root = {"format": 2, **head, "buckets": n, "page-shards": size, "pages": _entries(pages, files, page_cards)}
    return (json.dumps(root, sort_keys=True, indent=1) + "\n").encode("utf-8"), files


def _files_of(root_path: Path, shard_dir: Path) -> set[str]:
    """The digests of the shards and pages the root at `root_path` names (empty if it cannot be read)."""
    try:
        root = json.loads(root_path.read_bytes())
        if root.get("format") == 1:
            return {s["sha256"] for s in root["shards"]}
        names = {p["sha256"] for p in root["pages"]}
        for page in list(names):
            names |= {s["sha256"] for s in json.loads((shard_dir / f"{page}.json").read_bytes())["shards"]}
        return names
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def write_shards(directory: str | os.PathLike, data: dict) -> tuple[Path, int]:
    """Write the sharded form of index document `data` under `directory` (index/root.json last, so a
    client never sees a root naming a shard or page not yet there). Files of the previous root are kept (a
    client may be reading it), older ones removed. Returns (root path, number of shards)."""
    base = Path(directory)
    root_path, shard_dir = base / ROOT_PATH, base / SHARD_DIR
    keep = _files_of(root_path, shard_dir)
    root_blob, files = build_shards(data["cards"], data["counts"])
    shard_dir.mkdir(parents=True, exist_ok=True)
    for sha, blob in files.items():  # shards before the pages naming them (build_shards' order)
        path = shard_dir / f"{sha}.json"
        try:
            same = path.read_bytes() == blob  # a file edited by hand is repaired, not kept for its name
        except OSError:
            same = False
        if not same:
            write_atomic(path, blob)
    write_atomic(root_path, root_blob)
    keep |= set(files)
    for old in shard_dir.glob("*.json"):
        if old.stem not in keep:
            old.unlink(missing_ok=True)
    return root_path, shard_count(len(data["cards"]))


def write_indexes(output: Path, blob: bytes, data: dict) -> str:
    """What `registry index` writes at `output` (DIR/index.json by default): the shards beside it always,
    `output` itself (the single-file index `blob`) up to SINGLE_FILE_MAX_CARDS cards; above that an old
    `output` is removed, so no client reads a stale one. Returns where it wrote, for the report."""
    root_path, n = write_shards(output.parent, data)
    if data["counts"]["cards"] <= SINGLE_FILE_MAX_CARDS:
        write_atomic(output, blob)
        return f"{output} and {root_path} ({n} shard{'s' if n != 1 else ''})"
    output.unlink(missing_ok=True)
    return f"{root_path} ({n} shards; no {output.name} above {SINGLE_FILE_MAX_CARDS:,} cards)"


# --------------------------------------------------------------------------- reading


def _pow2(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n > 0 and not n & (n - 1)


def _entries_flaw(entries, what: str) -> str | None:
    """What is wrong with a list of {sha256, cards} entries, if anything."""
    for e in entries:
        if not (isinstance(e, dict) and isinstance(e.get("sha256"), str) and SHA256_RE.match(e["sha256"])):
            return f"a {what} entry lacks a sha256 of 64 hex digits"
    filled = [e["sha256"] for e in entries if e.get("cards")]  # empty shards share their bytes, others cannot
    if len(set(filled)) != len(filled):
        return f"it lists one {what} twice"
    return None


def _root_flaw(root) -> str | None:
    if not isinstance(root, dict) or root.get("kind") != KIND:
        return "it is not an index root"
    if root.get("format") not in FORMATS:
        return f"it has root format {root.get('format')!r}; this tool reads formats {', '.join(map(str, FORMATS))}"
    if root.get("bucket-hash") != BUCKET_HASH:
        return f"its bucket-hash {root.get('bucket-hash')!r} is not {BUCKET_HASH}"
    counts = root.get("counts")
    if not (isinstance(counts, dict) and isinstance(counts.get("cards"), int) and counts["cards"] >= 0):
        return "its counts lack a number of cards"
    if root["format"] == 1:
        shards = root.get("shards")
        if not isinstance(shards, list) or not shards:
            return "it lists no shards"
        if not _pow2(len(shards)):  # buckets are a hash modulo a power of two
            return f"it lists {len(shards)} shards, not a power of two"
        return _entries_flaw(shards, "shard")
    buckets, size, pages = root.get("buckets"), root.get("page-shards"), root.get("pages")
    if not (_pow2(buckets) and _pow2(size) and size <= buckets):
        return f"its buckets {buckets!r} and page-shards {size!r} are not powers of two, the first the larger"
    if not isinstance(pages, list) or len(pages) != buckets // size:
        return f"it does not list the {buckets // size} pages of {buckets} buckets of {size}"
    return _entries_flaw(pages, "page")


def _page_flaw(page, first: int, size: int) -> str | None:
    if not isinstance(page, dict) or page.get("kind") != PAGE_KIND or page.get("format") != 2:
        return "it is not a page of a format 2 index root"
    if page.get("first") != first or not isinstance(page.get("shards"), list) or len(page["shards"]) != size:
        return f"it does not list the {size} shards from bucket {first}"
    return _entries_flaw(page["shards"], "shard")


class ShardedIndex:
    """What index.Index offers (records, ids, by_id, by_name, names), over shards fetched on demand.

    `load(sha, parse)` gives the verified bytes named `sha` parsed by `parse(raw, shown)`. `records` streams
    every shard in bucket order without keeping them (bounded memory); by_id and by_name fetch the one
    shard a name lies in (and, format 2, its page) and keep it for the rest of the process."""

    def __init__(self, root: dict, load: Callable[[str, Callable], object], source: str):
        flaw = _root_flaw(root)
        if flaw:
            fix = "upgrade registry, or regenerate it" if "root format" in flaw else "regenerate it"
            raise UsageError(f"{source} is not a registry index root ({flaw}): {fix} with `registry index DIR`")
        self.root = root
        self.source = source
        self.counts = root["counts"]
        self._load = load
        if root["format"] == 1:  # one page: the root's own list
            self.buckets = self._page_size = len(root["shards"])
            self._pages: dict[int, list[str]] = {0: [s["sha256"] for s in root["shards"]]}
            self._page_digests: list[str] = []
        else:
            self.buckets, self._page_size = root["buckets"], root["page-shards"]
            self._pages = {}
            self._page_digests = [p["sha256"] for p in root["pages"]]
        self._held: dict[int, object] = {}
        self.by_id = _Lookup(self, "by_id")
        self.by_name = _Lookup(self, "by_name")
        self.names = _ShardNames(self)

    def _page(self, p: int) -> list[str]:
        if p not in self._pages:
            first, size = p * self._page_size, self._page_size

            def parse(raw: bytes, shown: str) -> list[str]:
                try:
                    page = json.loads(raw)
                except (ValueError, RecursionError) as exc:
                    page, flaw = None, f"not valid JSON: {exc}"
                else:
                    flaw = _page_flaw(page, first, size)
                if flaw:
                    raise UsageError(
                        f"{shown} is not a page of the index root {self.source} ({flaw}): "
                        "regenerate it with `registry index DIR`"
                    )
                return [e["sha256"] for e in page["shards"]]

            self._pages[p] = self._load(self._page_digests[p], parse)
        return self._pages[p]

    def _shard(self, b: int):
        return self._load(self._page(b // self._page_size)[b % self._page_size], parse_index)

    def shard_for(self, name: str):
        """The shard (an index.Index) holding `name`, a full id or a short name."""
        b = bucket_of(name, self.buckets)
        if b not in self._held:
            self._held[b] = self._shard(b)
        return self._held[b]

    def shards(self) -> Iterator:
        for b in range(self.buckets):
            yield self._held.get(b) or self._shard(b)

    @property
    def records(self) -> Iterator[dict]:
        for shard in self.shards():
            yield from shard.records

    @property
    def ids(self) -> list[str]:
        return sorted(r["id"] for r in self.records)

    def suggestion_ids(self) -> list[str]:
        """The ids "did you mean" picks from for an unknown name: all of them up to SUGGEST_MAX_CARDS
        (a few MB of shards), else none, so a typo never downloads a whole large registry."""
        return self.ids if self.counts.get("cards", 0) <= SUGGEST_MAX_CARDS else []


class _ShardNames:
    """What index.Index.names (a names.ShortNames) answers, from the one shard a name lies in; suggestions
    for an unknown name come from suggestion_ids, so they are bounded."""

    def __init__(self, index: ShardedIndex):
        self._index = index

    def matches(self, name: str) -> list[str]:
        return self._index.shard_for(name).names.matches(name)

    def hint(self, name: str, fallback: str) -> str:
        return ShortNames(self._index.suggestion_ids()).hint(name, fallback)


class _Lookup:
    """A read-only mapping (get, [], in) answered by the one shard a key lies in."""

    def __init__(self, index: ShardedIndex, attr: str):
        self._index, self._attr = index, attr

    def get(self, key: str, default=None):
        return getattr(self._index.shard_for(key), self._attr).get(key, default)

    def __getitem__(self, key: str):
        return getattr(self._index.shard_for(key), self._attr)[key]

    def __contains__(self, key: str) -> bool:
        return key in getattr(self._index.shard_for(key), self._attr)


def open_remote(registry) -> ShardedIndex | None:
    """The sharded index of an HttpRegistry, or None when it has none (the caller reads index.json then).

    `registry` gives base_url, cache_dir, settings, `_get(url, limit, headers) -> (response, body)` and the
    ETag helpers it uses for index.json too (`_cached_etag`, `_keep_with_etag`)."""
    from urllib.parse import urljoin

    url = urljoin(registry.base_url, ROOT_PATH)
    shown = mask_passwords(url)
    cached, meta = registry.cache_dir / "root.json", registry.cache_dir / "root.meta.json"
    have = cached.is_file()

    def from_cache():
        return read_cached(cached, meta, shown, lambda raw, source: _parse_root(raw, source, registry))

    if registry.settings.offline:
        return from_cache() if have else None
    etag = registry._cached_etag(cached, meta) if have else ""  # the root is small: hashing it is cheap
    try:
        resp, body = registry._get(url, MAX_ROOT_BYTES, {"If-None-Match": etag} if etag else None)
    except TransferError as exc:
        index = from_cache() if have else None
        if index is not None:
            warnings.warn(f"{exc.message.split(';')[0]}; using the cached index root", RegistryWarning, stacklevel=3)
        return index  # None: index.json's reader reports the failure, or uses its own cached copy
    if resp.status_code == 304 and have:
        if (index := from_cache()) is not None:
            return index
        resp, body = registry._get(url, MAX_ROOT_BYTES)  # the copy it validated was damaged: fetch it whole
    if resp.status_code in (404, 410):
        cached.unlink(missing_ok=True)  # the registry dropped its shards: index.json is the truth now
        return None
    if resp.status_code != 200:
        index = from_cache() if have else None
        if index is not None:
            warnings.warn(
                f"{shown} answered HTTP {resp.status_code}; using the cached index root", RegistryWarning, stacklevel=3
            )
        return index
    index = _parse_root(body, shown, registry)
    registry._keep_with_etag(cached, meta, body, resp.headers.get("ETag", ""), shown)
    return index


def read_cached(cached: Path, meta: Path, shown: str, parse: Callable[[bytes, str], object]):
    """A cached copy of a registry's index (index.json or the shards' root) parsed, or None when it cannot be read
    or parsed: such a copy is our cache's damage, not the publisher's, so it is removed (with its ETag record)
    and the caller acts as if nothing were cached (fetch it, or say offline that it is not cached)."""
    source = f"{cached} (cached copy of {shown})"
    try:
        return parse(cached.read_bytes(), source)
    except (OSError, UsageError) as exc:
        why = exc.message.removeprefix(source + " ").split(": regenerate")[0] if isinstance(exc, UsageError) else ""
        why = why or exc.strerror or str(exc)
        warnings.warn(
            f"the cached copy of {shown} in {cached} was damaged and is removed (it {why}); "
            "it is fetched again when online",
            RegistryWarning,
            stacklevel=4,
        )
        for path in (meta, cached):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only cache: the copy stays unused
        return None


def _parse_root(raw: bytes, source: str, registry) -> ShardedIndex:
    try:
        root = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{source} is not valid JSON ({exc}): regenerate it with `registry index DIR`") from None
    return ShardedIndex(root, lambda sha, parse: _load_named(registry, sha, source, parse), source)


def _load_named(registry, sha: str, root_source: str, parse: Callable[[bytes, str], object]):
    """The shard or page named `sha`, parsed: from the cache if its bytes still hash to `sha`, else fetched
    and verified (then kept without an fsync: a file torn by a crash fails the hash and is fetched again)."""
    from urllib.parse import urljoin

    url = urljoin(registry.base_url, f"{SHARD_DIR}/{sha}.json")
    cached = registry.cache_dir / "shards" / f"{sha}.json"
    try:
        raw = cached.read_bytes()
    except OSError:
        raw = None
    if raw is not None:
        if hashlib.sha256(raw).hexdigest() == sha:
            try:
                return parse(raw, f"{cached} (cached from {root_source})")
            except UsageError:  # cannot happen to verified bytes unless the tool changed: fetched again below
                pass
        cached.unlink(missing_ok=True)
    if registry.settings.offline:
        raise OfflineError(
            f"offline and shard {sha[:12]} of the index of registry {registry.location} is not cached: "
            "use the registry once online for this name, or unset REGISTRY_OFFLINE"
        )
    resp, raw = registry._get(url, MAX_SHARD_BYTES)
    shown = mask_passwords(url)
    if resp.status_code != 200:
        raise TransferError(
            f"cannot fetch index shard {shown}: HTTP {resp.status_code} {resp.reason}; "
            f"the root {root_source} names it, so the server's index is incomplete: regenerate it "
            "with `registry index DIR`"
        )
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha:
        raise IntegrityError(
            f"index shard {shown} has sha256 {actual} but its name and the root {root_source} say "
            f"{sha}: the shard was changed after indexing; refusing it (regenerate the index)"
        )
    parsed = parse(raw, shown)
    try:
        write_atomic(cached, raw, durable=False)
    except OSError as exc:
        _log.warning("could not keep index shard %s in the cache (%s)", shown, exc.strerror or exc)
    return parsed
