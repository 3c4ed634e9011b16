"""`registry validate` over the whole real corpus, cold process, against a bare baseline.

Each run is a fresh interpreter, as a user or CI would start it. Rows, interleaved round by round so
a busy machine slows all of them alike:
- startup:        `python -c pass`, the floor every row pays;
- bare loop:      read each .md, cut the front matter at its `---` lines, yaml.load with CSafeLoader,
                  list every error of one compiled jsonschema Draft202012Validator (our schema);
- bare is_valid:  the same loop, stopping at the first error of each card (cheaper: the stricter
                  reference, since plain YAML turns versions into floats and dates into date objects,
                  which the listing loop reports as thousands of type errors);
- validate:       `python -m registry validate CORPUS` (all parse, schema and lint rules, text report).

Targets (the issue): validate no more than 2x the baseline, and under 2 s wall on 2 cores.

    .venv/bin/python benchmarks/bench_validate.py [--rounds 5] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "mindspore-hub"

BARE = r"""
import json, os, sys
import yaml
from jsonschema import Draft202012Validator, FormatChecker

corpus, schema_file, mode = sys.argv[1:4]
with open(schema_file, encoding="utf-8") as fh:
    validator = Draft202012Validator(json.load(fh), format_checker=FormatChecker(formats=("date",)))
paths = []
for dirpath, dirnames, filenames in os.walk(corpus):
    dirnames.sort()
    paths += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".md")]
cards = errors = 0
for path in paths:
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    marks = [i for i, line in enumerate(lines) if line.rstrip("\r") == "---"][:2]
    if len(marks) < 2:
        continue
    try:
        data = yaml.load("\n".join(lines[marks[0] + 1:marks[1]]), Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        errors += 1
        continue
    cards += 1
    if mode == "all":
        errors += sum(1 for _ in validator.iter_errors(data))
    else:
        errors += not validator.is_valid(data)
print(len(paths), cards, errors)
"""


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user+sys of the child) and stdout of one cold run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"corpus {args.corpus} not found: pass --corpus PATH")
    corpus = str(args.corpus)
    schema = str(ROOT / "schemas" / "model-card.schema.json")
    py = sys.executable
    rows = {
        "startup (python -c pass)": [py, "-c", "pass"],
        "bare loop: CSafeLoader + iter_errors": [py, "-c", BARE, corpus, schema, "all"],
        "bare loop: CSafeLoader + is_valid": [py, "-c", BARE, corpus, schema, "first"],
        "registry validate": [py, "-m", "registry", "validate", corpus],
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    outputs = {}
    timed([py, "-m", "registry", "--help"])  # warm the OS file cache and .pyc files once
    for _ in range(args.rounds):
        for name, cmd in rows.items():
            wall, cpu, out = timed(cmd)
            results[name].append((wall, cpu))
            outputs[name] = out

    files, cards, _ = outputs["bare loop: CSafeLoader + is_valid"].split()
    summary = outputs["registry validate"].strip().splitlines()[-1]
    print(
        f"corpus: {corpus} ({files} .md files, {cards} parsed by plain YAML); {args.rounds} cold runs each; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"validate says: {summary}\n")
    stats = {
        name: (min(w for w, _ in r), statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
        for name, r in results.items()
    }
    ref_names = ["bare loop: CSafeLoader + iter_errors", "bare loop: CSafeLoader + is_valid"]
    cheapest = min(ref_names, key=lambda n: stats[n][0])
    print(f"{'run':40} {'min wall s':>10} {'median wall s':>14} {'median cpu s':>13} {'x baseline (min wall)':>22}")
    for name, (wmin, wmed, cmed) in stats.items():
        ratio = wmin / stats[cheapest][0]
        print(f"{name:40} {wmin:10.3f} {wmed:14.3f} {cmed:13.3f} {ratio:22.2f}")
    ratio = stats["registry validate"][0] / stats[cheapest][0]
    cpu_ratio = stats["registry validate"][2] / stats[cheapest][2]
    wall = stats["registry validate"][0]
    print(
        f"\nvalidate / {cheapest.split(': ')[1]} baseline: {ratio:.2f}x wall, {cpu_ratio:.2f}x cpu "
        f"(target <= 2x: {'met' if ratio <= 2 else 'MISSED'}); "
        f"validate wall {wall:.2f} s (target < 2 s: {'met' if wall < 2 else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
