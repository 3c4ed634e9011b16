"""The catalog: where cards live (a registry) and how a name becomes one card.

A registry is a tree of cards, `USER[/BACKEND]/VERSION/NAME.md`; a card's id is its path without
`.md`. Names given by users are one of:
- a full id, `mindspore/ascend/0.7/ssd_v1_coco2017`;
- a short name, `ssd_v1_coco2017` (the last part of one or more ids: among cards of several MindSpore
  versions, versions.py says which one it means, and `Entry.choice` records it);
- a path to a card file on disk (ends in `.md`), or the http(s) URL of a card (`.../NAME.md`).
`source` (the MindSpore Hub argument): "gitee" or "github" reads the name as above; "local" only as a
path to a card file.
Localized twins (`*_cn.md`) are translations of an English card and are not separate models.

Every kind of registry lives here and answers the same questions (`Registry`: ids, entry, resolve,
index, forget): LocalRegistry (a directory, its index built once per process), HttpRegistry (a tree
served over HTTP: its sharded index (shards.py) when it has index/root.json, else its index.json, cached
and revalidated by ETag, and each card verified against the index's sha256) and card URLs (`entry_from_url`, fetched each time). The Settings given to
open_registry/resolve travel with the registry (offline mode, token, timeouts, cache home); nothing
here reads the environment or prints (a stale cached index is a RegistryWarning).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import posixpath
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

from . import settings as _settings
from . import versions as _versions
from .cache import plain_name, write_atomic
from .card import MAX_CARD_BYTES, Card, Problem, decode, parse_bytes, parse_file, read_file
from .errors import (
    CardError,
    CardWarning,
    IntegrityError,
    MissingFileError,
    NotFoundError,
    OfflineError,
    RegistryWarning,
    TransferError,
    UsageError,
)
from .http import SpeedGuard, network_reason, retrying_session
from .index import INDEX_NAME, MAX_INDEX_BYTES, Index, parse_index
from .names import (
    SHA256_PREFIX_RE,
    SHA256_RE,
    ShortNames,
    asset_filename,
    check_name,
    is_card_filename,
    parent_url,
    sha256_text,
    short_name,
    walk_markdown,
)
from .parse_cache import local_index
from .shards import ShardedIndex, open_remote, read_cached
from .text import mask_passwords, printable

SOURCES = ("gitee", "github", "local")  # mindspore_hub's `source` values (see the module doc)
_log = logging.getLogger("registry")


@dataclass(frozen=True)
class Asset:
    file_format: str
    link: str  # as written in the card (angle brackets removed)
    url: str  # absolute: relative links resolved against the card's location
    sha256: str
    filename: str  # name of the file in a model's view of the cache
    index: int  # position in the card's asset list
    size: int | None = None  # the card's asset-size (bytes), when it gives one

    @property
    def is_prefix(self) -> bool:
        """The card gives only a prefix of the sha256 (8 to 63 hex digits), not the whole digest."""
        return len(self.sha256) < 64


@dataclass(init=False)
class Entry:
    """One resolved card.

    Made from the card's bytes (`raw`), it parses them on first use of `card`; and when the model's cached
    view records what a pull learnt from these very bytes (`record`, `adopt`), a pull uses that instead:
    the card is then neither parsed nor checked (transfer.pull, Cache.warm)."""

    id: str
    source: str  # where the card was read: a file path or a URL
    base_url: str  # the URL its relative links are resolved against (ends with '/')
    registry: Registry | None = field(default=None, repr=False)
    choice: _versions.Choice | None = None  # set when a short name had several cards to choose from
    raw: bytes | None = field(default=None, repr=False, compare=False)  # the card's bytes, when made from them

    def __init__(
        self,
        id: str,
        card: Card | None,
        source: str,
        base_url: str,
        registry: Registry | None = None,
        choice: _versions.Choice | None = None,
        *,
        raw: bytes | None = None,
    ):
        if card is None and raw is None:
            raise TypeError("Entry needs the parsed card or its bytes (raw=)")
        self.id, self.source, self.base_url, self.registry, self.choice, self.raw = (
            id,
            source,
            base_url,
            registry,
            choice,
            raw,
        )
        self._card = card
        self._problems: list | None = None
        self._warned = False
        self._assets: list[Asset] | None = None
        self._sound: list[Problem] | None = None  # the cosmetic problems, when adopted from a record
        self._digest: str | None = None
        self._record: dict | None = None

    @property
    def card(self) -> Card:
        if self._card is None:
            self._card = parse_bytes(self.raw, self.source)  # what parse_file would have made of the same bytes
        return self._card

    @property
    def fields(self) -> dict:
        return self.card.fields

    @property
    def name(self) -> str:
        return short_name(self.id)

    def problems(self) -> list[Problem]:
        """Every problem of the card (parse, schema, lint; as `registry validate` finds them), found once
        per entry. Schema and lint rules are skipped when a parse problem already blocks use."""
        if self._problems is None:
            found = list(self.card.problems)
            if not any(p.blocks_use for p in found):
                try:
                    from .lint import check_card
                except ImportError:  # schema/lint not installed in this build: parse problems only
                    check_card = None
                if check_card is not None:
                    found += check_card(self.card)
            self._problems = found
        return self._problems

    def require_sound(self) -> list[Problem]:
        """The consumer's check (pull, load): raise CardError for the first problem that blocks use
        (rules.py); else return the cosmetic ones (see `cosmetic`). An adopted record says the card is sound."""
        if self._sound is not None:
            return self.cosmetic()
        blocking = [p for p in self.problems() if p.blocks_use]
        if blocking:
            more = (
                f" (and {len(blocking) - 1} more: run `registry validate {self.source}`)" if len(blocking) > 1 else ""
            )
            raise CardError(f"card {self.id} is not valid: {blocking[0].format()}{more}")
        return self.cosmetic()

    def cosmetic(self) -> list[Problem]:
        """The errors (as validate sees them) that do not block use, emitted once per entry as CardWarning.
        Validate's warnings are not repeated on every pull, and a sha256 prefix is left to pull, which says
        what it is worth."""
        found = self._sound if self._sound is not None else self._cosmetic()
        if not self._warned:
            self._warned = True
            for p in found:
                # printed as `registry: warning: PATH:LINE:COL: RULE: ...`, the word said once
                warnings.warn(
                    printable(f"{p.path}:{p.line}:{p.col}: {p.rule}: {p.message} (cosmetic: the card is still used)"),
                    CardWarning,
                    stacklevel=3,
                )
        return found

    def _cosmetic(self) -> list[Problem]:
        return [p for p in self.problems() if p.severity == "error" and not p.blocks_use and p.rule != "sha256-prefix"]

    @property
    def assets(self) -> list[Asset]:
        if self._assets is None:  # urljoin and checks of every item: once per entry
            self._assets = self._read_assets()
        return list(self._assets)

    def _read_assets(self) -> list[Asset]:
        items = self.fields.get("asset") or []
        if not isinstance(items, list):
            items = []
        result = []
        for i, item in enumerate(items):
            line, col = self.card.pos(("asset", i))
            where = f"{self.card.path}:{line}:{col}"
            if not isinstance(item, dict):
                raise CardError(
                    f"{where}: asset {i + 1} of card {self.id} is not a mapping: "
                    "write file-format, asset-link and asset-sha256 under its `- `"
                )
            link = str(item.get("asset-link") or "").strip()
            sha = sha256_text(str(item.get("asset-sha256") or ""))
            fmt = str(item.get("file-format") or "").strip()
            if not link:
                raise CardError(f"{where}: asset {i + 1} of card {self.id} has no asset-link: add the download URL")
            if not (SHA256_RE.match(sha) or SHA256_PREFIX_RE.match(sha)):
                raise CardError(
                    f"{where}: asset {i + 1} of card {self.id} has asset-sha256 {sha!r}, not 64 hex digits "
                    "(nor a prefix of 8 or more): set it to the file's sha256 (`registry hash FILE`)"
                )
            url = urljoin(self.base_url, link)
            size = item.get("asset-size")
            size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
            result.append(Asset(fmt, link, url, sha, asset_filename(url, sha, fmt), i, size))
        return result

    def sha256(self) -> str | None:
        """The sha256 of the card's bytes, when the entry was made from them."""
        if self.raw is None:
            return None
        if self._digest is None:
            self._digest = hashlib.sha256(self.raw).hexdigest()
        return self._digest

    def record(self) -> dict | None:
        """What a pull needs of this sound card (its assets, its cosmetic problems), tied to the card's bytes,
        where it was read and the rules that checked it; kept in the model's view record. None when the entry
        was not made from bytes, the card is not sound, or something in it has no JSON form."""
        if self._record is None:
            self._record = self._make_record() or {}
        return self._record or None

    def _make_record(self) -> dict | None:
        rules = _rules_digest()
        if self.raw is None or rules is None:
            return None
        if self._sound is None and any(p.blocks_use for p in self.problems()):
            return None
        cosmetic = self._sound if self._sound is not None else self._cosmetic()
        if not all(all(_plain_key(k) for k in p.keypath) for p in cosmetic):
            return None
        assets = self.assets
        if any(mask_passwords(u) != u for u in (self.source, self.base_url, *(a.url for a in assets))):
            return None  # a password in a link is never written to the cache: such a card is checked each time
        return {
            "format": RECORD_FORMAT,
            "rules": rules,
            "sha256": self.sha256(),
            "source": self.source,
            "base_url": self.base_url,
            "assets": [[a.file_format, a.link, a.url, a.sha256, a.filename, a.index, a.size] for a in assets],
            "cosmetic": [[p.path, p.line, p.col, p.severity, p.rule, p.message, list(p.keypath)] for p in cosmetic],
        }

    def adopt(self, record) -> bool:
        """Take the assets and cosmetic problems from `record` (see `record`; read from the cache, so untrusted:
        anything malformed is refused) when it describes these very bytes, read from the same place, checked by
        these rules: then `card` is never parsed for pull's sake. Whether it was taken."""
        if not (
            isinstance(record, dict)
            and self.raw is not None
            and record.get("format") == RECORD_FORMAT
            and record.get("rules") == _rules_digest()
            and record.get("sha256") == self.sha256()
            and record.get("source") == self.source
            and record.get("base_url") == self.base_url
        ):
            return False
        try:
            assets = [_record_asset(i, row) for i, row in enumerate(record["assets"])]
            sound = [_record_problem(row) for row in record["cosmetic"]]
        except (KeyError, TypeError, ValueError):
            return False
        self._assets, self._sound, self._record = assets, sound, record
        return True

    def select_assets(self, formats: Iterable[str] | None = None) -> list[Asset]:
        """The assets of these file-formats (all without `formats`); raises NotFoundError naming the formats the card has."""
        assets = self.assets
        if not formats:
            return assets
        wanted = {f.lower().lstrip(".") for f in formats}
        chosen = [a for a in assets if a.file_format.lower() in wanted]
        if not chosen:
            have = ", ".join(sorted({a.file_format for a in assets})) or "none"
            raise NotFoundError(
                f"card {self.id} has no asset of format {', '.join(sorted(wanted))}; formats it has: {have}"
            )
        return chosen


