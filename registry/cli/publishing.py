"""Commands for publishers: validate, hash, new, add-asset, index, check-links, serve."""

from __future__ import annotations

import os

from ..rules import blocks_use
from ..versions import same_version_groups
from .output import (
    Output,
    add_mirror_option,
    add_output_options,
    add_registry_option,
    example,
    plural,
    settings_from,
)


def register(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="check model cards against the schema and lint rules",
        description="Check model cards against the schema and the lint rules; exit 1 on an error.",
        epilog=example("registry validate manifests/", "registry validate --format github card.md"),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="card files or directories (searched recursively)")
    add_output_options(p, choices=("text", "json", "github"))
    p.add_argument(
        "--check-assets",
        action="store_true",
        help="also check local asset files: present, world-readable, size and sha256 (as `index` does)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="processes checking cards (default: the number of CPUs; 1: this one alone)",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "hash",
        help="print the sha256 of files (sha256sum format), to paste into a card",
        description="Print `SHA256  PATH` lines that `sha256sum -c` accepts; --card prints an "
        "`asset:` entry with the size, --format json one document.",
        epilog=example(
            "registry hash lenet.ckpt",
            "registry hash --card lenet.ckpt",
            "registry hash *.ckpt > SHA256SUMS && sha256sum -c SHA256SUMS",
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--card", action="store_true", help="print an `asset:` snippet (file-format, link, sha256, size)")
    add_output_options(p)
    p.set_defaults(func=cmd_hash)

    p = sub.add_parser(
        "new",
        help="write a card template to fill in (validate flags its TODO placeholders)",
        description="Write the template of a new card; `registry validate` lists what to fill in.",
        epilog=example("registry new me/cpu/2.3/lenet_digits --dir my-registry"),
    )
    p.add_argument("name", metavar="NAME", help="NAME or USER/[BACKEND/]VERSION/NAME (the card's path in a registry)")
    p.add_argument("--dir", default=".", metavar="DIR", help="registry root to write the card under (default: .)")
    add_output_options(p)
    p.set_defaults(func=cmd_new)

    p = sub.add_parser(
        "add-asset",
        help="append an asset with its sha256 to a card, keeping the rest of it as is",
        description="Hash a local file or a URL and append it to the card's `asset:` list.",
        epilog=example(
            "registry add-asset card.md lenet.ckpt", "registry add-asset card.md https://host/w.bin --file-format ckpt"
        ),
    )
    p.add_argument("card", metavar="CARD", help="the card file")
    p.add_argument("source", metavar="FILE_OR_URL", help="a local file (linked relative to the card) or an http(s) URL")
    p.add_argument("--file-format", dest="file_format", metavar="FMT", help="file-format (default: from the file name)")
    add_output_options(p, filter_dest="file_format")
    p.set_defaults(func=cmd_add_asset)

    p = sub.add_parser(
        "index",
        help="write index.json describing every card of a registry tree",
        description="Write DIR/index.json (what remote clients read); exit 1 when a card has an "
        "error. --check writes nothing and exits 1 when the index is stale.",
        epilog=example(
            "registry index my-registry", "registry index --check my-registry", "registry index my-registry -o - | head"
        ),
    )
    p.add_argument("directory", metavar="DIR")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: DIR/index.json; - for stdout)")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the index is missing or differs from what `index` would write",
    )
    p.add_argument(
        "--allow-invalid",
        action="store_true",
        help="exit 0 even when cards have errors (they are recorded in the index anyway)",
    )
    add_output_options(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "check-links",
        help="ask the servers of remote asset links whether they answer (no download)",
        description="One 1-byte Range request per remote asset link: status, size, Range support; "
        "exit 1 on a dead link.",
        epilog=example("registry check-links my-registry/", "registry check-links lenet_digits --json"),
    )
    p.add_argument(
        "names", nargs="*", metavar="PATH|NAME", help="card files, directories or names (default: every card)"
    )
    p.add_argument("--jobs", type=int, metavar="N", help="links checked in parallel (default: $REGISTRY_JOBS or 4)")
    add_mirror_option(p)
    add_output_options(p)
    add_registry_option(p)
    p.set_defaults(func=cmd_check_links)

    p = sub.add_parser(
        "serve",
        help="serve a registry tree over HTTP for local trials (with Range support)",
        description="Serve a registry tree (and a generated index.json) until Ctrl-C.",
        epilog=example("registry serve my-registry --port 8000", "REGISTRY_URL=http://127.0.0.1:8000/ registry list"),
    )
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    add_output_options(p)
    p.set_defaults(func=cmd_serve)


# --------------------------------------------------------------------------- validate


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def _summary_line(summary: dict) -> str:
    s = summary
    line = (
        f"{plural(s['cards'], 'card')} checked: {s['clean']} clean, {s['with_errors']} with errors; "
        f"{plural(s['errors'], 'error')}, {plural(s['warnings'], 'warning')}"
    )
    if s["localized"]:
        line += f"; {plural(s['localized'], 'localized twin')} (_cn.md) checked for readability only"
    return line


