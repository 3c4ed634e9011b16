"""The card parser: positions, duplicate keys, text kept as written, and every kind of bad input."""

from __future__ import annotations

import os

import pytest

from registry.card import MAX_CARD_BYTES, parse_bytes, parse_file, parse_text
from tests.conftest import SEED_CARD, require_shared


def rules(card):
    return [p.rule for p in card.problems]


def test_seed_card_duplicate_asset_keys_at_their_lines():
    card = parse_file(require_shared(SEED_CARD))
    dups = [p for p in card.problems if p.rule == "duplicate-key"]
    assert [(p.line, p.col) for p in dups] == [(45, 5), (46, 5), (47, 5)]
    assert "file-format" in dups[0].message and "first at line 41" in dups[0].message
    assert "start the second asset with `- `" in dups[0].message
    # The first value is kept, so the ckpt asset is what the card describes.
    assert card.fields["asset"][0]["file-format"] == "ckpt"


def test_positions_of_keys_and_values():
    card = parse_text(
        "# T\n\n---\nmodel-name: ssd\nasset:\n  - file-format: ckpt\n    asset-link: <https://x/a.ckpt>\n---\nbody\n"
    )
    assert card.fm_open == 3 and card.fm_close == 8
    assert card.pos(("model-name",)) == (4, 13)
    assert card.key_pos(("model-name",)) == (4, 1)
    assert card.pos(("asset", 0, "asset-link")) == (7, 17)
    assert card.pos(("asset", 0, "asset-sha256")) == card.pos(("asset", 0))  # absent: nearest ancestor
    assert card.fields["asset"][0]["asset-link"] == "https://x/a.ckpt"  # angle brackets stripped


def test_versions_and_free_text_kept_as_written():
    card = parse_text(
        "---\nmindspore-version: 1.10\nmodel-version: 1\nevaluation: no\n"
        "asset-sha256: 0123\nupdate-time: 2020-09-10\nfine-tunable: True\ninput-shape: [3, 300, 300]\n---\n"
    )
    f = card.fields
    assert f["mindspore-version"] == "1.10" and f["model-version"] == "1"
    assert f["evaluation"] == "no"  # YAML 1.1 would read False
    assert f["asset-sha256"] == "0123" and f["update-time"] == "2020-09-10"
    assert f["fine-tunable"] is True and f["input-shape"] == [3, 300, 300]


def test_crlf_card():
    card = parse_text("# T\r\n---\r\nmodel-name: x\r\n---\r\n")
    assert card.problems == [] and card.fields == {"model-name": "x"}


def test_body_is_parsed_lazily():
    card = parse_text("# Title\n---\nmodel-name: x\n---\n## Usage\n```python\nprint(1)\n```\n")
    assert "_markdown" not in card.__dict__
    assert card.title == "Title"
    assert [s.title for s in card.sections] == ["Usage"]
    assert card.code_blocks[0].lang == "python" and card.code_blocks[0].line == 6


@pytest.mark.parametrize(
    "raw, rule, line",
    [
        (b"", "empty-file", 0),
        (b"  \n\n", "empty-file", 0),
        (b"ab\x00cd", "binary-file", 0),
        (b"---\nmodel-name: caf\xe9\n---\n", "encoding", 2),
        (b"# Title\nno front matter\n", "no-front-matter", 1),
        (b"# Title\n---\nmodel-name: x\n", "unterminated-front-matter", 2),
        (b"---\n---\n", "empty-front-matter", 1),
        (b"---\nasset:\n\t- file-format: ckpt\n---\n", "yaml-tab", 3),
        (b"---\nmodel-name: [x\n---\n", "yaml-syntax", 3),
        (b"---\n- a\n- b\n---\n", "front-matter-not-mapping", 2),
        (b"---\njust a sentence\n---\n", "front-matter-not-mapping", 2),
        (b"---\n? [a, b]\n: 1\n---\n", "yaml-syntax", 2),
    ],
)
def test_bad_inputs_are_problems_not_exceptions(raw, rule, line):
    card = parse_bytes(raw, "c.md")
    assert rules(card) == [rule]
    assert card.problems[0].line == line
    assert card.problems[0].severity == "error"
    assert card.data is None or rule == "yaml-syntax"


