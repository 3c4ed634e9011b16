"""`registry validate`: parse, schema and lint checks over card files, and their report.

Every problem has a stable rule id. Parse rules come from card.py, schema rules from schema.py,
the rest from here:

    rule                       sev.     use      what
    read-error                 error    blocks   the file cannot be read, or is not a regular file (exit code 2)
    not-found                  error    blocks   a path given on the command line does not exist (exit 2)
    no-cards                   error    blocks   a directory given holds no card (exit 2)
    too-large                  error    blocks   over 1 MiB: not a card
    binary-file                error    blocks   NUL bytes: not a Markdown file
    encoding                   error    blocks   not UTF-8
    empty-file                 error    blocks   nothing in the file
    no-front-matter            error    blocks   no line that is exactly `---`
    unterminated-front-matter  error    blocks   an opening `---` without its closing one
    empty-front-matter         error    blocks   nothing between the two `---` lines
    yaml-tab                   error    blocks   a tab used for indentation
    yaml-syntax                error    blocks   YAML that does not parse (a key without `: `, bad indentation, ...)
    yaml-dash-placeholder      error    -        a top-level `key: -` (the hub's placeholder), read as the text "-"
    yaml-colon-in-value        error    -        a top-level `key: a: b` (`: ` in a value), read as the text `a: b`
    yaml-too-complex           error    blocks   alias expansion past the node budget (alias bomb)
    front-matter-not-mapping   error    blocks   the front matter is a list or a single value
    duplicate-key              error    blocks   a key written twice in one mapping (YAML keeps the last)
    schema-required            error    path     a required field is missing
    schema-type                error    path     a value of the wrong type, or empty
    schema-enum                error    path     a value outside the allowed set
    schema-pattern             error    path     text of the wrong form (sha256, date, version, link)
    schema-unknown-key         error    path     a key an asset item cannot have
    schema-value               error    path     other constraints (empty text or list, shape values)
    sha256-prefix              error    -        an asset-sha256 of 8 to 63 hex digits: a prefix of the digest
    unknown-key                error    -        a field name that is a near miss of a known one (a typo)
    path-mismatch              error    -        user-id, infer-backend or mindspore-version disagree with the
                                                 card's place `USER[/BACKEND]/VERSION/NAME.md` in a registry
    path-not-utf8              error    -        the file's name is not UTF-8: no index can name it (left out)
    local-link                 warning  -        a file:// asset-link: works on one machine only (relative links travel)
    format-extension           warning  -        a ckpt or safetensors asset-link whose file name does not end in
                                                 `.ckpt` / `.safetensors`: MindSpore refuses to load it under that name
    insecure-link              warning  -        an http:// asset-link (not loopback) or repo-link; the bytes are
                                                 verified by sha256 anyway, so it does not block a pull
    future-date                warning  -        an update-time after today anywhere on Earth (today in UTC+14)
    placeholder                error    path     a value still the `TODO ...` placeholder of `registry new`'s template
                                                 (other problems on that line are left out: the placeholder says it all)
    fields-after-front-matter  error    blocks   `key: value` lines of card fields below the closing `---`
                                                 (a stray `---` closed the front matter early)
    sha256-reused              error    blocks   two assets of one card with one sha256 but different links
                      (cross-card) warning  -        one sha256 for differently named files in two cards
    orphan-translation         warning  -        a localized twin `NAME_cn.md` without its `NAME.md`
    asset-missing              error    -        local asset files, checked by `--check-assets` and always by
    asset-outside-tree         error    -        `registry index` (local_assets.py): missing, outside the tree,
    asset-not-readable         error    -        not readable by other users (a server could not serve it),
    asset-size-mismatch        error    -        another size than asset-size, another sha256 than the card's;
    asset-sha256-mismatch      error    -        publisher checks: a pull verifies the bytes it gets anyway

`use` is what the rule means for consumers (`pull`, `load`; `info` shows both), from rules.py:
`blocks` refuses the card, `-` is cosmetic (passed on once as a warning), `path` depends on the JSON
path of the value: blocking for the asset list, an asset item and its asset-link and asset-sha256,
cosmetic for every other field. Publishers (`validate`) get every error as an error.

Choices, measured on the 2,905 English cards of the MindSpore Hub corpus:
- Localized twins (`*_cn.md`) are translations whose front matter uses Chinese keys and full-width
  colons: they are checked only for file-level soundness (readable, UTF-8, a terminated front
  matter), not against the schema, and counted apart in the summary.
- Directories are searched recursively for `.md` files, skipping hidden directories, documentation
  (README.md, CHANGELOG.md, docs/, ...) and what the directory's `.registryignore` matches
  (catalog.walk_markdown); a file named on the command line is always checked.
- The path rule runs only when the card's directory is version-like (`1.10`), i.e. the card sits
  in a registry tree; user-ids are compared lowercased without punctuation (`MindSpore` is
  `mindspore`, `Noah's Ark Lab` is not `noah-cvlab`: 4 corpus cards).
- The same checkpoint is re-published under one URL per MindSpore release (524 digests in the
  corpus are shared by cards of several releases): across cards a shared sha256 is reported only
  when the file names differ once version tokens such as `_v1100_` are removed, and only as a
  warning, since renaming a file does not change its bytes.
- Exit code: 2 when a path is missing or unreadable, else 1 when any error was found, else 0
  (warnings alone pass).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

from . import schema
from .card import Card, Problem, asset_items, parse_file
from .local_assets import AssetChecker
from .names import asset_filename as _asset_filename
from .names import is_localized, is_sha256, is_utf8, walk_markdown
from .validate_parallel import ordered_map

BACKENDS = frozenset({"ascend", "gpu", "cpu"})
_VERSION_DIR = re.compile(r"^\d+\.\d+(\.\d+)?$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_VERSION_TOKEN = re.compile(r"[_-]v\d+(?:\.\d+)*(?=[_.-])")
_LOOPBACK = re.compile(r"^http://(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?(/|$)", re.IGNORECASE)
# Parse problems that still let a twin count as readable; every other one is reported for twins.
_TWIN_RULES = frozenset(
    {"read-error", "too-large", "binary-file", "encoding", "empty-file", "no-front-matter", "unterminated-front-matter"}
)
IO_RULES = frozenset({"read-error", "not-found", "no-cards"})


def _known_fields() -> tuple[str, ...]:
    return tuple(schema.schema()["properties"])


@lru_cache(maxsize=1)
def _field_line_re() -> re.Pattern:
    """A line `field: value` of a card field, compiled from the schema's field names."""
    names = sorted(set(_known_fields()) | {"file-format", "asset-link", "asset-sha256"}, key=len, reverse=True)
    return re.compile(r"^[ \t]*(?:- )?(" + "|".join(map(re.escape, names)) + r")[ \t]*:(?:[ \t]|\r?$)")