RECORD_FORMAT = 1  # of Entry.record; a change of the rules themselves changes _rules_digest
# The modules and schema that decide what a card's bytes give a pull (parse, schema, lint, rules, assets).
_RULES_SOURCES = ("card.py", "rules.py", "schema.py", "lint.py", "names.py", "text.py", "catalog.py")


@functools.lru_cache(maxsize=1)
def _rules_digest() -> str | None:
    """sha256 of the code and schema that check cards, once per process: a record made by other rules (an
    upgrade, an edited checkout) is not adopted. None when they cannot be read (then nothing is recorded)."""
    from .schema import SCHEMA_FILE

    h = hashlib.sha256()
    try:
        for name in _RULES_SOURCES:
            h.update(Path(__file__).with_name(name).read_bytes())
        h.update((_settings.schemas_dir() / SCHEMA_FILE).read_bytes())
    except OSError:
        return None
    return h.hexdigest()


def _plain_key(k) -> bool:
    return isinstance(k, str) or (isinstance(k, int) and not isinstance(k, bool))


def _record_asset(i: int, row) -> Asset:
    fmt, link, url, sha, filename, index, size = row
    # `type(...) is`: exact types, spelt out (this runs for every asset of every warm pull)
    if not (
        type(fmt) is str
        and type(link) is str
        and type(url) is str
        and plain_name(filename)  # a name in the view directory, never a path out of it
        and type(sha) is str
        and (SHA256_RE.match(sha) or SHA256_PREFIX_RE.match(sha))
        and type(index) is int
        and index == i
        and (size is None or (type(size) is int and size >= 0))
    ):
        raise ValueError(row)
    return Asset(fmt, link, url, sha, filename, index, size)


