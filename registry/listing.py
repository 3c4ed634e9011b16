"""Search and selection over a registry's index records, and the Python listing API.

    registry.list_models(task="detection")   -> [ModelRecord(id=..., fields={...}, formats=[...]), ...]
    registry.search("ssd coco")               -> the same, for records matching every word

`select` filters index records (index.py's format) by text and criteria; `by_version` orders them as
`registry list` shows them (oldest MindSpore version first, then by id); `listed` yields what `registry
list`/`search` show. A sharded registry (shards.py) is streamed shard by shard: memory stays bounded by
one shard whatever the size of the registry, `limit` stops fetching shards once reached, and the order is
then per shard (bucket order; within a shard as above), since one global order needs every record at once,
which is what index.json gives. Nothing here prints.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import versions
from .catalog import open_registry
from .errors import UsageError
from .names import short_name
from .shards import ShardedIndex


def by_version(records: Iterable[dict]) -> list[dict]:
    """Index records oldest MindSpore version first (as versions: 1.9 before 1.10), then by id."""
    # versions.sort_key's order, keyed by each version's rank among the distinct ones: int and str compare in
    # C, where Version objects compare in Python (a 46k-card sort), and each declared text is parsed once.
    records = list(records)
    declared = [r["fields"].get("mindspore-version") for r in records]
    parsed = {text: versions.parse(text) for text in set(declared)}
    found = [
        versions.card_version(None, r["id"]) if parsed[d] is None else parsed[d] for d, r in zip(declared, records)
    ]
    rank = {v: n for n, v in enumerate(sorted({v for v in found if v is not None}), 1)}
    ranks = [0 if v is None else rank[v] for v in found]
    ids = [r["id"] for r in records]
    order = sorted(range(len(records)), key=ids.__getitem__)  # by id, then stably by version: two sorts of
    order.sort(key=ranks.__getitem__)  # plain texts and ints, quicker than one of (rank, id) tuples
    return [records[i] for i in order]


def hub_list(version: str | None = None, force_reload: bool = False, *, registry=None, settings=None) -> list[str]:
    """mindspore_hub's `hub_list`: the ids of the registry's cards, in `registry list` order.

    `version` keeps the cards for a MindSpore version or specifier ("1.8", ">=2"); the hub's branch
    names are understood ("master": all, "r1.8": 1.8). `force_reload` reads the index again.
    `registry` is a registry location (default: REGISTRY_URL, else the embedded one)."""
    if version is not None and not isinstance(version, str):
        raise UsageError(f"hub_list(version={version!r}): give a MindSpore version such as '1.8', or None for all")
    wanted = None if version in (None, "", "master") else re.sub(r"^r(?=\d)", "", version.strip())
    if wanted:
        versions.spec(wanted, f"hub_list(version={version!r}):")  # refused in its own words, before any read
    reg = open_registry(registry, settings)
    if force_reload:
        reg.forget()
    return [r["id"] for r in by_version(select(reg.index().records, mindspore_version=wanted))]


# --------------------------------------------------------------------------- search


def _task_ok(task: str, module_type: str) -> bool:
    # "cv" matches cv and cv-classification but not cvtmodel; "detection" matches cv-object_detection.
    return re.search(rf"(^|[-_ ]){re.escape(task)}($|[-_ ])", module_type) is not None


def select(
    records: Iterable[dict],
    text: str | None = None,
    *,
    dataset: str | None = None,
    backbone: str | None = None,
    task: str | None = None,
    file_format: str | None = None,
    backend: str | None = None,
    mindspore_version: str | None = None,
) -> list[dict]:
    """Index records matching every given criterion (text: all words, case-insensitive)."""
    words = (text or "").lower().split()
    spec = versions.spec(mindspore_version) if mindspore_version else None
    if not (words or dataset or backbone or task or file_format or backend or spec is not None):
        return list(records)  # `registry list`: every record, no per-record tests
    out = []
    for r in records:
        f = r.get("fields", {})
        if words:
            hay = " ".join(
                [
                    r["id"],
                    f.get("model-name", ""),
                    f.get("backbone-name", ""),
                    f.get("train-dataset", ""),
                    f.get("summary", ""),
                ]
            ).lower()
            if not all(w in hay for w in words):
                continue
        if dataset and dataset.lower() not in f.get("train-dataset", "").lower():
            continue
        if backbone and backbone.lower() not in f.get("backbone-name", "").lower():
            continue
        if task and not _task_ok(task.lower(), f.get("module-type", "").lower()):
            continue
        if file_format and file_format.lower().lstrip(".") not in {
            a["file-format"].lower() for a in r.get("assets", ())
        }:
            continue
        if backend:
            parts = r["id"].lower().split("/")  # USER/BACKEND/VERSION/NAME names a backend
            have = {
                f.get("train-backend", "").lower(),
                f.get("infer-backend", "").lower(),
                parts[1] if len(parts) == 4 else "",
            }
            have.discard("")
            if backend.lower() not in have:
                continue
        if spec is not None and not versions.satisfies(spec, versions.parse(f.get("mindspore-version") or None)):
            continue
        out.append(r)
    return out


def listed(index, text: str | None = None, *, limit: int | None = None, **criteria) -> Iterator[dict]:
    """The records of `index` (an index.Index or a shards.ShardedIndex) matching `text` and the `select`
    criteria, in `registry list` order (per shard for a sharded index: see the module doc), at most `limit`."""
    if limit is not None and limit <= 0:
        return iter(())
    if isinstance(index, ShardedIndex):
        found = (r for shard in index.shards() for r in by_version(select(shard.records, text, **criteria)))
    else:
        found = iter(by_version(select(index.records, text, **criteria)))
    return itertools.islice(found, limit)


# --------------------------------------------------------------------------- the Python listing API


@dataclass(frozen=True)
class ModelRecord:
    """One model as the registry's index describes it (no card is fetched to make it)."""

    id: str
    fields: dict = field(default_factory=dict)  # index.SEARCH_FIELDS present in the card, as text
    formats: list = field(default_factory=list)  # file-formats of its assets, in card order, once each
    problems: list = field(default_factory=list)  # parse errors ("LINE:COL: rule: message"); [] when sound

    @property
    def name(self) -> str:
        """The short name (the id's last part)."""
        return short_name(self.id)

    @classmethod
    def of(cls, record: dict) -> ModelRecord:
        """The ModelRecord of an index record."""
        formats = list(dict.fromkeys(a["file-format"] for a in record.get("assets", ()) if a["file-format"]))
        return cls(record["id"], dict(record.get("fields", {})), formats, list(record.get("problems", ())))

    def as_json(self) -> dict:
        """The record as `registry list --format json` writes it."""
        return {"id": self.id, "fields": self.fields, "formats": self.formats, "problems": self.problems}