def test_lone_dash_and_colon_in_value_are_reported_and_read_as_text():
    card = parse_text("---\nevaluation: -\nb: 2\n---\n")
    assert rules(card) == ["yaml-dash-placeholder"] and (card.problems[0].line, card.problems[0].col) == (2, 13)
    assert '`evaluation: "-"`' in card.problems[0].message and card.problems[0].severity == "error"
    assert card.data == {"evaluation": "-", "b": 2} and not card.problems[0].blocks_use
    card = parse_text("---\naccuracy: vit-base: 83.78 / swin-base: 84.03\nx: it's: 1\n---\n")
    assert rules(card) == ["yaml-colon-in-value", "yaml-colon-in-value"] and card.problems[0].line == 2
    assert '`accuracy: "vit-base: 83.78 / swin-base: 84.03"`' in card.problems[0].message
    assert card.data == {"accuracy": "vit-base: 83.78 / swin-base: 84.03", "x": "it's: 1"}


@pytest.mark.parametrize(
    "text",
    [
        "a:\n  evaluation: -\n",  # indented: not read
        "accuracy: a: b # note\n",  # a comment: is it part of the text?
        "accuracy: [a: b\n",  # starts like a flow collection
        "accuracy: a: b\n  more: 1\n",  # continued below: not one line of text
        "evaluation: -\n  - x\n",  # a list under it
    ],
)
def test_quirks_that_can_be_read_more_than_one_way_stay_blocking(text):
    card = parse_text("---\n" + text + "---\n")
    assert "yaml-syntax" in rules(card) and card.data is None
    assert any(p.blocks_use for p in card.problems)


def test_alias_bomb_is_cut_off_quickly():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    card = parse_text("---\n" + "\n".join(lines) + "\n---\n")
    assert rules(card) == ["yaml-too-complex"] and card.data is None


@pytest.mark.parametrize(
    "text",
    [
        "---\na: " + "[" * 900 + "]" * 900 + "\n---\n",  # deeper than Python's recursion limit
        "---\n" + "".join(" " * i + f"k{i}:\n" for i in range(600)) + "---\n",
        "---\na: &x [*x]\n---\n",  # an alias inside its own anchor
    ],
)
def test_deep_or_self_referencing_front_matter(text):
    card = parse_text(text)
    assert rules(card) == ["yaml-too-complex"] and "deeper than 32 levels" in card.problems[0].message


def test_large_file_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.md"
    with open(path, "wb") as fh:
        fh.write(b"---\nmodel-name: x\n---\n")
        fh.truncate(MAX_CARD_BYTES + 1)
    card = parse_file(path)
    assert rules(card) == ["too-large"] and "1,048,576" in card.problems[0].message


def test_unreadable_paths(tmp_path):
    assert rules(parse_file(tmp_path / "missing.md")) == ["read-error"]
    assert rules(parse_file(tmp_path)) == ["read-error"]
    fifo = tmp_path / "fifo.md"
    os.mkfifo(fifo)
    assert rules(parse_file(fifo)) == ["read-error"]  # and it did not block


def test_utf8_bom_is_accepted():
    card = parse_bytes("\ufeff---\nmodel-name: 模型\n---\n".encode("utf-8"))
    assert card.problems == [] and card.fields["model-name"] == "模型"


@pytest.mark.parametrize(
    "raw, rule, line",
    [
        (b"# T\n---  \nmodel-name: x\n---\t\n", "no-front-matter", 2),
        (b"# T\n---  \nmodel-name: x\n---\n", "unterminated-front-matter", 2),
        (b"# T\n---\nmodel-name: x\n--- \t\n", "unterminated-front-matter", 4),
        (b" ---\nmodel-name: x\n---\n", "unterminated-front-matter", 1),
    ],
)
def test_delimiter_with_stray_spaces_is_named_at_its_line(raw, rule, line):
    card = parse_bytes(raw, "c.md")
    assert rules(card) == [rule] and card.problems[0].line == line, card.problems
    assert "exactly `---`" in card.problems[0].message and "spaces" in card.problems[0].message