def _record_problem(row) -> Problem:
    path, line, col, severity, rule, message, keypath = row
    if not (
        all(isinstance(v, str) for v in (path, severity, rule, message))
        and all(isinstance(v, int) and not isinstance(v, bool) for v in (line, col))
        and isinstance(keypath, list)
        and all(_plain_key(k) for k in keypath)
    ):
        raise ValueError(row)
    return Problem(path, line, col, severity, rule, message, tuple(keypath))


class Registry:
    """Where cards live: LocalRegistry (a directory) or HttpRegistry (a tree served over HTTP with its index.json).

    Every kind answers the same questions: `ids()`, `entry(id)`, `resolve(name)` and `index()`, the
    registry's index document (what list and search read)."""

    location: str

    def ids(self) -> list[str]:
        """Every card id of the registry, sorted."""
        raise NotImplementedError

    def entry(self, card_id: str) -> Entry:
        """The card of an exact id; raises NotFoundError (with suggestions) when there is none."""
        raise NotImplementedError

    def index(self) -> Index:
        """The registry's index (index.py), read or built once per process."""
        raise NotImplementedError

    def forget(self) -> None:
        """Drop what this process holds of the registry's index, so the next use reads it again."""

    def short_names(self) -> ShortNames:
        """The short-name lookup of this registry's ids."""
        return ShortNames(self.ids())

    def matches(self, name: str) -> list[str]:
        """The ids whose last part is `name`."""
        return self.short_names().matches(name)

    def declared_versions(self, ids: list[str]) -> dict[str, str | None]:
        """The mindspore-version each of these cards declares (None if it has none or cannot be read)."""
        raise NotImplementedError

    def id_of(self, path: Path) -> str | None:
        """The id a card file on disk has in this registry, or None when the file is not in it."""
        return None

    def resolve(self, name: str, mindspore_version: str | None = None) -> Entry:
        """The card `name` means; `mindspore_version` (a version or specifier) picks among a short name's cards."""
        name = check_name(name)
        if "/" in name:
            return _check_wanted(self.entry(name), mindspore_version)
        ids = self.matches(name)
        if not ids:
            raise self._unknown(name)
        if len(ids) == 1 and mindspore_version is None:
            return self.entry(ids[0])
        choice = _versions.choose(name, self.declared_versions(ids), wanted=mindspore_version, location=self.location)
        entry = self.entry(choice.id)
        if len(ids) > 1:
            entry.choice = choice
            _log.info("%s", choice)
        return entry

    def _unknown(self, name: str) -> NotFoundError:
        hint = self.short_names().hint(name, "`registry list` shows the models it has")
        return NotFoundError(f"no model {name!r} in registry {self.location}{hint}")