def search(
    text: str | None = None,
    *,
    registry=None,
    settings=None,
    dataset: str | None = None,
    backbone: str | None = None,
    task: str | None = None,
    file_format: str | None = None,
    backend: str | None = None,
    mindspore_version: str | None = None,
    limit: int | None = None,
) -> list[ModelRecord]:
    """The models of a registry matching every word of `text` and every given criterion, as ModelRecords
    in `registry list`/`search` order (`listed`: per shard for a sharded registry), at most `limit` of
    them: a sharded registry is then read only until `limit` are found. `registry`: a location (default:
    REGISTRY_URL, else the embedded one); `settings`: default read now. Raises UsageError (bad location,
    specifier or limit), OfflineError or TransferError (a remote index that cannot be read)."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise UsageError(f"search(limit={limit!r}): give a count of models (0 or more), or None for all")
    reg = open_registry(registry, settings)
    found = listed(
        reg.index(),
        text,
        limit=limit,
        dataset=dataset,
        backbone=backbone,
        task=task,
        file_format=file_format,
        backend=backend,
        mindspore_version=mindspore_version,
    )
    return [ModelRecord.of(r) for r in found]


def list_models(
    *,
    registry=None,
    settings=None,
    dataset: str | None = None,
    backbone: str | None = None,
    task: str | None = None,
    file_format: str | None = None,
    backend: str | None = None,
    mindspore_version: str | None = None,
    limit: int | None = None,
) -> list[ModelRecord]:
    """Every model of a registry (optionally filtered and limited as `search`), as ModelRecords; raises as `search`."""
    return search(
        None,
        registry=registry,
        settings=settings,
        dataset=dataset,
        backbone=backbone,
        task=task,
        file_format=file_format,
        backend=backend,
        mindspore_version=mindspore_version,
        limit=limit,
    )
