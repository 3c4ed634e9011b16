"""Model-card parsing: front matter with the line and column of every key and value.

A card is Markdown. Its front matter is the YAML block between the first two lines that are exactly
`---`; a `# Title` line usually stands before it. Parsing never raises for bad content: every defect
becomes a `Problem` with its place, so `registry validate` can report all of them.

Choices, all made so that what a card says is what we read:
- Duplicate mapping keys are reported (PyYAML silently keeps the last one).
- Versions and digests keep the text written (`mindspore-version: 1.10` is "1.10", not 1.1), and
  dates stay text (JSON has no date type; the schema checks their pattern).
- A link written as `<https://...>` (Markdown autolink style) is read without the angle brackets.
- Aliases are expanded with a node budget, so an alias bomb is a problem, not a hang.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

from .rules import blocks_use
from .text import printable

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_CARD_BYTES = 1 << 20  # real cards are a few KiB; anything this big is not a card
# Markdown parsing costs several microseconds a byte (markdown-it, linear but slow): sections and code blocks
# are looked for in the first MAX_MARKDOWN_BYTES of the body (the largest corpus card is 78 KB); what follows
# belongs to the last section found.
MAX_MARKDOWN_BYTES = 256 << 10
MAX_NODES = 10_000  # after alias expansion; real front matter has under 100
MAX_DEPTH = 32  # nesting levels; real front matter has 3 (asset, item, key)
# Read as the text written: versions and digests, and free-text fields, where YAML 1.1 would turn
# `evaluation: no` (4 corpus cards) into False or `model-name: 1.0` into a float.
TEXT_KEYS = frozenset(
    {
        "mindspore-version",
        "model-version",
        "asset-sha256",
        "mindspore-lite",
        "model-name",
        "backbone-name",
        "train-dataset",
        "evaluation",
        "author",
        "user-id",
        "license",
        "summary",
    }
)
ASSET_KEYS = ("file-format", "asset-link", "asset-sha256")

Path_ = tuple  # a key path into the front matter, e.g. ("asset", 0, "asset-link")


@dataclass(frozen=True)
class Problem:
    path: str
    line: int  # 1-based; 0 when the problem is about the whole file
    col: int  # 1-based
    severity: str  # "error" | "warning"
    rule: str
    message: str
    keypath: tuple = field(
        default=(), compare=False, repr=False
    )  # the value it is about, e.g. ("asset", 0, "asset-link")

    @property
    def blocks_use(self) -> bool:
        """Whether this problem makes the card unusable for pull/load (see rules.py); else it is cosmetic."""
        return blocks_use(self.rule, self.keypath)

    def format(self) -> str:
        """One line, whatever the path or the quoted values hold: control characters are escaped."""
        return printable(f"{self.path}:{self.line}:{self.col}: {self.severity} {self.rule}: {self.message}")


@dataclass(frozen=True)
class Section:
    title: str
    level: int
    line: int
    text: str  # the Markdown source of the section, without its heading


@dataclass(frozen=True)
class CodeBlock:
    lang: str
    code: str
    line: int


@dataclass
class Card:
    path: str  # as given by the caller, used in messages
    text: str
    data: Any = None  # the front matter as plain Python (dict for a sound card)
    fm_open: int = 0  # 1-based line of the opening `---` (0: none)
    fm_close: int = 0  # 1-based line of the closing `---` (0: none)
    problems: list[Problem] = field(default_factory=list)
    positions: dict = field(default_factory=dict, repr=False)  # key path -> (line, col) of the value
    key_positions: dict = field(default_factory=dict, repr=False)  # key path -> (line, col) of the key

    @property
    def fields(self) -> dict:
        return self.data if isinstance(self.data, dict) else {}

    @property
    def asset_items(self) -> list[tuple[int, dict]]:
        """(position, mapping) of each asset item of the front matter, as written: the one low-level reader
        of the raw `asset` list (items that are not mappings are skipped; `catalog.Entry.assets` is the
        typed, strict reading, and the schema reports malformed items)."""
        return asset_items(self.fields)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def pos(self, keypath: Path_ = ()) -> tuple[int, int]:
        """Where the value at `keypath` is written; the nearest written ancestor if it is absent."""
        keypath = tuple(keypath)
        while keypath:
            if keypath in self.positions:
                return self.positions[keypath]
            keypath = keypath[:-1]
        return self.positions.get((), (self.fm_open or 1, 1))

    def key_pos(self, keypath: Path_) -> tuple[int, int]:
        keypath = tuple(keypath)
        return self.key_positions.get(keypath) or self.pos(keypath)

    def problem(self, keypath: Path_, severity: str, rule: str, message: str, *, at_key: bool = False) -> Problem:
        line, col = self.key_pos(keypath) if at_key else self.pos(keypath)
        return Problem(self.path, line, col, severity, rule, message, tuple(keypath))

    # The Markdown body is parsed only when a rule or command asks for it.
    @cached_property
    def _markdown(self) -> tuple[str, list[Section], list[CodeBlock]]:
        return _parse_markdown(self.text, self.fm_open, self.fm_close)

    @property
    def title(self) -> str:
        return self._markdown[0]

    @property
    def sections(self) -> list[Section]:
        return self._markdown[1]

    @property
    def code_blocks(self) -> list[CodeBlock]:
        return self._markdown[2]

    @property
    def body(self) -> str:
        lines = self.text.split("\n")
        return "\n".join(lines[self.fm_close :]) if self.fm_close else self.text


# --------------------------------------------------------------------------- reading


def asset_items(fields) -> list[tuple[int, dict]]:
    """(position, mapping) of each asset item of a card's fields (see Card.asset_items)."""
    items = fields.get("asset") if isinstance(fields, dict) else None
    return [(i, item) for i, item in enumerate(items if isinstance(items, list) else []) if isinstance(item, dict)]


