"""What user-visible text may hold: the one escape for every string that comes from a card, an index or a
server (ids, links, messages, card text) before it reaches a terminal or a JSON document.
"""

from __future__ import annotations

import functools
import json
import re

# What must never reach a terminal from a card, an index or a server: C0 controls (ESC starts terminal
# sequences, NUL, BEL...), DEL, C1 controls (U+009B is a one-character CSI), and the bidirectional and
# zero-width formatting characters that make a line display as something else (U+202E...).
_UNPRINTABLE = "\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"


@functools.cache
def _unprintable(keep: str) -> re.Pattern:
    return re.compile(f"[{_UNPRINTABLE}]" if not keep else f"(?![{re.escape(keep)}])[{_UNPRINTABLE}]")


def _escaped(match: re.Match) -> str:
    c = match.group()
    # C0 as Python writes them ("\n", "\x1b"); the rest as \uXXXX, which is also a valid JSON escape.
    return repr(c)[1:-1] if c < "\x7f" else f"\\u{ord(c):04x}"


def printable(text: str, keep: str = "") -> str:
    """`text` with every character of _UNPRINTABLE but those in `keep` (e.g. "\\t\\n" for multi-line text)
    written as a visible escape. The one escape for every user-visible string from a card, index or server."""
    if text.isascii() and text.isprintable():  # most card text: nothing to escape, no regex pass (46k-row listings)
        return text
    return _unprintable(keep).sub(_escaped, text)


def printable_json(data) -> str:
    """`data` as indented JSON (keys sorted, non-ASCII kept) in which DEL, C1 and bidi controls are \\uXXXX
    escapes too (JSON already escapes C0): the same data, safe to show on a terminal."""
    return printable(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False), "\n")


_AUTHORITY = re.compile(r"[^\s/?#]*")


def mask_passwords(text: str) -> str:
    """`text` with the password of every URL in it (`scheme://user:PASSWORD@host`) replaced by `***`.
    The one masking of credentials, for messages, JSON output and cache records. Linear: str.find for each
    `://`, then one pattern without backtracking for the authority that follows."""
    if "://" not in text:  # no URL, nothing to mask: the common case of a listing's cells
        return text
    out, pos = [], 0
    while (found := text.find("://", pos)) >= 0:
        start = found + 3
        authority = _AUTHORITY.match(text, start).group()
        at = authority.rfind("@")
        colon = authority.find(":", 0, at) if at > 0 else -1
        if colon >= 0:
            authority = f"{authority[:colon]}:***{authority[at:]}"
        out.append(text[pos:start] + authority)
        pos = start + len(_AUTHORITY.match(text, start).group())
    out.append(text[pos:])
    return "".join(out)
