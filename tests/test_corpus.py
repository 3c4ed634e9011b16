"""The whole real corpus (2,915 MindSpore Hub cards) through `validate`, with exact counts.

Any change in what the parser, schema or lint rules accept shows up here as a changed number.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from registry import schema
from registry.card import parse_file
from registry.lint import validate_paths
from tests.conftest import CORPUS, require_shared


@pytest.fixture(scope="module")
def report():
    return validate_paths([str(require_shared(CORPUS))])


def test_corpus_counts(report):
    assert report.summary() == {
        "cards": 2905,
        "clean": 2189,
        "with_errors": 716,
        "with_warnings": 241,
        "localized": 10,
        "localized_with_errors": 0,
        "errors": 846,
        "warnings": 298,
    }
    assert report.exit_code == 1


def test_corpus_counts_per_rule(report):
    problems = collections.Counter((p.rule, p.severity) for p in report.problems)
    assert problems == {
        # The hub's two YAML quirks are reported and then read, so the rest of those 168 cards is checked too.
        ("schema-pattern", "error"): 519,  # update-times like 2023-2-17
        ("sha256-prefix", "error"): 118,  # eight-digit sha256 prefixes (mindspore-lab file-name hashes)
        ("yaml-dash-placeholder", "error"): 162,  # `evaluation: -`
        ("yaml-colon-in-value", "error"): 6,  # `accuracy: vit-base: 84.02 / ...`
        ("schema-type", "error"): 4,  # empty repo-link
        ("path-mismatch", "error"): 14,  # user-id "Noah's Ark Lab" / "MindSpore team", infer-backend gpu/ascend
        ("schema-required", "error"): 8,  # ghostnet_ssd without train-dataset; asset items without asset-sha256
        ("schema-enum", "error"): 8,  # train-/infer-backend `gpu/ascend`
        ("unknown-key", "error"): 4,  # vit-repo-link
        ("duplicate-key", "error"): 3,  # two asset-links in one asset item
        ("sha256-reused", "warning"): 298,  # one digest for differently named files
    }
    cards = collections.Counter()
    for result in report.results:
        for rule in {p.rule for p in result.problems}:
            cards[rule] += 1
    assert cards == {
        "schema-pattern": 518,
        "sha256-prefix": 118,
        "yaml-dash-placeholder": 162,
        "yaml-colon-in-value": 6,
        "sha256-reused": 298,
        "path-mismatch": 10,
        "schema-required": 8,
        "schema-type": 4,
        "unknown-key": 4,
        "schema-enum": 4,
        "duplicate-key": 3,
    }


def test_corpus_known_defects_at_their_lines(report):
    by_card = {str(Path(r.path).relative_to(CORPUS)): r.problems for r in report.results}
    where = {name: [(p.line, p.col, p.rule) for p in problems] for name, problems in by_card.items()}
    assert where["mindspore/1.7/melgan_ljspeech.md"] == [(17, 13, "yaml-dash-placeholder")]
    assert where["mindspore/2.5/dbnet_resnet50_icdar2015.md"] == [(35, 17, "sha256-prefix")]
    assert where["noah-cvlab/gpu/1.0/VGG-Small-low-bit_cifar10.md"] == [(25, 11, "schema-type")]
    assert where["noah-cvlab/gpu/1.8/tokenfusion_v1.0_nyudv2.md"] == [(27, 10, "path-mismatch")]
    assert where["mindspore/1.10/3dcnn_brast2017.md"] == [(21, 14, "schema-pattern")]
    assert "write `2023-02-17`" in by_card["mindspore/1.10/3dcnn_brast2017.md"][0].message
    # CRLF cards parse like the others
    assert where["noah-cvlab/ascend/1.1/ipt_v1.0_Set14_SR_x2.md"] == []


def test_fast_schema_path_agrees_with_jsonschema():
    fast, full = schema._fast_check(), schema.validator()
    checked = 0
    for path in sorted(require_shared(CORPUS).rglob("*.md")):
        card = parse_file(path)
        if isinstance(card.data, dict):
            assert fast(card.data) == full.is_valid(card.data), path
            checked += 1
    assert checked == 2905  # English cards whose front matter is a mapping (every one, the quirks read)
