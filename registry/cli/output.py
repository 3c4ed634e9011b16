"""What every command shares: the output options, the one JSON writer, tables, and settings from arguments.

Conventions (README "CLI conventions"): every command takes `--format text|json` (`--json` is the same as
`--format json`); JSON output is one document on stdout, written by `Output.json` (keys sorted, indent 2,
non-ASCII kept, control characters escaped by text.printable_json); text is made printable before it is
written, so a card cannot drive the terminal. Notes and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import warnings

from ..errors import RegistryWarning
from ..text import mask_passwords, printable, printable_json

OUTPUT_FORMATS = ("text", "json")


class _FormatAction(argparse.Action):
    """`--format` is the output format. Where a command also filters by file-format, any other value
    (`pull --format ckpt`, as before) is read as `--file-format` with a warning: no file-format is
    called text or json, so the two never clash."""

    def __init__(self, option_strings, dest, choices_=OUTPUT_FORMATS, filter_dest=None, **kw):
        self.choices_, self.filter_dest = choices_, filter_dest
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, value, option_string=None):
        if value in self.choices_:
            setattr(namespace, self.dest, value)
            return
        if self.filter_dest is None:
            parser.error(f"argument --format: {value!r} is not an output format: use one of {', '.join(self.choices_)}")
        warnings.warn(
            f"--format {value} filters by file-format as before; write --file-format {value} "
            f"(--format is the output format: {', '.join(self.choices_)})",
            RegistryWarning,
            stacklevel=2,
        )
        if isinstance(getattr(namespace, self.filter_dest, None), list) or self.filter_dest == "formats":
            setattr(namespace, self.filter_dest, [*(getattr(namespace, self.filter_dest, None) or []), value])
        else:
            setattr(namespace, self.filter_dest, value)


def add_output_options(p: argparse.ArgumentParser, choices=OUTPUT_FORMATS, filter_dest: str | None = None) -> None:
    """`--format` (and its alias `--json`) on a command; `filter_dest` names its file-format filter, if any."""
    p.add_argument(
        "--format",
        action=_FormatAction,
        dest="format",
        default="text",
        metavar="{" + ",".join(choices) + "}",
        choices_=choices,
        filter_dest=filter_dest,
        help="output format (default: text)",
    )
    p.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")


def add_registry_option(p: argparse.ArgumentParser) -> None:
    """`--registry` after the command, on the commands that read a registry."""
    # SUPPRESS keeps a value given before the command when it is not repeated after it.
    p.add_argument(
        "--registry",
        metavar="LOCATION",
        default=argparse.SUPPRESS,
        help="registry directory or http(s) base URL (default: $REGISTRY_URL, else the embedded registry)",
    )


def add_offline_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--offline", action="store_true", help="use the cache only (also $REGISTRY_OFFLINE=1)")


def add_mirror_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mirror",
        action="append",
        metavar="FROM=TO",
        help="rewrite links starting with FROM to start with TO (repeatable; also $REGISTRY_MIRRORS)",
    )


def settings_from(args):
    """The Settings a command runs with: the environment's, with its options applied."""
    from ..settings import current, parse_mirrors

    mirrors = None
    if getattr(args, "mirror", None):
        mirrors = current().mirrors + parse_mirrors(" ".join(args.mirror), "--mirror")
    return current(
        offline=True if getattr(args, "offline", False) else None,
        mirrors=mirrors,
        jobs=getattr(args, "jobs", None),
        registry_url=getattr(args, "registry", None),
        require_full_sha256=True if getattr(args, "require_full_sha256", False) else None,
    )


STREAM_BATCH = 512  # rows of a streamed table held to size its columns (about one shard)


class Output:
    """Where a command writes: stdout for its result, stderr for notes."""

    def __init__(self, args, stdout=None, stderr=None, settings=None):
        self.format = getattr(args, "format", "text")
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._settings = settings

    @property
    def as_json(self) -> bool:
        return self.format == "json"

    def json(self, data) -> None:
        """The one JSON writer: one document on stdout."""
        self.stdout.write(mask_passwords(printable_json(data)) + "\n")

    def json_list(self, items) -> int:
        """`json(list(items))`, the same bytes, written as the items come (a streamed listing); returns their number."""
        n = 0
        for n, item in enumerate(items, 1):
            text = mask_passwords(printable_json(item)).replace("\n", "\n  ")
            self.stdout.write(("[\n  " if n == 1 else ",\n  ") + text)
        self.stdout.write("\n]\n" if n else "[]\n")
        return n

    def line(self, text: str = "", keep: str = "") -> None:
        self.stdout.write(printable(mask_passwords(text), keep) + "\n")

    def raw(self, text: str) -> None:
        """Text already made printable (rendered Markdown, tables)."""
        self.stdout.write(text)

    def note(self, text: str) -> None:
        self.stderr.write(printable(mask_passwords(text)) + "\n")

    @property
    def tty(self) -> bool:
        if not (hasattr(self.stdout, "isatty") and self.stdout.isatty()):
            return False
        if self._settings is None:
            from ..settings import current

            self._settings = current()
        return not self._settings.no_color

    def width(self) -> int:
        return shutil.get_terminal_size((100, 24)).columns if self.tty else 100

    def table(self, rows: list[list[str]], header: list[str]) -> None:
        # map/zip rather than generators: the same cells and widths, a frame less per cell (46k-row listings).
        # Text that is ASCII, printable and has no URL is plain already: the whole table at once (most
        # listings), else row by row.
        if not _plain_already("".join(map("".join, rows))):
            rows = [row if _plain_already("".join(row)) else list(map(plain, row)) for row in rows]
        widths = [max(map(len, column)) for column in zip(header, *rows)]
        line = "  ".join(f"%-{w}s" for w in widths)  # ljust of each cell to its width, one format per row
        lines = [(line % tuple(row)).rstrip() for row in [header, *rows]]
        if self.tty:  # asked once: each isatty is a system call
            lines[0] = f"\x1b[1m{lines[0]}\x1b[0m"
        self.stdout.write("\n".join(lines) + "\n")

    def table_stream(self, rows, header: list[str], min_widths: list[int]) -> int:
        """`table` for rows that come one by one (a streamed listing): columns as wide as the header, the first
        STREAM_BATCH rows (held, a bounded number) and `min_widths`; a longer cell later pushes its line.
        Nothing is written without rows; returns their number."""
        rows = iter(rows)
        first = [[plain(cell) for cell in row] for row in itertools.islice(rows, STREAM_BATCH)]
        if not first:
            return 0
        widths = [max(len(h), m, *(len(r[i]) for r in first)) for i, (h, m) in enumerate(zip(header, min_widths))]
        head = "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()
        self.stdout.write((f"\x1b[1m{head}\x1b[0m" if self.tty else head) + "\n")
        n = 0
        for row in itertools.chain(first, ([plain(cell) for cell in row] for row in rows)):
            n += 1
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
        return n


def _plain_already(text: str) -> bool:
    """Whether plain(text) is text (a shortcut for cells that need no escape, no mask)."""
    return text.isascii() and text.isprintable() and "://" not in text


def plain(text: str) -> str:
    """Card text for the terminal: it must not drive it (clear it, set its title, reorder a line)."""
    return printable(mask_passwords(text), "\t\n")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def example(*lines: str) -> str:
    """An argparse epilog of examples."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def count(text: str) -> int:
    """argparse type: a whole number of 0 or more (a count such as --limit)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return value
