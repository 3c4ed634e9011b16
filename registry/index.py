"""The index of a registry tree, remote (HTTP) registries, and the list/search/info commands.

`registry index DIR` writes `DIR/index.json`, one JSON document describing every card of the tree.
A registry hosted on any static HTTP server (nginx, an S3 website, a CDN, a mirror) is the same tree
plus that file: clients read the index once and fetch only the cards they need, each verified
against the sha256 the index gives for it.

Format (version 1). Output is deterministic: the same tree gives the same bytes (keys and ids
sorted, no timestamps, `indent=1`, UTF-8, a final newline).

    {
     "format": 1,
     "cards": [                       # one record per card, sorted by id
      {
       "id": "mindspore/1.8/ssd_mobilenetv1_coco2017",
       "path": "mindspore/1.8/ssd_mobilenetv1_coco2017.md",   # relative to the registry root
       "sha256": "<hex of the card file's bytes>",            # null if the file could not be read
       "size": 2071,                                          # bytes of the card file
       "fields": {"model-name": "...", ...},                  # SEARCH_FIELDS present in the card, as text
       "assets": [{"file-format": "ckpt", "link": "<as written>", "sha256": "<declared>",
                   "size": null}],                            # size measured for links inside the tree
       "problems": ["17:13: yaml-syntax: ..."],               # parse errors; [] for a sound card
       "translations": ["mindspore/1.8/..._cn.md"]            # localized twins, when the tree has some
      }
     ],
     "collisions": {"alexnet_cifar10": ["mindspore/1.10/alexnet_cifar10", ...]},  # short names of several ids
     "counts": {"cards": 2905, "invalid": 168, "translations": 10, "collisions": 535}
    }

Cards that fail to parse stay in the index with their problems, so the index covers the whole tree
and a remote client reports the same error a local one would.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import sys
import textwrap
import threading
from pathlib import Path
from typing import Iterable, TextIO
from urllib.parse import quote, unquote, urljoin, urlsplit

from . import settings as _settings
from . import versions
from .card import MAX_CARD_BYTES, Card, parse_bytes, parse_file
from .text import mask_passwords, printable, printable_json
from .catalog import SHA256_RE, Entry, LocalRegistry, Registry, check_name, is_localized, open_registry, walk_markdown
from .errors import CardError, IntegrityError, NotFoundError, OfflineError, TransferError, UsageError
from .cache import write_atomic
from .local_assets import inside, local_path
from .transfer import _SpeedGuard, http_session, network_reason

_log = logging.getLogger("registry")
FORMAT = 1
INDEX_NAME = "index.json"
MAX_INDEX_BYTES = 256 << 20  # the 2,905-card corpus indexes to 2.4 MB; this is room for ~100x that
MAX_INDEX_CONTAINERS = 1_000_000  # JSON objects + lists: ~200,000 cards (the corpus index has 14,884, 5 a card)
SEARCH_FIELDS = ("model-name", "backbone-name", "module-type", "train-dataset", "mindspore-version", "user-id",
                 "train-backend", "infer-backend", "summary", "update-time")


# --------------------------------------------------------------------------- building an index


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(t for t in map(_text, value) if t is not None)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _local_size(link: str, card_dir: Path, root: Path) -> int | None:
    """Size of an asset stored in the tree itself (relative or file: link), else None."""
    found = local_path(link, card_dir)
    if found is None or not inside(found[0], root):  # a published index tells nothing about files beside the tree
        return None
    try:
        return found[0].stat().st_size if found[0].is_file() else None
    except OSError:
        return None


def _asset_records(card: Card, card_dir: Path, root: Path) -> list[dict]:
    items = card.fields.get("asset")
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if not isinstance(item, dict):  # reported by `registry validate`; nothing to index
            continue
        link = _text(item.get("asset-link")) or ""
        out.append({"file-format": _text(item.get("file-format")) or "", "link": link,
                    "sha256": (_text(item.get("asset-sha256")) or "").strip().lower(),
                    "size": _local_size(link, card_dir, root)})
    return out


def card_record(root: Path, rel: str) -> dict:
    """The index record of the card at `rel` (a POSIX path relative to `root`)."""
    path = root / rel
    record = {"id": rel[:-3], "path": rel, "sha256": None, "size": None, "fields": {}, "assets": [], "problems": []}
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        record["problems"].append(f"0:0: read-error: cannot read the file: {exc.strerror or exc}")
        return record
    if len(raw) > MAX_CARD_BYTES:
        card = parse_file(path, rel)  # reports the size limit without hashing a huge file
    else:
        record["sha256"] = hashlib.sha256(raw).hexdigest()
        record["size"] = len(raw)
        card = parse_bytes(raw, rel)
    record["fields"] = {k: t for k in SEARCH_FIELDS if (t := _text(card.fields.get(k))) is not None}
    record["assets"] = _asset_records(card, path.parent, root)
    record["problems"] = [f"{p.line}:{p.col}: {p.rule}: {p.message}" for p in card.problems if p.severity == "error"]
    return record


def walk_tree(root: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Card paths and, per card path, its localized twins; the same rules as LocalRegistry.ids()."""
    cards, twins = [], {}
    for rel in walk_markdown(root):
        if is_localized(rel):
            twins.setdefault(rel[: -len("_cn.md")] + ".md", []).append(rel)
        else:
            cards.append(rel)
    return sorted(cards, key=lambda rel: rel[:-3]), twins  # ordered by id, as LocalRegistry.ids()