def cmd_validate(args, out: Output) -> int:
    from ..lint import validate_paths

    report = validate_paths(args.paths, check_assets=args.check_assets, jobs=args.jobs)
    problems = report.iter_problems()  # one at a time: a large tree has tens of thousands
    if out.as_json:
        out.json(
            {
                "problems": [
                    {
                        "path": p.path,
                        "line": p.line,
                        "col": p.col,
                        "severity": p.severity,
                        "rule": p.rule,
                        "message": p.message,
                    }
                    for p in problems
                ],
                "summary": report.summary(),
                "exit_code": report.exit_code,
            }
        )
        return report.exit_code
    for p in problems:
        if out.format == "github":
            where = f"file={_gh_escape(p.path, True)}"
            if p.line:
                where += f",line={p.line},col={p.col}"
            out.line(f"::{p.severity} {where},title={_gh_escape(p.rule, True)}::{_gh_escape(p.message)}")
        else:
            out.line(p.format())
    out.line(_summary_line(report.summary()))
    return report.exit_code


# --------------------------------------------------------------------------- hash, new, add-asset


def cmd_hash(args, out: Output) -> int:
    from ..cache import hash_file

    rows = []
    for path in args.files:
        digest, size = hash_file(path)
        rows.append({"path": path, "sha256": digest, "size": size})
    if out.as_json:
        out.json(rows)
    elif args.card:
        out.line("asset:")
        for r in rows:
            fmt = os.path.splitext(r["path"])[1].lstrip(".").lower() or "TODO"
            link = r["path"].replace(os.sep, "/")
            out.line(
                f"  - file-format: {fmt}\n    asset-link: {link}\n    asset-sha256: {r['sha256']}\n"
                f"    asset-size: {r['size']}",
                "\n",
            )
    else:
        for r in rows:  # sha256sum's format: `sha256sum -c` checks these lines
            out.line(_sha256sum_line(r["sha256"], r["path"]))
    return 0


def _sha256sum_line(digest: str, path: str) -> str:
    r"""`DIGEST  PATH` as GNU sha256sum writes it: a name holding a backslash or a line break is escaped
    (`\\`, `\n`, `\r`) and the line starts with a backslash."""
    if not any(c in path for c in "\\\n\r"):
        return f"{digest}  {path}"
    escaped = path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return f"\\{digest}  {escaped}"


def cmd_new(args, out: Output) -> int:
    from ..lint import PLACEHOLDER
    from ..publish import new_card

    path = new_card(args.name, args.dir)
    count = path.read_text(encoding="utf-8").count(f": {PLACEHOLDER} ")
    if out.as_json:
        out.json({"path": str(path), "placeholders": count})
    else:
        out.line(
            f"wrote {path}: replace its {count} {PLACEHOLDER} placeholders (`registry validate {path}` lists "
            f"them), then add the weights with `registry add-asset {path} FILE`"
        )
    return 0


def cmd_add_asset(args, out: Output) -> int:
    from ..publish import add_asset

    added = add_asset(args.card, args.source, args.file_format, settings=settings_from(args))
    if out.as_json:
        out.json(
            {
                "card": str(added.card),
                "file-format": added.file_format,
                "link": added.link,
                "sha256": added.sha256,
                "size": added.size,
            }
        )
    else:
        out.line(
            f"added a {added.file_format} asset to {added.card}: {added.link} sha256 {added.sha256} "
            f"({added.size:,} bytes)"
        )
    return 0


# --------------------------------------------------------------------------- index


