"""Commands that read a registry: list, search, info."""

from __future__ import annotations

import gc

from .output import (
    Output,
    add_offline_option,
    add_output_options,
    add_registry_option,
    count,
    example,
    plain,
    plural,
    settings_from,
)
from .pulling import version_option


def register(sub) -> None:
    for name, text, examples in (
        (
            "list",
            "list the models of the registry",
            ("registry list --task detection", "registry list --file-format safetensors --json"),
        ),
        (
            "search",
            "find models by text and filters",
            ("registry search 'ssd coco'", "registry search resnet --mindspore-version '>=1.8'"),
        ),
    ):
        p = sub.add_parser(
            name,
            help=text,
            description=text[0].upper() + text[1:] + " (read from its index).",
            epilog=example(*examples),
        )
        if name == "search":
            p.add_argument("text", metavar="TEXT", help="words matched against names, backbone, dataset, summary")
        p.add_argument("--dataset", help="train-dataset contains this")
        p.add_argument("--backbone", help="backbone-name contains this")
        p.add_argument("--task", help="module-type contains this")
        p.add_argument("--file-format", dest="file_format", metavar="FMT", help="has an asset of this file-format")
        p.add_argument("--backend", help="train- or infer-backend, or the backend in the id")
        p.add_argument("--mindspore-version", metavar="SPEC", help="version or specifier, e.g. '>=1.8'")
        p.add_argument("--limit", type=count, metavar="N", help="show at most N models")
        add_output_options(p, filter_dest="file_format")
        add_offline_option(p)
        add_registry_option(p)
        p.set_defaults(func=cmd_list)  # list has no `text`: read with getattr

    p = sub.add_parser(
        "info",
        help="show a model's card: fields, assets and sections",
        description="Show a model's card: its fields, assets and text; --tensors lists the "
        "parameters of its cached checkpoints.",
        epilog=example("registry info lenet_digits", "registry info lenet_digits --tensors --json"),
    )
    p.add_argument("name", metavar="NAME")
    add_output_options(p)
    version_option(p)
    p.add_argument(
        "--tensors",
        action="store_true",
        help="list the parameter table (name, shape, dtype) of each cached ckpt/safetensors asset",
    )
    add_offline_option(p)
    add_registry_option(p)
    p.set_defaults(func=cmd_info)


LIST_HEADER = ["ID", "TASK", "DATASET", "FORMATS", "MINDSPORE"]


def _list_row(r: dict) -> list[str]:
    f = r["fields"]
    formats = ",".join(dict.fromkeys([a["file-format"] for a in r["assets"] if a["file-format"]]))
    return [
        r["id"],
        f.get("module-type", ""),
        f.get("train-dataset", ""),
        formats,
        f.get("mindspore-version", "") or ("(invalid card)" if r["problems"] else ""),
    ]


def cmd_list(args, out: Output) -> int:
    from ..catalog import open_registry
    from ..errors import RegistryError
    from ..shards import ShardedIndex

    registry = open_registry(getattr(args, "registry", None), settings_from(args))
    # A 46k-card index is ~1M objects, none in a reference cycle and all alive until exit: the cyclic
    # collector would scan them over and over while they are built and while the rows are (a third of
    # the listing's time), so it is paused for the load and the loaded objects are left out of its scans.
    gc.disable()
    try:
        index = registry.index()
    finally:
        gc.enable()
    gc.freeze()
    try:
        return _write_list(args, out, index)
    except RegistryError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError):
        if isinstance(index, ShardedIndex):
            raise
        index.check()  # a record its stamp vouched for changed behind it (parse_cache.py): name it
        raise


