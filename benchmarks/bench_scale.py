"""The registry at 1x, 16x and 1M cards: remote lookups through the sharded index, local listing, validate.

    .venv/bin/python benchmarks/bench_scale.py [--rounds 3] [--corpus DIR] [--synthetic 1000000] [--only remote]

Trees (under one temporary directory, removed at the end):
- 1x:  a copy of the corpus (2,905 cards), indexed as `registry index` does (index.json + shards);
- 16x: 16 copies of it, copy k with each top-level user directory renamed USER-cK, indexed from the
  1x records (same bytes, other ids) so that building it takes seconds, not a re-parse;
- 1M:  the 1x tree plus generated records up to --synthetic cards (no card files for them): shards only,
  as `registry index` writes above 100,000 cards. The looked-up cards are real ones.
Each tree is served by nginx with the documented locations (docs/nginx.conf). Every timed run is a fresh
process (`python -m registry ...`, as a user types it, the package compiled to bytecode first as an
installed one is) with a fresh REGISTRY_HOME for remote rows, so
the bytes counted (nginx's body bytes for that run) are those of a first use. Rows, min and median of
--rounds runs, interleaved:
- remote `info ID`, `info SHORT`, `list --limit 20`, `search WORD --limit 20`, `search WORD`, through the shards; `info ID` also
  through index.json alone (what every client did before shards), at 1x and 16x;
- baseline for remote rows: a process that imports requests and GETs the card once;
- local `list` (second run): from the fresh index.json, and from the parse cache (no index.json); baseline:
  a process that json.loads index.json and filters its records;
- validate --jobs 1 and --jobs 2, time, peak RSS of all processes summed (the target's figure: shared
  copy-on-write pages count in each process), peak summed PSS (shared pages split) and each process's peak;
  baseline: the bare CSafeLoader + is_valid loop of bench_validate.py (one process).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "mindspore-hub"
WORD = "resnet"

BARE_GET = "import sys, requests; r = requests.get(sys.argv[1], timeout=30); sys.exit(r.status_code != 200)"
BARE_LIST = (
    "import json, sys; d = json.load(open(sys.argv[1], encoding='utf-8')); "
    "print(sum(1 for r in d['cards'] if 'resnet' in r['id']))"
)


def locations() -> str:
    text = (ROOT / "docs" / "nginx.conf").read_text()
    return text[text.index("# --- registry locations ---") : text.index("# --- end of registry locations ---")]


# --------------------------------------------------------------------------- building the trees


def counts_of(cards: list[dict]) -> tuple[dict, dict]:
    by_name: dict[str, list[str]] = {}
    for r in cards:
        by_name.setdefault(r["id"].rsplit("/", 1)[-1], []).append(r["id"])
    collisions = {n: ids for n, ids in by_name.items() if len(ids) > 1}
    return collisions, {
        "cards": len(cards),
        "invalid": sum(1 for c in cards if c["problems"]),
        "translations": sum(len(c.get("translations", ())) for c in cards),
        "collisions": len(collisions),
    }


def write_tree_index(root: Path, cards: list[dict]) -> None:
    from registry.index import FORMAT, INDEX_NAME, dumps_index
    from registry.shards import write_indexes

    cards.sort(key=lambda r: r["id"])
    collisions, counts = counts_of(cards)
    data = {"format": FORMAT, "cards": cards, "collisions": collisions, "counts": counts}
    write_indexes(root / INDEX_NAME, dumps_index(data) if counts["cards"] <= 100_000 else b"", data)


def moved(rel: str, k: int) -> str:
    """Where copy k puts the card file `rel`: USER-cK/.../NAME-cK.md (a twin: NAME-cK_cn.md), so that
    short names stay as unique as in the corpus."""
    user, rest = rel.split("/", 1)
    stem = rest[:-3]
    stem = stem[:-3] + f"-c{k}_cn" if stem.endswith("_cn") else stem + f"-c{k}"
    return f"{user}-c{k}/{stem}.md"


def renamed(record: dict, k: int) -> dict:
    r = dict(record, id=moved(record["id"] + ".md", k)[:-3], path=moved(record["path"], k))
    if "translations" in r:
        r["translations"] = [moved(t, k) for t in r["translations"]]
    return r


def build_trees(corpus: Path, work: Path, synthetic: int) -> dict[str, Path]:
    from registry.index import build_index

    x1 = work / "x1"
    shutil.copytree(corpus, x1)
    base = build_index(x1)["cards"]
    write_tree_index(x1, [dict(r) for r in base])
    x16 = work / "x16"
    x16.mkdir()
    users = [p.name for p in x1.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "index"]
    for k in range(16):
        for user in users:
            shutil.copytree(x1 / user, x16 / (user if k == 0 else f"{user}-c{k}"))
    for r in base:
        for rel in [r["path"], *r.get("translations", ())]:
            for k in range(1, 16):
                user, rest = rel.split("/", 1)
                os.rename(x16 / f"{user}-c{k}" / rest, x16 / moved(rel, k))
    write_tree_index(x16, [r if k == 0 else renamed(r, k) for k in range(16) for r in base])
    # 1M: the real 1x cards plus compact generated records; only the index is written.
    m = work / "x1m"
    m.mkdir()
    for user in users:
        os.symlink(x1 / user, m / user)
    cards = [dict(r) for r in base]
    templates = [r for r in base if r["sha256"]][:200]
    for n in range(synthetic - len(cards)):
        t = templates[n % len(templates)]
        name = f"{t['id'].rsplit('/', 1)[-1]}_g{n}"
        card_id = f"gen{n % 997}/{t['fields'].get('mindspore-version', '1.8')}/{name}"
        cards.append(
            {
                "id": card_id,
                "path": card_id + ".md",
                "sha256": t["sha256"],
                "size": t["size"],
                "fields": {
                    k: v
                    for k, v in t["fields"].items()
                    if k in ("model-name", "module-type", "train-dataset", "mindspore-version")
                },
                "assets": t["assets"][:1],
                "problems": [],
            }
        )
    write_tree_index(m, cards)
    # index.json alone (the format before shards): the same cards, the index/ directory absent.
    for name in ("x1", "x16"):
        single = work / f"{name}-single"
        single.mkdir()
        for user in os.listdir(work / name):
            if user != "index":
                os.symlink(work / name / user, single / user)
    return {"1x": x1, "16x": x16, "1M": m}


def short_name_with_a_choice(tree: Path) -> str:
    """A short name shared by cards of several MindSpore versions that resolves (not ambiguous)."""
    from registry.catalog import LocalRegistry
    from registry.errors import RegistryError

    registry = LocalRegistry(tree)
    for name in sorted(json.loads((tree / "index.json").read_text())["collisions"]):
        try:
            registry.resolve(name)
            return name
        except RegistryError:
            continue
    raise SystemExit("no short name of the corpus resolves among several cards")


# --------------------------------------------------------------------------- measuring


def pss_kib(pid: int) -> int:
    """Proportional set size: each page shared (copy-on-write after a fork) split among its sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("Pss:")), 0)
    except OSError:
        return 0


