"""What each card rule means for a consumer: the one table of which defects block use.

`registry validate` (publishers) reports every problem with its severity, errors failing the run.
`pull` and `load` (consumers) refuse a card only for a problem that *blocks use*: the card cannot
be read as written, or the asset list a pull acts on (what to download, how to verify it) is
missing or wrong. Every other problem is *cosmetic* for a consumer: it is passed on once as a
warning and the bytes are still verified by sha256. `info` shows both kinds apart.

Schema rules are split by the JSON path of the value they are about, not by kind: a schema problem
blocks use when it is about the asset list (`asset`), an asset item (`asset/N`) or an item's
`asset-link` or `asset-sha256`; about any other field (dates, enums, versions, required metadata,
an item's `file-format`, extra keys) it is cosmetic. `sha256-prefix` (an asset-sha256 of 8 to 63
hex digits) does not block: pull checks the prefix and warns, unless REGISTRY_REQUIRE_FULL_SHA256.
"""

from __future__ import annotations

# rule id -> True when the problem blocks use. "schema" marks the schema rules, split by path.
BLOCKS_USE: dict[str, bool | str] = {
    # the file cannot be read as a card
    "read-error": True,
    "not-found": True,
    "no-cards": True,
    "too-large": True,
    "binary-file": True,
    "encoding": True,
    "empty-file": True,
    "no-front-matter": True,
    "unterminated-front-matter": True,
    "empty-front-matter": True,
    "yaml-tab": True,
    "yaml-syntax": True,
    "yaml-too-complex": True,
    "front-matter-not-mapping": True,
    "duplicate-key": True,
    # what the card says is not what is read: fields stand below a stray `---`
    "fields-after-front-matter": True,
    # two files of one card given one digest: the asset list contradicts itself
    "sha256-reused": True,
    # hub quirks read as text
    "yaml-dash-placeholder": False,
    "yaml-colon-in-value": False,
    # the schema: by path (module doc)
    "schema-required": "schema",
    "schema-type": "schema",
    "schema-enum": "schema",
    "schema-pattern": "schema",
    "schema-unknown-key": "schema",
    "schema-value": "schema",
    "sha256-prefix": False,
    # facts about the card that do not touch the bytes
    "unknown-key": False,
    "path-mismatch": False,
    "path-not-utf8": False,  # an index cannot name it; a card file given by its path is still read
    "local-link": False,
    "insecure-link": False,
    "future-date": False,
    "orphan-translation": False,
    "format-extension": False,
    # a `registry new` template value left unfilled: judged like a schema problem of that field
    "placeholder": "schema",
    # publisher checks of local asset files (validate --check-assets, index); a pull verifies what it gets
    "asset-missing": False,
    "asset-outside-tree": False,
    "asset-not-readable": False,
    "asset-size-mismatch": False,
    "asset-sha256-mismatch": False,
}
_ASSET_BLOCKING_KEYS = frozenset({"asset-link", "asset-sha256"})


def blocks_use(rule: str, keypath: tuple = ()) -> bool:
    """Whether a problem of `rule` about the value at `keypath` makes the card unusable for pull/load.
    An unknown rule blocks: a new rule is strict until it is classified here."""
    kind = BLOCKS_USE.get(rule, True)
    if kind != "schema":
        return bool(kind)
    if not keypath or keypath[0] != "asset":
        return False
    return len(keypath) <= 2 or keypath[2] in _ASSET_BLOCKING_KEYS