def parse_file(path: str | os.PathLike, display: str | None = None) -> Card:
    """Read and parse a card file. I/O failures become a `read-error` problem, never an exception."""
    shown = display if display is not None else str(path)
    raw = read_file(path, shown)
    return raw if isinstance(raw, Card) else parse_bytes(raw, shown)


def read_file(path: str | os.PathLike, shown: str) -> bytes | Card:
    """The bytes of a card file, or the Card of why they cannot be read (read-error, too-large)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            return _fail(shown, "", 0, "read-error", "is not a regular file: give a card file or a directory")
        size = info.st_size
        if size <= MAX_CARD_BYTES:
            # Sized to the file: reading into a limit-sized buffer costs more than parsing a card.
            with open(path, "rb", buffering=0) as fh:
                raw = fh.read(size + 1)
                if len(raw) > size:  # it grew since the stat: read on, up to the limit
                    raw += fh.read(MAX_CARD_BYTES + 1 - len(raw))
            size = len(raw)
        if size > MAX_CARD_BYTES:
            return _fail(
                shown,
                "",
                0,
                "too-large",
                f"file is {size:,} bytes, over the {MAX_CARD_BYTES:,}-byte limit for a card; "
                "keep large content out of the card and link it as an asset",
            )
    except IsADirectoryError:
        return _fail(shown, "", 0, "read-error", "is a directory, not a card file")
    except OSError as exc:
        return _fail(shown, "", 0, "read-error", f"cannot read the file: {exc.strerror or exc}")
    return raw


def parse_bytes(raw: bytes, path: str = "<bytes>") -> Card:
    """The Card of a file's bytes (UTF-8, a BOM allowed); never raises: defects are the Card's problems."""
    text = decode(raw, path)
    return text if isinstance(text, Card) else parse_text(text, path)


def decode(raw: bytes, path: str = "<bytes>") -> str | Card:
    """The text of a card's bytes, or the Card of why they are not text (binary-file, encoding)."""
    if b"\x00" in raw:
        return _fail(path, "", 0, "binary-file", "is a binary file, not a Markdown card")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return _fail(
            path, "", line, "encoding", f"byte 0x{raw[exc.start]:02x} is not UTF-8; save the file as UTF-8", col=col
        )


def _fail(path: str, text: str, line: int, rule: str, message: str, col: int = 1) -> Card:
    card = Card(path=path, text=text)
    card.problems.append(Problem(path, line, col if line else 0, "error", rule, message))
    return card