# --------------------------------------------------------------------------- one card


def check_card(card: Card) -> list[Problem]:
    """Schema and lint problems of one parsed card (its parse problems stay in `card.problems`).

    Side-effect free; the path rule uses `card.path` to see where the card lies."""
    if not isinstance(card.data, dict):
        return _fields_after(card) if card.fm_close else []
    fields = card.data
    problems = schema.check(card)
    problems += _unknown_keys(card, fields)
    problems += _path_rule(card, fields)
    problems += _links(card, fields)
    problems += _future(card, fields)
    problems += _fields_after(card)
    problems += _sha_within(card, fields)
    return _placeholders(card, fields, problems)


@lru_cache(maxsize=1)
def _lowered_fields() -> dict[str, str]:
    return {k.lower(): k for k in _known_fields()}


def _unknown_keys(card: Card, fields: dict) -> list[Problem]:
    lowered = _lowered_fields()
    out = []
    for key in fields:
        if key in lowered:
            continue
        close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.8)
        if close:
            out.append(
                card.problem(
                    (key,),
                    "error",
                    "unknown-key",
                    f"unknown field `{key}`: did you mean `{lowered[close[0]]}`?",
                    at_key=True,
                )
            )
    return out


def _norm_user(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


def _path_rule(card: Card, fields: dict) -> list[Problem]:
    if not is_utf8(card.path):
        return [
            Problem(
                card.path,
                0,
                0,
                "error",
                "path-not-utf8",
                "the file's name is not UTF-8, so no index (JSON) can name it: rename it with UTF-8 characters",
            )
        ]
    parts = os.path.abspath(card.path).split(os.sep)
    if len(parts) < 3 or not _VERSION_DIR.match(parts[-2]):
        return []
    version_dir = parts[-2]
    backend_dir = parts[-3] if parts[-3] in BACKENDS else None
    user_dir = parts[-4] if backend_dir and len(parts) >= 4 else parts[-3]
    layout = f"{user_dir}/{backend_dir + '/' if backend_dir else ''}{version_dir}/"
    out = []
    user = fields.get("user-id")
    if isinstance(user, str) and user and _norm_user(user) != _norm_user(user_dir):
        out.append(
            card.problem(
                ("user-id",),
                "error",
                "path-mismatch",
                f"user-id `{user}` does not match the directory `{user_dir}` the card is in "
                f"({layout}): write `user-id: {user_dir}` or move the card under {_norm_user(user) or 'its user'}/",
            )
        )
    backend = fields.get("infer-backend")
    if backend_dir and isinstance(backend, str) and backend != backend_dir:
        out.append(
            card.problem(
                ("infer-backend",),
                "error",
                "path-mismatch",
                f"infer-backend `{backend}` does not match the directory `{backend_dir}` the card is in "
                f"({layout}): fix the field or move the card under {user_dir}/{backend}/{version_dir}/",
            )
        )
    version = fields.get("mindspore-version")
    if isinstance(version, str) and version and not (version == version_dir or version.startswith(version_dir + ".")):
        out.append(
            card.problem(
                ("mindspore-version",),
                "error",
                "path-mismatch",
                f"mindspore-version `{version}` does not match the version directory `{version_dir}` "
                f"the card is in ({layout}): fix the field or move the card to a `{version}` directory",
            )
        )
    return out


def _links(card: Card, fields: dict) -> list[Problem]:
    # Asset bytes are verified by sha256 whatever the transport, so http:// is a warning (it exposes
    # what is downloaded and lets a middlebox block or stall it), and none for a loopback host.
    out = []
    repo = fields.get("repo-link")
    if isinstance(repo, str) and repo.lower().startswith("http://"):
        out.append(
            card.problem(
                ("repo-link",),
                "warning",
                "insecure-link",
                f"repo-link uses http://: write `https://{repo[7:]}` if the site serves https",
            )
        )
    for i, item in asset_items(fields):
        link = item.get("asset-link")
        if isinstance(link, str) and link.lower().startswith("http://") and not _LOOPBACK.match(link):
            out.append(
                card.problem(
                    ("asset", i, "asset-link"),
                    "warning",
                    "insecure-link",
                    f"asset-link of asset {i + 1} uses http://, which exposes the download and lets "
                    f"the network block it: publish the file over https and write `https://{link[7:]}`",
                )
            )
        elif isinstance(link, str) and link.lower().startswith("file:"):
            out.append(
                card.problem(
                    ("asset", i, "asset-link"),
                    "warning",
                    "local-link",
                    f"asset-link of asset {i + 1} is a file:// URL, which works only on this machine: "
                    "put the file beside the card and link it by a relative path",
                )
            )
        fmt = item.get("file-format") if isinstance(item, dict) else None
        if (
            fmt in _WEIGHT_EXTENSIONS
            and isinstance(link, str)
            and not _asset_filename(link, "", fmt).endswith(_WEIGHT_EXTENSIONS[fmt])
        ):
            out.append(
                card.problem(
                    ("asset", i, "asset-link"),
                    "warning",
                    "format-extension",
                    f"asset {i + 1} is {fmt} but its file name {_asset_filename(link, '', fmt)!r} does not end in "
                    f"{_WEIGHT_EXTENSIONS[fmt]}, and MindSpore loads {fmt} files only under that "
                    f"extension: publish the file as NAME{_WEIGHT_EXTENSIONS[fmt]}",
                )
            )
    return out


_WEIGHT_EXTENSIONS = {"ckpt": ".ckpt", "safetensors": ".safetensors"}


def _future(card: Card, fields: dict) -> list[Problem]:
    text = fields.get("update-time")
    if not isinstance(text, str):
        return []
    try:
        when = date.fromisoformat(text)
    except ValueError:
        return []  # the schema reports the form
    today = datetime.now(timezone(timedelta(hours=14))).date()  # where a date begins first: no zone sees an error
    if when > today:
        return [
            card.problem(
                ("update-time",),
                "warning",
                "future-date",
                f"update-time {text} is in the future (today is {today.isoformat()} even in UTC+14): "
                "write the date the card was last changed",
            )
        ]
    return []


PLACEHOLDER = "TODO"  # how `registry new` marks what the publisher must write
_PLACEHOLDER = re.compile(rf"^{PLACEHOLDER}\b")


def _placeholders(card: Card, fields: dict, problems: list[Problem]) -> list[Problem]:
    """`problems` plus one per template placeholder left in the front matter; other problems on a
    placeholder's line are dropped (a `TODO` is no date, no enum value: the placeholder says it all)."""
    # A value starts with the placeholder only if the text holds it, or a backslash (a double-quoted
    # escape such as \x54ODO): without either, no value need be visited (most cards).
    if PLACEHOLDER not in card.text and "\\" not in card.text:
        return problems
    found: list[Problem] = []

    def visit(value, keypath: tuple) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, keypath + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                visit(v, keypath + (i,))
        elif isinstance(value, str) and _PLACEHOLDER.match(value):
            name = ".".join(str(k + 1) if isinstance(k, int) else k for k in keypath)
            found.append(
                card.problem(
                    keypath,
                    "error",
                    "placeholder",
                    f"`{name}` is still the template's placeholder ({value}): write the real value, "
                    "or delete the line if the field is optional",
                )
            )

    visit(fields, ())
    if not found:
        return problems
    lines = {p.line for p in found}
    return found + [p for p in problems if p.line not in lines]


def _fields_after(card: Card) -> list[Problem]:
    """Card fields written below the closing `---`: a stray `---` ended the front matter early."""
    if not card.fm_close:
        return []
    # Only the first non-blank line after the close: fields further down are the body's own
    # business (a YAML example in a code block, say).
    lines = card.text.split("\n", card.fm_close + 50)
    line, match = card.fm_close, None
    for text in lines[card.fm_close : card.fm_close + 50]:
        line += 1
        if text.strip():
            match = _field_line_re().match(text)
            break
    if not match:
        return []
    return [
        Problem(
            card.path,
            line,
            1,
            "error",
            "fields-after-front-matter",
            f"the card field `{match.group(1)}` stands below the `---` at line {card.fm_close} that closed "
            f"the front matter, so it is not read: move it above that line (or remove a stray `---`)",
        )
    ]


def _sha_within(card: Card, fields: dict) -> list[Problem]:
    seen: dict[str, tuple[int, str]] = {}
    out = []
    for i, item in asset_items(fields):
        sha, link = item.get("asset-sha256"), item.get("asset-link")
        if not (is_sha256(sha) and isinstance(link, str)):
            continue
        first = seen.setdefault(sha.lower(), (i, link))
        if first[0] != i and first[1] != link:
            out.append(
                card.problem(
                    ("asset", i, "asset-sha256"),
                    "error",
                    "sha256-reused",
                    f"asset {i + 1} has the same asset-sha256 as asset {first[0] + 1} but another "
                    "link; two files cannot share a digest: run `registry hash FILE` on each file",
                )
            )
    return out


# --------------------------------------------------------------------------- many cards


def _file_key(link: str) -> str:
    name = link.rstrip("/").rsplit("/", 1)[-1]
    return _VERSION_TOKEN.sub("", name)


def sha_uses(card: Card) -> list[tuple]:
    """What the cross-card rule keeps of a card: (digest, asset index, line, col, file name, file key) per
    asset with a sha256 and a link. The digest is the 32 bytes, the file name the link's last part and the
    key that name without version tokens: a compact digest, so a stream of cards need not be held."""
    out = []
    for i, item in card.asset_items:
        sha, link = item.get("asset-sha256"), item.get("asset-link")
        if is_sha256(sha) and isinstance(link, str):
            name, key = link.rsplit("/", 1)[-1], _file_key(link)
            out.append((bytes.fromhex(sha), i, *card.pos(("asset", i, "asset-sha256")), name, key))
    return out


def check_set(cards: Iterable[Card]) -> list[Problem]:
    """Rules over several cards: one sha256 given to differently named files in different cards."""
    cards = list(cards)
    groups: dict[bytes, list[tuple]] = {}
    for n, card in enumerate(cards):
        for use in sha_uses(card):
            groups.setdefault(use[0], []).append((n, *use[1:]))
    return [Problem(cards[n].path, *rest) for n, rest in cross_problems(groups, lambda n: cards[n].path)]


def cross_problems(groups: dict[bytes, list[tuple]], path_of) -> list[tuple[int, tuple]]:
    """check_set's rule over sha_uses grouped by digest: `groups[digest]` lists (card number, asset index,
    line, col, file name, file key) in card order, `path_of(card number)` names a card. Returns
    (card number, problem fields after the path) in the order of the groups."""
    out = []
    for group in groups.values():
        if len(group) < 2 or len({u[0] for u in group}) < 2 or len({u[5] for u in group}) < 2:
            continue
        for n, i, line, col, _, key in group:
            other = next(((u[0], u[4]) for u in group if u[0] != n and u[5] != key), None)
            if other is None:
                continue
            out.append(
                (
                    n,
                    (
                        line,
                        col,
                        "warning",
                        "sha256-reused",
                        f"asset-sha256 of asset {i + 1} is also given to the differently named file "
                        f"{other[1]} in {path_of(other[0])}: if they are not the same bytes, "
                        "one digest was copied; check with `registry hash FILE`",
                        ("asset", i, "asset-sha256"),
                    ),
                )
            )
    return out


# --------------------------------------------------------------------------- validate


@dataclass
class FileResult:
    path: str
    problems: list[Problem]
    localized: bool = False


def _order(problem: tuple) -> tuple:
    return problem[0], problem[1], problem[3]  # line, col, rule


class Report:
    """What validate found, kept compact for trees of any size: the paths checked, and for each file with
    problems their fields after the path (line, col, severity, rule, message, keypath), sorted by line,
    col and rule. `results` and `problems` give FileResult and Problem objects on demand."""

    def __init__(self) -> None:
        self.errors: list[Problem] = []  # about the arguments, not about a card
        self.paths: list[str] = []
        self.localized: set[int] = set()  # numbers of the localized twins among paths
        self.found: dict[int, tuple] = {}  # path number -> its problems, as tuples

    @property
    def results(self) -> list[FileResult]:
        return [FileResult(path, self._problems_of(n, path), n in self.localized) for n, path in enumerate(self.paths)]

    def _problems_of(self, n: int, path: str) -> list[Problem]:
        return [Problem(path, *t) for t in self.found.get(n, ())]

    def iter_problems(self) -> Iterator[Problem]:
        """Every problem in report order (argument errors, then file by file), made one at a time."""
        yield from self.errors
        paths = self.paths
        for n in sorted(self.found):
            path = paths[n]
            for t in self.found[n]:
                yield Problem(path, *t)

    @property
    def problems(self) -> list[Problem]:
        return list(self.iter_problems())

    @property
    def exit_code(self) -> int:
        if any(p.rule in IO_RULES for p in self.errors) or any(
            t[3] in IO_RULES for found in self.found.values() for t in found
        ):
            return 2
        if any(p.severity == "error" for p in self.errors):
            return 1
        return 1 if any(t[2] == "error" for found in self.found.values() for t in found) else 0

    def summary(self) -> dict:
        twins = len(self.localized)
        cards = len(self.paths) - twins
        s = dict.fromkeys(("with_errors", "with_warnings", "localized_with_errors", "errors", "warnings"), 0)
        s["errors"] = sum(1 for p in self.errors if p.severity == "error")
        s["warnings"] = sum(1 for p in self.errors if p.severity == "warning")
        for n, found in self.found.items():
            errors = sum(1 for t in found if t[2] == "error")
            warnings = sum(1 for t in found if t[2] == "warning")
            s["errors"] += errors
            s["warnings"] += warnings
            if n in self.localized:
                s["localized_with_errors"] += bool(errors)
            elif errors:
                s["with_errors"] += 1
            elif warnings:
                s["with_warnings"] += 1
        return {
            "cards": cards,
            "clean": cards - s["with_errors"],
            "with_errors": s["with_errors"],
            "with_warnings": s["with_warnings"],
            "localized": twins,
            "localized_with_errors": s["localized_with_errors"],
            "errors": s["errors"],
            "warnings": s["warnings"],
        }


def _walk(root: str) -> list[str]:
    return [os.path.join(root, rel) for rel in walk_markdown(root)]


_CHECKER: list = []  # one AssetChecker a process: its digest memo serves every card the process checks


def check_file(path: str, root: str | None, check_assets: bool) -> tuple[bool, tuple, tuple]:
    """One file as validate checks it, compactly (what a worker process sends back): whether it is a
    localized twin, its problems without the cross-card rule as tuples of the fields after the path,
    sorted as the report lists them, and its sha_uses."""
    card = parse_file(path)
    name = os.path.basename(path)
    if is_localized(name):
        problems = [p for p in card.problems if p.rule in _TWIN_RULES]
        twin_of = path[: -len("_cn.md")] + ".md"
        if not os.path.exists(twin_of):
            problems.append(
                Problem(
                    path,
                    0,
                    0,
                    "warning",
                    "orphan-translation",
                    f"localized twin without its English card {os.path.basename(twin_of)}: "
                    "add the English card or rename this one",
                )
            )
        return True, _compact(problems), ()
    problems = list(card.problems)
    if card.data is not None or card.fm_close:
        problems += check_card(card)
    if check_assets and isinstance(card.data, dict):
        if not _CHECKER:
            _CHECKER.append(AssetChecker())
        problems += _CHECKER[0].check(card, os.path.dirname(path) or ".", root)
    return False, _compact(problems), tuple(sha_uses(card))


def _compact(problems: list[Problem]) -> tuple:
    if not problems:
        return ()
    problems.sort(key=lambda p: (p.line, p.col, p.rule))
    return tuple((p.line, p.col, p.severity, p.rule, p.message, p.keypath) for p in problems)


def validate_paths(paths: Iterable[str], check_assets: bool = False, jobs: int | None = None) -> Report:
    """Check every card under `paths` (files, or directories searched recursively); with
    `check_assets`, also the asset files cards link locally (local_assets.py), which must stay
    inside the directory given when a card was found by searching one. `jobs`: processes checking
    (default os.cpu_count(); 1: this one alone); the report is the same whatever the number."""
    report = Report()
    files: list[str] = []
    roots: list[str | None] = []  # the directory each file was found in
    _CHECKER.clear()  # files may have changed since the last call in this process
    given_paths = [str(given) for given in paths]
    for given in given_paths:
        if os.path.isdir(given):
            found = _walk(given)
            if not found:
                report.errors.append(
                    Problem(given, 0, 0, "error", "no-cards", "directory holds no .md card: check the path")
                )
            files += found
            roots += [given] * len(found)
        elif os.path.lexists(given):  # a symlink loop exists but cannot be read: parse_file says why
            files.append(given)
            roots.append(None)
        else:
            report.errors.append(
                Problem(given, 0, 0, "error", "not-found", "no such file or directory: check the path")
            )
    if len(given_paths) > 1:  # the same file named twice (a file and its directory); a single walk has none
        # Its root: the last directory given that found it, as before the first occurrence was kept.
        root_of = {path: root for path, root in zip(files, roots) if root is not None}
        seen: set[str] = set()
        kept = []
        for path in files:
            key = os.path.abspath(path)
            if key not in seen:
                seen.add(key)
                kept.append(path)
        files, roots = kept, [root_of.get(path) for path in kept]
    report.paths = files

    def check(n: int) -> tuple:
        return check_file(files[n], roots[n], check_assets)

    # Problems arrive as tuples made by another process: one copy of each repeated text is kept.
    memo: dict = {}
    shared = memo.setdefault
    groups: dict[bytes, list[tuple]] = {}  # digest -> sha_uses, for the cross-card rule
    for n, (localized, problems, uses) in enumerate(ordered_map(check, range(len(files)), jobs)):
        if localized:
            report.localized.add(n)
        if problems:
            report.found[n] = tuple(
                (line, col, shared(sev, sev), shared(rule, rule), shared(msg, msg), shared(keypath, keypath))
                for line, col, sev, rule, msg, keypath in problems
            )
        for digest, *rest in uses:
            groups.setdefault(shared(digest, digest), []).append((n, *rest))
    del memo
    cross: dict[int, list[tuple]] = {}
    for n, problem in cross_problems(groups, files.__getitem__):
        cross.setdefault(n, []).append(problem)
    for n, extra in cross.items():
        report.found[n] = tuple(sorted(report.found.get(n, ()) + tuple(extra), key=_order))
    return report