def _some(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def cmd_index(args, out: Output) -> int:
    return _index_check(args, out) if args.check else _index_write(args, out)


def _index_write(args, out: Output) -> int:
    from ..publish import write_index

    result = write_index(args.directory, args.output)
    to_stdout = result.output == "-"
    if to_stdout:
        out.stdout.write(result.blob.decode("utf-8"))
        out.stdout.flush()
    failed = bool(result.errors) and not args.allow_invalid
    if out.as_json and not to_stdout:
        out.json(
            {
                "output": result.output,
                "counts": result.data["counts"],
                "collisions": result.data["collisions"],
                "errors": [p.format() for p in result.errors],
                "published": not failed,
            }
        )
        return 1 if failed else 0
    say = out.note if to_stdout else out.line
    n, root = result.data["counts"], result.root
    where = result.written
    records = result.data["cards"]
    unreadable = sum(1 for r in records if any(blocks_use(p.split(": ", 2)[1]) for p in r["problems"] if ": " in p))
    say(
        f"indexed {n['cards']} cards of {root} into {where}: {unreadable} that cannot be read "
        f"(`registry validate {root}` explains them), {n['translations']} translations"
    )
    collisions = result.data["collisions"]
    if collisions:
        # Cards of one name for several MindSpore versions are fine (a short name picks by version); only
        # two cards of one version need full ids.
        versions_of = {r["id"]: r["fields"].get("mindspore-version") for r in records}
        collisions = same_version_groups(collisions, versions_of)
        say(
            f"{n['collisions']} short names name cards of several MindSpore versions (a short name picks one "
            f"by version); {len(collisions)} of them name two cards of one version: use full ids for those"
            + (":" if collisions else "")
        )
        for name, ids in list(collisions.items())[:10]:
            more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
            say(f"  {name}: {', '.join(ids[:3])}{more}")
        if len(collisions) > 10:
            say(f'  ... {len(collisions) - 10} more under "collisions" in the index')
    if not result.errors:
        return 0
    cards, errors = result.error_cards, len(result.errors)
    if args.allow_invalid:
        say(f"{errors} errors in {cards} cards, published anyway (--allow-invalid)")
        return 0
    for p in result.errors:
        say(p.format())
    say(
        f"the index is written, but {plural(cards, 'card')} ha{'ve' if cards != 1 else 's'} "
        f"{plural(errors, 'error')}: fix them, or pass --allow-invalid to publish anyway"
    )
    return 1


def _index_check(args, out: Output) -> int:
    from ..publish import check_index

    result = check_index(args.directory, args.output if args.output not in (None, "-") else None)
    if out.as_json:
        out.json(
            {
                "path": str(result.path),
                "state": result.state,
                "added": result.added,
                "removed": result.removed,
                "changed": result.changed,
                "reason": result.reason,
            }
        )
        return 0 if result.ok else 1
    fix = f"run `registry index {args.directory}` and commit the result"
    if result.ok:
        out.line(f"{result.path} is current")
        return 0
    if result.state == "missing":
        out.note(f"{result.path} is missing: {fix}")
    elif result.state == "unreadable":
        out.note(f"{result.path} cannot be read ({result.reason}): fix its permissions or {fix}")
    else:
        parts = [
            f"{plural(len(ids), 'card')} {what} ({_some(ids)})"
            for what, ids in (("changed", result.changed), ("added", result.added), ("removed", result.removed))
            if ids
        ]
        out.note(f"{result.path} is stale: {'; '.join(parts) or result.reason}; {fix}")
    return 1


# --------------------------------------------------------------------------- check-links


def cmd_check_links(args, out: Output) -> int:
    from ..publish import link_report

    report = link_report(args.names, getattr(args, "registry", None), settings_from(args))
    results = report.results
    for message in report.unreadable:
        out.note(f"registry: error: {message}")
    if out.as_json:
        out.json(
            [
                {
                    "card": e.id,
                    "asset": a.index + 1,
                    "url": a.url,
                    "checked": results[a.url].url,  # another URL when a mirror rewrote the link
                    "status": results[a.url].status,
                    "size": results[a.url].size,
                    "ranges": results[a.url].ranges,
                    "error": results[a.url].error,
                }
                for e, a in report.uses
            ]
        )
    elif report.uses:

        def cell(r) -> list[str]:
            return [
                str(r.status) if r.status else "-",
                "-" if r.size is None else f"{r.size:,}",
                {True: "yes", False: "no", None: "-"}[r.ranges],
            ]

        out.table(
            [[*cell(results[a.url]), f"{e.id}#{a.index + 1}", results[a.url].url] for e, a in report.uses],
            ["STATUS", "SIZE", "RANGE", "CARD#ASSET", "URL"],
        )
    dead = report.dead
    for e, a in dead:
        checked = results[a.url].url
        via = f" (checked at its mirror {checked})" if checked != a.url else ""
        out.note(f"registry: dead link: {e.source}: asset {a.index + 1}: {a.url}{via}: {results[a.url].error}")
    no_range = sum(1 for r in results.values() if r.ranges is False)
    note = f"; {no_range} without Range support (downloads cannot resume)" if no_range else ""
    skipped = (
        f"; {report.local} local assets skipped (`registry validate --check-assets` checks them)"
        if report.local
        else ""
    )
    out.note(f"{plural(len(results), 'link')} checked: {len({a.url for _, a in dead})} dead{note}{skipped}")
    return report.exit_code


# --------------------------------------------------------------------------- serve


def cmd_serve(args, out: Output) -> int:
    from ..serve import RegistryServer

    server = RegistryServer(args.directory, args.host, args.port)
    generated = not (server.root / "index.json").is_file()
    if out.as_json:
        out.json({"root": str(server.root), "url": server.url, "index_generated": generated})
    else:
        out.line(
            f"serving {server.root} at {server.url}{' (index.json generated from the tree)' if generated else ''}"
            "; Ctrl-C to stop"
        )
    out.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