def run(cmd: list[str], env: dict | None = None, ok=(0,), memory: dict | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the process and its workers together (KiB, sampled every 20 ms), stdout.
    With `memory`, also fills in the peak summed PSS ("pss", KiB) and each process's peak RSS ("each")."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    peak_sum = [0]
    peak_pss, each = [0], {}

    def poll():
        try:
            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                total = pss = 0
                for q in [p, *p.children(recursive=True)]:
                    try:
                        rss = q.memory_info().rss
                        total += rss
                        each[q.pid] = max(each.get(q.pid, 0), rss >> 10)
                        if memory is not None:
                            pss += pss_kib(q.pid)
                    except psutil.Error:
                        pass
                peak_sum[0] = max(peak_sum[0], total >> 10)
                peak_pss[0] = max(peak_pss[0], pss)
                time.sleep(0.02)
        except psutil.Error:
            pass

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    watcher.join()
    if memory is not None:
        memory.update(pss=peak_pss[0], each=sorted(each.values(), reverse=True))
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(cmd[2:8])} failed ({proc.returncode}): {err.strip()[-800:]}")
    return wall, peak_sum[0], out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--synthetic", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("remote",), help="measure only the remote rows (all trees are built)")
    args = parser.parse_args()
    # An installed package has its bytecode; with PYTHONDONTWRITEBYTECODE each CLI run would compile it again.
    compileall.compile_dir(str(ROOT / "registry"), quiet=1)
    if not args.corpus.is_dir():
        sys.exit(f"corpus {args.corpus} not found: pass --corpus DIR")
    from registry.lint import validate_paths  # noqa: F401 (imported once so .pyc files are warm)
    from tests.servers import nginx

    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        t0 = time.perf_counter()
        trees = build_trees(args.corpus.resolve(), work, args.synthetic)
        built = time.perf_counter() - t0
        lookup_id = next(
            r["id"]
            for r in json.loads((trees["1x"] / "index.json").read_text())["cards"]
            if r["sha256"] and not r["problems"]
        )
        SHORT = short_name_with_a_choice(trees["1x"])
        results: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
        notes = []

        def record(scale, row, wall, rss=0, sent=0):
            results.setdefault((scale, row), []).append((wall, rss, sent))

        homes = iter(range(10**6))

        def remote(url, *cli, scale, row):
            home = work / f"home{next(homes)}"
            before = len(url.access_log())
            wall, _, _ = run([py, "-m", "registry", "--registry", url, *cli], {"REGISTRY_HOME": str(home)})
            sent = sum(r["bytes"] for r in url.access_log()[before:])
            record(scale, row, wall, sent=sent)
            shutil.rmtree(home, ignore_errors=True)

        servers = {}
        import contextlib

        with contextlib.ExitStack() as stack:
            for scale, path in trees.items():
                servers[scale] = stack.enter_context(nginx(path, locations=locations()))
            for name in ("1x", "16x"):
                servers[f"{name} index.json"] = stack.enter_context(
                    nginx(work / f"x{name[:-1]}-single", locations=locations())
                )
            for rnd in range(args.rounds):
                for scale in ("1x", "16x", "1M"):
                    url = servers[scale]
                    card_url = url + lookup_id + ".md"
                    wall, *_ = run([py, "-c", BARE_GET, card_url])
                    record(scale, "bare: python + requests GET of the card", wall)
                    remote(url, "info", lookup_id, scale=scale, row="remote info ID")
                    remote(url, "info", SHORT, scale=scale, row="remote info SHORT")
                    remote(url, "list", "--limit", "20", scale=scale, row="remote list --limit 20")
                    remote(url, "search", WORD, "--limit", "20", scale=scale, row=f"remote search {WORD} --limit 20")
                    if scale != "1M" or rnd == 0:  # the whole 1M index: once
                        remote(url, "search", WORD, scale=scale, row=f"remote search {WORD}")
                    if scale != "1M":
                        remote(
                            servers[f"{scale} index.json"],
                            "info",
                            lookup_id,
                            scale=scale,
                            row="remote info ID, index.json only",
                        )
        # Local listing: a second run (the first one wrote the parse cache), fresh index.json or cache.
        local_scales = () if args.only == "remote" else ("1x", "16x")
        for scale in local_scales:
            tree = trees[scale]
            index, aside = tree / "index.json", tree / "index.json.aside"
            home = {"REGISTRY_HOME": str(work / f"local-home-{scale}")}
            index.rename(aside)
            run([py, "-m", "registry", "--registry", str(tree), "list"], home)  # fills the parse cache
            aside.rename(index)
            for _ in range(args.rounds):
                wall, *_ = run([py, "-c", BARE_LIST, str(index)])
                record(scale, "bare: python + json.load(index.json) + filter", wall)
                wall, *_ = run([py, "-m", "registry", "--registry", str(tree), "list"], home)
                record(scale, "local list, fresh index.json", wall)
                index.rename(aside)
                wall, *_ = run([py, "-m", "registry", "--registry", str(tree), "list"], home)
                aside.rename(index)
                record(scale, "local list, parse cache", wall)
        # Validate (exit 1: the corpus has invalid cards).
        from bench_validate import BARE

        schema = str(ROOT / "schemas" / "model-card.schema.json")
        outputs = {}
        for scale in local_scales:
            memory: dict[str, list[dict]] = {}
            for _ in range(args.rounds):
                memory.setdefault("bare", []).append({})
                wall, rss, _ = run([py, "-c", BARE, str(trees[scale]), schema, "first"], memory=memory["bare"][-1])
                record(scale, "bare: CSafeLoader + is_valid loop", wall, rss)
                for jobs in (1, 2):
                    memory.setdefault(f"--jobs {jobs}", []).append({})
                    wall, rss, out = run(
                        [py, "-m", "registry", "validate", "--jobs", str(jobs), str(trees[scale])],
                        ok=(0, 1),
                        memory=memory[f"--jobs {jobs}"][-1],
                    )
                    record(scale, f"validate --jobs {jobs}", wall, rss)
                    outputs[(scale, jobs)] = out
            same = outputs[(scale, 1)] == outputs[(scale, 2)]
            notes.append(
                f"validate {scale}: --jobs 2 output {'byte-identical to' if same else 'DIFFERS from'} --jobs 1 "
                f"({outputs[(scale, 1)].count(chr(10)):,} lines)"
            )
            # Summed RSS counts a page shared copy-on-write after the fork once in every process;
            # summed PSS splits it among them (what the processes cost the machine together).
            for row, runs in memory.items():
                pss = max(m["pss"] for m in runs) / 1024
                each = max((m["each"] for m in runs), key=sum)
                notes.append(
                    f"validate {scale} {row}: peak summed PSS {pss:.0f} MiB; peak RSS of each process "
                    f"{', '.join(f'{kib / 1024:.0f}' for kib in each)} MiB (the peak summed RSS is in the table)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"trees built in {built:.1f} s ({args.synthetic:,} cards for 1M); {args.rounds} rounds (1M search: 1); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; looked up: {lookup_id}, {SHORT}"
    )
    stats = {
        k: (
            min(v[0] for v in vs),
            statistics.median(v[0] for v in vs),
            max(v[1] for v in vs),
            statistics.median(v[2] for v in vs),
        )
        for k, vs in results.items()
    }
    print(
        f"\n{'scale':5} {'command':48} {'min s':>7} {'med s':>7} {'x 1x':>6} {'x bare':>7} {'bytes fetched':>14} {'peak RSS MiB, sum':>18}"
    )
    bare_of = {
        "remote": "bare: python + requests GET of the card",
        "local": "bare: python + json.load(index.json) + filter",
        "validate": "bare: CSafeLoader + is_valid loop",
    }
    for (scale, row), (wmin, wmed, rss, sent) in stats.items():
        kind = (
            "remote"
            if row.startswith("remote")
            else "local"
            if row.startswith("local")
            else "validate"
            if row.startswith("validate")
            else None
        )
        base1 = stats.get(("1x", row))
        bare = stats.get((scale, bare_of[kind])) if kind else None
        x1 = f"{wmin / base1[0]:6.2f}" if base1 else ""
        xb = f"{wmin / bare[0]:7.2f}" if bare else ""
        print(f"{scale:5} {row:48} {wmin:7.3f} {wmed:7.3f} {x1:>6} {xb:>7} {sent:14,} {rss / 1024 if rss else 0:18.0f}")
    print()
    for note in notes:
        print(note)

    def ratio(a, b):
        return stats[a][0] / stats[b][0]

    checks = []
    for scale in ("16x", "1M"):
        for row in ("remote info ID", "remote info SHORT"):
            r = ratio((scale, row), ("1x", row))
            checks.append(
                f"{row} at {scale}: {r:.2f}x the 1x time (target <= 1.2x): {'met' if r <= 1.2 else 'MISSED'}; "
                f"{stats[(scale, row)][3]:,} bytes fetched"
            )
    if args.only == "remote":
        print("\n".join(checks))
        return 0
    r = ratio(("16x", "local list, fresh index.json"), ("16x", bare_of["local"]))
    checks.append(
        f"local list at 16x, fresh index.json: {r:.2f}x bare json.load + filter (target <= 2x): {'met' if r <= 2 else 'MISSED'}"
    )
    r = ratio(("16x", "local list, parse cache"), ("16x", bare_of["local"]))
    checks.append(
        f"local list at 16x, parse cache: {r:.2f}x bare json.load + filter (target <= 2x): {'met' if r <= 2 else 'MISSED'}"
    )
    rss = stats[("16x", "validate --jobs 2")][2] / 1024
    checks.append(
        f"validate 16x peak RSS, all processes summed: {rss:.0f} MiB (target <= 120): {'met' if rss <= 120 else 'MISSED'}"
    )
    r = ratio(("16x", "validate --jobs 2"), ("16x", bare_of["validate"]))
    checks.append(
        f"validate 16x, 2 jobs: {r:.2f}x the single-core bare loop (target <= 0.8x): {'met' if r <= 0.8 else 'MISSED'}"
    )
    r = ratio(("1x", "validate --jobs 2"), ("1x", bare_of["validate"]))
    checks.append(f"validate 1x, 2 jobs: {r:.2f}x bare (target <= 1.3x): {'met' if r <= 1.3 else 'MISSED'}")
    print("\n".join(checks))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
