"""`registry pull`: assets into the cache, verified by sha256."""

from __future__ import annotations

from .output import (
    Output,
    add_mirror_option,
    add_offline_option,
    add_output_options,
    add_registry_option,
    example,
    settings_from,
)


def version_option(p) -> None:
    p.add_argument(
        "--mindspore-version",
        metavar="SPEC",
        help="among the cards of a short name, the newest for this MindSpore version or specifier "
        "(e.g. 1.8 or '>=1.8,<2'; default: the newest for the installed MindSpore)",
    )


def register(sub) -> None:
    p = sub.add_parser(
        "pull",
        help="download a model's assets into the cache, verified by sha256",
        description="Download (or find in the cache) the assets of each model, verified by sha256; "
        "prints `SHA256[:12]  PATH` per asset.",
        epilog=example(
            "registry pull lenet_digits",
            "registry pull ssd_v1_coco2017 --file-format ckpt",
            "REGISTRY_OFFLINE=1 registry pull lenet_digits --json",
        ),
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="full id, short name or card path")
    p.add_argument(
        "--file-format",
        dest="formats",
        action="append",
        metavar="FMT",
        help="only assets of this file-format (repeatable)",
    )
    add_output_options(p, filter_dest="formats")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success, and no progress bar")
    p.add_argument("--jobs", type=int, metavar="N", help="assets downloaded in parallel (default: $REGISTRY_JOBS or 4)")
    version_option(p)
    p.add_argument(
        "--require-full-sha256",
        action="store_true",
        help="refuse assets whose card gives only a sha256 prefix (also $REGISTRY_REQUIRE_FULL_SHA256=1)",
    )
    add_mirror_option(p)
    add_offline_option(p)
    add_registry_option(p)
    p.set_defaults(func=cmd_pull)


def cmd_pull(args, out: Output) -> int:
    from ..catalog import resolve
    from ..transfer import pull

    settings = settings_from(args)
    pulled = []
    for name in args.names:
        entry = resolve(
            name, registry=getattr(args, "registry", None), mindspore_version=args.mindspore_version, settings=settings
        )
        items = pull(
            entry,
            formats=args.formats,
            force=args.force,
            settings=settings,
            progress=False if args.quiet or out.as_json else None,
        )
        if not out.as_json and not args.quiet:
            for item in items:
                out.line(f"{item.sha256[:12]}  {item.path}")
        pulled += items
    if out.as_json:
        out.json(
            [
                {
                    "id": p.entry.id,
                    "asset": p.asset.index + 1,
                    "file-format": p.asset.file_format,
                    "path": str(p.path),
                    "sha256": p.sha256,
                    "size": p.path.stat().st_size,
                    "downloaded": p.downloaded,
                }
                for p in pulled
            ]
        )
    return 0
