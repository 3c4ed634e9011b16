"""Names: card ids, short names, sha256 texts and the walk of a registry tree. The bottom layer.

Contract:
- A card's id is its path in a registry tree without `.md`: `USER[/BACKEND]/VERSION/NAME`; its short
  name is the last part (`short_name`). `check_name` refuses any name that could leave a registry root.
- `ShortNames` is the one lookup of short names: ids by short name, and the suggestions an unknown
  name gets. Local and remote registries, the index and the cache all use it.
- A sha256 text is compared lowercased after stripping (`sha256_text`); `SHA256_RE` is a whole digest
  (64 hex digits), `SHA256_PREFIX_RE` a prefix (8 to 63, what mindspore-lab cards give).
- `walk_markdown` lists a tree's Markdown files: hidden directories, documentation (README.md,
  docs/, ...) and what `.registryignore` matches are skipped; `walk_tree` pairs cards with their
  localized twins (`*_cn.md`, translations, not models).
This module imports nothing of the package but errors.py (which imports only text.py).
"""

from __future__ import annotations

import difflib
import operator
import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlsplit

from .errors import UsageError

SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")  # \Z: no trailing newline slips through, as with fullmatch
SHA256_PREFIX_RE = re.compile(r"\A[0-9a-f]{8,63}\Z")
_ID_PART = re.compile(r"^[^\x00-\x1f\\/:*?\"<>|]+$")
IGNORE_FILE = ".registryignore"
# Documents a registry tree commonly holds beside its cards; they need no card front matter.
DOC_NAMES = frozenset(
    {
        "readme",
        "contributing",
        "changelog",
        "changes",
        "license",
        "licence",
        "notice",
        "authors",
        "code_of_conduct",
        "security",
        "support",
        "howto",
        "index",
    }
)
DOC_DIRS = frozenset({"docs", "doc"})  # at the root of a tree only: a user may be called `doc` deeper down


# --------------------------------------------------------------------------- sha256 texts


def sha256_text(value) -> str:
    """The sha256 text as compared everywhere: stripped and lowercased ("" for a non-text)."""
    return value.strip().lower() if isinstance(value, str) else ""


def is_sha256(value, *, prefix: bool = False) -> bool:
    """Whether `value` is a whole sha256 (64 hex digits, any case); with `prefix`, also 8 to 63 digits."""
    text = sha256_text(value)
    return bool(SHA256_RE.match(text) or (prefix and SHA256_PREFIX_RE.match(text)))


# --------------------------------------------------------------------------- ids and short names


def short_name(card_id: str) -> str:
    """The last part of an id (`ssd_v1_coco2017` of `mindspore/ascend/0.7/ssd_v1_coco2017`)."""
    return card_id.rsplit("/", 1)[-1]


def parent_url(url: str) -> str:
    """The URL a file's relative links resolve against: everything up to its last `/`, included."""
    return url.rsplit("/", 1)[0] + "/"


def check_name(name: str) -> str:
    """A registry name as given by a user, without `.md`; raises UsageError if it could escape the root."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError("empty model name: give an id such as mindspore/ascend/0.7/ssd_v1_coco2017 or a short name")
    name = name.strip()
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UsageError(f"model name {name!r} is not allowed: use forward slashes and a path relative to the registry")
    for part in name.removesuffix(".md").split("/"):
        if part in ("", ".", "..") or not _ID_PART.match(part):
            raise UsageError(
                f"model name {name!r} is not allowed: each part must be a plain name "
                "(no '..', empty parts or control characters)"
            )
    return name.removesuffix(".md")


def asset_filename(url: str, sha256: str, file_format: str) -> str:
    """The file name of an asset in a model's view: the link's last part, else `<sha256[:12]>.<format>`."""
    name = posixpath.basename(unquote(urlsplit(url).path))
    if not name or name in (".", "..") or not _ID_PART.match(name):
        name = f"{sha256[:12]}.{file_format or 'bin'}"
    return name


class ShortNames:
    """Ids by short name, and what an unknown name is told (close names, names starting with it)."""

    def __init__(self, ids: Iterable[str]):
        self.ids = list(ids)
        self.by_name: dict[str, list[str]] = {}
        for i in self.ids:
            self.by_name.setdefault(short_name(i), []).append(i)

    def matches(self, name: str) -> list[str]:
        """The ids whose short name is `name` (a list; empty when there is none)."""
        return list(self.by_name.get(name, ()))

    def collisions(self) -> dict[str, list[str]]:
        """The short names of several ids, with those ids."""
        return {name: ids for name, ids in self.by_name.items() if len(ids) > 1}

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to `n` names close to `name` (a short name or an id): close spellings first, then names
        containing it (`lenet` for lenet_digits)."""
        short = short_name(name)
        pool = list(self.by_name)
        close = difflib.get_close_matches(short, pool, n=n, cutoff=0.6)
        if len(close) < n and len(short) >= 3:
            parts = sorted(
                (p for p in pool if short in p and p not in close), key=lambda p: (not p.startswith(short), len(p), p)
            )
            close += parts[: n - len(close)]
        if "/" in name:
            close = sorted({*close, *difflib.get_close_matches(name, self.ids, n=n, cutoff=0.6)})
        return close

    def hint(self, name: str, fallback: str) -> str:
        """`; did you mean a, b?` for an unknown name, else `; <fallback>`."""
        close = self.suggest(name)
        return f"; did you mean {', '.join(close)}?" if close else f"; {fallback}"


