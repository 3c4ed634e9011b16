"""Publishing a registry: starting a card, adding assets to it, and the gates before serving it.

    registry new NAME [--dir DIR]          a card template; validate flags its `TODO` placeholders
    registry add-asset CARD FILE|URL       appends an asset entry with the file's sha256; the rest of
                                           the card is kept byte for byte
    registry index DIR                     exit 1 when a card has an error (validate's, plus the local
                                           asset checks); --allow-invalid publishes anyway
    registry index --check DIR             exit 1 when DIR/index.json is missing or differs from what
                                           `registry index DIR` would write (the CI gate)
    registry check-links [PATH|NAME...]    one bounded request per remote asset link (a 1-byte Range
                                           GET, closed unread): status, size, Range support; exit 1 on
                                           a dead link. Bodies are never downloaded.

Library functions return typed results (IndexResult, IndexCheck, LinkReport, AddedAsset, NewCard);
the CLI (cli/publishing.py) formats them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import settings as _settings
from .card import Problem, parse_bytes
from .catalog import Entry, entry_from_file, open_registry, resolve
from .errors import CardError, RegistryError, TransferError, UsageError
from .index import INDEX_NAME, build_index, dumps_index
from .lint import PLACEHOLDER, validate_paths
from .names import check_name, is_card_filename, short_name, walk_markdown

# --------------------------------------------------------------------------- registry new

_TEMPLATE = """# {name}

---
model-name: {name}
backbone-name: {todo} the backbone network, e.g. resnet50
module-type: {todo} the domain and task, e.g. cv-classification, nlp or audio
fine-tunable: False
input-shape: {todo} the input shape, e.g. [224, 224, 3]
model-version: "1.0"
train-dataset: {todo} the dataset it was trained on, e.g. imagenet2012
evaluation: {todo} its measured quality, e.g. top1acc76.5
author: {todo} who trained it
update-time: {today}
repo-link: {todo} the https URL of its source code
user-id: {user}
used-for: inference
train-backend: {train_backend}
infer-backend: {backend}
mindspore-version: {version}
license: {todo} the license of the weights, e.g. Apache2.0
summary: {todo} one sentence saying what the network does
---

## Introduction

What the network is, how it was trained and how well it does.

## Usage

