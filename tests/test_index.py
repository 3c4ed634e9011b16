"""index.json of a registry tree: the real corpus, determinism, and what a record holds."""

from __future__ import annotations

import collections
import hashlib
import json

import pytest

from registry.catalog import LocalRegistry
from registry.errors import NotFoundError
from registry.index import Index, build_index, dumps_index
from tests.conftest import CORPUS, require_shared, run_cli

CARD = """# Tiny

---
model-name: tiny
backbone-name: tinynet
module-type: cv-classification
train-dataset: mnist
mindspore-version: 1.10
asset:
  - file-format: ckpt
    asset-link: weights/tiny.ckpt
    asset-sha256: {sha}
  - file-format: mindir
    asset-link: <https://example.org/tiny.mindir>
    asset-sha256: {sha}
summary: a tiny network
---

## Usage

```python
net = registry.load("tiny")
```
"""


@pytest.fixture(scope="module")
def corpus_index():
    return build_index(require_shared(CORPUS))


def test_corpus_counts_and_collisions(corpus_index):
    counts = corpus_index["counts"]
    # 2,915 Markdown files: 2,905 cards and 10 localized twins (*_cn.md) of noah-cvlab cards.
    assert counts == {"cards": 2905, "invalid": 168, "translations": 10, "collisions": 535}
    assert len(corpus_index["cards"]) + counts["translations"] == 2915
    collisions = corpus_index["collisions"]
    assert sum(len(ids) for ids in collisions.values()) == 2853
    assert collisions["alexnet_cifar10"] == [
        f"mindspore/{v}/alexnet_cifar10" for v in ("1.10", "1.3", "1.5", "1.6", "1.7", "1.8", "1.9")
    ]
    assert collisions["ghostnet_ssd_v1.0"] == [
        "noah-cvlab/ascend/0.7/ghostnet_ssd_v1.0",
        "noah-cvlab/ascend/1.0/ghostnet_ssd_v1.0",
    ]
    twin = next(c for c in corpus_index["cards"] if c["id"] == "noah-cvlab/gpu/1.0/ghostnet_v1.0_oxford_pets")
    assert twin["translations"] == ["noah-cvlab/gpu/1.0/ghostnet_v1.0_oxford_pets_cn.md"]
    # The cards with the hub's YAML quirks are indexed with their problem and, read as text, their fields.
    broken = [c for c in corpus_index["cards"] if c["problems"]]
    assert len(broken) == 168 and all(c["sha256"] and c["fields"] for c in broken)
    assert collections.Counter(c["problems"][0].split(": ")[1] for c in broken) == {
        "yaml-dash-placeholder": 162,
        "yaml-colon-in-value": 6,
    }


def test_every_corpus_id_resolves_to_the_indexed_card(corpus_index):
    registry = LocalRegistry(CORPUS)
    index = Index(corpus_index, "corpus")
    assert registry.ids() == index.ids
    for record in corpus_index["cards"]:
        entry = registry.resolve(record["id"])
        assert hashlib.sha256(open(entry.source, "rb").read()).hexdigest() == record["sha256"]
    unique = [name for name, ids in index.by_name.items() if len(ids) == 1]
    assert len(unique) == len(index.by_name) - 535
    for name in unique:
        assert registry.resolve(name).id == index.by_name[name][0]
    # A shared name means the newest card for the installed MindSpore (2.10): 1.10, not 1.9 as text would say.
    chosen = registry.resolve("alexnet_cifar10")
    assert chosen.id == "mindspore/1.10/alexnet_cifar10" and chosen.choice.others == (
        "1.3",
        "1.5",
        "1.6",
        "1.7",
        "1.8",
        "1.9",
    )
    # Two backends with the same version stay ambiguous.
    with pytest.raises(
        NotFoundError,
        match=r"ambiguous.*noah-cvlab/ascend/1.1/ipt_v1.0_Set14_SR_x2, "
        r"noah-cvlab/gpu/1.1/ipt_v1.0_Set14_SR_x2 \(by MindSpore version; 2 are for 1.1\)",
    ):
        registry.resolve("ipt_v1.0_Set14_SR_x2")


def test_corpus_index_is_deterministic_and_matches_the_cli(corpus_index, tmp_path):
    out = tmp_path / "index.json"
    proc = run_cli("index", str(CORPUS), "-o", str(out))
    # Real-world cards have errors: the index is written, every error named, and the exit code says so.
    assert proc.returncode == 1, proc.stderr
    assert "the index is written, but 716 cards have 846 errors" in proc.stdout
    assert out.read_bytes() == dumps_index(corpus_index)
    out.unlink()
    proc = run_cli("index", str(CORPUS), "-o", str(out), "--allow-invalid")
    assert proc.returncode == 0, proc.stderr
    assert (
        "indexed 2905 cards" in proc.stdout
        and "535 short names name cards of several MindSpore versions" in proc.stdout
    )
    assert (
        "4 of them name two cards of one version" in proc.stdout
        and "ipt_v1.0_Set14_SR_x2: noah-cvlab/ascend/1.1" in proc.stdout
    )
    assert "846 errors in 716 cards, published anyway (--allow-invalid)" in proc.stdout
    assert out.read_bytes() == dumps_index(corpus_index) == dumps_index(build_index(CORPUS))
    assert json.loads(out.read_bytes())["format"] == 1


