"""What a local registry's list/search/short names read: a fresh index.json, else a parse cache.

`local_index_data(root)` returns the document `index.build_index(root)` would, without parsing every card:
- when ROOT/index.json lists exactly the cards of the tree, with their sizes, and no card file is newer
  than it (mtime), it is read as it is (a publisher's tree after `registry index`);
- else each card's record comes from a parse cache, HOME/parse-cache/<sha256 of the root path>.json,
  kept per card path with the (size, mtime_ns) it was parsed at; cards whose size or mtime differ (and
  new ones) are parsed again and the cache rewritten atomically. A damaged cache file is ignored.
Staleness is judged by size and mtime, as make and rsync do: an edit that keeps both (rare; a clock set
back) is seen after `touch CARD`. Translations and collisions are computed from the walk each time.
Asset sizes in cached records are those measured when the card was parsed.

`local_index(root)` is that document as an index.Index. Its records are checked (index.record_flaw) once per
version of the file they come from: HOME/parse-cache/<same>.sound keeps the stamp (size, mtime_ns, inode)
of the index.json and of the cache file last found sound, and a file with that stamp is not checked again.
An edit (by hand, by a tool, a copy) changes the mtime, so the records are checked again and a wrong one
gives one sentence; only an edit that also sets the mtime back to the nanosecond goes unseen (`touch` it).
"""

from __future__ import annotations

import hashlib
import json
import os
from itertools import repeat
from operator import itemgetter
from pathlib import Path

from . import settings as _settings
from .cache import write_atomic
from .index import FORMAT, INDEX_NAME, Index, build_index, card_record, record_flaw, records_sound
from .names import walk_tree_stats

CACHE_FORMAT = 2  # 2: the records as one list beside their paths and (size, mtime_ns) keys


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _read(path: Path) -> tuple[bytes, list[int]]:
    """The bytes of a file and the stamp of the very file read (fstat of the open file: no race with a rename)."""
    with open(path, "rb") as fh:
        return fh.read(), _stamp(os.fstat(fh.fileno()))


def _fresh_index(root: Path, stats: dict[str, list[int]], paths: list[str], twins: dict) -> tuple[dict, list] | None:
    """(index.json's document, its stamp) when it is fresh (see the module doc), else None."""
    path = root / INDEX_NAME
    try:
        mtime = path.stat().st_mtime_ns
        if max(map(itemgetter(1), stats.values()), default=mtime) > mtime:
            return None
        raw, stamp = _read(path)
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("cards"), list):
        return None
    cards = data["cards"]
    # Column by column (46k records): the records' paths and sizes are the walk's, and the records with
    # translations (few) are those with twins, with the same ones.
    if len(cards) != len(paths) or not set(map(type, cards)) <= {dict}:
        return None
    get = dict.get
    if list(map(get, cards, repeat("path"))) != paths:
        return None
    # A card's id is its path (a record without a text id is record_flaw's to name).
    ids, own = list(map(get, cards, repeat("id"))), [rel[:-3] for rel in paths]
    if ids != own and any(type(i) is str and i != rel for i, rel in zip(ids, own)):
        return None
    if list(map(get, cards, repeat("size"))) != [stats.get(rel, (None,))[0] for rel in paths]:
        return None
    translated = {rel for rel, t in zip(paths, map(get, cards, repeat("translations"))) if t}
    if translated != {rel for rel, t in twins.items() if t}:
        return None
    try:
        if any(sorted(r["translations"]) != sorted(twins[rel]) for r, rel in zip(cards, paths) if rel in translated):
            return None
    except TypeError:  # translations that are not a list of texts: not what `registry index` writes
        return None
    return data, stamp


def cache_path(root: Path, settings: _settings.Settings | None = None) -> Path:
    home = (settings or _settings.current()).home
    return home / "parse-cache" / f"{hashlib.sha256(str(root).encode()).hexdigest()}.json"


def local_index_data(root: str | os.PathLike, settings: _settings.Settings | None = None) -> dict:
    """The index document of the tree at `root` (see the module doc)."""
    return _local(Path(root).resolve(), settings)[0]


