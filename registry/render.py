"""Markdown for a terminal: a card's text as readable plain text (headings set off, code indented, links
as `text (url)`, tables aligned). Pure: text in, text out; the caller makes the text printable first
(text.printable) and writes it.
"""

from __future__ import annotations

import re
import textwrap

MAX_RENDERED_BYTES = 128 << 10  # markdown-it takes up to ~20 us a byte (link brackets): ~2.5 s at this size


def render_markdown(text: str, width: int = 100, tty: bool = False) -> str:
    """Markdown as readable terminal text: headings set off, code indented, links as `text (url)`.
    A text over MAX_RENDERED_BYTES (no real card comes near) is returned as it is, after a note."""
    from markdown_it import MarkdownIt

    if len(text) > MAX_RENDERED_BYTES:
        return f"(the card's text is over {MAX_RENDERED_BYTES >> 10} KiB, shown as written)\n\n{text.strip(chr(10))}\n"

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    out: list[str] = []
    lists: list[list] = []  # per open list: [ordered, next number]
    quote_depth = 0
    cells: list[str] = []
    rows: list[list[str]] = []

    def prefix() -> str:
        return "  " * len(lists) + "> " * quote_depth

    def fill(text: str, first: str, rest: str) -> str:
        return (
            textwrap.fill(
                text,
                width=max(20, width),
                initial_indent=first,
                subsequent_indent=rest,
                break_long_words=False,
                break_on_hyphens=False,
            )
            + "\n"
        )

    marker = ""  # the bullet or number waiting for a list item's first paragraph
    for i, tok in enumerate(tokens):
        t = tok.type
        if t == "heading_open":
            title = _inline(tokens[i + 1], tty)
            if tty:
                out.append(f"\n\x1b[1;4m{title}\x1b[0m\n\n")
            else:
                out.append(f"\n{title}\n{('=' if tok.tag in ('h1', 'h2') else '-') * len(title)}\n\n")
        elif t in ("bullet_list_open", "ordered_list_open"):
            lists.append([t == "ordered_list_open", int(tok.attrs.get("start", 1) or 1)])
        elif t in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                out.append("\n")
        elif t == "list_item_open":
            ordered, number = lists[-1]
            marker = f"{number}. " if ordered else "- "
            lists[-1][1] = number + 1
        elif t == "inline" and tokens[i - 1].type == "paragraph_open":
            # Items sit one level left of their contents; the marker hangs in front of the first line.
            lead = "  " * max(0, len(lists) - 1) + "> " * quote_depth
            hang = " " * len(marker) if marker else ("   " if lists else "")
            out.append(fill(_inline(tok, tty), lead + (marker or hang), lead + hang))
            marker = ""
            if not tokens[i - 1].hidden:  # tight list items have no blank line between them
                out.append("\n")
        elif t in ("fence", "code_block"):
            code = tok.content.rstrip("\n")
            lead = prefix() + "    "
            out.append("\n".join(lead + line if line else "" for line in code.split("\n")) + "\n\n")
        elif t == "blockquote_open":
            quote_depth += 1
        elif t == "blockquote_close":
            quote_depth -= 1
        elif t == "hr":
            out.append(prefix() + "-" * min(40, width) + "\n\n")
        elif t == "html_block":
            plain = re.sub(r"<[^>]+>", "", tok.content).strip()
            if plain:
                out.append(fill(plain, prefix(), prefix()) + "\n")
        elif t == "tr_open":
            cells = []
        elif t == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            cells.append(_inline(tok, tty))
        elif t == "tr_close":
            rows.append(cells)
        elif t == "table_close":
            widths = [max(len(r[c]) if c < len(r) else 0 for r in rows) for c in range(max(map(len, rows)))]
            for n, r in enumerate(rows):
                out.append(prefix() + " | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
                if n == 0:
                    out.append(prefix() + "-+-".join("-" * w for w in widths) + "\n")
            out.append("\n")
            rows = []
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).lstrip("\n")


def _inline(token, tty: bool) -> str:
    parts: list[str] = []
    links: list[tuple[str, int]] = []  # (href, position in parts where the link text starts)
    for child in token.children or ():
        t = child.type
        if t == "text":
            parts.append(child.content)
        elif t == "code_inline":
            parts.append(f"`{child.content}`")
        elif t == "softbreak":
            parts.append(" ")
        elif t == "hardbreak":
            parts.append("\n")
        elif t == "link_open":
            links.append((child.attrs.get("href", ""), len(parts)))
        elif t == "link_close" and links:
            href, start = links.pop()
            label = "".join(parts[start:])
            if href and href != label and href != f"mailto:{label}":
                parts.append(f" ({href})")
        elif t == "image":
            alt = "".join(c.content for c in child.children or ()) or "image"
            parts.append(f"[{alt}] ({child.attrs.get('src', '')})")
        elif t in ("strong_open", "strong_close") and tty:
            parts.append("\x1b[1m" if t == "strong_open" else "\x1b[22m")
        elif t == "html_inline":
            continue
    return "".join(parts)