def find_front_matter(lines: list[str]) -> tuple[int, int]:
    """0-based indices of the first two lines that are exactly `---` (-1 where missing)."""
    first = second = -1
    for i, line in enumerate(lines):
        if line.rstrip("\r") == "---":
            if first < 0:
                first = i
            else:
                second = i
                break
    return first, second


def parse_text(text: str, path: str = "<string>") -> Card:
    """The Card of a card's text; never raises: every defect is a Problem with its line and column."""
    card = Card(path=path, text=text)
    if not text.strip():
        card.problems.append(
            Problem(
                path, 0, 0, "error", "empty-file", "file is empty; a card needs a front matter between two `---` lines"
            )
        )
        return card
    lines = text.split("\n")
    first, second = find_front_matter(lines)
    if first < 0 or second < 0:
        rule = "no-front-matter" if first < 0 else "unterminated-front-matter"
        # A `---` with spaces around it looks right but is not a delimiter: point at it.
        stray = next((i for i, line in enumerate(lines) if line.strip() == "---" and line.rstrip("\r") != "---"), -1)
        if stray >= 0:
            message = (
                f"line {stray + 1} is `---` with spaces or tabs around it, so it does not open or close the "
                "front matter: make it exactly `---`"
            )
            card.problems.append(Problem(path, stray + 1, 1, "error", rule, message))
        elif first < 0:
            card.problems.append(
                Problem(
                    path,
                    1,
                    1,
                    "error",
                    rule,
                    "no front matter: put the card's YAML fields between two lines that are exactly `---`",
                )
            )
        else:
            card.problems.append(
                Problem(
                    path,
                    first + 1,
                    1,
                    "error",
                    rule,
                    "front matter opened here is never closed: add a line that is exactly `---` after the last field",
                )
            )
        card.fm_open = first + 1
        return card
    card.fm_open = first + 1
    card.fm_close = second + 1
    _parse_yaml(card, "\n".join(line.rstrip("\r") for line in lines[first + 1 : second]), first + 1)
    return card


# --------------------------------------------------------------------------- YAML


def _parse_yaml(card: Card, source: str, line_offset: int) -> None:
    def add(line: int, col: int, rule: str, message: str, severity: str = "error") -> None:
        card.problems.append(Problem(card.path, line + line_offset, col, severity, rule, message))

    for i, line in enumerate(source.split("\n") if "\t" in source else ()):
        stripped = line.lstrip(" ")
        if stripped.startswith("\t"):
            add(
                i + 1,
                len(line) - len(stripped) + 1,
                "yaml-tab",
                "tab used for indentation; YAML allows only spaces: replace the tab with spaces",
            )
            return
    for attempt in range(MAX_QUIRKS + 1):
        try:
            root = yaml.compose(source, Loader=_Loader)
            break
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            src_lines = source.split("\n")
            text = src_lines[line - 1] if 0 < line <= len(src_lines) else ""
            quirk = _quirk(exc, text) if exc.problem_mark and attempt < MAX_QUIRKS else None
            if quirk is None:
                add(line, col, "yaml-syntax", _yaml_message(exc, text))
                return
            # A known hub quirk: reported (validate fails on it), then read as the text written.
            rule, fixed, value_col = quirk
            add(line, value_col, rule, _yaml_message(exc, text) + "; until then it is read as the text written")
            src_lines[line - 1] = fixed
            source = "\n".join(src_lines)
        except yaml.YAMLError as exc:  # errors without a position (e.g. unusual reader errors)
            add(1, 1, "yaml-syntax", f"YAML error: {exc}; fix the front matter")
            return
    if root is None:
        card.problems.append(
            Problem(
                card.path,
                card.fm_open,
                1,
                "error",
                "empty-front-matter",
                "front matter is empty: write the card's fields between the `---` lines",
            )
        )
        return
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        add(
            root.start_mark.line + 1,
            root.start_mark.column + 1,
            "front-matter-not-mapping",
            f"front matter is {kind}, not a mapping of fields: write `key: value` lines such as `model-name: ssd`",
        )
        return
    walker = _Walker(card, line_offset)
    try:
        card.data = walker.value(root, ())
    except _TooBig as exc:
        card.data = None
        add(1, 1, "yaml-too-complex", str(exc))


