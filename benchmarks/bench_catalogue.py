"""Which cards of the real catalogue a consumer can pull, and what checking them costs.

For every English card of the corpus (2,905), in one process:
- consumer:   what `registry pull` decides before any byte moves: `Entry.require_sound()` (refuses only
              defects that block use, registry/rules.py) and the asset list (`Entry.assets`). A card is
              *attempted* when both pass and it lists at least one asset; *accepted with prefix hashes*
              when one of those assets gives an 8..63-hex sha256 prefix;
- reference:  the strict rule pull applied before consumer severities existed, measured in the same run:
              a card passes only when `validate` finds no error in it (then attempted if it lists assets);
- intact:     an independent line scan of the front matter (no YAML): the `asset:` block has as many
              `asset-link:` and `asset-sha256:` keys as `file-format:` keys, at least one, every link
              non-empty and every sha256 at least 8 hex digits. The target: every intact card attempted.

Timings (several rounds, min and median) are for the whole corpus: parsing plus the check.

    .venv/bin/python benchmarks/bench_catalogue.py [--rounds 3] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "mindspore-hub"

from registry.card import find_front_matter
from registry.catalog import LocalRegistry
from registry.errors import CardError

_HEX8 = re.compile(r"^<?[0-9a-fA-F]{8,64}>?$")


def consumer(registry: LocalRegistry, ids: list[str]) -> dict[str, tuple[str, str]]:
    """id -> (outcome, detail): attempted/prefix/no-assets, or refused with the blocking rule."""
    out = {}
    for card_id in ids:
        entry = registry.entry(card_id)
        try:
            entry.require_sound()
            assets = entry.assets
        except CardError as exc:
            blocking = [p for p in entry.problems() if p.blocks_use]
            out[card_id] = ("refused", blocking[0].rule if blocking else "asset list")
            if not blocking:
                out[card_id] = ("refused", "asset list: " + exc.message.split(": ", 1)[0].rsplit(" ", 1)[-1])
            continue
        if not assets:
            out[card_id] = ("no assets", "")
        else:
            out[card_id] = ("prefix" if any(a.is_prefix for a in assets) else "attempted", "")
    return out


def reference(registry: LocalRegistry, ids: list[str]) -> dict[str, tuple[bool, bool]]:
    """id -> (passes the strict rule: no validate error at all, and lists assets)."""
    out = {}
    for card_id in ids:
        entry = registry.entry(card_id)
        out[card_id] = (not any(p.severity == "error" for p in entry.problems()), bool(entry.fields.get("asset")))
    return out


def intact(path: Path) -> bool:
    lines = path.read_text(encoding="utf-8").split("\n")
    first, second = find_front_matter(lines)
    if first < 0 or second < 0:
        return False
    block, inside = [], False
    for line in (raw.rstrip("\r") for raw in lines[first + 1 : second]):
        if re.match(r"^asset\s*:\s*$", line):
            inside = True
            continue
        if inside and line and not line[0].isspace() and not line.startswith("-"):
            break
        if inside:
            block.append(line)
    keys = collections.defaultdict(list)
    for line in block:
        m = re.match(r"^[\s-]*(file-format|asset-link|asset-sha256)\s*:\s*(.*?)\s*$", line)
        if m:
            keys[m.group(1)].append(m.group(2))
    n = len(keys["file-format"])
    return (
        n > 0
        and len(keys["asset-link"]) == n == len(keys["asset-sha256"])
        and all(v.strip("<>") for v in keys["asset-link"])
        and all(_HEX8.match(v) for v in keys["asset-sha256"])
    )


def timed(fn, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"corpus {args.corpus} not found: pass --corpus")
    warnings.simplefilter("ignore")  # the cosmetic defects are counted here, not printed
    ids = LocalRegistry(args.corpus).ids()

    # a fresh registry each round, so every card is parsed and checked again
    cons_t = timed(lambda: consumer(LocalRegistry(args.corpus), ids), args.rounds)
    ref_t = timed(lambda: reference(LocalRegistry(args.corpus), ids), args.rounds)
    cons = consumer(LocalRegistry(args.corpus), ids)
    ref = reference(LocalRegistry(args.corpus), ids)
    whole = {i: intact(args.corpus / (i + ".md")) for i in ids}

    outcomes = collections.Counter(o for o, _ in cons.values())
    attempted = {i for i, (o, _) in cons.items() if o in ("attempted", "prefix")}
    refused = collections.Counter(d for o, d in cons.values() if o == "refused")
    print(f"{len(ids)} English cards in {args.corpus}, {args.rounds} rounds\n")
    rows = [
        ("attempted (asset list usable)", len(attempted)),
        ("  of which accepted with sha256 prefixes", outcomes["prefix"]),
        ("no assets listed (nothing to pull)", outcomes["no assets"]),
        ("refused: a defect that blocks use", sum(refused.values())),
        *((f"  {rule}", n) for rule, n in refused.most_common()),
        ("reference: pass the strict rule (no error)", sum(ok for ok, _ in ref.values())),
        ("  of which attempted (asset list)", sum(ok and has for ok, has in ref.values())),
        ("intact asset list (line scan)", sum(whole.values())),
        ("  intact and attempted", sum(1 for i in attempted if whole[i])),
        ("  intact but refused", sum(1 for i, ok in whole.items() if ok and i not in attempted)),
        ("  attempted but not intact", sum(1 for i in attempted if not whole[i])),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'cards'.ljust(width)}  {'count':>6}")
    for label, n in rows:
        print(f"{label.ljust(width)}  {n:>6}")
    print(f"\n{'check over the corpus'.ljust(width)}  {'min s':>6}  {'median s':>8}")
    print(f"{'consumer (require_sound + assets)'.ljust(width)}  {cons_t[0]:>6.2f}  {cons_t[1]:>8.2f}")
    print(f"{'reference (every validate problem)'.ljust(width)}  {ref_t[0]:>6.2f}  {ref_t[1]:>8.2f}")
    for i in sorted(i for i, ok in whole.items() if ok and i not in attempted)[:10]:
        print(f"intact but refused: {i} ({cons[i][1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
