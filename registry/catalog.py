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
"""
from __future__ import annotations

import difflib
import logging
import os
import posixpath
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import unquote, urljoin, urlsplit

from . import settings as _settings
from . import versions as _versions
from .card import Card, Problem, parse_file
from .errors import CardError, CardWarning, NotFoundError, UsageError

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# An asset-sha256 of 8 to 63 hex digits is a prefix of the file's sha256 (mindspore-lab cards give
# the 8 that their file names carry): pull checks the file's digest starts with it.
SHA256_PREFIX_RE = re.compile(r"^[0-9a-f]{8,63}$")
SOURCES = ("gitee", "github", "local")  # mindspore_hub's `source` values (see the module doc)
_log = logging.getLogger("registry")
_ID_PART = re.compile(r"^[^\x00-\x1f\\/:*?\"<>|]+$")


def is_localized(filename: str) -> bool:
    return filename.endswith("_cn.md")


def is_card_filename(filename: str) -> bool:
    return filename.endswith(".md") and not is_localized(filename) and filename.lower() != "readme.md"


IGNORE_FILE = ".registryignore"
# Documents a registry tree commonly holds beside its cards; they need no card front matter.
DOC_NAMES = frozenset({"readme", "contributing", "changelog", "changes", "license", "licence", "notice",
                       "authors", "code_of_conduct", "security", "support", "howto", "index"})
DOC_DIRS = frozenset({"docs", "doc"})  # at the root of a tree only: a user may be called `doc` deeper down


def is_doc_file(rel: str) -> bool:
    """A documentation file (README.md, docs/HOWTO.md, ...) rather than a card, by its path in the tree."""
    parts = rel.split("/")
    return (len(parts) > 1 and parts[0].lower() in DOC_DIRS) or parts[-1][:-3].lower() in DOC_NAMES


def ignore_spec(root: str | os.PathLike):
    """The `.registryignore` patterns of a tree (gitignore syntax), or None when it has none."""
    try:
        with open(os.path.join(root, IGNORE_FILE), encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{os.path.join(root, IGNORE_FILE)} cannot be read ({exc}): fix or remove it") from None
    import pathspec  # only for trees that have the file

    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as exc:  # pathspec's pattern errors are ValueErrors naming the pattern
        raise UsageError(f"{os.path.join(root, IGNORE_FILE)}: {exc}: fix the pattern (gitignore syntax)") from None


def walk_markdown(root: str | os.PathLike) -> Iterator[str]:
    """Relative POSIX paths of the `.md` files of a registry tree, in sorted walk order.

    Skipped: hidden directories, documentation (is_doc_file: README.md, CHANGELOG.md, docs/, ...)
    and what the tree's `.registryignore` matches. Localized twins are included (callers that want
    models only filter with is_card_filename)."""
    spec = ignore_spec(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (spec is not None and spec.match_file(prefix + d + "/")))
        for fn in sorted(filenames):
            if fn.endswith(".md") and not is_doc_file(prefix + fn) and not (spec is not None and spec.match_file(prefix + fn)):
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

    @property
    def is_prefix(self) -> bool:
        """The card gives only a prefix of the sha256 (8 to 63 hex digits), not the whole digest."""
        return len(self.sha256) < 64


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
    choice: "_versions.Choice | None" = None  # set when a short name had several cards to choose from
    _problems: list | None = field(default=None, init=False, repr=False, compare=False)
    _warned: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def fields(self) -> dict:
        return self.card.fields

    @property
    def name(self) -> str:
        return self.id.rsplit("/", 1)[-1]

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
        (rules.py); else return the cosmetic ones (see `cosmetic`)."""
        blocking = [p for p in self.problems() if p.blocks_use]
        if blocking:
            more = f" (and {len(blocking) - 1} more: run `registry validate {self.source}`)" if len(blocking) > 1 else ""
            raise CardError(f"card {self.id} is not valid: {blocking[0].format()}{more}")
        return self.cosmetic()

    def cosmetic(self) -> list[Problem]:
        """The errors (as validate sees them) that do not block use, emitted once per entry as CardWarning.
        Validate's warnings are not repeated on every pull, and a sha256 prefix is left to pull, which says
        what it is worth."""
        found = [p for p in self.problems()
                 if p.severity == "error" and not p.blocks_use and p.rule != "sha256-prefix"]
        if not self._warned:
            self._warned = True
            for p in found:
                warnings.warn(f"{replace(p, severity='warning').format()} (cosmetic: the card is still used)",
                              CardWarning, stacklevel=3)
        return found

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
            if not (SHA256_RE.match(sha) or SHA256_PREFIX_RE.match(sha)):
                raise CardError(f"{where}: asset {i + 1} of card {self.id} has asset-sha256 {sha!r}, not 64 hex digits "
                                "(nor a prefix of 8 or more): set it to the file's sha256 (`registry hash FILE`)")
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

    def matches(self, name: str) -> list[str]:
        """The ids whose last part is `name`."""
        return [i for i in self.ids() if i.rsplit("/", 1)[-1] == name]

    def declared_versions(self, ids: list[str]) -> dict[str, str | None]:
        """The mindspore-version each of these cards declares (None if it has none or cannot be read)."""
        raise NotImplementedError

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

    def declared_versions(self, ids: list[str]) -> dict[str, str | None]:
        # Read leniently: one unreadable card must not make its name unresolvable (it has no version).
        return {i: _declared(parse_file(self.card_path(i)).fields) for i in ids}

    def entry(self, card_id: str) -> Entry:
        path = self.card_path(card_id)
        if not path.is_file():
            raise self._unknown(card_id)
        return entry_from_file(path, card_id, registry=self)


