"""The catalog: where cards live (a registry) and how a name becomes one card.

A registry is a tree of cards, `USER[/BACKEND]/VERSION/NAME.md`; a card's id is its path without
`.md`. Names given by users are one of:
- a full id, `mindspore/ascend/0.7/ssd_v1_coco2017`;
- a short name, `ssd_v1_coco2017` (the last part of exactly one id);
- a path to a card file on disk (ends in `.md`).
Localized twins (`*_cn.md`) are translations of an English card and are not separate models.
"""
from __future__ import annotations

import difflib
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import unquote, urljoin, urlsplit

from . import settings as _settings
from .card import Card, parse_file
from .errors import CardError, NotFoundError, UsageError

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_ID_PART = re.compile(r"^[^\x00-\x1f\\/:*?\"<>|]+$")


def is_localized(filename: str) -> bool:
    return filename.endswith("_cn.md")


def is_card_filename(filename: str) -> bool:
    return filename.endswith(".md") and not is_localized(filename) and filename.lower() != "readme.md"


def walk_markdown(root: str | os.PathLike) -> Iterator[str]:
    """Relative POSIX paths of the `.md` files of a registry tree, in sorted walk order.

    Hidden directories and README.md files are skipped; localized twins are included (callers that
    want models only filter with is_card_filename)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for fn in sorted(filenames):
            if fn.endswith(".md") and fn.lower() != "readme.md":
                yield prefix + fn


def check_name(name: str) -> str:
    """A registry name as given by a user, refused if it could escape the registry root."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError("empty model name: give an id such as mindspore/ascend/0.7/ssd_v1_coco2017 or a short name")
    name = name.strip()
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UsageError(f"model name {name!r} is not allowed: use forward slashes and a path relative to the registry")
    parts = name.removesuffix(".md").split("/")
    for part in parts:
        if part in ("", ".", "..") or not _ID_PART.match(part):
            raise UsageError(f"model name {name!r} is not allowed: each part must be a plain name (no '..', empty parts or control characters)")
    return name.removesuffix(".md")


@dataclass(frozen=True)
class Asset:
    file_format: str
    link: str  # as written in the card (angle brackets removed)
    url: str  # absolute: relative links resolved against the card's location
    sha256: str
    filename: str  # name of the file in a model's view of the cache
    index: int  # position in the card's asset list
    size: int | None = None  # the card's asset-size (bytes), when it gives one


def _asset_filename(url: str, sha256: str, file_format: str) -> str:
    name = posixpath.basename(unquote(urlsplit(url).path))
    if not name or name in (".", "..") or not _ID_PART.match(name):
        name = f"{sha256[:12]}.{file_format or 'bin'}"
    return name


@dataclass
class Entry:
    """One resolved card."""

    id: str
    card: Card
    source: str  # where the card was read: a file path or a URL
    base_url: str  # the URL its relative links are resolved against (ends with '/')
    registry: "Registry | None" = field(default=None, repr=False)

    @property
    def fields(self) -> dict:
        return self.card.fields

    @property
    def name(self) -> str:
        return self.id.rsplit("/", 1)[-1]

    def require_sound(self) -> None:
        """Raise CardError with the first error, if the card has any (parse, schema or lint)."""
        problems = [p for p in self.card.problems if p.severity == "error"]
        if not problems:
            try:
                from .lint import check_card
            except ImportError:  # schema/lint not installed in this build: parse errors only
                check_card = None
            if check_card is not None:
                problems = [p for p in check_card(self.card) if p.severity == "error"]
        if problems:
            more = f" (and {len(problems) - 1} more: run `registry validate {self.source}`)" if len(problems) > 1 else ""
            raise CardError(f"card {self.id} is not valid: {problems[0].format()}{more}")

    @property
    def assets(self) -> list[Asset]:
        items = self.fields.get("asset") or []
        if not isinstance(items, list):
            items = []
        result = []
        for i, item in enumerate(items):
            line, col = self.card.pos(("asset", i))
            where = f"{self.card.path}:{line}:{col}"
            if not isinstance(item, dict):
                raise CardError(f"{where}: asset {i + 1} of card {self.id} is not a mapping: "
                                "write file-format, asset-link and asset-sha256 under its `- `")
            link = str(item.get("asset-link") or "").strip()
            sha = str(item.get("asset-sha256") or "").strip().lower()
            fmt = str(item.get("file-format") or "").strip()
            if not link:
                raise CardError(f"{where}: asset {i + 1} of card {self.id} has no asset-link: add the download URL")
            if not SHA256_RE.match(sha):
                raise CardError(f"{where}: asset {i + 1} of card {self.id} has asset-sha256 {sha!r}, not 64 hex digits: "
                                "set it to the file's sha256 (`registry hash FILE`)")
            url = urljoin(self.base_url, link)
            size = item.get("asset-size")
            size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
            result.append(Asset(fmt, link, url, sha, _asset_filename(url, sha, fmt), i, size))
        return result

    def select_assets(self, formats: Iterable[str] | None = None) -> list[Asset]:
        assets = self.assets
        if not formats:
            return assets
        wanted = {f.lower().lstrip(".") for f in formats}
        chosen = [a for a in assets if a.file_format.lower() in wanted]
        if not chosen:
            have = ", ".join(sorted({a.file_format for a in assets})) or "none"
            raise NotFoundError(f"card {self.id} has no asset of format {', '.join(sorted(wanted))}; formats it has: {have}")
        return chosen


