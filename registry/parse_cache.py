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
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import settings as _settings
from .cache import write_atomic
from .index import FORMAT, INDEX_NAME, build_index, card_record
from .names import walk_tree

CACHE_FORMAT = 1


def _stats(root: Path, rels) -> dict[str, tuple[int, int]]:
    out = {}
    base = str(root) + os.sep  # os.stat on a joined text: pathlib's `/` costs more than the stat itself
    for rel in rels:
        try:
            st = os.stat(base + rel)
        except OSError:
            continue  # card_record reports the unreadable file
        out[rel] = (st.st_size, st.st_mtime_ns)
    return out


def _fresh_index(root: Path, stats: dict[str, tuple[int, int]], paths: list[str], twins: dict) -> dict | None:
    path = root / INDEX_NAME
    try:
        mtime = path.stat().st_mtime_ns
        if any(m > mtime for _, m in stats.values()):
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("cards"), list):
        return None
    cards = data["cards"]
    if len(cards) != len(paths):
        return None
    for r, rel in zip(cards, paths):
        if not (
            isinstance(r, dict)
            and r.get("path") == rel
            and stats.get(rel, (None,))[0] == r.get("size")
            and sorted(r.get("translations") or ()) == sorted(twins.get(rel, ()))
        ):
            return None
    return data


def cache_path(root: Path, settings: _settings.Settings | None = None) -> Path:
    home = (settings or _settings.current()).home
    return home / "parse-cache" / f"{hashlib.sha256(str(root).encode()).hexdigest()}.json"


def local_index_data(root: str | os.PathLike, settings: _settings.Settings | None = None) -> dict:
    root = Path(root).resolve()
    paths, twins = walk_tree(root)
    stats = _stats(root, paths + [t for ts in twins.values() for t in ts])
    fresh = _fresh_index(root, stats, paths, twins)
    if fresh is not None:
        return fresh
    where = cache_path(root, settings)
    try:
        cached = json.loads(where.read_bytes())
        entries = cached["entries"] if cached.get("format") == CACHE_FORMAT and cached.get("root") == str(root) else {}
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError, RecursionError, AttributeError, KeyError, TypeError):
        entries = {}
    changed = False
    kept = {}

    def record(rel: str) -> dict:
        nonlocal changed
        key = list(stats.get(rel, (None, None)))
        hit = entries.get(rel)
        if (
            isinstance(hit, list)
            and len(hit) == 2
            and hit[0] == key
            and key[0] is not None
            and isinstance(hit[1], dict)
        ):
            kept[rel] = hit
            return dict(hit[1])
        changed = True
        fresh_record = card_record(root, rel)
        kept[rel] = [key, fresh_record]
        return dict(fresh_record)

    data = build_index(root, make_record=record, walked=(paths, twins))
    if changed or len(kept) != len(entries):
        blob = json.dumps({"format": CACHE_FORMAT, "root": str(root), "entries": kept}, separators=(",", ":"))
        try:
            write_atomic(where, blob.encode("utf-8"))
        except OSError:
            pass  # a read-only or full cache: the listing is right, only not faster next time
    return data