def build_index(root: str | os.PathLike) -> dict:
    if not Path(root).is_dir():  # checked first: resolve() raises on a symlink loop before Python 3.13
        raise UsageError(f"{root} is not a directory: give the root of a registry tree (USER/[BACKEND/]VERSION/NAME.md)")
    root = Path(root).resolve()
    paths, twins = walk_tree(root)
    cards = []
    for rel in paths:
        record = card_record(root, rel)
        if rel in twins:
            record["translations"] = sorted(twins[rel])
        cards.append(record)
    by_name: dict[str, list[str]] = {}
    for record in cards:
        by_name.setdefault(record["id"].rsplit("/", 1)[-1], []).append(record["id"])
    collisions = {name: ids for name, ids in by_name.items() if len(ids) > 1}
    return {
        "format": FORMAT,
        "cards": cards,
        "collisions": collisions,
        "counts": {"cards": len(cards), "invalid": sum(1 for c in cards if c["problems"]),
                   "translations": sum(len(c.get("translations", ())) for c in cards), "collisions": len(collisions)},
    }


def dumps_index(data: dict) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _record_flaw(r) -> str | None:
    """What makes an index record unusable, if anything. The sha256 names a file in the card cache,
    so it must be a digest; the other fields are what list, search and info read."""
    if not (isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("path"), str)):
        return "a card record lacks its id or path"
    sha, fields, assets, problems = r.get("sha256"), r.get("fields"), r.get("assets"), r.get("problems")
    if sha is not None and not (isinstance(sha, str) and SHA256_RE.match(sha)):
        return f"card {r['id']} has sha256 {sha!r}, not 64 hex digits"
    if not (isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values())):
        return f"the fields of card {r['id']} are not a mapping of texts"
    if not (isinstance(assets, list) and all(isinstance(a, dict) and isinstance(a.get("file-format"), str) for a in assets)):
        return f"the assets of card {r['id']} are not a list of records with a file-format"
    if not (isinstance(problems, list) and all(isinstance(p, str) for p in problems)):
        return f"the problems of card {r['id']} are not a list of texts"
    return None