```python
import registry

net = registry.load("{card_id}")
```
"""


def _scalar(text: str) -> str:
    """`text` as a YAML value that reads back as that text (`1.0`, `yes` or `a: b` are quoted)."""
    import yaml

    try:
        plain = yaml.safe_load(text) == text
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)


def card_template(card_id: str, today: date | None = None) -> str:
    """The text `registry new` writes for `card_id` (`NAME` or `USER/[BACKEND/]VERSION/NAME`): what the
    id tells is filled in, the rest is a `TODO` placeholder that validate reports until it is replaced."""
    parts = card_id.split("/")
    todo = PLACEHOLDER
    user = version = backend = None
    if len(parts) in (3, 4):
        user, version = parts[0], parts[-2]
        backend = parts[1] if len(parts) == 4 else None
    return _TEMPLATE.format(
        name=_scalar(parts[-1]),
        todo=todo,
        today=(today or date.today()).isoformat(),
        card_id=card_id,
        user=_scalar(user) if user else f"{todo} your user name, the first directory of the card's path",
        version=json.dumps(version) if version else f'{todo} the MindSpore version, e.g. "2.3"',
        backend=backend or f"{todo} ascend, gpu or cpu",
        train_backend=backend or f"{todo} ascend, gpu or cpu",
    )


def new_card(name: str, directory: str | os.PathLike = ".") -> Path:
    """Write the template of card `name` under `directory`; refuses to replace a file."""
    card_id = check_name(name)
    path = Path(directory, *card_id.split("/")[:-1], card_id.split("/")[-1] + ".md")
    if os.path.lexists(path):
        raise UsageError(f"{path} already exists: choose another name, or edit that card")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8", newline="\n") as fh:
            fh.write(card_template(card_id))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# --------------------------------------------------------------------------- registry add-asset


def _formats() -> list[str]:
    from . import schema

    return list(schema.schema()["$defs"]["asset"]["properties"]["file-format"]["enum"])


def _hash_url(url: str, settings: _settings.Settings) -> tuple[str, int]:
    """sha256 and size of the body at `url`, streamed (never held whole in memory)."""
    import requests

    from .http import SpeedGuard, http_session, network_reason, status_hint
    from .transfer import _body_reader

    digest, size = hashlib.sha256(), 0
    with http_session(settings) as session:
        try:
            with session.get(
                url,
                headers={"Accept-Encoding": "identity"},
                stream=True,
                timeout=(settings.connect_timeout, settings.read_timeout),
            ) as resp:
                if resp.status_code != 200:
                    raise TransferError(
                        f"cannot hash {url}: the server answered HTTP {resp.status_code} "
                        f"{resp.reason or ''}{status_hint(resp.status_code, url, settings)}".rstrip()
                    )
                # The bytes as sent, never decoded, within the same limits as a pull: what pull will hash.
                read_some, guard = _body_reader(resp), SpeedGuard(settings)
                buf = memoryview(bytearray(1 << 20))
                while n := read_some(buf):
                    digest.update(buf[:n])
                    size += n
                    if size > settings.max_asset_size:
                        raise TransferError(
                            f"cannot hash {url}: it sent more than REGISTRY_MAX_ASSET_SIZE "
                            f"({settings.max_asset_size:,} bytes); raise the setting if the asset is that large"
                        )
                    if cause := guard.slow(n):
                        raise TransferError(f"cannot hash {url}: {cause}")
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) != size:
                    raise TransferError(
                        f"cannot hash {url}: the connection closed after {size:,} of {int(length):,} bytes; try again"
                    )
        except requests.RequestException as exc:
            raise TransferError(
                f"cannot hash {url}: {network_reason(exc, settings.read_timeout)}; check the URL and your network"
            ) from None
    return digest.hexdigest(), size


@dataclass(frozen=True)
class AddedAsset:
    card: Path
    file_format: str
    link: str
    sha256: str
    size: int


def _asset_block_end(lines: list[str], key_line: int, close: int) -> int:
    """Index (0-based) of the line after the last item line of the `asset:` block starting at `key_line`."""
    end = key_line + 1
    for i in range(key_line + 1, close - 1):
        text = lines[i]
        if text.strip() and not text[0].isspace() and not text.startswith("-"):
            break  # the next top-level key
        if text.strip() and not text.lstrip().startswith("#"):
            end = i + 1
    return end


def add_asset(
    card_path: str | os.PathLike,
    source: str,
    file_format: str | None = None,
    settings: _settings.Settings | None = None,
) -> AddedAsset:
    """Append an asset entry for `source` (a local file, linked relative to the card, or an http(s) URL)
    to the card's `asset:` list, creating it if needed. Only lines are inserted: every other byte of the
    card stays as it was. The card is rewritten atomically, and only if the result parses with the new asset."""
    from .cache import hash_file, write_atomic

    card_path = Path(card_path)
    try:
        raw = card_path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read card {card_path}: {exc.strerror or exc}") from None
    card = parse_bytes(raw, str(card_path))
    if not isinstance(card.data, dict):
        first = card.problems[0].format() if card.problems else f"{card_path}: no front matter"
        raise CardError(f"cannot add an asset to a card that does not parse: {first}")
    remote = source.lower().startswith(("http://", "https://"))
    name = urlsplit(source).path.rsplit("/", 1)[-1] if remote else os.path.basename(source)
    fmt = (file_format or os.path.splitext(name)[1]).lower().lstrip(".")
    formats = _formats()
    if fmt not in formats:
        said = f"--format {file_format}" if file_format else f"the name {name}"
        raise UsageError(f"cannot tell a file-format from {said}: pass --format, one of {', '.join(formats)}")
    if remote:
        digest, size = _hash_url(source, settings or _settings.current())
        link = source
    else:
        if not os.path.isfile(source):
            raise UsageError(f"{source} is not a file: give the asset file or its http(s) URL")
        digest, size = hash_file(source)
        rel = os.path.relpath(os.path.abspath(source), os.path.abspath(card_path.parent))
        link = quote(rel.replace(os.sep, "/"))

    text = raw.decode("utf-8")
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = text.split("\n")  # a "\r" stays at the end of its line, so joining with "\n" restores the bytes
    items = card.data.get("asset")
    if "asset" in card.data and not (isinstance(items, list) and items):
        raise UsageError(
            f"{card_path}: `asset` is written but holds no list of assets: remove the `asset:` line "
            "or add the asset by hand"
        )
    entry = ["file-format: " + fmt, "asset-link: " + link, "asset-sha256: " + digest, f"asset-size: {size}"]
    if items is None:
        at, indent = card.fm_close - 1, "  "
        new = ["asset:"] + [f"{indent}{'- ' if k == 0 else '  '}{e}" for k, e in enumerate(entry)]
    elif isinstance(items, list) and items and card.key_pos(("asset",))[0] < card.pos(("asset", 0))[0]:
        row = card.pos(("asset", 0))[0] - 1
        first = lines[row]
        indent = first[: len(first) - len(first.lstrip())]
        item = first.lstrip()
        at = _asset_block_end(lines, card.key_pos(("asset",))[0] - 1, card.fm_close)
        if item.startswith("- "):  # `  - file-format: ckpt` then the other keys under it
            dash = item[: len(item) - len(item[1:].lstrip())]  # `-` and the spaces after it, as the card writes them
            new = [f"{indent}{dash if k == 0 else ' ' * len(dash)}{e}" for k, e in enumerate(entry)]
        else:  # the MindSpore Hub's layout: a `-` alone on its line, then the keys indented below it
            prev = row - 1
            while prev > 0 and not lines[prev].strip():
                prev -= 1
            if lines[prev].strip() != "-":
                raise UsageError(
                    f"{card_path}: the asset list is written neither as `- file-format: ...` items nor as "
                    "`-` lines with the keys indented below: add the asset by hand"
                )
            dash_line = lines[prev].rstrip("\r")
            new = [dash_line] + [indent + e for e in entry]
    else:
        raise UsageError(
            f"{card_path}: `asset` is not a block list (`asset:` then `  - file-format: ...` lines): "
            "write it so, or add the asset by hand"
        )
    lines[at:at] = [line + ("\r" if nl == "\r\n" else "") for line in new]
    out = "\n".join(lines).encode("utf-8")
    check = parse_bytes(out, str(card_path))
    got = check.fields.get("asset")
    if not (isinstance(got, list) and got and isinstance(got[-1], dict) and got[-1].get("asset-sha256") == digest):
        raise UsageError(
            f"{card_path}: adding the asset would not give a card listing it (its front matter has an "
            "unusual layout): add the entry by hand"
        )
    write_atomic(card_path, out)
    return AddedAsset(card_path, fmt, link, digest, size)


# --------------------------------------------------------------------------- registry index: errors and --check


def index_errors(root: str | os.PathLike) -> list[Problem]:
    """The errors `registry validate --check-assets ROOT` reports: what makes `registry index` exit 1."""
    return [p for p in validate_paths([str(root)], check_assets=True).problems if p.severity == "error"]


@dataclass
class IndexCheck:
    path: Path
    state: str  # "current", "missing", "unreadable", "stale"
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "current"


def check_index(root: str | os.PathLike, path: str | os.PathLike | None = None) -> IndexCheck:
    """Whether the index at `path` (default ROOT/index.json) is what `registry index ROOT` would write."""
    from . import shards

    data = build_index(root)
    path = Path(path) if path else Path(root) / INDEX_NAME
    try:
        have = path.read_bytes()
    except FileNotFoundError:
        if data["counts"]["cards"] > shards.SINGLE_FILE_MAX_CARDS:  # `registry index` writes only the shards then
            return _check_root(path, data, required=True)
        return IndexCheck(path, "missing")
    except OSError as exc:
        return IndexCheck(path, "unreadable", reason=exc.strerror or str(exc))
    if have == dumps_index(data):
        return _check_root(path, data)
    try:
        old = {r["id"]: r for r in json.loads(have)["cards"]}
    except (ValueError, KeyError, TypeError):
        return IndexCheck(path, "stale", reason="it is not an index this version writes")
    new = {r["id"]: r for r in data["cards"]}
    return IndexCheck(
        path,
        "stale",
        added=sorted(new.keys() - old.keys()),
        removed=sorted(old.keys() - new.keys()),
        changed=sorted(i for i in new.keys() & old.keys() if new[i] != old[i]),
        reason="" if new != old else "its cards are current but not its other fields or layout",
    )


def _check_root(path: Path, data: dict, required: bool = False) -> IndexCheck:
    """A current index.json with a sharded index beside it that is not current is stale too (clients read the
    shards first); a tree without shards (indexed before them) passes, unless `required` (no index.json)."""
    from .shards import ROOT_PATH, SHARD_DIR, build_shards

    root_path = path.parent / ROOT_PATH
    try:
        have = root_path.read_bytes()
    except FileNotFoundError:
        return IndexCheck(root_path, "missing") if required else IndexCheck(path, "current")
    except OSError as exc:
        return IndexCheck(root_path, "unreadable", reason=exc.strerror or str(exc))
    root, shards = build_shards(data["cards"], data["counts"])
    if have == root:
        # the root is current: each shard it names must be there with exactly its bytes (clients verify them)
        for sha, blob in sorted(shards.items()):
            shard = path.parent / SHARD_DIR / f"{sha}.json"
            try:
                ok = shard.read_bytes() == blob
            except OSError:
                ok = False
            if not ok:
                return IndexCheck(shard, "stale", reason="the shard the root names is missing or differs from it")
        return IndexCheck(path, "current")
    return IndexCheck(
        root_path, "stale", reason=f"{path.name} is current but not the sharded index that clients read first"
    )


# --------------------------------------------------------------------------- registry check-links


@dataclass(frozen=True)
class LinkStatus:
    url: str
    status: int | None  # the final HTTP status (after redirects); None when no answer came
    size: int | None  # bytes of the file, from Content-Range or Content-Length
    ranges: bool | None  # whether the server answered the Range request with 206 (resumable downloads)
    error: str = ""  # why there was no answer, or why the status means the link is dead

    @property
    def dead(self) -> bool:
        return bool(self.error)


def probe(session, url: str, settings: _settings.Settings) -> LinkStatus:
    """One 1-byte Range GET of `url`, closed without reading the body (a server ignoring Range
    starts sending the whole file: closing the connection stops it)."""
    import requests

    from .http import network_reason, status_hint
    from .transfer import _content_range, _int

    try:
        with session.get(
            url,
            headers={"Range": "bytes=0-0", "Accept-Encoding": "identity"},
            stream=True,
            timeout=(settings.connect_timeout, settings.read_timeout),
        ) as resp:
            status, headers = resp.status_code, resp.headers
    except requests.RequestException as exc:
        return LinkStatus(url, None, None, None, network_reason(exc, settings.read_timeout))
    if status == 206:
        return LinkStatus(url, status, _content_range(headers.get("Content-Range", ""))[1], True)
    if status == 200:
        return LinkStatus(url, status, _int(headers.get("Content-Length")), False)
    if status == 416:  # an empty file has no byte 0
        return LinkStatus(url, status, 0, True)
    return LinkStatus(
        url, status, None, None, f"HTTP {status} {resp.reason or ''}".rstrip() + status_hint(status, url, settings)
    )


def check_links(urls: list[str], settings: _settings.Settings) -> dict[str, LinkStatus]:
    """Probe each URL once, `settings.jobs` at a time (one session per worker thread), where pull would
    fetch it: through settings.mirrors (the status's `url` is the one asked)."""
    from .http import http_session
    from .transfer import apply_mirrors

    local = threading.local()
    sessions = []

    def one(url: str) -> LinkStatus:
        if not hasattr(local, "session"):
            local.session = http_session(settings)
            sessions.append(local.session)
        return probe(local.session, apply_mirrors(url, settings.mirrors), settings)

    unique = list(dict.fromkeys(urls))
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(settings.jobs, len(unique)))) as pool:
            return dict(zip(unique, pool.map(one, unique)))
    finally:
        for s in sessions:
            s.close()


