"""Indexing the MindSpore Hub corpus, and resolving names against its index, in one run.

    .venv/bin/python benchmarks/bench_index.py [--repeat 5] [--corpus DIR]

Rows (medians of --repeat runs):
- index: `build_index` + `dumps_index` of the corpus (what `registry index` does), against the
  floor of reading and hashing every card file (the reference);
- resolve (remote, warm): in a process that has used the registry once, `resolve(name)` against the
  corpus served over loopback HTTP by `registry serve` (index in memory, card in the disk cache,
  verified by sha256 and parsed), for a short name, for a full id and for a short name shared by
  cards of several MindSpore versions (the remote registry chooses from its index; the local one
  reads each candidate's version); the local registry (parse the card file) is the reference;
- first use (remote): a fresh process's first resolve: fetch index.json (2.4 MB, revalidated by ETag
  once cached) and the card.
Targets: index under 3 s; warm resolution under 50 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INDEX_TARGET = 3.0
RESOLVE_TARGET = 0.050
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "mindspore-hub"


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"corpus {args.corpus} not found: pass --corpus DIR", file=sys.stderr)
        return 2

    from registry.catalog import HttpRegistry, LocalRegistry, forget_remote_indexes
    from registry.index import build_index, dumps_index
    from registry.names import walk_tree
    from registry.serve import RegistryServer

    corpus = args.corpus.resolve()
    paths, _ = walk_tree(corpus)

    def read_and_hash():
        for rel in paths:
            hashlib.sha256((corpus / rel).read_bytes()).hexdigest()

    index_data = build_index(corpus)
    t_floor = timed(read_and_hash, args.repeat)
    t_index = timed(lambda: dumps_index(build_index(corpus)), args.repeat)

    # Names: a short name of exactly one id, and a full id.
    by_name: dict[str, list[str]] = {}
    for card in index_data["cards"]:
        by_name.setdefault(card["id"].rsplit("/", 1)[-1], []).append(card["id"])
    short = next(
        n
        for n, ids in sorted(by_name.items())
        if len(ids) == 1 and not next(c for c in index_data["cards"] if c["id"] == ids[0])["problems"]
    )
    full = next(c["id"] for c in index_data["cards"] if not c["problems"] and c["id"].startswith("mindspore/1.10/"))
    shared = (
        "resnet50_imagenet2012"
        if len(by_name.get("resnet50_imagenet2012", ())) > 1
        else max(by_name, key=lambda n: (len(by_name[n]), n))
    )

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        os.environ["REGISTRY_HOME"] = tmp
        server = RegistryServer(corpus, port=0, quiet=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            forget_remote_indexes()
            start = time.perf_counter()
            HttpRegistry(server.url).resolve(short)
            t_first = time.perf_counter() - start  # includes the server generating the index once

            def first_use():
                forget_remote_indexes()
                HttpRegistry(server.url).resolve(full)

            t_first_cached = timed(first_use, args.repeat)  # index revalidated (304), card from disk
            remote = HttpRegistry(server.url)
            remote.resolve(short), remote.resolve(full)
            local = LocalRegistry(corpus)
            local.ids()
            for label, name in (
                ("short name", short),
                ("full id", full),
                (f"shared name, {len(by_name[shared])} ids", shared),
            ):
                t_remote = timed(lambda name=name: HttpRegistry(server.url).resolve(name), args.repeat * 20)
                t_local = timed(lambda name=name: local.resolve(name), args.repeat * 20)
                rows.append((f"resolve {label} (remote, warm)", t_remote, t_local, RESOLVE_TARGET))
        finally:
            server.shutdown()
            server.server_close()

    print(f"corpus: {corpus} ({index_data['counts']['cards']} cards, {len(dumps_index(index_data)):,} bytes of index)")
    print(f"names: short {short!r}, full {full!r}, shared {shared!r}\n")
    header = f"{'operation':<42} {'median':>10} {'reference':>10} {'ratio':>7} {'target':>9}  ok"
    print(header)
    print("-" * len(header))
    table = [
        ("index corpus (build + dump)", t_index, t_floor, INDEX_TARGET),
        *rows,
        ("first use, index cached (304)", t_first_cached, None, None),
        ("first use, nothing cached", t_first, None, None),
    ]
    failed = False
    for label, value, ref, target in table:
        ok = "" if target is None else ("yes" if value < target else "NO")
        failed |= ok == "NO"
        print(
            f"{label:<42} {value * 1000:>8.2f}ms {'' if ref is None else f'{ref * 1000:>8.2f}ms':>10} "
            f"{'' if ref is None else f'{value / ref:>6.2f}x':>7} {'' if target is None else f'{target * 1000:>7.0f}ms':>9}  {ok}"
        )
    print("\nreferences: index vs reading + hashing every card file; remote resolve vs the local registry")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