class Index:
    """An index document with lookups by id and by short name."""

    def __init__(self, data: dict, source: str):
        if not isinstance(data, dict) or not isinstance(data.get("cards"), list):
            raise UsageError(f"{source} is not a registry index (no list of cards): regenerate it with `registry index DIR`")
        if data.get("format") != FORMAT:
            raise UsageError(f"{source} has index format {data.get('format')!r}; this tool reads format {FORMAT}: "
                             "upgrade registry or regenerate the index with this version")
        records = data["cards"]
        for r in records:
            flaw = _record_flaw(r)
            if flaw:
                raise UsageError(f"{source} is not a registry index ({flaw}): regenerate it with `registry index DIR`")
        self.data = data
        self.source = source
        self.records: list[dict] = records
        self.by_id = {r["id"]: r for r in records}
        self.by_name: dict[str, list[str]] = {}
        for r in self.records:
            self.by_name.setdefault(r["id"].rsplit("/", 1)[-1], []).append(r["id"])

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]


_LOCAL_INDEXES: dict[Path, Index] = {}


def registry_index(registry: Registry) -> Index:
    """The index of any registry: a remote one's index.json, or a local tree indexed once per process."""
    if isinstance(registry, HttpRegistry):
        return registry.index
    if isinstance(registry, LocalRegistry):
        if registry.root not in _LOCAL_INDEXES:
            _LOCAL_INDEXES[registry.root] = Index(build_index(registry.root), str(registry.root))
        return _LOCAL_INDEXES[registry.root]
    raise UsageError(f"registry {registry.location} cannot be listed: it is neither a directory nor an http(s) URL")


# --------------------------------------------------------------------------- remote registries


def _session(settings: _settings.Settings):
    """The transfer engine's session (token rule, User-Agent) with urllib3 retries for these small GETs."""
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = http_session(settings)
    retry = Retry(total=settings.retries, connect=settings.retries, read=settings.retries, backoff_factor=0.1,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=frozenset({"GET"}),
                  raise_on_status=False, respect_retry_after_header=True)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