def link_entries(names: list[str], registry=None, settings: _settings.Settings | None = None) -> list[Entry]:
    """The cards named: card files, directories of cards (searched as a registry tree), ids or short
    names of the registry; all cards of the registry when no name is given."""
    if not names:
        reg = open_registry(registry, settings)
        return [reg.entry(i) for i in reg.ids()]
    entries = []
    for name in names:
        if os.path.isdir(name):
            entries += [
                entry_from_file(Path(name, rel), rel[:-3])
                for rel in walk_markdown(name)
                if is_card_filename(short_name(rel))
            ]
        else:
            entries.append(resolve(name, registry=registry, settings=settings))
    return entries


@dataclass
class LinkReport:
    """What `registry check-links` found: each remote asset's status, cards whose assets could not be read."""

    uses: list = field(default_factory=list)  # (Entry, Asset) of every remote asset link
    results: dict = field(default_factory=dict)  # url -> LinkStatus
    unreadable: list = field(default_factory=list)  # messages of cards whose asset list is malformed
    local: int = 0  # local asset links skipped

    @property
    def dead(self) -> list:
        """(Entry, Asset) of the links that are dead."""
        return [(e, a) for e, a in self.uses if self.results[a.url].dead]

    @property
    def exit_code(self) -> int:
        return 1 if self.dead or self.unreadable else 0


