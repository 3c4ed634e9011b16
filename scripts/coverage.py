"""Builder coverage of a card catalogue: which cards `registry.load` can build a network for.

    python scripts/coverage.py [CORPUS] [--no-build] [--markdown]

CORPUS defaults to ../shared/corpus/mindspore-hub beside the checkout. For every English card the
builder is chosen from its front-matter fields as `registry.load` would (registry.builders), whether
or not the card passes validation today; a mindcv card counts when its model is in
`mindcv.list_models()`. Prints: cards with a builder by builder, by source repo (the owner/name of
the repo-link) and by family (normalised model-name), the 20 largest families without one, and for
the mindcv cards how many map to a mindcv model, build, and run a forward pass (each distinct model
built once on CPU with pretrained=False, random weights; skipped with --no-build).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registry.builders import CardFacts, _norm, match_builtin  # noqa: E402
from registry.card import parse_file  # noqa: E402
from registry.lint import check_card  # noqa: E402
from registry.names import is_card_filename, walk_markdown  # noqa: E402

SIZES = (224, 256, 299)  # tried in turn when a model's config gives no input size


def source_repo(link: str) -> str:
    parts = [p for p in urlsplit(link).path.split("/") if p]
    return "/".join(parts[:2]) if urlsplit(link).netloc and len(parts) >= 2 else "(none)"


def table(title: str, header: tuple[str, ...], rows: list[tuple], markdown: bool) -> None:
    print()
    if markdown:
        print(f"**{title}**\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        for row in rows:
            print("| " + " | ".join(map(str, row)) + " |")
    else:
        print(title)
        widths = [max(len(str(v)) for v in column) + 2 for column in zip(header, *rows)]
        for row in (header, *rows):
            print(f"{str(row[0]):<{widths[0]}}" + "".join(f"{str(v):>{w}}" for v, w in zip(row[1:], widths[1:])))


def forward(name: str, mindcv) -> str:
    """'ok (SIZE)' or the first line of why building or running failed."""
    import mindspore as ms
    import numpy as np
    from mindcv.models.registry import get_pretrained_cfg

    try:
        net = mindcv.create_model(name, pretrained=False)
    except Exception as exc:  # noqa: BLE001 - report any failure of someone else's model code
        return f"build: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:90] if str(exc).strip() else ''}"
    net.set_train(False)
    cfg = get_pretrained_cfg(name) or {}
    sizes = (cfg["input_size"][-1],) if "input_size" in cfg else SIZES
    error = ""
    for size in sizes:
        try:
            out = net(ms.Tensor(np.zeros((1, 3, size, size), np.float32)))
            shape = tuple(out.shape)
            return f"ok ({size}: {shape})"
        except Exception as exc:  # noqa: BLE001
            error = (
                f"forward: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:90] if str(exc).strip() else ''}"
            )
    return error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared" / "corpus" / "mindspore-hub"))
    parser.add_argument("--no-build", action="store_true", help="do not build the mindcv models")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (as in README)")
    args = parser.parse_args()

    try:
        import mindcv

        from registry.builders.mindcv import model_name

        models = mindcv.list_models()
    except ImportError:
        mindcv = None
        models = []

    start = time.perf_counter()
    cards = []  # (facts, builder or "", sound)
    for rel in walk_markdown(args.corpus):
        if not is_card_filename(rel.rsplit("/", 1)[-1]):
            continue
        card = parse_file(Path(args.corpus) / rel, rel)
        facts = CardFacts.of(card.fields)
        spec = match_builtin(facts)
        builder = spec.name if spec else ""
        if spec is not None and spec.per_card:  # a library: covered when it has the model
            model = model_name(facts, models, facts.builder.partition(":")[2] or None) if mindcv else None
            builder = f"mindcv:{model}" if model else ""
        # usable: pull/load accept it (no defect that blocks use; cosmetic ones only warn)
        sound = not any(p.severity == "error" and p.blocks_use for p in [*card.problems, *check_card(card)])
        cards.append((rel, facts, builder, sound))
    elapsed = time.perf_counter() - start

    total = len(cards)
    covered = [c for c in cards if c[2]]
    print(
        f"{total} cards in {args.corpus} ({elapsed:.1f} s); {len(covered)} have a builder "
        f"({100 * len(covered) / total:.1f}%), {sum(c[3] for c in covered)} of them usable by pull/load (no defect that blocks use)"
    )

    by_builder = Counter(("mindcv" if b.startswith("mindcv:") else b) for _, _, b, _ in covered)
    sound_by_builder = Counter(("mindcv" if b.startswith("mindcv:") else b) for _, _, b, s in covered if s)
    table(
        "Cards with a builder, by builder",
        ("builder", "cards", "usable"),
        [(b, n, sound_by_builder[b]) for b, n in by_builder.most_common()],
        args.markdown,
    )

    repos: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, facts, builder, _ in cards:
        repos[source_repo(facts.repo_link)][0] += 1
        repos[source_repo(facts.repo_link)][1] += bool(builder)
    table(
        "By source repo (repo-link)",
        ("repo", "cards", "with builder"),
        sorted(((r, n, k) for r, (n, k) in repos.items()), key=lambda r: -r[1]),
        args.markdown,
    )

    families: dict[str, list] = defaultdict(lambda: [Counter(), 0, 0])
    for _, facts, builder, _ in cards:
        fam = families[_norm(facts.model_name) or "(no model-name)"]
        fam[0][facts.model_name or "(no model-name)"] += 1
        fam[1] += 1
        fam[2] += bool(builder)
    with_builder = sorted(
        ((f[0].most_common(1)[0][0], f[1], f[2]) for f in families.values() if f[2]), key=lambda r: -r[2]
    )
    table(
        f"Families with a builder ({len(with_builder)} of {len(families)} families)",
        ("family", "cards", "with builder"),
        with_builder,
        args.markdown,
    )
    without = sorted(((f[0].most_common(1)[0][0], f[1]) for f in families.values() if not f[2]), key=lambda r: -r[1])
    table(
        f"The 20 largest families without a builder ({len(without)} families, {sum(n for _, n in without)} cards)",
        ("family", "cards"),
        without[:20],
        args.markdown,
    )

    if mindcv is not None:
        # Cards of other sources whose model-name is a mindcv model: a rename map from their
        # checkpoint names onto the mindcv network (checked by the table check) would cover them.
        near: dict[str, list] = defaultdict(lambda: [0, ""])
        for _, facts, builder, _ in cards:
            if not builder and facts.model_name:
                model = model_name(CardFacts(model_name=facts.model_name), models)
                if model:
                    near[facts.model_name][0] += 1
                    near[facts.model_name][1] = model
        table(
            f"Cards without a builder whose model-name is a mindcv model ({sum(n for n, _ in near.values())} cards)",
            ("model-name", "cards", "mindcv model"),
            sorted(((k, n, m) for k, (n, m) in near.items()), key=lambda r: -r[1]),
            args.markdown,
        )

    mindcv_cards = [c for c in cards if "github.com/mindspore-lab/mindcv" in c[1].repo_link]
    if mindcv is None:
        print(f"\n{len(mindcv_cards)} mindcv cards; mindcv is not installed: pip install 'registry[mindcv]'")
        return 0
    mapped = {rel: b.partition(":")[2] for rel, _, b, _ in mindcv_cards if b}
    rows = [
        ("cards", len(mindcv_cards), len({_norm(c[1].model_name) for c in mindcv_cards})),
        ("map to a mindcv model", len(mapped), len(set(mapped.values()))),
    ]
    if not args.no_build:
        import mindspore

        mindspore.set_context(device_target="CPU")
        results = {}
        for name in sorted(set(mapped.values())):
            t0 = time.perf_counter()
            results[name] = forward(name, mindcv)
            print(f"  {name:<24} {results[name]}  ({time.perf_counter() - t0:.1f} s)", flush=True)
            gc.collect()
        built = {n for n, r in results.items() if not r.startswith("build")}
        ran = {n for n, r in results.items() if r.startswith("ok")}
        rows += [
            ("build", sum(m in built for m in mapped.values()), len(built)),
            ("run a forward pass", sum(m in ran for m in mapped.values()), len(ran)),
        ]
        failed = [f"{n}: {r}" for n, r in results.items() if not r.startswith("ok")]
    table(f"mindcv cards (mindcv {getattr(mindcv, '__version__', '?')})", ("", "cards", "models"), rows, args.markdown)
    if not args.no_build:
        for line in failed:
            print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