_LOCAL_INDEXES: dict[Path, Index] = {}


class LocalRegistry(Registry):
    """A directory of cards; its index is built from the tree once per process."""

    def __init__(self, root: str | os.PathLike, settings: _settings.Settings | None = None):
        if not Path(root).is_dir():  # checked first: resolve() raises on a symlink loop before Python 3.13
            raise UsageError(f"registry {root} is not a directory: pass a directory of cards or an http(s) URL")
        self.root = Path(root).resolve()
        self.location = str(self.root)
        self.settings = settings or _settings.current()
        self._ids: list[str] | None = None

    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = sorted(
                rel[:-3] for rel in walk_markdown(self.root) if is_card_filename(posixpath.basename(rel))
            )
        return self._ids

    def card_path(self, card_id: str) -> Path:
        # Not with_suffix: ids such as albert_squadv1.1 contain dots.
        *parents, stem = check_name(card_id).split("/")
        return self.root.joinpath(*parents, stem + ".md")

    def declared_versions(self, ids: list[str]) -> dict[str, str | None]:
        # Read leniently: one unreadable card must not make its name unresolvable (it has no version).
        return {i: _declared(parse_file(self.card_path(i)).fields) for i in ids}

    def entry(self, card_id: str) -> Entry:
        path = self.card_path(card_id)
        if not path.is_file():
            raise self._unknown(card_id)
        return entry_from_file(path, card_id, registry=self)

    def id_of(self, path: Path) -> str | None:
        try:
            return path.resolve().relative_to(self.root).with_suffix("").as_posix()
        except ValueError:
            return None

    def index(self) -> Index:
        if self.root not in _LOCAL_INDEXES:  # a fresh index.json, else cached parses (parse_cache.py)
            _LOCAL_INDEXES[self.root] = local_index(self.root, self.settings)
        return _LOCAL_INDEXES[self.root]

    def forget(self) -> None:
        _LOCAL_INDEXES.pop(self.root, None)