# Two MindSpore Hub quirks YAML cannot read, on a top-level line: `evaluation: -` (a placeholder
# dash; the hub rewrote it and accepted the card) and `accuracy: vit-base: 83.78` (`: ` in a value).
# The line comes from the card (or a hostile server) and may be a megabyte long: only one anchored,
# backtracking-free match and plain string operations are applied to it.
_KEY_COLON = re.compile(r"[\w().-]+:")
_NOT_PLAIN_TEXT = re.compile(r"^[\[{&*!|>%@`]| #")  # flow, anchor, tag, block scalar, comment: not one text
QUOTED_MAX = 120  # longest value quoted back in a suggestion; a longer one would flood the message
MAX_QUIRKS = 16  # quirk lines read per card (the hub has 1 at most); each costs one more YAML pass


def _quirk(exc: yaml.MarkedYAMLError, line_text: str) -> tuple[str, str, int] | None:
    """(rule, the line rewritten as a quoted scalar, 1-based column of the value) when the line YAML
    stopped at is a hub quirk that reads one way only; None otherwise.

    Read: a top-level `key: -` (a bare dash can only be a placeholder: a list cannot start there), as
    the text "-"; a top-level `key: text` whose text holds `: `, as that text: the key ends at the first
    `: ` (a key cannot hold one) and a block mapping cannot start on the same line, so the text is the
    only reading. Not read: indented lines, and values that start like other YAML (quotes, flow
    collections, anchors, tags, block scalars) or hold a comment, where more than one reading exists."""
    problem = exc.problem or ""
    head = _KEY_COLON.match(line_text)
    if not head:
        return None
    rest = line_text[head.end() :]
    value = rest.strip()
    at = head.end() + len(rest) - len(rest.lstrip())  # where the value starts
    if value == "-" and "block sequence entries are not allowed" in problem:
        return "yaml-dash-placeholder", line_text[:at] + '"-"', at + 1
    if (
        "mapping values are not allowed" in problem
        and rest[:1].isspace()
        and value[:1] not in ("", '"', "'")
        and (re.search(r":\s", value) or value.endswith(":"))
        and not _NOT_PLAIN_TEXT.search(value)
    ):
        return "yaml-colon-in-value", line_text[:at] + "'" + value.replace("'", "''") + "'", at + 1
    return None


def _yaml_message(exc: yaml.MarkedYAMLError, line_text: str) -> str:
    # Plain string operations around one anchored, backtracking-free match: the line comes from the card
    # (or a hostile server) and may be a megabyte long, so no pattern here may be super-linear in it.
    problem = (exc.problem or "").strip()
    head = _KEY_COLON.match(line_text)
    key = head.group()[:-1] if head else ""
    key = key if len(key) <= QUOTED_MAX else key[:QUOTED_MAX] + "..."  # quoted back: bounded
    value = line_text[head.end() :] if head else ""
    if head and value.strip() == "-":
        return (
            f"`{key}: -` : a lone `-` starts a YAML list, which cannot stand here; "
            f'write the value, quote it (`{key}: "-"`) or leave it empty'
        )
    if "mapping values are not allowed" in problem:
        value = value.strip()
        if (
            head
            and line_text[head.end() : head.end() + 1].isspace()
            and value[:1] not in ("", '"', "'")
            and re.search(r":\s", value)
        ):
            shown = value if len(value) <= QUOTED_MAX else "..."
            return f'the value of `{key}` contains `: `, which YAML reads as a nested key; quote it: `{key}: "{shown}"`'
        return (
            'a value contains `: ` (or a key is mis-indented); quote the value, e.g. `summary: "a: b"`, '
            "or fix the indentation"
        )
    if "block sequence entries are not allowed" in problem or "expected <block end>" in problem:
        return (
            f"YAML syntax error ({problem}): a lone `-` or a mis-indented line; "
            "write `key: value` or indent list items under their key"
        )
    if "could not find expected ':'" in problem:
        return "YAML syntax error: a line without `key: value` form; add the `:` or join it to the line above"
    context = f" {exc.context}" if exc.context else ""
    return f"YAML syntax error: {problem}{context}; fix the front matter at this place"


class _TooBig(Exception):
    pass


_SAFE = yaml.constructor.SafeConstructor()
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"