# One index per URL and cache directory per process: resolve() and pull() may each open the registry.
_REMOTE_INDEXES: dict[tuple[str, str], Index] = {}
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
            self._session = _session(self.settings)
        try:
            with self._session.get(url, headers=headers, stream=True,
                                   timeout=(self.settings.connect_timeout, self.settings.read_timeout)) as resp:
                body = bytearray()
                guard = _SpeedGuard(self.settings)
                # read1: what one read brought, so a trickling server meets the speed limit, not an endless wait
                while chunk := resp.raw.read1(1 << 16, decode_content=True):
                    body += chunk
                    if len(body) > limit:
                        raise TransferError(f"{url} is over {limit:,} bytes, too large for what it should be: "
                                            "check the registry URL")
                    if cause := guard.slow(len(chunk)):
                        raise TransferError(f"cannot fetch {url}: {cause}; check the registry URL and your network")
                return resp, bytes(body)
        except (requests.RequestException, OSError) as exc:
            raise TransferError(f"cannot fetch {url}: {network_reason(exc)}; check the registry URL and your network") from None
        except Exception as exc:  # urllib3/http.client protocol errors while reading the body
            if exc.__class__.__module__.split(".")[0] in ("urllib3", "http"):
                raise TransferError(f"cannot fetch {url}: {network_reason(exc)}; check the registry URL and your network") from None
            raise

    # -- index
    @property
    def index(self) -> Index:
        key = (self.index_url, str(self.cache_dir))
        with _REMOTE_LOCK:
            if key not in _REMOTE_INDEXES:
                _REMOTE_INDEXES[key] = self._load_index()
            return _REMOTE_INDEXES[key]

    def _load_index(self) -> Index:
        cached, meta = self.cache_dir / INDEX_NAME, self.cache_dir / "index.meta.json"
        have = cached.is_file()
        if self.settings.offline:
            if not have:
                raise OfflineError(f"offline and the index of registry {self.base_url} is not cached: "
                                   "use the registry once online, or unset REGISTRY_OFFLINE")
            return self._read_cached(cached)
        etag = self._cached_etag(cached, meta) if have else ""
        try:
            resp, body = self._get(self.index_url, MAX_INDEX_BYTES, {"If-None-Match": etag} if etag else None)
        except TransferError as exc:
            if not have:
                raise
            print(printable(f"registry: warning: {exc.message.split(';')[0]}; using the cached index"), file=sys.stderr)
            return self._read_cached(cached)
        if resp.status_code == 304 and have:
            return self._read_cached(cached)
        if resp.status_code == 404:
            raise UsageError(f"{self.index_url} does not exist (HTTP 404): {self.base_url} is not a registry, "
                             "or its index is missing (create it with `registry index DIR`)")
        if resp.status_code != 200:
            if have:
                print(f"registry: warning: {mask_passwords(self.index_url)} answered HTTP {resp.status_code}; "
                      "using the cached index", file=sys.stderr)
                return self._read_cached(cached)
            raise TransferError(f"cannot fetch {self.index_url}: HTTP {resp.status_code} {resp.reason}")
        index = self._parse_index(body, self.index_url)
        try:
            meta.unlink(missing_ok=True)  # first: a meta never describes other bytes than the cached index
            write_atomic(cached, body)
            new_etag = resp.headers.get("ETag", "")
            if new_etag:
                write_atomic(meta, json.dumps({"etag": new_etag, "sha256": hashlib.sha256(body).hexdigest()}).encode())
        except OSError as exc:  # a full disk or a read-only cache: the index is read, only not kept for next time
            _log.warning(f"could not keep a copy of {mask_passwords(self.index_url)} in the cache ({exc.strerror or exc}); "
                         "the next command fetches it again")
        return index

    @staticmethod
    def _cached_etag(cached: Path, meta: Path) -> str:
        """The ETag of the cached index, if it still describes those bytes (another process may
        have replaced one file and not yet the other): else "" and the index is fetched whole."""
        try:
            info = json.loads(meta.read_bytes())
            if info["sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest():
                return str(info["etag"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return ""

    def _read_cached(self, path: Path) -> Index:
        return self._parse_index(path.read_bytes(), f"{path} (cached copy of {self.index_url})")

    @staticmethod
    def _parse_index(raw: bytes, source: str) -> Index:
        # What a server sends is bounded before it is parsed: objects and lists (each costs memory however
        # small its text; 120 MiB of `{}` once took 3 GiB), and nesting (a RecursionError in the parser).
        containers = raw.count(b"{") + raw.count(b"[")
        if containers > MAX_INDEX_CONTAINERS:
            raise UsageError(f"{source} holds {containers:,} JSON objects and lists, over the {MAX_INDEX_CONTAINERS:,} "
                             "an index of this tool may have: check the registry URL, or split the registry")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UsageError(f"{source} is not valid JSON ({exc}): regenerate it with `registry index DIR`") from None
        except RecursionError:
            raise UsageError(f"{source} nests JSON deeper than an index ever does: it is not a registry index; "
                             "check the registry URL") from None
        return Index(data, source)

    # -- Registry API
    def ids(self) -> list[str]:
        return self.index.ids

    def matches(self, name: str) -> list[str]:
        return list(self.index.by_name.get(name, ()))

    def declared_versions(self, ids: list[str]) -> dict[str, str | None]:
        # The index records the fields: choosing among versions fetches no card.
        return {i: self.index.by_id[i]["fields"].get("mindspore-version") for i in ids}

    def card_url(self, record: dict) -> str:
        try:
            rel = check_name(record["path"])
        except UsageError:  # the index, not the user, gave this path
            raise UsageError(f"the index {self.index_url} gives card {record['id']} the path {record['path']!r}, "
                             "which leaves the registry: regenerate the index with `registry index DIR`") from None
        return urljoin(self.base_url, quote(rel + ".md"))

    def entry(self, card_id: str) -> Entry:
        record = self.index.by_id.get(card_id)
        if record is None:
            raise self._unknown(card_id)
        url = self.card_url(record)
        expected = record.get("sha256")
        if not expected:
            raise CardError(f"card {card_id} could not be indexed on {self.base_url}: "
                            f"{'; '.join(record.get('problems') or ['no sha256 in the index'])}")
        raw = self._card_bytes(url, expected)
        shown = mask_passwords(url)
        return Entry(card_id, parse_bytes(raw, shown), shown, url.rsplit("/", 1)[0] + "/", self)

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
            raise TransferError(f"cannot fetch card {url}: HTTP {resp.status_code} {resp.reason}; "
                                f"the index {self.index_url} lists it, so the server tree and its index differ")
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected:
            raise IntegrityError(f"card {url} has sha256 {actual} but the index {self.index_url} says {expected}: "
                                 "the card was changed after indexing; refusing it (regenerate the index if the change is yours)")
        try:
            write_atomic(cached, raw)
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
        raise OfflineError(f"offline and {url} is a card URL, which is fetched each time: unset REGISTRY_OFFLINE, "
                           "or use the card from a registry (REGISTRY_URL) that was used once online")
    base = url.rsplit("/", 1)[0] + "/"
    resp, raw = HttpRegistry(base, settings)._get(url, MAX_CARD_BYTES)
    if resp.status_code in (404, 410):
        raise NotFoundError(f"there is no card at {url} (HTTP {resp.status_code}): check the URL")
    if resp.status_code != 200:
        raise TransferError(f"cannot fetch card {url}: HTTP {resp.status_code} {resp.reason}")
    return Entry(card_id, parse_bytes(raw, url), url, base, None)


def forget_index(registry: Registry) -> None:
    """Drop the index this process holds for `registry`, so the next use reads it again."""
    if isinstance(registry, HttpRegistry):
        forget_remote_indexes()
    elif isinstance(registry, LocalRegistry):
        _LOCAL_INDEXES.pop(registry.root, None)


def by_version(records: Iterable[dict]) -> list[dict]:
    """Index records oldest MindSpore version first (as versions: 1.9 before 1.10), then by id."""
    return sorted(records, key=lambda r: versions.sort_key(r["fields"].get("mindspore-version"), r["id"]))


def hub_list(version: str | None = None, force_reload: bool = False, *, registry=None) -> list[str]:
    """mindspore_hub's `hub_list`: the ids of the registry's cards, in `registry list` order.

    `version` keeps the cards for a MindSpore version or specifier ("1.8", ">=2"); the hub's branch
    names are understood ("master": all, "r1.8": 1.8). `force_reload` reads the index again.
    `registry` is a registry location (default: REGISTRY_URL, else the embedded one)."""
    if version is not None and not isinstance(version, str):
        raise UsageError(f"hub_list(version={version!r}): give a MindSpore version such as '1.8', or None for all")
    reg = open_registry(registry)
    if force_reload:
        forget_index(reg)
    wanted = None if version in (None, "", "master") else re.sub(r"^r(?=\d)", "", version.strip())
    return [r["id"] for r in by_version(select(registry_index(reg).records, mindspore_version=wanted))]


# --------------------------------------------------------------------------- search


def _task_ok(task: str, module_type: str) -> bool:
    # "cv" matches cv and cv-classification but not cvtmodel; "detection" matches cv-object_detection.
    return re.search(rf"(^|[-_ ]){re.escape(task)}($|[-_ ])", module_type) is not None


def select(records: Iterable[dict], text: str | None = None, *, dataset: str | None = None, backbone: str | None = None,
           task: str | None = None, file_format: str | None = None, backend: str | None = None,
           mindspore_version: str | None = None) -> list[dict]:
    """Index records matching every given criterion (text: all words, case-insensitive)."""
    words = (text or "").lower().split()
    spec = versions.spec(mindspore_version) if mindspore_version else None
    out = []
    for r in records:
        f = r.get("fields", {})
        if words:
            hay = " ".join([r["id"], f.get("model-name", ""), f.get("backbone-name", ""),
                            f.get("train-dataset", ""), f.get("summary", "")]).lower()
            if not all(w in hay for w in words):
                continue
        if dataset and dataset.lower() not in f.get("train-dataset", "").lower():
            continue
        if backbone and backbone.lower() not in f.get("backbone-name", "").lower():
            continue
        if task and not _task_ok(task.lower(), f.get("module-type", "").lower()):
            continue
        if file_format and file_format.lower().lstrip(".") not in {a["file-format"].lower() for a in r.get("assets", ())}:
            continue
        if backend:
            parts = r["id"].lower().split("/")  # USER/BACKEND/VERSION/NAME names a backend
            have = {f.get("train-backend", "").lower(), f.get("infer-backend", "").lower(), parts[1] if len(parts) == 4 else ""}
            have.discard("")
            if backend.lower() not in have:
                continue
        if spec is not None and not versions.satisfies(spec, versions.parse(f.get("mindspore-version") or None)):
            continue
        out.append(r)
    return out


# --------------------------------------------------------------------------- CLI


def cli_index(args, stdout: TextIO) -> int:
    root = Path(args.directory)
    data = build_index(root)
    blob = dumps_index(data)
    output = args.output or str(root / INDEX_NAME)
    report = stdout
    if output == "-":
        stdout.write(blob.decode("utf-8"))
        stdout.flush()
        report = sys.stderr
    else:
        write_atomic(Path(output), blob)
    n = data["counts"]
    where = "stdout" if output == "-" else output
    print(f"indexed {n['cards']} cards of {root} into {where}: {n['invalid']} that do not parse "
          f"(`registry validate {root}` explains them), {n['translations']} translations", file=report)
    if data["collisions"]:
        shared = sum(len(v) for v in data["collisions"].values())
        print(f"{n['collisions']} short names are shared by {shared} ids; use full ids for them:", file=report)
        for name, ids in list(data["collisions"].items())[:10]:
            more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
            print(f"  {name}: {', '.join(ids[:3])}{more}", file=report)
        if len(data["collisions"]) > 10:
            print(f"  ... {len(data['collisions']) - 10} more under \"collisions\" in the index", file=report)
    return 0


def _json_out(stdout: TextIO, data) -> None:
    stdout.write(printable_json(data) + "\n")


def _tty(stdout: TextIO) -> bool:
    return hasattr(stdout, "isatty") and stdout.isatty() and not os.environ.get("NO_COLOR")


def _width(stdout: TextIO) -> int:
    return shutil.get_terminal_size((100, 24)).columns if _tty(stdout) else 100


def _plain(text: str) -> str:
    """Card text for the terminal: it must not drive it (clear it, set its title, reorder a line)."""
    return printable(text, "\t\n")


def _table(rows: list[list[str]], header: list[str], stdout: TextIO) -> None:
    rows = [[_plain(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    bold = _tty(stdout)
    for n, row in enumerate([header, *rows]):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        stdout.write((f"\x1b[1m{line}\x1b[0m" if bold and n == 0 else line) + "\n")


def cli_list(args, stdout: TextIO) -> int:
    registry = open_registry(args.registry)
    found = by_version(select(registry_index(registry).records, getattr(args, "text", None), dataset=args.dataset,
                              backbone=args.backbone, task=args.task, file_format=args.file_format, backend=args.backend,
                              mindspore_version=args.mindspore_version))
    if args.json:
        _json_out(stdout, found)
        return 0
    rows = []
    for r in found:
        f = r["fields"]
        formats = ",".join(dict.fromkeys(a["file-format"] for a in r["assets"] if a["file-format"]))
        rows.append([r["id"], f.get("module-type", ""), f.get("train-dataset", ""), formats,
                     f.get("mindspore-version", "") or ("(invalid card)" if r["problems"] else "")])
    if rows:
        _table(rows, ["ID", "TASK", "DATASET", "FORMATS", "MINDSPORE"], stdout)
    if _tty(stdout) or not rows:
        print(f"{len(rows)} model{'s' if len(rows) != 1 else ''}", file=stdout if _tty(stdout) else sys.stderr)
    return 0


def _asset_rows(entry: Entry) -> tuple[list[dict], str | None]:
    try:
        return [{"file-format": a.file_format, "sha256": a.sha256, "link": mask_passwords(a.link),
                 "url": mask_passwords(a.url), "filename": a.filename}
                for a in entry.assets], None
    except CardError as exc:
        return [], exc.message


def cli_info(args, stdout: TextIO, entry: Entry | None = None) -> int:
    from .catalog import resolve

    entry = entry or resolve(args.name, registry=args.registry)
    if getattr(args, "tensors", False):
        return _cli_tensors(entry, args, stdout)
    card = entry.card
    assets, asset_error = _asset_rows(entry)
    problems = [p.format() for p in entry.problems() if p.blocks_use]  # cosmetic ones: warnings on stderr
    cosmetic = [p.format() for p in entry.cosmetic()]
    if asset_error:
        problems.append(asset_error)
    if args.json:
        _json_out(stdout, {"id": entry.id, "source": entry.source, "title": card.title, "fields": card.fields,
                           "assets": assets, "problems": problems, "warnings": cosmetic,
                           "sections": [{"title": s.title, "level": s.level, "text": s.text} for s in card.sections]})
        return 0
    tty = _tty(stdout)
    write = stdout.write
    head = _plain(card.title or entry.name)
    write(f"\x1b[1m{head}\x1b[0m\n" if tty else f"{head}\n{'=' * len(head)}\n")
    rows = [("id", entry.id), ("source", entry.source)]
    rows += [(k, _text(v) or "") for k, v in card.fields.items() if k != "asset"]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        write(f"{_plain(key).rjust(width)}: {_plain(value)}\n")
    for p in problems:
        write(f"{'problem'.rjust(width)}: {_plain(p)}\n")
    if assets:
        write("\n")
        _table([[str(i + 1), a["file-format"], a["sha256"], a["url"]] for i, a in enumerate(assets)],
               ["#", "FORMAT", "SHA256", "URL"], stdout)
    body = render_markdown(_plain(card.body), width=_width(stdout), tty=tty)
    if body.strip():
        write("\n" + body)
    return 0


def _cli_tensors(entry: Entry, args, stdout: TextIO) -> int:
    """`info NAME --tensors`: the parameter table of each cached ckpt/safetensors asset of the card."""
    from .cache import Cache
    from .loader import checkpoint_table

    cache = Cache.from_settings()
    out, missing = [], []
    for asset in entry.assets:
        if asset.file_format.lower() not in ("ckpt", "safetensors"):
            continue
        # The model's view, not the blob: MindSpore wants the file name's extension to match the format.
        path = cache.model_dir(entry.id) / asset.filename
        if cache.trusted(asset.sha256) is None or not path.is_file():
            missing.append(asset.filename)
            continue
        table = checkpoint_table(path, asset.file_format, f"checkpoint {asset.filename} of card {entry.id}")
        out.append({"filename": asset.filename, "file-format": asset.file_format,
                    "tensors": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in table.values()]})
    if args.json:
        _json_out(stdout, {"id": entry.id, "assets": out, "not-cached": missing})
    else:
        for item in out:
            stdout.write(f"{_plain(item['filename'])} ({item['file-format']}, {len(item['tensors'])} entries)\n")
            _table([[t["name"], "x".join(map(str, t["shape"])) or "scalar", t["dtype"]] for t in item["tensors"]],
                   ["NAME", "SHAPE", "DTYPE"], stdout)
            stdout.write("\n")
        for name in missing:
            stdout.write(f"{_plain(name)}: not cached; run `registry pull {entry.id}` first\n")
    if not out and not missing:
        raise UsageError(f"card {entry.id} has no ckpt or safetensors asset whose tensors could be listed")
    return 0


# --------------------------------------------------------------------------- Markdown for a terminal


MAX_RENDERED_BYTES = 128 << 10  # markdown-it takes up to ~20 us a byte (link brackets): ~2.5 s at this size


def render_markdown(text: str, width: int = 100, tty: bool = False) -> str:
    """Markdown as readable terminal text: headings set off, code indented, links as `text (url)`.
    A text over MAX_RENDERED_BYTES (no real card comes near) is returned as it is, after a note."""
    from markdown_it import MarkdownIt

    if len(text) > MAX_RENDERED_BYTES:
        return f"(the card's text is over {MAX_RENDERED_BYTES >> 10} KiB, shown as written)\n\n{text.strip(chr(10))}\n"

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    out: list[str] = []
    lists: list[list] = []  # per open list: [ordered, next number]
    quote_depth = 0
    cells: list[str] = []
    rows: list[list[str]] = []

    def prefix() -> str:
        return "  " * len(lists) + "> " * quote_depth

    def fill(text: str, first: str, rest: str) -> str:
        return textwrap.fill(text, width=max(20, width), initial_indent=first, subsequent_indent=rest,
                             break_long_words=False, break_on_hyphens=False) + "\n"

    marker = ""  # the bullet or number waiting for a list item's first paragraph
    for i, tok in enumerate(tokens):
        t = tok.type
        if t == "heading_open":
            title = _inline(tokens[i + 1], tty)
            if tty:
                out.append(f"\n\x1b[1;4m{title}\x1b[0m\n\n")
            else:
                out.append(f"\n{title}\n{('=' if tok.tag in ('h1', 'h2') else '-') * len(title)}\n\n")
        elif t in ("bullet_list_open", "ordered_list_open"):
            lists.append([t == "ordered_list_open", int(tok.attrs.get("start", 1) or 1)])
        elif t in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                out.append("\n")
        elif t == "list_item_open":
            ordered, number = lists[-1]
            marker = f"{number}. " if ordered else "- "
            lists[-1][1] = number + 1
        elif t == "inline" and tokens[i - 1].type == "paragraph_open":
            # Items sit one level left of their contents; the marker hangs in front of the first line.
            lead = "  " * max(0, len(lists) - 1) + "> " * quote_depth
            hang = " " * len(marker) if marker else ("   " if lists else "")
            out.append(fill(_inline(tok, tty), lead + (marker or hang), lead + hang))
            marker = ""
            if not tokens[i - 1].hidden:  # tight list items have no blank line between them
                out.append("\n")
        elif t in ("fence", "code_block"):
            code = tok.content.rstrip("\n")
            lead = prefix() + "    "
            out.append("\n".join(lead + line if line else "" for line in code.split("\n")) + "\n\n")
        elif t == "blockquote_open":
            quote_depth += 1
        elif t == "blockquote_close":
            quote_depth -= 1
        elif t == "hr":
            out.append(prefix() + "-" * min(40, width) + "\n\n")
        elif t == "html_block":
            plain = re.sub(r"<[^>]+>", "", tok.content).strip()
            if plain:
                out.append(fill(plain, prefix(), prefix()) + "\n")
        elif t == "tr_open":
            cells = []
        elif t == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            cells.append(_inline(tok, tty))
        elif t == "tr_close":
            rows.append(cells)
        elif t == "table_close":
            widths = [max(len(r[c]) if c < len(r) else 0 for r in rows) for c in range(max(map(len, rows)))]
            for n, r in enumerate(rows):
                out.append(prefix() + " | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
                if n == 0:
                    out.append(prefix() + "-+-".join("-" * w for w in widths) + "\n")
            out.append("\n")
            rows = []
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).lstrip("\n")


def _inline(token, tty: bool) -> str:
    parts: list[str] = []
    links: list[tuple[str, int]] = []  # (href, position in parts where the link text starts)
    for child in token.children or ():
        t = child.type
        if t == "text":
            parts.append(child.content)
        elif t == "code_inline":
            parts.append(f"`{child.content}`")
        elif t == "softbreak":
            parts.append(" ")
        elif t == "hardbreak":
            parts.append("\n")
        elif t == "link_open":
            links.append((child.attrs.get("href", ""), len(parts)))
        elif t == "link_close" and links:
            href, start = links.pop()
            label = "".join(parts[start:])
            if href and href != label and href != f"mailto:{label}":
                parts.append(f" ({href})")
        elif t == "image":
            alt = "".join(c.content for c in child.children or ()) or "image"
            parts.append(f"[{alt}] ({child.attrs.get('src', '')})")
        elif t in ("strong_open", "strong_close") and tty:
            parts.append("\x1b[1m" if t == "strong_open" else "\x1b[22m")
        elif t == "html_inline":
            continue
    return "".join(parts)
