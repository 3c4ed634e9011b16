"""The index format: building, writing, reading and validating a registry tree's index.json.

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

import functools
import hashlib
import json
import os
from itertools import chain, repeat
from pathlib import Path

from .card import MAX_CARD_BYTES, Card, parse_bytes, parse_file
from .errors import UsageError
from .local_assets import inside, local_path
from .names import SHA256_RE, ShortNames, is_utf8, sha256_text, walk_tree

FORMAT = 1
INDEX_NAME = "index.json"
MAX_INDEX_BYTES = 256 << 20  # the 2,905-card corpus indexes to 2.4 MB; this is room for ~100x that
MAX_INDEX_CONTAINERS = 1_000_000  # JSON objects + lists: ~200,000 cards (the corpus index has 14,884, 5 a card)
SEARCH_FIELDS = (
    "model-name",
    "backbone-name",
    "module-type",
    "train-dataset",
    "mindspore-version",
    "user-id",
    "train-backend",
    "infer-backend",
    "summary",
    "update-time",
)


# --------------------------------------------------------------------------- building an index


def field_text(value) -> str | None:
    """A field value as the index records it: text, lists joined by ", ", mappings as JSON; None stays None."""
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(t for t in map(field_text, value) if t is not None)
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
    out = []
    for _, item in card.asset_items:  # items that are not mappings: reported by `registry validate`
        link = field_text(item.get("asset-link")) or ""
        out.append(
            {
                "file-format": field_text(item.get("file-format")) or "",
                "link": link,
                "sha256": sha256_text(field_text(item.get("asset-sha256")) or ""),
                "size": _local_size(link, card_dir, root),
            }
        )
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
    record["fields"] = {k: t for k in SEARCH_FIELDS if (t := field_text(card.fields.get(k))) is not None}
    record["assets"] = _asset_records(card, path.parent, root)
    record["problems"] = [f"{p.line}:{p.col}: {p.rule}: {p.message}" for p in card.problems if p.severity == "error"]
    return record


def build_index(root: str | os.PathLike, make_record=None, walked=None, collisions=None) -> dict:
    """The index document (format above) of the tree at `root`; raises UsageError when it is not a directory.
    `make_record(rel)` replaces card_record, `walked` walk_tree's result and `collisions` those of the ids
    (parse_cache.py passes cached records, and the collisions it kept for the same card paths)."""
    if not Path(root).is_dir():  # checked first: resolve() raises on a symlink loop before Python 3.13
        raise UsageError(
            f"{root} is not a directory: give the root of a registry tree (USER/[BACKEND/]VERSION/NAME.md)"
        )
    root = Path(root).resolve()
    paths, twins = walked or walk_tree(root)
    cards = []
    for rel in paths:
        if not is_utf8(rel):
            continue  # no JSON text can name it: validate (and `index`'s exit 1) says `path-not-utf8`
        record = make_record(rel) if make_record else card_record(root, rel)
        if rel in twins:
            record["translations"] = sorted(twins[rel])
        cards.append(record)
    if collisions is None:
        collisions = ShortNames(record["id"] for record in cards).collisions()
    return {
        "format": FORMAT,
        "cards": cards,
        "collisions": collisions,
        "counts": {
            "cards": len(cards),
            "invalid": sum(1 for c in cards if c["problems"]),
            "translations": sum(len(c.get("translations", ())) for c in cards),
            "collisions": len(collisions),
        },
    }


def dumps_index(data: dict) -> bytes:
    """The deterministic bytes of an index document (sorted keys, indent=1, UTF-8, a final newline)."""
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


_is_text = str.__instancecheck__


def _is_asset(a) -> bool:
    return isinstance(a, dict) and isinstance(a.get("file-format"), str)


def record_flaw(r) -> str | None:
    """What makes an index record unusable, if anything. The sha256 names a file in the card cache,
    so it must be a digest; the other fields are what list, search and info read."""
    if not (isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("path"), str)):
        return "a card record lacks its id or path"
    sha, fields, assets, problems = r.get("sha256"), r.get("fields"), r.get("assets"), r.get("problems")
    if sha is not None and not (isinstance(sha, str) and SHA256_RE.match(sha)):
        return f"card {r['id']} has sha256 {sha!r}, not 64 hex digits"
    # all(map(_is_text, ...)): the same isinstance test without a generator frame per value (46k records).
    if not (isinstance(fields, dict) and all(map(_is_text, fields.values()))):
        return f"the fields of card {r['id']} are not a mapping of texts"
    if not (isinstance(assets, list) and all(map(_is_asset, assets))):
        return f"the assets of card {r['id']} are not a list of records with a file-format"
    if not (isinstance(problems, list) and all(map(_is_text, problems))):
        return f"the problems of card {r['id']} are not a list of texts"
    return None


def records_sound(records: list) -> bool:
    """Whether every record passes record_flaw, checked column by column in C loops (map, set, chain): the
    same tests at a fraction of a per-record function's cost (46k records). False means look closer with
    record_flaw (it names the flaw); any surprise (a non-dict, a missing key, a non-text) gives False."""
    try:
        if not set(map(type, records)) <= {dict}:
            return False
        get = dict.get
        ids, paths = list(map(get, records, repeat("id"))), list(map(get, records, repeat("path")))
        fields, assets, problems = (list(map(get, records, repeat(k))) for k in ("fields", "assets", "problems"))
        shas = [s for s in map(get, records, repeat("sha256")) if s is not None]
        if not (
            set(map(type, ids)) <= {str}
            and set(map(type, paths)) <= {str}
            and set(map(type, shas)) <= {str}
            and all(map(SHA256_RE.match, shas))
            and set(map(type, chain.from_iterable(map(dict.values, fields)))) <= {str}
            and set(map(type, chain.from_iterable(problems))) <= {str}
            and set(map(type, problems)) <= {list}
            and set(map(type, assets)) <= {list}
        ):
            return False
        items = list(chain.from_iterable(assets))
        return set(map(type, items)) <= {dict} and set(map(type, map(get, items, repeat("file-format")))) <= {str}
    except TypeError:  # dict.values of a non-dict, chain over a non-iterable: record_flaw says which
        return False


class Index:
    """An index document with lookups by id and by short name."""

    def __init__(self, data: dict, source: str, checked: bool = False):
        """`checked`: the records are known to pass record_flaw (parse_cache.local_index), not checked again."""
        if not isinstance(data, dict) or not isinstance(data.get("cards"), list):
            raise UsageError(
                f"{source} is not a registry index (no list of cards): regenerate it with `registry index DIR`"
            )
        if data.get("format") != FORMAT:
            raise UsageError(
                f"{source} has index format {data.get('format')!r}; this tool reads format {FORMAT}: "
                "upgrade registry or regenerate the index with this version"
            )
        records = data["cards"]
        self.data = data
        self.source = source
        self.records: list[dict] = records
        if not (checked or records_sound(records)):
            self.check()

    @functools.cached_property
    def by_id(self) -> dict[str, dict]:
        # Built on first use: `list` and `search` never look an id up.
        try:
            return {r["id"]: r for r in self.records}
        except (TypeError, KeyError):  # records `checked` vouched for, changed since: name the flaw
            self.check()
            raise

    def check(self) -> None:
        """Raise UsageError (one sentence) for the first record record_flaw finds unusable, if any. Also for
        a caller that trips on a record `checked` vouched for (a file edited behind its stamp)."""
        for r in self.records:
            flaw = record_flaw(r)
            if flaw:
                raise UsageError(
                    f"{self.source} is not a registry index ({flaw}): regenerate it with `registry index DIR`"
                )

    @functools.cached_property
    def names(self) -> ShortNames:
        # Built on first use: `list` and `search` never look a short name up.
        return ShortNames(self.by_id)

    @property
    def by_name(self) -> dict[str, list[str]]:
        return self.names.by_name

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]


def parse_index(raw: bytes, source: str) -> Index:
    """The Index of an index document's bytes (from a server or a cache); raises UsageError, one sentence,
    for anything that is not a bounded, valid index of this format."""
    # What a server sends is bounded before it is parsed: objects and lists (each costs memory however
    # small its text; 120 MiB of `{}` once took 3 GiB), and nesting (a RecursionError in the parser).
    containers = raw.count(b"{") + raw.count(b"[")
    if containers > MAX_INDEX_CONTAINERS:
        raise UsageError(
            f"{source} holds {containers:,} JSON objects and lists, over the {MAX_INDEX_CONTAINERS:,} "
            "an index of this tool may have: check the registry URL, or split the registry"
        )
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{source} is not valid JSON ({exc}): regenerate it with `registry index DIR`") from None
    except RecursionError:
        raise UsageError(
            f"{source} nests JSON deeper than an index ever does: it is not a registry index; check the registry URL"
        ) from None
    return Index(data, source)