def _write_list(args, out: Output, index) -> int:
    from ..listing import listed
    from ..shards import ShardedIndex

    found = listed(
        index,
        getattr(args, "text", None),
        limit=args.limit,
        dataset=args.dataset,
        backbone=args.backbone,
        task=args.task,
        file_format=args.file_format,
        backend=args.backend,
        mindspore_version=args.mindspore_version,
    )
    if out.as_json:
        out.json_list(found)
        return 0
    if isinstance(index, ShardedIndex):  # printed as the shards come: the id column at least 40 wide
        n = out.table_stream(map(_list_row, found), LIST_HEADER, [40, 12, 12, 12, 12])
    else:
        rows = [_list_row(r) for r in found]
        if rows:
            out.table(rows, LIST_HEADER)
        n = len(rows)
    if out.tty:
        out.line(plural(n, "model"))
    elif not n:
        out.note(plural(n, "model"))
    return 0


def _asset_rows(entry) -> tuple[list[dict], str | None]:
    from ..errors import CardError
    from ..text import mask_passwords

    try:
        return [
            {
                "file-format": a.file_format,
                "sha256": a.sha256,
                "link": mask_passwords(a.link),
                "url": mask_passwords(a.url),
                "filename": a.filename,
            }
            for a in entry.assets
        ], None
    except CardError as exc:
        return [], exc.message


def cmd_info(args, out: Output) -> int:
    from ..catalog import resolve
    from ..index import field_text
    from ..render import render_markdown

    settings = settings_from(args)
    entry = resolve(
        args.name, registry=getattr(args, "registry", None), mindspore_version=args.mindspore_version, settings=settings
    )
    if args.tensors:
        return _tensors(entry, settings, out)
    card = entry.card
    assets, asset_error = _asset_rows(entry)
    problems = [p.format() for p in entry.problems() if p.blocks_use]  # cosmetic ones: warnings on stderr
    cosmetic = [p.format() for p in entry.cosmetic()]
    if asset_error:
        problems.append(asset_error)
    if out.as_json:
        out.json(
            {
                "id": entry.id,
                "source": entry.source,
                "title": card.title,
                "fields": card.fields,
                "assets": assets,
                "problems": problems,
                "warnings": cosmetic,
                "sections": [{"title": s.title, "level": s.level, "text": s.text} for s in card.sections],
            }
        )
        return 0
    tty = out.tty
    write = out.raw
    head = plain(card.title or entry.name)
    write(f"\x1b[1m{head}\x1b[0m\n" if tty else f"{head}\n{'=' * len(head)}\n")
    rows = [("id", entry.id), ("source", entry.source)]
    rows += [(k, field_text(v) or "") for k, v in card.fields.items() if k != "asset"]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        write(f"{plain(key).rjust(width)}: {plain(value)}\n")
    for p in problems:
        write(f"{'problem'.rjust(width)}: {plain(p)}\n")
    if assets:
        write("\n")
        out.table(
            [[str(i + 1), a["file-format"], a["sha256"], a["url"]] for i, a in enumerate(assets)],
            ["#", "FORMAT", "SHA256", "URL"],
        )
    body = render_markdown(plain(card.body), width=out.width(), tty=tty)
    if body.strip():
        write("\n" + body)
    return 0


def _tensors(entry, settings, out: Output) -> int:
    """`info NAME --tensors`: the parameter table of each cached ckpt/safetensors asset of the card."""
    from ..errors import UsageError
    from ..loader import cached_tables

    report = cached_tables(entry, settings)
    if out.as_json:
        out.json(
            {
                "id": entry.id,
                "assets": [
                    {
                        "filename": t.filename,
                        "file-format": t.file_format,
                        "tensors": [{"name": e.name, "shape": list(e.shape), "dtype": e.dtype} for e in t.tensors],
                    }
                    for t in report.tables
                ],
                "not-cached": report.not_cached,
            }
        )
    else:
        for t in report.tables:
            out.raw(f"{plain(t.filename)} ({t.file_format}, {len(t.tensors)} entries)\n")
            out.table(
                [[e.name, "x".join(map(str, e.shape)) or "scalar", e.dtype] for e in t.tensors],
                ["NAME", "SHAPE", "DTYPE"],
            )
            out.raw("\n")
        for name in report.not_cached:
            out.line(f"{name}: not cached; run `registry pull {entry.id}` first")
    if not report.tables and not report.not_cached:
        raise UsageError(f"card {entry.id} has no ckpt or safetensors asset whose tensors could be listed")
    return 0
