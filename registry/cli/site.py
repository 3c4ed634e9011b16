"""The command that writes a registry's static web catalogue: site."""

from __future__ import annotations

from .output import Output, add_output_options, example


def register(sub) -> None:
    p = sub.add_parser(
        "site",
        help="write a static web catalogue (index.html, a page per model) of a registry tree",
        description="Write index.html (every model, with search and filters) and one page per card "
        "beside the cards, from the records `registry index` reads; publish it with "
        "the index on any static host.",
        epilog=example(
            "registry index my-registry && registry site my-registry", "registry site my-registry -o /srv/www/models"
        ),
    )
    p.add_argument("directory", metavar="DIR")
    p.add_argument("-o", "--output", metavar="OUT", help="directory for the site (default: DIR, beside the cards)")
    add_output_options(p)
    p.set_defaults(func=cmd_site)


def cmd_site(args, out: Output) -> int:
    from ..site import write_site

    report = write_site(args.directory, args.output)
    if out.as_json:
        out.json(
            {
                "out": str(report.out),
                "pages": report.pages,
                "list_bytes": report.list_bytes,
                "with_problems": report.with_problems,
            }
        )
    else:
        out.line(
            f"wrote {report.pages} model pages and index.html ({report.list_bytes:,} bytes) into {report.out}; "
            f"{report.with_problems} pages list problems. Publish the directory with its index.json "
            f"(`registry index {args.directory}`)"
        )
    return 0
