"""The `registry` command: a thin layer over the Python API, and the only code that writes text.

Each command group is one module of this package with a `register(sub)` function adding its subcommands
(GROUPS lists them; a new group is a new module and one name here). A command function takes the parsed
arguments and an Output (output.py) and returns the exit code; the domain functions it calls return
typed results and raise errors.py's errors.

Every failure the user can cause ends as one line on stderr and the exit code its error carries
(see errors.py); tracebacks appear only with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from .. import __version__
from ..errors import RegistryError, UsageError
from ..text import mask_passwords, printable

GROUPS = ("publishing", "pulling", "models", "caching", "site", "environment")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kw)

    def error(self, message: str):  # argparse's usage errors use our exit code 2 and one line
        self.print_usage(sys.stderr)
        # the top-level parser's name is already in main's `registry: error:` prefix
        raise UsageError(message if self.prog == "registry" else f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (the groups' modules register their subcommands)."""
    parser = _Parser(prog="registry", description="Model registry and asset manager for MindSpore.")
    parser.add_argument("--version", action="version", version=f"registry {__version__}")
    parser.add_argument(
        "--registry",
        metavar="LOCATION",
        help="registry directory or http(s) base URL (default: $REGISTRY_URL, else the embedded "
        "registry); read by the commands that use a registry",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for group in GROUPS:
        importlib.import_module(f"{__name__}.{group}").register(sub)
    return parser


def _show_library_notices() -> None:
    """The library reports through logging (it never prints): its notices go to stderr as one line each."""
    import logging

    logger = logging.getLogger("registry")
    if not logger.handlers:

        class Printable(logging.Formatter):
            def format(self, record):
                return printable(mask_passwords(super().format(record)))

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(Printable("registry: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit code (errors.py)."""
    from ..errors import RegistryWarning

    _show_library_notices()
    with warnings.catch_warnings():  # restores the caller's warning display when main() returns
        python_show = warnings.showwarning

        def show(message, category, *rest, **kw):  # the library's warnings: one line each on stderr
            if issubclass(category, RegistryWarning):
                sys.stderr.write(f"registry: warning: {printable(mask_passwords(str(message)))}\n")
            else:
                python_show(message, category, *rest, **kw)

        warnings.showwarning = show
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    from .output import Output

    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return args.func(args, Output(args))
    except RegistryError as exc:
        sys.stderr.write(f"registry: error: {printable(exc.message)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("registry: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug of ours: one line, the traceback on request
        if debug:
            raise
        sys.stderr.write(
            f"registry: internal error: {type(exc).__name__}: {printable(mask_passwords(str(exc)))} "
            "(rerun with --debug for the traceback)\n"
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
