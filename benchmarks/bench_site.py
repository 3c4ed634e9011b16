"""Generating the static catalogue of the MindSpore Hub corpus (`registry site`), in one run.

    .venv/bin/python benchmarks/bench_site.py [--repeat 3] [--corpus DIR]

Rows (min and median of --repeat runs):
- index (reference): `build_index` of the corpus, the records the site is made from;
- render: `render_site`, every page in memory (index, reading each card once, validate's checks,
  Markdown rendering);
- render + write: `write_site` into a fresh directory (each file written atomically).
The size of the list page is printed too (the target is under 2 MB).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "mindspore-hub"


def rounds(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"corpus {args.corpus} not found: pass --corpus DIR", file=sys.stderr)
        return 2

    from registry.index import build_index
    from registry.site import render_site, write_site

    corpus = args.corpus.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
        outs = iter(range(args.repeat))
        rows = [
            ("index (reference)", rounds(lambda: build_index(corpus), args.repeat)),
            ("render", rounds(lambda: render_site(corpus), args.repeat)),
            ("render + write", rounds(lambda: write_site(corpus, Path(tmp, str(next(outs)))), args.repeat)),
        ]
        size = Path(tmp, "0", "index.html").stat().st_size
        pages = sum(1 for _ in Path(tmp, "0").rglob("*.html")) - 1
    print(f"corpus {corpus}: {pages} model pages, list page {size:,} bytes; {args.repeat} rounds")
    print(f"{'step':<20} {'min s':>8} {'median s':>9} {'x index':>8}")
    reference = statistics.median(rows[0][1])
    for name, times in rows:
        median = statistics.median(times)
        print(f"{name:<20} {min(times):>8.2f} {median:>9.2f} {median / reference:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
