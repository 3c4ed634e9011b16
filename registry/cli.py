"""The `registry` command: a thin layer over the Python API.

Every failure the user can cause ends as one line on stderr and the exit code its error carries
(see errors.py); tracebacks appear only with --debug.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

from . import __version__
from .errors import RegistryError, UsageError
from .text import mask_passwords, printable, printable_json


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage errors use our exit code 2 and one line
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def _print_json(data) -> None:
    sys.stdout.write(printable_json(data) + "\n")


# --------------------------------------------------------------------------- commands


def cmd_validate(args) -> int:
    from .lint import validate_paths, render

    report = validate_paths(args.paths, check_assets=args.check_assets)
    render(report, args.format, sys.stdout)
    return report.exit_code


def cmd_hash(args) -> int:
    from .cache import hash_file

    for path in args.files:
        digest, size = hash_file(path)
        if args.json:
            _print_json({"path": path, "sha256": digest, "size": size})
        else:
            print(f"{digest}  {size}  {path}")
    return 0


def _settings_from(args):
    from .settings import current, parse_mirrors

    mirrors = None
    if getattr(args, "mirror", None):
        mirrors = current().mirrors + parse_mirrors(" ".join(args.mirror), "--mirror")
    return current(offline=True if getattr(args, "offline", False) else None, mirrors=mirrors,
                   jobs=getattr(args, "jobs", None),
                   require_full_sha256=True if getattr(args, "require_full_sha256", False) else None)


def _resolve(name: str, args):
    """The card a NAME argument means; which of several versions was chosen is said on stderr."""
    from .catalog import resolve

    # which of several versions was chosen reaches stderr through the library's log (main)
    return resolve(name, registry=args.registry, mindspore_version=args.mindspore_version)


def cmd_pull(args) -> int:
    from .transfer import pull

    settings = _settings_from(args)
    for name in args.names:
        for item in pull(_resolve(name, args), formats=args.format, force=args.force, settings=settings):
            print(printable(f"{item.sha256[:12]}  {item.path}"))
    return 0


def cmd_cache(args) -> int:
    from .cache import Cache

    cache = Cache.from_settings(_settings_from(args))
    return cache.cli(args, sys.stdout)


def cmd_index(args) -> int:
    from .index import cli_index
    from .publish import cli_index_check, cli_index_errors

    if args.check:
        return cli_index_check(args, sys.stdout)
    return cli_index(args, sys.stdout) or cli_index_errors(args, sys.stdout)


def cmd_new(args) -> int:
    from .publish import cli_new

    return cli_new(args, sys.stdout)


def cmd_add_asset(args) -> int:
    from .publish import cli_add_asset

    return cli_add_asset(args, sys.stdout)


def cmd_check_links(args) -> int:
    from .publish import cli_check_links

    return cli_check_links(args, _settings_from(args), sys.stdout)


def cmd_list(args) -> int:
    from .index import cli_list

    return cli_list(args, sys.stdout)


def cmd_info(args) -> int:
    from .index import cli_info

    return cli_info(args, sys.stdout, _resolve(args.name, args))


def cmd_site(args) -> int:
    from .site import write_site

    report = write_site(args.directory, args.output)
    print(f"wrote {report.pages} model pages and index.html ({report.list_bytes:,} bytes) into {report.out}; "
          f"{report.with_problems} pages list problems. Publish the directory with its index.json "
          f"(`registry index {args.directory}`)")
    return 0


def cmd_serve(args) -> int:
    from .serve import serve

    return serve(args.directory, host=args.host, port=args.port)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="registry", description="Model registry and asset manager for MindSpore.")
    parser.add_argument("--version", action="version", version=f"registry {__version__}")
    parser.add_argument("--registry", metavar="LOCATION",
                        help="registry directory or http(s) base URL (default: $REGISTRY_URL, else the embedded registry)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("validate", help="check model cards against the schema and lint rules")
    p.add_argument("paths", nargs="+", metavar="PATH", help="card files or directories (searched recursively)")
    p.add_argument("--format", choices=("text", "json", "github"), default="text", help="output format")
    p.add_argument("--check-assets", action="store_true",
                   help="also check local asset files: present, world-readable, size and sha256 (as `index` does)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("hash", help="print the sha256 and size of files, to paste into a card")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hash)

    def transfer_options(p):
        p.add_argument("--mirror", action="append", metavar="FROM=TO",
                       help="rewrite links starting with FROM to start with TO (repeatable; also $REGISTRY_MIRRORS)")
        p.add_argument("--offline", action="store_true", help="use the cache only (also $REGISTRY_OFFLINE=1)")

    def version_option(p):
        p.add_argument("--mindspore-version", metavar="SPEC",
                       help="among the cards of a short name, the newest for this MindSpore version or specifier "
                            "(e.g. 1.8 or '>=1.8,<2'; default: the newest for the installed MindSpore)")

    p = sub.add_parser("pull", help="download a model's assets into the cache, verified by sha256")
    p.add_argument("names", nargs="+", metavar="NAME", help="full id, short name or card path")
    p.add_argument("--format", action="append", metavar="FMT", help="only assets of this file-format (repeatable)")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument("--jobs", type=int, metavar="N", help="assets downloaded in parallel (default: $REGISTRY_JOBS or 4)")
    version_option(p)
    p.add_argument("--require-full-sha256", action="store_true",
                   help="refuse assets whose card gives only a sha256 prefix (also $REGISTRY_REQUIRE_FULL_SHA256=1)")
    transfer_options(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("cache", help="inspect and maintain the local cache")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=_Parser, required=True)
    for action, text in (("ls", "list cached models and blobs"), ("verify", "re-hash every cached blob"),
                         ("prune", "remove blobs no model view uses, and stale partial files")):
        cp = csub.add_parser(action, help=text)
        cp.add_argument("--json", action="store_true")
    cp = csub.add_parser("rm", help="remove a model's view and the blobs only it uses")
    cp.add_argument("name", metavar="NAME")
    cp.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("index", help="write index.json describing every card of a registry tree")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: DIR/index.json; - for stdout)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if the index is missing or differs from what `index` would write")
    p.add_argument("--allow-invalid", action="store_true",
                   help="exit 0 even when cards have errors (they are recorded in the index anyway)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("new", help="write a card template to fill in (validate flags its TODO placeholders)")
    p.add_argument("name", metavar="NAME", help="NAME or USER/[BACKEND/]VERSION/NAME (the card's path in a registry)")
    p.add_argument("--dir", default=".", metavar="DIR", help="registry root to write the card under (default: .)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("add-asset", help="append an asset with its sha256 to a card, keeping the rest of it as is")
    p.add_argument("card", metavar="CARD", help="the card file")
    p.add_argument("source", metavar="FILE_OR_URL", help="a local file (linked relative to the card) or an http(s) URL")
    p.add_argument("--format", dest="file_format", metavar="FMT", help="file-format (default: from the file name)")
    p.set_defaults(func=cmd_add_asset)

    p = sub.add_parser("check-links", help="ask the servers of remote asset links whether they answer (no download)")
    p.add_argument("names", nargs="*", metavar="PATH|NAME", help="card files, directories or names (default: every card)")
    p.add_argument("--jobs", type=int, metavar="N", help="links checked in parallel (default: $REGISTRY_JOBS or 4)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_links)

    for name, text in (("list", "list the models of the registry"), ("search", "find models by text and filters")):
        p = sub.add_parser(name, help=text)
        if name == "search":
            p.add_argument("text", metavar="TEXT", help="words matched against names, backbone, dataset, summary")
        p.add_argument("--dataset", help="train-dataset contains this")
        p.add_argument("--backbone", help="backbone-name contains this")
        p.add_argument("--task", help="module-type contains this")
        p.add_argument("--format", dest="file_format", metavar="FMT", help="has an asset of this file-format")
        p.add_argument("--backend", help="train- or infer-backend, or the backend in the id")
        p.add_argument("--mindspore-version", metavar="SPEC", help="version or specifier, e.g. '>=1.8'")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_list)  # list has no `text`: cli_list reads it with getattr

    p = sub.add_parser("info", help="show a model's card: fields, assets and sections")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    version_option(p)
    p.add_argument("--tensors", action="store_true",
                   help="list the parameter table (name, shape, dtype) of each cached ckpt/safetensors asset")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("site", help="write a static web catalogue (index.html, a page per model) of a registry tree")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("-o", "--output", metavar="OUT", help="directory for the site (default: DIR, beside the cards)")
    p.set_defaults(func=cmd_site)

    p = sub.add_parser("serve", help="serve a registry tree over HTTP for local trials (with Range support)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
    # The global option is also accepted after the command (`registry pull --registry DIR NAME`);
    # SUPPRESS keeps a value given before the command when it is not repeated after it.
    for command in sub.choices.values():
        command.add_argument("--registry", metavar="LOCATION", default=argparse.SUPPRESS,
                             help="registry directory or http(s) base URL (as the global option)")
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
    from .errors import RegistryWarning

    _show_library_notices()
    with warnings.catch_warnings():  # restores the caller's warning display when main() returns
        python_show = warnings.showwarning

        def show(message, category, *rest, **kw):  # the library's warnings: one line each on stderr
            if issubclass(category, RegistryWarning):
                print(f"registry: warning: {printable(mask_passwords(str(message)))}", file=sys.stderr)
            else:
                python_show(message, category, *rest, **kw)

        warnings.showwarning = show
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return args.func(args)
    except RegistryError as exc:
        print(f"registry: error: {printable(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("registry: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug of ours: one line, the traceback on request
        if debug:
            raise
        print(f"registry: internal error: {type(exc).__name__}: {printable(mask_passwords(str(exc)))} (rerun with --debug for the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