class Registry:
    """Where cards live. Subclasses: LocalRegistry (a directory), and an HTTP registry (catalog.open_registry)."""

    location: str

    def ids(self) -> list[str]:
        raise NotImplementedError

    def entry(self, card_id: str) -> Entry:
        raise NotImplementedError

    def resolve(self, name: str) -> Entry:
        name = check_name(name)
        if "/" in name:
            return self.entry(name)
        ids = self.ids()
        matches = [i for i in ids if i.rsplit("/", 1)[-1] == name]
        if len(matches) == 1:
            return self.entry(matches[0])
        if len(matches) > 1:
            raise NotFoundError(f"model name {name!r} is ambiguous in {self.location}: use one of the full ids "
                                + ", ".join(sorted(matches)))
        raise self._unknown(name, ids)

    def _unknown(self, name: str, ids: list[str] | None = None) -> NotFoundError:
        ids = self.ids() if ids is None else ids
        short = name.rsplit("/", 1)[-1]
        pool = {i.rsplit("/", 1)[-1]: i for i in ids}
        close = difflib.get_close_matches(short, list(pool), n=3, cutoff=0.6)
        if len(close) < 3 and len(short) >= 3:  # the start or a part of a longer name: `lenet` for lenet_digits
            parts = sorted((p for p in pool if short in p and p not in close), key=lambda p: (not p.startswith(short), len(p), p))
            close += parts[:3 - len(close)]
        if "/" in name:
            close = sorted({*close, *difflib.get_close_matches(name, ids, n=3, cutoff=0.6)})
        hint = f"; did you mean {', '.join(close)}?" if close else "; `registry list` shows the models it has"
        return NotFoundError(f"no model {name!r} in registry {self.location}{hint}")


class LocalRegistry(Registry):
    def __init__(self, root: str | os.PathLike):
        if not Path(root).is_dir():  # checked first: resolve() raises on a symlink loop before Python 3.13
            raise UsageError(f"registry {root} is not a directory: pass a directory of cards or an http(s) URL")
        self.root = Path(root).resolve()
        self.location = str(self.root)
        self._ids: list[str] | None = None

    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = sorted(rel[:-3] for rel in walk_markdown(self.root) if is_card_filename(posixpath.basename(rel)))
        return self._ids

    def card_path(self, card_id: str) -> Path:
        # Not with_suffix: ids such as albert_squadv1.1 contain dots.
        *parents, stem = check_name(card_id).split("/")
        return self.root.joinpath(*parents, stem + ".md")

    def entry(self, card_id: str) -> Entry:
        path = self.card_path(card_id)
        if not path.is_file():
            raise self._unknown(card_id)
        return entry_from_file(path, card_id, registry=self)


def entry_from_file(path: Path, card_id: str | None = None, registry: Registry | None = None) -> Entry:
    card = parse_file(path)
    if card.problems and card.problems[0].rule in ("read-error", "binary-file", "encoding", "too-large"):
        raise UsageError(card.problems[0].format())
    return Entry(card_id or path.stem, card, str(path), path.parent.resolve().as_uri() + "/", registry)


def open_registry(location: str | os.PathLike | Registry | None = None) -> Registry:
    """A registry from an explicit location, else REGISTRY_URL, else the embedded one."""
    if isinstance(location, Registry):
        return location
    location = location or _settings.current().registry_url or _settings.embedded_registry()
    text = str(location)
    if text.startswith(("http://", "https://")):
        from .index import HttpRegistry  # remote registries are served from their index.json

        return HttpRegistry(text)
    if text.startswith("file://"):
        text = unquote(urlsplit(text).path)
    return LocalRegistry(text)


def resolve(name: str, registry: str | os.PathLike | Registry | None = None) -> Entry:
    """The card a user means by `name` (a full id, a short name or a path to a `.md` file)."""
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".md") and os.path.isfile(name)):
        path = Path(name)
        reg = open_registry(registry) if registry is not None else None
        card_id = None
        if isinstance(reg, LocalRegistry):
            try:
                card_id = path.resolve().relative_to(reg.root).with_suffix("").as_posix()
            except ValueError:
                card_id = None
        return entry_from_file(path, card_id, reg)
    if isinstance(name, str) and name.endswith(".md"):
        try:
            check_name(name)
        except UsageError:  # not an id (`../x.md`, `/abs/x.md`): a path to a card file that is not there
            raise UsageError(f"no card file {name}: check the path") from None
    return open_registry(registry).resolve(name)
