"""Hostile card text: whatever a card (or a hostile registry serving it) holds, parsing, validation and
`info` rendering take time linear in its size, and no pattern is super-linear in a line's length.

Time bounds here are generous ceilings proportional to the input (a hang or a quadratic blow-up breaks
them by orders of magnitude), not speed measurements: those live in benchmarks/.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry.card import MAX_CARD_BYTES, parse_text
from registry.lint import check_card
from registry.loader import _shape_from_text
from registry.render import render_markdown

SECONDS_PER_MIB = 20.0  # ~50x what the slowest input below needs on this VM
FLOOR = 1.0

FRAGMENTS = [
    ": ",
    " ",
    "x",
    "-",
    "[",
    "![",
    "*",
    "_",
    "`",
    "\t",
    "#",
    "|",
    "> ",
    "- ",
    "1. ",
    "<",
    "&amp",
    '"',
    "'",
    "=",
    "\n",
    "\n\n",
    "a: b",
    ",",
    "]",
]


def bound(n: int) -> float:
    return FLOOR + SECONDS_PER_MIB * n / (1 << 20)


def card_with(line: str, body: str) -> str:
    return f"# t\n\n---\nmodel-name: t\n{line}\n---\n\n{body}"


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def parse_and_validate(text: str) -> None:
    card = parse_text(text, "hostile.md")
    check_card(card)
    _ = card.sections, card.code_blocks  # the Markdown body, as the lint's section rules read it


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    prefix=st.sampled_from(["summary: ", "summary: x: ", "input-shape: [1", "asset: ", "- ", 'summary: "', ""]),
    unit=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4).map("".join),
    size=st.integers(1, MAX_CARD_BYTES - 200),
    body_unit=st.sampled_from(FRAGMENTS + ["- item\n", "![a"]),
)
@example(prefix="summary: x: ", unit=" ", size=MAX_CARD_BYTES - 200, body_unit="x")  # quadratic before the fix
@example(prefix="summary: x: ", unit=" ", size=80_000, body_unit="![")
def test_parse_and_validate_take_time_linear_in_the_card_size(prefix, unit, size, body_unit):
    line = prefix + (unit * (size // 2 // len(unit) + 1))[: size // 2] + "x"
    body = (body_unit * (size // 2 // len(body_unit) + 1))[: size // 2]
    text = card_with(line.replace("\n", " "), body)
    assert timed(parse_and_validate, text) < bound(len(text.encode()))


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    unit=st.sampled_from(["![", "[", "- item\n", "1. a\n", "*a _b ", "[a](b) ", "# h\n", "| x | y |\n", "a\n=\n"]),
    size=st.integers(1, 1 << 20),
)
@example(unit="![", size=1 << 20)
def test_info_renders_a_megabyte_body_in_linear_time(unit, size):
    body = (unit * (size // len(unit) + 1))[:size]
    assert timed(render_markdown, body) < bound(size)


def test_a_long_line_gets_the_colon_advice_without_quoting_a_megabyte_back():
    card = parse_text(card_with("summary: x: " + " " * 500_000 + "y", ""))
    (problem,) = card.problems
    # read as the hub quirk (the text written), and the advice does not quote the megabyte back
    assert problem.rule == "yaml-colon-in-value" and 'quote it: `summary: "..."`' in problem.message
    assert len(problem.format()) < 400


def test_input_shape_text_is_read_without_a_pattern():
    assert _shape_from_text(" [300, 300, 3] ") == [300, 300, 3]
    assert _shape_from_text("1," + " " * 200_000 + "x") is None
    assert _shape_from_text("9" * 5000) is None  # not a 5000-digit int (Python refuses to convert those)


# --------------------------------------------------------------------------- terminal injection

CONTROLS = "\x1b\x00\x07\x9b\u202e\u2066\u200f\x7f"


def _clean(text: str) -> bool:
    return not any(c in text for c in CONTROLS)


def test_printable_escapes_c0_c1_del_and_bidi_and_keeps_what_it_is_told():
    from registry.text import printable, printable_json

    assert printable("a\x1b[2J\x00\x9bx\u202ey\x7f\t\n") == "a\\x1b[2J\\x00\\u009bx\\u202ey\\u007f\\t\\n"
    assert printable("a\tb\nc\u2066", "\t\n") == "a\tb\nc\\u2066"
    import json

    data = {"id": "x\u202e\x9b\x7f\x1b", "n": "中文"}
    text = printable_json(data)
    assert _clean(text) and "中文" in text and json.loads(text) == data  # the same data, escaped


def test_ids_and_links_from_a_registry_are_escaped_in_errors_suggestions_list_and_info(tmp_path):
    from tests.conftest import run_cli
    from tests.servers import write_card

    root = tmp_path / "reg"
    name = "evil\u202e\x9b31m"
    write_card(root, f"me/cpu/1.0/{name}", [("ckpt", "https://example.org/a\x1b[2J.ckpt", "0" * 64)])
    card = next(root.rglob("*.md"))
    card.write_text(card.read_text().replace("summary: ", "summary: \u202e\x9b31m\x7f "))
    for command in (["list"], ["info", name], ["info", name, "--json"], ["info", "evil"], ["pull", name]):
        proc = run_cli("--registry", str(root), *command, env={"REGISTRY_HOME": str(tmp_path / "home")})
        assert _clean(proc.stdout) and _clean(proc.stderr), (command, proc.stdout, proc.stderr)
        assert "evil" in proc.stdout + proc.stderr
    assert "did you mean evil\\u202e\\u009b31m?" in run_cli("--registry", str(root), "info", "evil").stderr


def test_links_with_control_characters_are_schema_errors(tmp_path):
    from tests.conftest import run_cli
    from tests.servers import write_card

    for i, bad in enumerate(("\\e[2J", "\\u202e", "\\x9b", "\\x7f", "\\0")):  # YAML double-quoted escapes
        card = write_card(
            tmp_path / str(i), "me/cpu/1.0/m", [("ckpt", f'"https://example.org/a{bad}b.ckpt"', "0" * 64)]
        )
        proc = run_cli("validate", str(card))
        assert proc.returncode == 1 and "asset-link" in proc.stdout, proc.stdout
        assert _clean(proc.stdout), proc.stdout


def test_a_huge_key_is_not_quoted_back_whole():
    card = parse_text(card_with("k" * 900_000 + ": a: b", ""))
    assert card.problems and all(len(p.format()) < 1000 for p in card.problems)