class _Walker:
    """Turns composed YAML nodes into Python values, recording positions and duplicate keys."""

    def __init__(self, card: Card, line_offset: int):
        self.card = card
        self.offset = line_offset
        self.budget = MAX_NODES

    def _at(self, node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1 + self.offset, node.start_mark.column + 1

    def value(self, node: yaml.Node, keypath: tuple, text: bool = False) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooBig(
                f"front matter expands to over {MAX_NODES:,} values (YAML aliases?); write the fields out plainly"
            )
        if len(keypath) > MAX_DEPTH:  # also what a self-referencing alias (`&a [*a]`) becomes
            raise _TooBig(
                f"front matter nests deeper than {MAX_DEPTH} levels (or an alias refers to itself); "
                "a card needs at most three: asset, item, key"
            )
        self.card.positions.setdefault(keypath, self._at(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, keypath)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, keypath + (i,), text) for i, item in enumerate(node.value)]
        return self._scalar(node, text)

    def _mapping(self, node: yaml.MappingNode, keypath: tuple) -> dict:
        result: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = self._at(key_node)
                self.card.problems.append(
                    Problem(
                        self.card.path,
                        line,
                        col,
                        "error",
                        "yaml-syntax",
                        "a key must be plain text, not a list or mapping",
                    )
                )
                continue
            key = key_node.value
            path = keypath + (key,)
            if key in result:
                line, col = self._at(key_node)
                first = self.card.key_positions[path][0]
                hint = ""
                if key in ASSET_KEYS:
                    hint = "; each asset needs its own list item: start the second asset with `- `"
                self.card.problems.append(
                    Problem(
                        self.card.path,
                        line,
                        col,
                        "error",
                        "duplicate-key",
                        f"duplicate key `{key}` (first at line {first}); YAML keeps only the last value{hint or ': remove one of them'}",
                    )
                )
                continue
            self.card.key_positions[path] = self._at(key_node)
            result[key] = self.value(value_node, path, key in TEXT_KEYS)
        return result

    def _scalar(self, node: yaml.ScalarNode, text: bool) -> Any:
        tag, raw = node.tag, node.value
        if text and not node.style and tag != _NULL:
            return raw
        if tag == _INT:
            return _SAFE.construct_yaml_int(node)
        if tag == _FLOAT:
            return _SAFE.construct_yaml_float(node)
        if tag == _BOOL:
            return _SAFE.construct_yaml_bool(node)
        if tag == _NULL:
            return None
        # Strings, and timestamps kept as the text written.
        if len(raw) > 2 and raw[0] == "<" and raw[-1] == ">":
            return raw[1:-1]
        return raw


# --------------------------------------------------------------------------- Markdown body


def _parse_markdown(text: str, fm_open: int, fm_close: int) -> tuple[str, list[Section], list[CodeBlock]]:
    from markdown_it import MarkdownIt

    lines = text.split("\n")
    title = ""
    if fm_open:
        for line in lines[: fm_open - 1]:
            if line.startswith("# "):
                title = line[2:].strip()
                break
    offset = fm_close if fm_close else 0
    body_lines = lines[offset:]
    body = "\n".join(body_lines)
    if len(body) > MAX_MARKDOWN_BYTES:
        body = body[: body.rfind("\n", 0, MAX_MARKDOWN_BYTES) + 1]
    # Block structure only: headings and code blocks need no inline parsing, the slowest part by far.
    tokens = MarkdownIt("commonmark").disable("inline").parse(body)
    headings: list[tuple[int, int, str]] = []  # (body line index, level, title)
    blocks: list[CodeBlock] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            headings.append((tok.map[0], int(tok.tag[1:]), tokens[i + 1].content.strip()))
        elif tok.type in ("fence", "code_block") and tok.map:
            lang = tok.info.strip().split()[0] if tok.info.strip() else ""
            blocks.append(CodeBlock(lang, tok.content, tok.map[0] + 1 + offset))
    if not title:
        title = next((t for _, level, t in headings if level == 1), "")
    sections = []
    for n, (start, level, heading) in enumerate(headings):
        end = headings[n + 1][0] if n + 1 < len(headings) else len(body_lines)
        sections.append(Section(heading, level, start + 1 + offset, "\n".join(body_lines[start + 1 : end]).strip("\n")))
    return title, sections, blocks
