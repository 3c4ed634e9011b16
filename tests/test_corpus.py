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
        "cards": 2905, "clean": 2189, "with_errors": 716, "with_warnings": 241,
        "localized": 10, "localized_with_errors": 0, "errors": 776, "warnings": 275,
    }
    assert report.exit_code == 1


def test_corpus_counts_per_rule(report):
    problems = collections.Counter((p.rule, p.severity) for p in report.problems)
    assert problems == {
        ("schema-pattern", "error"): 598,  # 480 update-times like 2023-2-17, 118 eight/nine-digit sha256s
        ("yaml-syntax", "error"): 168,  # 162 `evaluation: -`, 6 `accuracy: vit-base: 84.02`
        ("schema-type", "error"): 4,  # empty repo-link
        ("path-mismatch", "error"): 4,  # user-id "Noah's Ark Lab" / "MindSpore team"
        ("schema-required", "error"): 2,  # ghostnet_ssd without train-dataset
        ("sha256-reused", "warning"): 275,  # one digest for differently named files
    }
    cards = collections.Counter()
    for result in report.results:
        for rule in {p.rule for p in result.problems}:
            cards[rule] += 1
    assert cards == {"schema-pattern": 538, "yaml-syntax": 168, "sha256-reused": 275, "path-mismatch": 4,
                     "schema-required": 2, "schema-type": 4}


def test_corpus_known_defects_at_their_lines(report):
    by_card = {str(Path(r.path).relative_to(CORPUS)): r.problems for r in report.results}
    where = {name: [(p.line, p.col, p.rule) for p in problems] for name, problems in by_card.items()}
    assert where["mindspore/1.7/melgan_ljspeech.md"] == [(17, 13, "yaml-syntax")]
    assert where["mindspore/2.5/dbnet_resnet50_icdar2015.md"] == [(35, 17, "schema-pattern")]
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
    assert checked == 2737  # English cards whose front matter is a mapping