def link_report(names: list[str], registry=None, settings: _settings.Settings | None = None) -> LinkReport:
    """Probe the remote asset links of the cards named (link_entries) and return a LinkReport.
    Raises what resolving the names raises (NotFoundError, UsageError, TransferError, OfflineError)."""
    settings = settings or _settings.current()
    report = LinkReport()
    for entry in link_entries(names, registry, settings):
        try:
            assets = entry.assets
        except RegistryError as exc:
            report.unreadable.append(exc.message)
            continue
        for asset in assets:
            if asset.url.lower().startswith(("http://", "https://")):
                report.uses.append((entry, asset))
            else:
                report.local += 1
    report.results = check_links([a.url for _, a in report.uses], settings)
    return report


# --------------------------------------------------------------------------- registry index


@dataclass
class IndexResult:
    """What `registry index DIR` did: the index written (or `blob` for stdout) and the errors of its cards."""

    root: Path
    data: dict
    blob: bytes
    output: str  # the file written, or "-" (the caller writes `blob` to stdout)
    written: str = ""  # what was written, for the report: index.json and the sharded index (shards.py)
    errors: list = field(default_factory=list)  # Problems that make the index exit 1 (see index_errors)

    @property
    def error_cards(self) -> int:
        return len({p.path for p in self.errors})


def write_index(root: str | os.PathLike, output: str | None = None) -> IndexResult:
    """Build the index of the tree at `root` and write it atomically to `output` (default ROOT/index.json;
    "-": not written, the caller prints `blob`) with the sharded index beside it (shards.write_indexes);
    raises UsageError (not a directory, not writable)."""
    from .shards import write_indexes

    root = Path(root)
    data = build_index(root)
    blob = dumps_index(data)
    output = output or str(root / INDEX_NAME)
    written = "stdout"
    if output != "-":
        try:
            written = write_indexes(Path(output), blob, data)
        except OSError as exc:
            raise UsageError(f"cannot write {output} and its shards: {exc.strerror or exc}") from None
    errors = [p for p in index_errors(root) if p.rule != "no-cards"]  # an empty tree indexes fine
    return IndexResult(root, data, blob, output, written, errors)