# --------------------------------------------------------------------------- a registry tree


def is_localized(filename: str) -> bool:
    """A translation of a card (`*_cn.md`), not a model of its own."""
    return filename.endswith("_cn.md")


def is_card_filename(filename: str) -> bool:
    """A file name a card may have: `.md`, not a translation, not README.md."""
    return filename.endswith(".md") and not is_localized(filename) and filename.lower() != "readme.md"


def is_doc_file(rel: str) -> bool:
    """A documentation file (README.md, docs/HOWTO.md, ...) rather than a card, by its path in the tree."""
    parts = rel.split("/")
    return (len(parts) > 1 and _is_doc_dir(parts[0])) or _is_doc_name(parts[-1])


def _is_doc_dir(top: str) -> bool:
    """A directory at the root of a tree that holds documentation (docs/): nothing under it is a card."""
    return top.lower() in DOC_DIRS


def _is_doc_name(filename: str) -> bool:
    return filename[:-3].lower() in DOC_NAMES


def ignore_spec(root: str | os.PathLike):
    """The `.registryignore` patterns of a tree (a pathspec, gitignore syntax), or None when it has none.
    Raises UsageError for a file that cannot be read or a bad pattern."""
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


def is_utf8(text: str) -> bool:
    """Whether a path read from the file system is UTF-8 (not undecodable bytes kept as surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def walk_markdown(root: str | os.PathLike) -> Iterator[str]:
    """Relative POSIX paths of the `.md` files of a registry tree, in sorted walk order.

    Skipped: hidden files and directories, documentation (is_doc_file: README.md, CHANGELOG.md, docs/, ...)
    and what the tree's `.registryignore` matches. Localized twins are included (callers that want
    models only filter with is_card_filename). Raises UsageError for a bad `.registryignore`."""
    for prefix, names, _ in _walk(root, False):
        for name in names:
            yield prefix + name


def _walk(root: str | os.PathLike, stat: bool) -> Iterator[tuple[str, list[str], list]]:
    """walk_markdown's files, a directory at a time: (its path in the tree with a final `/`, or "" at the
    root; the names of its files that walk_markdown yields, sorted; when `stat`, their stats, None for one
    that cannot be had). As os.walk: top-down, symlinked directories not entered, unreadable ones skipped.
    One scandir of a directory's descriptor gives its entries and, through it, the stats of its files (a
    stat relative to the directory, not a lookup of the whole path for each of 46k cards)."""
    spec = ignore_spec(root)
    pending = [(os.fspath(root), "")]
    while pending:
        path, prefix = pending.pop()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            with os.scandir(fd) as it:
                entries = sorted(it, key=_name)
            dirs, files = [], []
            for e in entries:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                (dirs if is_dir else files).append(e)
            # Under a documentation directory at the root (is_doc_file) nothing is yielded: not entered.
            files = [
                e
                for e in files
                if e.name.endswith(".md")
                and not e.name.startswith(".")  # hidden, as hidden directories (and serve refuses both)
                and not _is_doc_name(e.name)
                and not (spec is not None and spec.match_file(prefix + e.name))
            ]
            stats = [_stat(e) for e in files] if stat else None
            subdirs = [
                e.name
                for e in dirs
                if not e.name.startswith(".")
                and not (prefix == "" and _is_doc_dir(e.name))
                and not (spec is not None and spec.match_file(prefix + e.name + "/"))
                and not _is_symlink(e)
            ]
        except OSError:
            continue
        finally:
            os.close(fd)
        if files:
            yield prefix, [e.name for e in files], stats
        pending.extend((os.path.join(path, d), prefix + d + "/") for d in reversed(subdirs))


_name = operator.attrgetter("name")


def _stat(entry: os.DirEntry) -> os.stat_result | None:
    try:
        return entry.stat()
    except OSError:
        return None


def _is_symlink(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False  # as os.walk's islink: then entered, if it can be read


def walk_tree(root: str | os.PathLike) -> tuple[list[str], dict[str, list[str]]]:
    """(card paths sorted by id, {card path: its localized twins}) of a tree, by walk_markdown's rules."""
    return walk_tree_stats(root)[:2]


def walk_tree_stats(root: str | os.PathLike) -> tuple[list[str], dict[str, list[str]], dict[str, list[int]]]:
    """walk_tree's result and {path: [size, mtime_ns]} of its cards and twins (those that can be stat'ed)."""
    cards, twins, stats = [], {}, {}
    for prefix, names, sts in _walk(root, True):
        rels = [prefix + name for name in names]
        stats.update({rel: [st.st_size, st.st_mtime_ns] for rel, st in zip(rels, sts) if st is not None})
        for rel in rels:
            if is_localized(rel):
                twins.setdefault(rel[: -len("_cn.md")] + ".md", []).append(rel)
            else:
                cards.append(rel)
    return sorted(cards, key=lambda rel: rel[:-3]), twins, stats