def local_index(root: str | os.PathLike, settings: _settings.Settings | None = None) -> Index:
    """local_index_data's document as an Index; its records checked once per version of their file."""
    root = Path(root).resolve()
    data, checked = _local(root, settings)
    return Index(data, str(root), checked=checked)


def _sound(where: Path, kind: str, records: list, stamp: list[int]) -> bool:
    """Whether `records` (of the file stamped `stamp`) pass index.record_flaw: known from the .sound file when
    this very file was found sound before, else checked now and, if so, noted there."""
    marks = where.with_suffix(".sound")
    try:
        with open(marks, "rb") as fh:
            # Only a note this user wrote vouches for a file: in a cache others can write, theirs is not taken.
            mine = getattr(os, "geteuid", None) is None or os.fstat(fh.fileno()).st_uid == os.geteuid()
            known = json.loads(fh.read()) if mine else {}
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError, RecursionError):
        known = {}
    if known.get(kind) == stamp:
        return True
    if not (records_sound(records) or all(record_flaw(r) is None for r in records)):
        return False  # Index names the flaw
    _mark(marks, known, kind, stamp)
    return True


def _mark(marks: Path, known: dict, kind: str, stamp: list[int]) -> None:
    try:
        write_atomic(marks, json.dumps({**known, kind: stamp}).encode(), durable=False)
    except OSError:
        pass  # a read-only cache: checked again next time


def _local(root: Path, settings) -> tuple[dict, bool]:
    """(the index document, whether its records are known to pass index.record_flaw)."""
    paths, twins, stats = walk_tree_stats(root)  # stats: [size, mtime_ns], as the cache's JSON gives them back
    where = cache_path(root, settings)
    fresh = _fresh_index(root, stats, paths, twins)
    if fresh is not None:
        data, stamp = fresh
        return data, _sound(where, INDEX_NAME, data["cards"], stamp)
    cached, stamp = {}, None
    try:
        raw, stamp = _read(where)
        cached = json.loads(raw)
        ok = isinstance(cached, dict) and cached.get("format") == CACHE_FORMAT and cached.get("root") == str(root)
        cpaths, ckeys, crecords = (cached["paths"], cached["keys"], cached["records"]) if ok else ([], [], [])
        if not (isinstance(cpaths, list) and isinstance(ckeys, list) and isinstance(crecords, list)):
            cpaths, ckeys, crecords = [], [], []
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        cpaths, ckeys, crecords = [], [], []
    keys = [stats.get(rel) for rel in paths]  # None: not readable, parsed (and reported) each time
    if (
        stamp is not None
        and cpaths == paths
        and ckeys == keys
        and None not in keys
        and _sound(where, "cache", crecords, stamp)
    ):
        # The usual second run: every card as cached, compared as whole columns; nothing to write.
        collisions = cached.get("collisions")  # those of the same card paths, so of the same ids
        collisions = collisions if isinstance(collisions, dict) else None
        make_record = dict(zip(paths, crecords)).__getitem__
        return build_index(root, make_record, walked=(paths, twins), collisions=collisions), True
    entries = {
        rel: (key, r)
        for rel, key, r in zip(cpaths, ckeys, crecords)
        if isinstance(rel, str) and isinstance(key, list) and isinstance(r, dict) and record_flaw(r) is None
    }

    def record(rel: str) -> dict:
        key = stats.get(rel)
        hit = entries.get(rel)
        if hit is not None and key is not None and hit[0] == key:
            return hit[1]
        return card_record(root, rel)

    data = build_index(root, make_record=record, walked=(paths, twins))
    # Records as card_record gives them: translations come from the walk each time.
    records = [{k: v for k, v in r.items() if k != "translations"} if "translations" in r else r for r in data["cards"]]
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "root": str(root),
            "paths": paths,
            "keys": keys,
            "records": records,
            "collisions": data["collisions"],
        },
        separators=(",", ":"),
    ).encode("utf-8")
    try:
        write_atomic(where, blob)
        with open(where, "rb") as fh:  # the stamp of the file written: its records are card_record's, sound
            _mark(where.with_suffix(".sound"), {}, "cache", _stamp(os.fstat(fh.fileno())))
    except OSError:
        pass  # a read-only or full cache: the listing is right, only not faster next time
    # card_record's records and the cached ones record_flaw passed: all sound.
    return data, True