# One index per URL and cache directory per process: resolve() and pull() may each open the registry.
_REMOTE_INDEXES: dict[tuple[str, str], Index | ShardedIndex] = {}
_REMOTE_LOCK = threading.Lock()


def forget_remote_indexes() -> None:
    """Drop the indexes read in this process, so the next use revalidates them with the server."""
    with _REMOTE_LOCK:
        _REMOTE_INDEXES.clear()


class HttpRegistry(Registry):
    """A registry tree served over HTTP(S): `base_url/index.json` plus the cards it lists."""

    def __init__(self, base_url: str, settings: _settings.Settings | None = None):
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.location = mask_passwords(base_url)  # what messages name; requests use base_url
        self.index_url = urljoin(base_url, INDEX_NAME)
        self.settings = settings or _settings.current()
        self.cache_dir = self.settings.home / "registries" / hashlib.sha256(base_url.encode()).hexdigest()
        self._session = None

    # -- HTTP
    def _get(self, url: str, limit: int, headers: dict | None = None) -> tuple[object, bytes]:
        """(response, body) of a GET; a body over `limit` bytes is refused, so a wrong URL or a hostile server
        cannot fill the memory."""
        import requests

        if self._session is None:
            self._session = retrying_session(self.settings)
        try:
            with self._session.get(
                url, headers=headers, stream=True, timeout=(self.settings.connect_timeout, self.settings.read_timeout)
            ) as resp:
                body = bytearray()
                guard = SpeedGuard(self.settings)
                # read1: what one read brought, so a trickling server meets the speed limit, not an endless wait
                while chunk := resp.raw.read1(1 << 16, decode_content=True):
                    body += chunk
                    if len(body) > limit:
                        raise TransferError(
                            f"{url} is over {limit:,} bytes, too large for what it should be: check the registry URL"
                        )
                    if cause := guard.slow(len(chunk)):
                        raise TransferError(f"cannot fetch {url}: {cause}; check the registry URL and your network")
                return resp, bytes(body)
        except (requests.RequestException, OSError) as exc:
            raise TransferError(
                f"cannot fetch {url}: {network_reason(exc)}; check the registry URL and your network"
            ) from None
        except Exception as exc:  # urllib3/http.client protocol errors while reading the body
            if exc.__class__.__module__.split(".")[0] in ("urllib3", "http"):
                raise TransferError(
                    f"cannot fetch {url}: {network_reason(exc)}; check the registry URL and your network"
                ) from None
            raise

    # -- index
    def index(self) -> Index | ShardedIndex:
        key = (self.index_url, str(self.cache_dir))
        with _REMOTE_LOCK:
            if key not in _REMOTE_INDEXES:
                _REMOTE_INDEXES[key] = self._load_index()
            return _REMOTE_INDEXES[key]

    def _load_index(self) -> Index | ShardedIndex:
        if (sharded := open_remote(self)) is not None:  # a sharded registry (index/root.json), read shard by shard
            return sharded
        cached, meta = self.cache_dir / INDEX_NAME, self.cache_dir / "index.meta.json"
        have = cached.is_file()
        if self.settings.offline:
            index = self._read_cached(cached, meta) if have else None
            if index is None:
                raise OfflineError(
                    f"offline and the index of registry {self.base_url} is not cached: "
                    "use the registry once online, or unset REGISTRY_OFFLINE"
                )
            return index
        etag = self._cached_etag(cached, meta) if have else ""
        try:
            resp, body = self._get(self.index_url, MAX_INDEX_BYTES, {"If-None-Match": etag} if etag else None)
        except TransferError as exc:
            index = self._read_cached(cached, meta) if have else None
            if index is None:
                raise
            warnings.warn(f"{exc.message.split(';')[0]}; using the cached index", RegistryWarning, stacklevel=2)
            return index
        if resp.status_code == 304 and have:
            if (index := self._read_cached(cached, meta)) is not None:
                return index
            resp, body = self._get(self.index_url, MAX_INDEX_BYTES)  # the copy it validated was damaged
        if resp.status_code == 404:
            raise UsageError(
                f"{self.index_url} does not exist (HTTP 404): {self.base_url} is not a registry, "
                "or its index is missing (create it with `registry index DIR`)"
            )
        if resp.status_code != 200:
            if (index := self._read_cached(cached, meta) if have else None) is not None:
                warnings.warn(
                    f"{mask_passwords(self.index_url)} answered HTTP {resp.status_code}; using the cached index",
                    RegistryWarning,
                    stacklevel=2,
                )
                return index
            raise TransferError(f"cannot fetch {self.index_url}: HTTP {resp.status_code} {resp.reason}")
        index = parse_index(body, self.index_url)
        self._keep_with_etag(cached, meta, body, resp.headers.get("ETag", ""), mask_passwords(self.index_url))
        return index

    @staticmethod
    def _keep_with_etag(cached: Path, meta: Path, body: bytes, etag: str, shown: str) -> None:
        """Keep a fetched index (index.json or the shards' root) and its ETag for revalidation by the next process."""
        try:
            meta.unlink(missing_ok=True)  # first: a meta never describes other bytes than the cached file
            write_atomic(cached, body)
            if etag:
                write_atomic(meta, json.dumps({"etag": etag, "sha256": hashlib.sha256(body).hexdigest()}).encode())
        except OSError as exc:  # a full disk or a read-only cache: the index is read, only not kept for next time
            _log.warning(
                f"could not keep a copy of {shown} in the cache ({exc.strerror or exc}); "
                "the next command fetches it again"
            )

    @staticmethod
    def _cached_etag(cached: Path, meta: Path) -> str:
        """The ETag of a cached index (index.json or root.json), if it still describes those bytes (another process may
        have replaced one file and not yet the other): else "" and the index is fetched whole."""
        try:
            info = json.loads(meta.read_bytes())
            if info["sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest():
                return str(info["etag"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return ""

    def _read_cached(self, path: Path, meta: Path) -> Index | None:
        return read_cached(path, meta, mask_passwords(self.index_url), parse_index)

    # -- Registry API
    def forget(self) -> None:
        forget_remote_indexes()

    def ids(self) -> list[str]:
        return self.index().ids

    def short_names(self) -> ShortNames:
        return self.index().names

    def declared_versions(self, ids: list[str]) -> dict[str, str | None]:
        # The index records the fields: choosing among versions fetches no card.
        return {i: self.index().by_id[i]["fields"].get("mindspore-version") for i in ids}

    def _index_source(self) -> str:
        """Where the index in use was read (index.json, or the sharded root), for messages."""
        return mask_passwords(getattr(self.index(), "source", None) or self.index_url)

    def card_url(self, record: dict) -> str:
        try:
            rel = check_name(record["path"])
        except UsageError:  # the index, not the user, gave this path
            raise UsageError(
                f"the index {self._index_source()} gives card {record['id']} the path {record['path']!r}, "
                "which leaves the registry: regenerate the index with `registry index DIR`"
            ) from None
        return urljoin(self.base_url, quote(rel + ".md"))

    def entry(self, card_id: str) -> Entry:
        record = self.index().by_id.get(card_id)
        if record is None:
            raise self._unknown(card_id)
        url = self.card_url(record)
        expected = record.get("sha256")
        if not expected:
            raise CardError(
                f"card {card_id} could not be indexed on {self.base_url}: "
                f"{'; '.join(record.get('problems') or ['no sha256 in the index'])}"
            )
        raw = self._card_bytes(url, expected)
        shown = mask_passwords(url)
        return Entry(card_id, None, shown, parent_url(url), self, raw=raw)

    def _card_bytes(self, url: str, expected: str) -> bytes:
        cached = self.cache_dir / "cards" / f"{expected}.md"
        if cached.is_file():
            raw = cached.read_bytes()
            if hashlib.sha256(raw).hexdigest() == expected:
                return raw
            cached.unlink(missing_ok=True)  # damaged cache entry: fetch it again
        if self.settings.offline:
            raise OfflineError(f"offline and card {url} is not cached: use it once online, or unset REGISTRY_OFFLINE")
        resp, raw = self._get(url, MAX_CARD_BYTES)
        if resp.status_code != 200:
            raise TransferError(
                f"cannot fetch card {url}: HTTP {resp.status_code} {resp.reason}; "
                f"the index {self._index_source()} lists it, so the server tree and its index differ"
            )
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected:
            raise IntegrityError(
                f"card {url} has sha256 {actual} but the index {self._index_source()} says {expected}: "
                "the card was changed after indexing; refusing it (regenerate the index if the change is yours)"
            )
        try:
            # No fsync: a cached card is hashed again each time it is read, so a copy torn by a crash is refetched.
            write_atomic(cached, raw, durable=False)
        except OSError as exc:  # a full disk or a read-only cache: the card is verified, only not kept
            _log.warning(f"could not keep a copy of card {mask_passwords(url)} in the cache ({exc.strerror or exc})")
        return raw


def entry_from_url(url: str, settings: _settings.Settings | None = None) -> Entry:
    """The card at an http(s) URL (`.../NAME.md`), fetched as a remote registry's cards are (same session,
    same size limit); its id is NAME and its relative links resolve against the URL. There is no index to
    check it against and it is not cached: it is fetched each time, and not at all offline."""
    settings = settings or _settings.current()
    filename = posixpath.basename(unquote(urlsplit(url).path))
    try:
        card_id = check_name(filename) if filename.endswith(".md") else ""
    except UsageError:
        card_id = ""
    if not card_id:
        raise UsageError(f"{url} is not the URL of a card: it must name the card file, e.g. https://host/path/NAME.md")
    if settings.offline:
        raise OfflineError(
            f"offline and {url} is a card URL, which is fetched each time: unset REGISTRY_OFFLINE, "
            "or use the card from a registry (REGISTRY_URL) that was used once online"
        )
    base = parent_url(url)
    resp, raw = HttpRegistry(base, settings)._get(url, MAX_CARD_BYTES)
    if resp.status_code in (404, 410):
        raise NotFoundError(f"there is no card at {url} (HTTP {resp.status_code}): check the URL")
    if resp.status_code != 200:
        raise TransferError(f"cannot fetch card {url}: HTTP {resp.status_code} {resp.reason}")
    return Entry(card_id, None, url, base, None, raw=raw)


def _check_wanted(entry: Entry, mindspore_version: str | None) -> Entry:
    """A card named exactly (id, path or URL) is used as it is, but not against an explicit version."""
    if mindspore_version is not None:
        version = _versions.card_version(_declared(entry.fields), entry.id)
        if not _versions.satisfies(_versions.spec(mindspore_version), version):
            raise NotFoundError(
                f"card {entry.id} is for MindSpore {version or '(no version)'}, not {mindspore_version}: "
                "give its short name to choose by version, or drop the version"
            )
    return entry


def _declared(fields: dict) -> str | None:
    value = fields.get("mindspore-version")
    return None if value is None else str(value)


def entry_from_file(path: Path, card_id: str | None = None, registry: Registry | None = None) -> Entry:
    """The Entry of a card file (its id: `card_id`, else the file's stem); raises UsageError when the file cannot be read as text."""
    shown = str(path)
    raw = read_file(path, shown)
    unreadable = raw if isinstance(raw, Card) else decode(raw, shown)  # the text itself is parsed when used
    if isinstance(unreadable, Card):
        raise UsageError(unreadable.problems[0].format())
    return Entry(card_id or path.stem, None, shown, path.parent.resolve().as_uri() + "/", registry, raw=raw)


def open_registry(
    location: str | os.PathLike | Registry | None = None, settings: _settings.Settings | None = None
) -> Registry:
    """A registry from an explicit location, else settings.registry_url (REGISTRY_URL), else the embedded one.

    `settings` (default: read now) travel with the registry: offline mode, token, timeouts, cache home.
    Raises UsageError for a location that is not a directory or an http(s) URL."""
    if isinstance(location, Registry):
        return location
    settings = settings or _settings.current()
    text = str(location or settings.registry_url or _settings.embedded_registry())
    if text.startswith(("http://", "https://")):
        return HttpRegistry(text, settings)
    if text.startswith("file://"):
        text = unquote(urlsplit(text).path)
    return LocalRegistry(text, settings)


def resolve(
    name: str,
    registry: str | os.PathLike | Registry | None = None,
    *,
    mindspore_version: str | None = None,
    source: str = "gitee",
    settings: _settings.Settings | None = None,
) -> Entry:
    """The card a user means by `name`: a full id, a short name, a path to a `.md` file or a card URL.

    `mindspore_version` (a version or specifier) picks among the cards of a short name; `source` is
    mindspore_hub's: "gitee"/"github" (the default reading) or "local" (`name` is a card file path);
    `settings` (default: read now) reach the registry (offline mode, token, cache).
    Returns the Entry; raises NotFoundError (unknown or ambiguous name), UsageError (a bad name or path),
    OfflineError, TransferError, IntegrityError (a remote card that differs from its index)."""
    if source not in SOURCES:
        raise UsageError(
            f"source={source!r} is not one of {', '.join(map(repr, SOURCES))}: 'local' reads a card file, "
            "'gitee' or 'github' the configured registry (REGISTRY_URL or registry=)"
        )
    if source == "local":
        path = Path(os.path.expanduser(name)) if isinstance(name, (str, os.PathLike)) else None
        if path is None or not path.is_file():
            raise MissingFileError(
                f"no card file {name}: with source='local' the name is the path of a card (.md) file"
            )
        name = path
    if isinstance(name, str) and name.startswith(("http://", "https://")):
        return _check_wanted(entry_from_url(name, settings), mindspore_version)
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".md") and os.path.isfile(name)):
        path = Path(name)
        reg = open_registry(registry, settings) if registry is not None else None
        card_id = reg.id_of(path) if reg is not None else None
        return _check_wanted(entry_from_file(path, card_id, reg), mindspore_version)
    if isinstance(name, str) and name.endswith(".md"):
        try:
            check_name(name)
        except UsageError:  # not an id (`../x.md`, `/abs/x.md`): a path to a card file that is not there
            raise MissingFileError(f"no card file {name}: check the path") from None
    return open_registry(registry, settings).resolve(name, mindspore_version)