def _tree(root, order):
    weights = b"\x01" * 1000
    sha = hashlib.sha256(weights).hexdigest()
    files = {
        "me/1.10/tiny.md": CARD.format(sha=sha).encode(),
        "me/1.10/weights/tiny.ckpt": weights,
        "me/1.10/tiny_cn.md": "# 小\n".encode(),
        "me/1.9/tiny.md": CARD.format(sha=sha).replace("1.10", "1.9").encode(),
        "me/1.9/broken.md": b"---\nmodel-name: [\n---\n",
        "README.md": b"# not a card\n",
        ".git/HEAD.md": b"ignored",
    }
    for rel in sorted(files) if order else sorted(files, reverse=True):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
    return sha


def test_small_tree_records_and_byte_identical_output(tmp_path):
    sha = _tree(tmp_path / "a", True)
    _tree(tmp_path / "b", False)  # same content, files created in the other order
    data = build_index(tmp_path / "a")
    assert dumps_index(data) == dumps_index(build_index(tmp_path / "b"))
    assert [c["id"] for c in data["cards"]] == ["me/1.10/tiny", "me/1.9/broken", "me/1.9/tiny"]
    tiny = data["cards"][0]
    raw = (tmp_path / "a/me/1.10/tiny.md").read_bytes()
    assert tiny["sha256"] == hashlib.sha256(raw).hexdigest() and tiny["size"] == len(raw)
    assert tiny["fields"] == {
        "model-name": "tiny",
        "backbone-name": "tinynet",
        "module-type": "cv-classification",
        "train-dataset": "mnist",
        "mindspore-version": "1.10",
        "summary": "a tiny network",
    }
    assert tiny["assets"] == [
        {"file-format": "ckpt", "link": "weights/tiny.ckpt", "sha256": sha, "size": 1000},
        {"file-format": "mindir", "link": "https://example.org/tiny.mindir", "sha256": sha, "size": None},
    ]
    assert tiny["translations"] == ["me/1.10/tiny_cn.md"] and tiny["problems"] == []
    broken = data["cards"][1]
    assert (
        broken["fields"] == {} and broken["problems"][0].startswith("3:1: ") and "yaml-syntax" in broken["problems"][0]
    )
    assert data["collisions"] == {"tiny": ["me/1.10/tiny", "me/1.9/tiny"]}
    text = dumps_index(data).decode()
    assert text.endswith("}\n") and text.index('"cards"') < text.index('"collisions"') < text.index('"format"')


def test_index_cli_writes_into_the_tree_by_default_and_to_stdout(tmp_path):
    _tree(tmp_path, True)
    proc = run_cli("index", str(tmp_path))
    assert proc.returncode == 1, proc.stderr  # me/1.9/broken.md does not parse
    written = (tmp_path / "index.json").read_bytes()
    # tiny has cards of two versions: a short name picks by version, so it is no ambiguity
    assert "1 that cannot be read" in proc.stdout and "1 short names name cards of several" in proc.stdout
    assert "0 of them name two cards of one version" in proc.stdout and "tiny: me/1.10/tiny" not in proc.stdout
    assert f"{tmp_path}/me/1.9/broken.md:3:1: error yaml-syntax" in proc.stdout
    # The index in the tree is not a card, so indexing again gives the same bytes.
    proc = run_cli("index", str(tmp_path), "-o", "-", "--allow-invalid")
    assert proc.returncode == 0 and proc.stdout.encode() == written and "indexed 3 cards" in proc.stderr


def test_index_of_a_missing_directory_is_one_sentence(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    for name in ("nope", "loop"):
        proc = run_cli("index", str(tmp_path / name))
        assert proc.returncode == 2 and "is not a directory" in proc.stderr and "Traceback" not in proc.stderr, (
            proc.stderr
        )


def test_asset_sizes_are_measured_only_inside_the_tree(tmp_path):
    root = tmp_path / "tree"
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"x" * 77)
    (root / "me/1.0").mkdir(parents=True)
    (root / "me/1.0/w.ckpt").write_bytes(b"y" * 5)
    (root / "me/1.0/loop.ckpt").symlink_to("loop.ckpt")
    links = [outside.as_uri(), "../../../secret.bin", (root / "me/1.0/w.ckpt").as_uri(), "w.ckpt", "loop.ckpt"]
    assets = "".join(
        f"  - file-format: ckpt\n    asset-link: {link}\n    asset-sha256: {'ab' * 32}\n" for link in links
    )
    (root / "me/1.0/t.md").write_text(f"---\nmodel-name: t\nasset:\n{assets}---\n")
    sizes = [a["size"] for a in build_index(root)["cards"][0]["assets"]]
    assert sizes == [None, None, 5, 5, None]  # the index tells nothing about files beside the tree


def test_records_sound_is_record_flaw_over_every_record():
    from registry.index import record_flaw, records_sound

    good = {
        "id": "u/1.8/a",
        "path": "u/1.8/a.md",
        "sha256": "a" * 64,
        "size": 1,
        "fields": {"summary": "s"},
        "assets": [{"file-format": "ckpt", "link": "x", "sha256": "", "size": None}],
        "problems": ["1:1: r: m"],
    }
    bad = [
        [],
        {"path": "p"},
        {**good, "id": 3},
        {**good, "sha256": "A" * 64},
        {**good, "sha256": ""},
        {**good, "fields": [("summary", "s")]},
        {**good, "fields": {"summary": None}},
        {**good, "assets": {"file-format": "ckpt"}},
        {**good, "assets": [["ckpt"]]},
        {**good, "assets": [{"file-format": None}]},
        {**good, "problems": "1:1: r: m"},
        {**good, "problems": [1]},
        {**good, "problems": None},
    ]
    assert records_sound([good, {**good, "sha256": None, "assets": [], "problems": []}]) and records_sound([])
    for record in bad:
        assert record_flaw(record) is not None and not records_sound([good, record]), record