def _check_wanted(entry: Entry, mindspore_version: str | None) -> Entry:
    """A card named exactly (id, path or URL) is used as it is, but not against an explicit version."""
    if mindspore_version is not None:
        version = _versions.card_version(_declared(entry.fields), entry.id)
        if not _versions.satisfies(_versions.spec(mindspore_version), version):
            raise NotFoundError(f"card {entry.id} is for MindSpore {version or '(no version)'}, not {mindspore_version}: "
                                "give its short name to choose by version, or drop the version")
    return entry


def _declared(fields: dict) -> str | None:
    value = fields.get("mindspore-version")
    return None if value is None else str(value)


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


def resolve(name: str, registry: str | os.PathLike | Registry | None = None, *, mindspore_version: str | None = None,
            source: str = "gitee") -> Entry:
    """The card a user means by `name`: a full id, a short name, a path to a `.md` file or a card URL.

    `mindspore_version` (a version or specifier) picks among the cards of a short name; `source` is
    mindspore_hub's: "gitee"/"github" (the default reading) or "local" (`name` is a card file path)."""
    if source not in SOURCES:
        raise UsageError(f"source={source!r} is not one of {', '.join(map(repr, SOURCES))}: 'local' reads a card file, "
                         "'gitee' or 'github' the configured registry (REGISTRY_URL or registry=)")
    if source == "local":
        path = Path(os.path.expanduser(name)) if isinstance(name, (str, os.PathLike)) else None
        if path is None or not path.is_file():
            raise UsageError(f"no card file {name}: with source='local' the name is the path of a card (.md) file")
        name = path
    if isinstance(name, str) and name.startswith(("http://", "https://")):
        from .index import entry_from_url  # fetched like a remote registry's cards

        return _check_wanted(entry_from_url(name), mindspore_version)
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".md") and os.path.isfile(name)):
        path = Path(name)
        reg = open_registry(registry) if registry is not None else None
        card_id = None
        if isinstance(reg, LocalRegistry):
            try:
                card_id = path.resolve().relative_to(reg.root).with_suffix("").as_posix()
            except ValueError:
                card_id = None
        return _check_wanted(entry_from_file(path, card_id, reg), mindspore_version)
    if isinstance(name, str) and name.endswith(".md"):
        try:
            check_name(name)
        except UsageError:  # not an id (`../x.md`, `/abs/x.md`): a path to a card file that is not there
            raise UsageError(f"no card file {name}: check the path") from None
    return open_registry(registry).resolve(name, mindspore_version)
