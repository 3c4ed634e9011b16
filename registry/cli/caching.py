"""`registry cache ...`: inspect and maintain the local cache (results from cache.Cache, formatted here)."""

from __future__ import annotations

from .output import Output, add_output_options, example, plural, settings_from


def register(sub) -> None:
    p = sub.add_parser(
        "cache",
        help="inspect and maintain the local cache",
        description="Inspect and maintain the local cache ($REGISTRY_HOME).",
        epilog=example("registry cache ls", "registry cache prune --dry-run", "registry cache rm lenet_digits"),
    )
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=type(p), required=True)
    actions = (
        ("ls", "list cached models and blobs", "registry cache ls --json"),
        (
            "verify",
            "re-hash every cached blob (bad ones are removed); exit 1 if one was bad or missing",
            "registry cache verify",
        ),
        ("prune", "remove blobs no model view uses, and stale partial files", "registry cache prune --dry-run"),
        ("rm", "remove models' views and the blobs only they use", "registry cache rm lenet_digits ssd_v1_coco2017"),
        ("dir", "print the cache directory", 'du -sh "$(registry cache dir)"'),
        ("purge", "remove every cached model and blob (the directory itself stays)", "registry cache purge"),
    )
    for action, text, sample in actions:
        cp = csub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".", epilog=example(sample))
        if action == "rm":
            cp.add_argument("names", nargs="+", metavar="NAME", help="full id or short name of a cached model")
        if action == "prune":
            cp.add_argument("--dry-run", action="store_true", help="remove nothing; say what would be removed")
        add_output_options(cp)
    p.set_defaults(func=cmd_cache)


def cmd_cache(args, out: Output) -> int:
    from ..cache import Cache
    from ..errors import RegistryError

    cache = Cache.from_settings(settings_from(args))
    try:
        return _ACTIONS[args.cache_command](cache, args, out)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise RegistryError(f"cache {cache.home}: {exc.strerror or exc}{where}", exit_code=2) from None


def _emit(out: Output, data, lines) -> None:
    if out.as_json:
        out.json(data.as_json() if hasattr(data, "as_json") else data)
    else:
        for line in lines:  # ids and file names come from view records anyone may have written
            out.line(line)


def _ls(cache, args, out: Output) -> int:
    from ..cache import human_size

    report = cache.ls()
    lines = [f"cache {report.home}"]
    for m in report.models:
        lines.append(f"{m['id']}  {human_size(m['size'])}")
        for f in m["files"]:
            state = "" if f["present"] else "  (missing: pull it again)"
            lines.append(f"  {f['sha256'][:12]}  {human_size(f['size']):>10}  {f['filename']}{state}")
    lines.append(
        f"{report.blobs['count']} blobs, {human_size(report.blobs['size'])}; "
        f"{len(report.unreferenced)} unreferenced; {report.partial['count']} partial downloads, "
        f"{human_size(report.partial['size'])}"
    )
    _emit(out, report, lines)
    return 0


def _verify(cache, args, out: Output) -> int:
    from ..cache import human_size

    report = cache.verify()
    lines = [
        f"bad blob {b['sha256']}: its bytes hash to {b['actual']}; "
        + (
            "removed (pull again)"
            if b.get("removed", True)
            else "not removed: ask the cache's owner to run `registry cache verify`"
        )
        for b in report.bad
    ]
    lines += [
        f"model {m['model']}: {m['filename']} has no blob {m['sha256'][:12]} (pull it again)" for m in report.missing
    ]
    state = "ok" if report.ok else f"{len(report.bad)} bad, {len(report.missing)} missing"
    lines.append(f"verified {report.checked} blobs, {human_size(report.size)}: {state}")
    _emit(out, report, lines)
    return 0 if report.ok else 1


def _prune(cache, args, out: Output) -> int:
    from ..cache import human_size

    report = cache.prune(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    _emit(
        out,
        report,
        [
            f"{verb} {plural(len(report.removed_blobs), 'blob')} and "
            f"{plural(len(report.removed_partial), 'partial file')}, "
            f"{'would free' if args.dry_run else 'freed'} {human_size(report.freed)}"
        ],
    )
    return 0


def _rm(cache, args, out: Output) -> int:
    from ..cache import human_size

    removed = [cache.rm(name) for name in args.names]
    lines = [f"removed {r.id}: {plural(len(r.removed_blobs), 'blob')}, freed {human_size(r.freed)}" for r in removed]
    docs = [r.as_json() for r in removed]
    _emit(out, docs[0] if len(docs) == 1 else docs, lines)  # one NAME: its record; several: a list
    return 0


def _dir(cache, args, out: Output) -> int:
    _emit(out, {"home": str(cache.home)}, [str(cache.home)])
    return 0


def _purge(cache, args, out: Output) -> int:
    from ..cache import human_size

    removed = [cache.rm(mid) for mid in sorted({mid for mid, _, _ in cache.views()})]
    pruned = cache.prune()
    data = {
        "models": [r.id for r in removed],
        "removed_blobs": sorted({b for r in removed for b in r.removed_blobs} | set(pruned.removed_blobs)),
        "removed_partial": pruned.removed_partial,
        "freed": sum(r.freed for r in removed) + pruned.freed,
    }
    _emit(
        out,
        data,
        [
            f"purged {cache.home}: {plural(len(data['models']), 'model')}, "
            f"{plural(len(data['removed_blobs']), 'blob')}, freed {human_size(data['freed'])}"
        ],
    )
    return 0


_ACTIONS = {"ls": _ls, "verify": _verify, "prune": _prune, "rm": _rm, "dir": _dir, "purge": _purge}
