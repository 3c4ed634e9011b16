"""Publishing a registry on real files: index refusing broken cards, local asset checks, index --check,
new / add-asset, .registryignore, and check-links against a real nginx and the fault server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from registry.card import parse_file
from registry.lint import check_card
from registry.local_assets import AssetChecker
from registry.publish import card_template
from tests.conftest import CORPUS, require_shared, run_cli
from tests.servers import fault_server, free_port, nginx, write_card

WEIGHTS = b"\x07weights" * 500


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _asset_tree(root: Path) -> dict[str, Path]:
    """A registry tree with one sound card and one card per kind of local asset failure (and a file beside it)."""
    d = root / "me/cpu/2.3"
    d.mkdir(parents=True)
    (d / "w.ckpt").write_bytes(WEIGHTS)
    (d / "w.ckpt").chmod(0o644)
    (d / "private.ckpt").write_bytes(WEIGHTS + b"p")
    (d / "private.ckpt").chmod(0o400)  # as mindspore.save_checkpoint writes it
    (root.parent / "outside.ckpt").write_bytes(WEIGHTS)
    cards = {
        "good": write_card(root, "me/cpu/2.3/good", [("ckpt", "w.ckpt", sha(WEIGHTS))]),
        "missing": write_card(root, "me/cpu/2.3/missing", [("ckpt", "gone.ckpt", sha(WEIGHTS))]),
        "wrong": write_card(root, "me/cpu/2.3/wrong", [("ckpt", "w.ckpt", "ab" * 32)]),
        "private": write_card(root, "me/cpu/2.3/private", [("ckpt", "private.ckpt", sha(WEIGHTS + b"p"))]),
        "outside": write_card(root, "me/cpu/2.3/outside", [("ckpt", "../../../../outside.ckpt", sha(WEIGHTS))]),
        "schema": write_card(root, "me/cpu/2.3/schema", [("tar", "w.ckpt", sha(WEIGHTS))]),
    }
    return cards


def _located(output: str) -> set[tuple[str, int, str]]:
    """(card file name, line, rule) of every `path:line:col: error rule:` line."""
    found = set()
    for line in output.splitlines():
        m = re.match(r"^(.+?):(\d+):(\d+): error ([\w-]+): ", line)
        if m:
            found.add((Path(m.group(1)).stem, int(m.group(2)), m.group(4)))
    return found


# Card lines of tests.servers.CARD_TEMPLATE: the first asset's file-format is line 20, its asset-link
# line 21 and its asset-sha256 line 22.
ASSET_ERRORS = {
    ("missing", 21, "asset-missing"),
    ("wrong", 22, "asset-sha256-mismatch"),
    ("private", 21, "asset-not-readable"),
    ("outside", 21, "asset-outside-tree"),
    ("schema", 20, "schema-enum"),
}


def test_index_exits_1_naming_each_card_error_and_still_writes_every_card(tmp_path):
    tmp_path = tmp_path / "tree"
    _asset_tree(tmp_path)
    proc = run_cli("index", str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _located(proc.stdout) == ASSET_ERRORS
    assert "chmod o+r" in proc.stdout and f"write `asset-sha256: {sha(WEIGHTS)}`" in proc.stdout
    assert "the index is written, but 5 cards have 5 errors" in proc.stdout
    data = json.loads((tmp_path / "index.json").read_bytes())
    assert [c["id"].rsplit("/", 1)[-1] for c in data["cards"]] == [
        "good",
        "missing",
        "outside",
        "private",
        "schema",
        "wrong",
    ]
    proc = run_cli("index", str(tmp_path), "--allow-invalid")
    assert proc.returncode == 0 and "5 errors in 5 cards, published anyway (--allow-invalid)" in proc.stdout


def test_validate_check_assets_is_the_same_check_without_an_index(tmp_path):
    tmp_path = tmp_path / "tree"
    _asset_tree(tmp_path)
    plain = run_cli("validate", str(tmp_path))
    assert plain.returncode == 1 and _located(plain.stdout) == {("schema", 20, "schema-enum")}
    proc = run_cli("validate", "--check-assets", str(tmp_path))
    assert proc.returncode == 1 and _located(proc.stdout) == ASSET_ERRORS
    assert not (tmp_path / "index.json").exists()
    # A card named on its own has no tree to stay in, but its files are checked all the same.
    proc = run_cli(
        "validate", "--check-assets", str(tmp_path / "me/cpu/2.3/missing.md"), str(tmp_path / "me/cpu/2.3/good.md")
    )
    assert proc.returncode == 1 and _located(proc.stdout) == {("missing", 21, "asset-missing")}


def test_digest_prefixes_match_as_prefixes_and_each_file_is_hashed_once(tmp_path):
    d = tmp_path / "me/cpu/2.3"
    d.mkdir(parents=True)
    (d / "w.ckpt").write_bytes(WEIGHTS)
    (d / "w.ckpt").chmod(0o644)
    digest = sha(WEIGHTS)
    checker = AssetChecker()
    for prefix, expected in (
        (digest[:8], []),
        (digest[:40].upper(), []),
        (digest, []),
        ("0" * 12, ["asset-sha256-mismatch"]),
    ):
        card = parse_file(write_card(tmp_path, "me/cpu/2.3/c", [("ckpt", "w.ckpt", prefix)]))
        assert [p.rule for p in checker.check(card, d, tmp_path)] == expected, prefix
    assert len(checker._digests) == 1


def test_declared_asset_size_is_checked(tmp_path):
    (tmp_path / "w.ckpt").write_bytes(WEIGHTS)
    (tmp_path / "w.ckpt").chmod(0o644)
    for size, expected in ((len(WEIGHTS), []), (len(WEIGHTS) + 1, ["asset-size-mismatch"])):
        text = (
            f"---\nasset:\n  - file-format: ckpt\n    asset-link: w.ckpt\n    asset-sha256: {sha(WEIGHTS)}\n"
            f"    asset-size: {size}\n---\n"
        )
        (tmp_path / "c.md").write_text(text)
        found = AssetChecker().check(parse_file(tmp_path / "c.md"), tmp_path, tmp_path)
        assert [(p.rule, p.line) for p in found] == [(r, 6) for r in expected]


def test_index_check_says_missing_current_and_which_cards_changed(tmp_path):
    for name in ("a", "b", "c"):
        write_card(tmp_path, f"me/cpu/2.3/{name}", [("ckpt", f"https://example.org/{name}.ckpt", sha(name.encode()))])
    proc = run_cli("index", "--check", str(tmp_path))
    assert proc.returncode == 1 and "index.json is missing: run `registry index" in proc.stderr
    assert run_cli("index", str(tmp_path)).returncode == 0
    before = (tmp_path / "index.json").read_bytes()
    proc = run_cli("index", "--check", str(tmp_path))
    assert proc.returncode == 0 and "is current" in proc.stdout
    card_b = tmp_path / "me/cpu/2.3/b.md"
    card_b.write_text(card_b.read_text().replace("b for tests", "b, retrained"))
    (tmp_path / "me/cpu/2.3/c.md").unlink()
    write_card(tmp_path, "me/cpu/2.3/d", [("ckpt", "https://example.org/d.ckpt", sha(b"d"))])
    proc = run_cli("index", "--check", str(tmp_path))
    assert proc.returncode == 1
    assert (
        "is stale: 1 card changed (me/cpu/2.3/b); 1 card added (me/cpu/2.3/d); 1 card removed (me/cpu/2.3/c)"
        in proc.stderr
    ), proc.stderr
    assert (tmp_path / "index.json").read_bytes() == before  # --check writes nothing
    (tmp_path / "index.json").write_text("{not json")
    proc = run_cli("index", "--check", str(tmp_path))
    assert proc.returncode == 1 and "not an index this version writes" in proc.stderr


# --------------------------------------------------------------------------- new and add-asset


def fill_template(text: str) -> str:
    values = {
        "backbone-name": "tinynet",
        "module-type": "cv-classification",
        "input-shape": "[32, 32, 3]",
        "train-dataset": "digits",
        "evaluation": "acc0.9",
        "author": "me",
        "repo-link": "https://example.org/tiny",
        "license": "Apache2.0",
        "summary": "a tiny network",
        "user-id": "me",
        "mindspore-version": '"2.3"',
        "train-backend": "cpu",
        "infer-backend": "cpu",
    }
    return re.sub(r"^([\w-]+): TODO .*$", lambda m: f"{m.group(1)}: {values[m.group(1)]}", text, flags=re.M)


@pytest.mark.parametrize("name, rel", [("me/cpu/2.3/tiny", "me/cpu/2.3/tiny.md"), ("tiny", "tiny.md")])
def test_new_template_flags_its_placeholders_until_they_are_filled(tmp_path, name, rel):
    proc = run_cli("new", name, "--dir", str(tmp_path))
    path = tmp_path / rel
    assert proc.returncode == 0 and str(path) in proc.stdout, proc.stderr
    proc = run_cli("validate", str(path))
    assert proc.returncode == 1
    rules = [line.split(" ")[2].rstrip(":") for line in proc.stdout.splitlines()[:-1]]
    placeholders = path.read_text().count(": TODO ")
    assert rules == ["placeholder"] * placeholders and placeholders >= 9  # nothing but the placeholders
    assert all("still the template's placeholder" in line for line in proc.stdout.splitlines()[:-1])
    path.write_text(fill_template(path.read_text()))
    proc = run_cli("validate", str(path))
    assert proc.returncode == 0, proc.stdout
    proc = run_cli("new", name, "--dir", str(tmp_path))
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_template_keeps_names_yaml_would_read_as_something_else(tmp_path):
    text = card_template("yes/cpu/2.3/1.0")
    assert 'model-name: "1.0"' in text and 'user-id: "yes"' in text and 'mindspore-version: "2.3"' in text
    assert card_template("resnet50").count(": TODO ") == 13


def test_template_placeholders_are_found_wherever_a_value_is_todo(tmp_path):
    text = card_template("me/cpu/2.3/tiny").replace('model-version: "1.0"', "model-version: TODO")
    path = tmp_path / "me/cpu/2.3/tiny.md"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    card = parse_file(path)
    found = check_card(card)
    assert {p.rule for p in found} == {"placeholder"} and any("`model-version`" in p.message for p in found)


CARD_WITH_ASSETS = (
    "# Net\r\n\r\n---\r\nmodel-name: net   # trailing comment\r\nasset:\r\n"
    "    - file-format: ckpt\r\n      asset-link: a.ckpt\r\n      asset-sha256: " + "ab" * 32 + "\r\n"
    "    # the next one is the fp16 export\r\n\r\nsummary: 'x'\r\n---\r\nbody  \r\n"
)


def test_add_asset_inserts_lines_and_keeps_every_other_byte(tmp_path):
    card = tmp_path / "net.md"
    card.write_bytes(CARD_WITH_ASSETS.encode())
    (tmp_path / "sub dir").mkdir()
    weights = tmp_path / "sub dir/net fp16.mindir"
    weights.write_bytes(WEIGHTS)
    proc = run_cli("add-asset", str(card), str(weights))
    assert proc.returncode == 0, proc.stderr
    assert f"sha256 {sha(WEIGHTS)} ({len(WEIGHTS):,} bytes)" in proc.stdout
    entry = (
        "    - file-format: mindir\r\n      asset-link: sub%20dir/net%20fp16.mindir\r\n"
        f"      asset-sha256: {sha(WEIGHTS)}\r\n      asset-size: {len(WEIGHTS)}\r\n"
    )
    before = CARD_WITH_ASSETS.split("    # the next")
    assert card.read_bytes() == (before[0] + entry + "    # the next" + before[1]).encode()
    parsed = parse_file(card)
    assert parsed.fields["asset"][1] == {
        "file-format": "mindir",
        "asset-link": "sub%20dir/net%20fp16.mindir",
        "asset-sha256": sha(WEIGHTS),
        "asset-size": len(WEIGHTS),
    }
    weights.chmod(0o644)
    # The link written resolves to the file (a.ckpt, the first asset, does not exist).
    assert [p.message.split(" (")[0] for p in AssetChecker().check(parsed, tmp_path, tmp_path)] == ["asset 1"]


def test_add_asset_follows_the_cards_own_item_layout(tmp_path):
    card = tmp_path / "net.md"
    text = f"---\nasset:\n-   file-format: ckpt\n    asset-link: a.ckpt\n    asset-sha256: {'ab' * 32}\nx: 1\n---\n"
    card.write_text(text)
    (tmp_path / "b.onnx").write_bytes(WEIGHTS)
    assert run_cli("add-asset", str(card), str(tmp_path / "b.onnx")).returncode == 0
    assert card.read_text() == text.replace(
        "x: 1\n",
        f"-   file-format: onnx\n    asset-link: b.onnx\n"
        f"    asset-sha256: {sha(WEIGHTS)}\n"
        f"    asset-size: {len(WEIGHTS)}\nx: 1\n",
    )


def test_add_asset_creates_the_list_and_refuses_what_it_cannot_edit(tmp_path):
    card = tmp_path / "net.md"
    text = "---\nmodel-name: net\n---\n# body\n"
    card.write_text(text)
    (tmp_path / "w.ckpt").write_bytes(WEIGHTS)
    assert run_cli("add-asset", str(card), str(tmp_path / "w.ckpt")).returncode == 0
    assert card.read_text() == (
        "---\nmodel-name: net\nasset:\n  - file-format: ckpt\n    asset-link: w.ckpt\n"
        f"    asset-sha256: {sha(WEIGHTS)}\n    asset-size: {len(WEIGHTS)}\n---\n# body\n"
    )
    flow = (
        f"---\nmodel-name: net\nasset: [{{file-format: ckpt, asset-link: w.ckpt, asset-sha256: {sha(WEIGHTS)}}}]\n---\n"
    )
    card.write_text(flow)
    proc = run_cli("add-asset", str(card), str(tmp_path / "w.ckpt"))
    assert proc.returncode == 2 and "not a block list" in proc.stderr and card.read_text() == flow
    (tmp_path / "w.bin").write_bytes(b"x")
    proc = run_cli("add-asset", str(card), str(tmp_path / "w.bin"))
    assert proc.returncode == 2 and "pass --format, one of ckpt" in proc.stderr
    proc = run_cli("add-asset", str(card), str(tmp_path / "nope.ckpt"))
    assert proc.returncode == 2 and "is not a file" in proc.stderr and card.read_text() == flow


def test_add_asset_of_a_url_streams_and_hashes_it(tmp_path):
    served = tmp_path / "srv"
    served.mkdir()
    (served / "big.ckpt").write_bytes(WEIGHTS * 300)
    card = tmp_path / "net.md"
    card.write_text("---\nmodel-name: net\n---\n")
    with nginx(served) as url:
        proc = run_cli("add-asset", str(card), url + "big.ckpt")
        assert proc.returncode == 0, proc.stderr
        missing = run_cli("add-asset", str(card), url + "gone.ckpt")
    assert parse_file(card).fields["asset"] == [
        {
            "file-format": "ckpt",
            "asset-link": url + "big.ckpt",
            "asset-sha256": sha(WEIGHTS * 300),
            "asset-size": len(WEIGHTS) * 300,
        }
    ]
    assert missing.returncode == 5 and "HTTP 404" in missing.stderr


# --------------------------------------------------------------------------- .registryignore and doc names


def test_a_card_whose_file_name_is_not_utf8_is_an_error_and_left_out_of_the_index(tmp_path):
    write_card(tmp_path, "me/cpu/2.3/real", [("ckpt", "https://example.org/r.ckpt", sha(b"r"))])
    bad = os.path.join(os.fsencode(tmp_path), b"me/cpu/2.3/bad\xff.md")
    with open(bad, "wb") as fh:
        fh.write((tmp_path / "me/cpu/2.3/real.md").read_bytes())
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "path-not-utf8: the file's name is not UTF-8" in proc.stdout
    proc = run_cli("index", str(tmp_path))
    assert proc.returncode == 1 and "internal error" not in proc.stderr, proc.stderr
    ids = [c["id"] for c in json.loads((tmp_path / "index.json").read_text())["cards"]]
    assert ids == ["me/cpu/2.3/real"]
    (tmp_path / "index.json").unlink()
    proc = run_cli("list", "--registry", str(tmp_path), "--json")  # from a parse of the tree, no index.json
    assert proc.returncode == 0 and [r["id"] for r in json.loads(proc.stdout)] == ids, proc.stderr


def test_registryignore_and_doc_names_need_no_card(tmp_path):
    write_card(tmp_path, "me/cpu/2.3/real", [("ckpt", "https://example.org/r.ckpt", sha(b"r"))])
    write_card(tmp_path, "me/cpu/2.3/keep.draft", [("ckpt", "https://example.org/k.ckpt", sha(b"k"))])
    for rel in (
        "README.md",
        "CONTRIBUTING.md",
        "CHANGELOG.md",
        "LICENSE.md",
        "docs/HOWTO.md",
        "me/README.md",
        "me/cpu/2.3/HOWTO.md",
        "drafts/idea.md",
        "me/cpu/2.3/wip.draft.md",
        "me/cpu/2.3/.hidden.md",  # hidden, as hidden directories are: serve refuses to serve either
        ".github/ISSUE_TEMPLATE.md",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("# not a card\n")
    (tmp_path / ".registryignore").write_text("# drafts are not published\ndrafts/\n*.draft.md\n!keep.draft.md\n")
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 0 and proc.stdout.startswith("2 cards checked: 2 clean"), proc.stdout
    proc = run_cli("index", str(tmp_path))
    assert proc.returncode == 0, proc.stdout
    ids = [c["id"] for c in json.loads((tmp_path / "index.json").read_text())["cards"]]
    assert ids == ["me/cpu/2.3/keep.draft", "me/cpu/2.3/real"]
    proc = run_cli("list", "--registry", str(tmp_path), "--json")
    assert [r["id"] for r in json.loads(proc.stdout)] == ids
    (tmp_path / ".registryignore").write_text("drafts/\n!\n")
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr
        == f"registry: error: {tmp_path}/.registryignore: Invalid git pattern: '!': fix the pattern (gitignore syntax)\n"
    )


# --------------------------------------------------------------------------- check-links


@pytest.fixture
def served_tree():
    """A world-readable directory (nginx's workers may run as another user) with one good file and one
    only its owner may read (mode 0600)."""
    with tempfile.TemporaryDirectory(prefix="links-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        (root / "ok.ckpt").write_bytes(WEIGHTS)
        (root / "ok.ckpt").chmod(0o644)
        (root / "private.ckpt").write_bytes(WEIGHTS)
        (root / "private.ckpt").chmod(0o600)
        (root / "slow.ckpt").write_bytes(b"s" * 20_000_000)
        yield root


def test_check_links_against_nginx_and_a_server_without_range(tmp_path, served_tree, home):
    # Running as root, nginx's workers become `nobody` and cannot read the 0600 file: a real 403. Otherwise
    # nginx runs as the file's owner, so a location answers 403 the way it would.
    as_root = os.geteuid() == 0
    locations = None if as_root else "location = /private.ckpt { return 403; } location / { autoindex on; }"
    refused = f"http://127.0.0.1:{free_port()}/nothing.ckpt"
    with (
        nginx(served_tree, user="nobody nogroup", locations=locations) as url,
        fault_server(served_tree, no_range=True, rate=200_000) as plain,
    ):
        links = [
            ("ckpt", url + "ok.ckpt"),
            ("ckpt", url + "private.ckpt"),
            ("ckpt", url + "gone.ckpt"),
            ("ckpt", refused),
            ("ckpt", plain.url + "slow.ckpt"),
            ("ckpt", url + "ok.ckpt"),
        ]
        write_card(tmp_path, "me/cpu/2.3/net", [(f, link, sha(WEIGHTS)) for f, link in links])
        write_card(
            tmp_path, "me/cpu/2.3/fine", [("ckpt", url + "ok.ckpt", sha(WEIGHTS)), ("ckpt", "local.ckpt", sha(b""))]
        )
        began = time.monotonic()
        proc = run_cli("check-links", "--json", str(tmp_path))
        took = time.monotonic() - began
        log = url.access_log()
        text = run_cli("check-links", str(tmp_path / "me/cpu/2.3/fine.md"))
    assert proc.returncode == 1, proc.stderr
    rows = {(r["card"].rsplit("/", 1)[-1], r["asset"]): r for r in json.loads(proc.stdout)}
    ok, private, gone, dead, slow = (rows[("net", i)] for i in range(1, 6))
    assert (ok["status"], ok["size"], ok["ranges"], ok["error"]) == (206, len(WEIGHTS), True, "")
    assert private["status"] == 403 and "chmod o+r" in private["error"] and "REGISTRY_TOKEN" in private["error"]
    assert gone["status"] == 404 and "asset-link is wrong" in gone["error"]
    assert dead["status"] is None and dead["error"] == "connection refused"
    assert (slow["status"], slow["size"], slow["ranges"], slow["error"]) == (200, 20_000_000, False, "")
    assert took < 60  # reading the 20 MB body at 200 kB/s would take 100 s: it is closed unread
    assert "5 links checked: 3 dead; 1 without Range support" in proc.stderr
    assert f"dead link: {tmp_path}/me/cpu/2.3/net.md: asset 3: {url}gone.ckpt: HTTP 404" in proc.stderr
    # One request per distinct link, each for one byte; nginx sent at most that byte.
    probes = [r for r in log if r["path"] == "/ok.ckpt"]
    assert len(probes) == 1 and probes[0]["range"] == "bytes=0-0" and probes[0]["bytes"] == 1
    assert text.returncode == 0 and "1 link checked: 0 dead; 1 local assets skipped" in text.stderr
    assert re.search(r"^206\s+4,000\s+yes\s+fine#1\s+http", text.stdout, re.M), text.stdout


def test_pull_of_a_file_the_server_may_not_read_names_both_causes(tmp_path, served_tree, home):
    locations = None if os.geteuid() == 0 else "location = /private.ckpt { return 403; } location / { autoindex on; }"
    with nginx(served_tree, user="nobody nogroup", locations=locations) as url:
        card = write_card(tmp_path, "me/cpu/2.3/net", [("ckpt", url + "private.ckpt", sha(WEIGHTS))])
        proc = run_cli("pull", str(card))
    assert proc.returncode == 5 and "HTTP 403" in proc.stderr
    assert "chmod o+r" in proc.stderr and "REGISTRY_TOKEN and REGISTRY_TOKEN_HOST=127.0.0.1" in proc.stderr


def test_check_links_of_a_registry_by_name(tmp_path, home):
    with nginx(tmp_path) as url:
        write_card(tmp_path, "me/cpu/2.3/net", [("ckpt", url + "gone.ckpt", sha(WEIGHTS))])
        proc = run_cli("check-links", "--registry", str(tmp_path), "net")
        everything = run_cli("check-links", "--registry", str(tmp_path))
    assert proc.returncode == 1 and "1 link checked: 1 dead" in proc.stderr
    assert everything.returncode == 1 and "1 link checked: 1 dead" in everything.stderr


def test_check_links_asks_the_mirror_pull_would_use(tmp_path, served_tree, home):
    """--mirror (and REGISTRY_MIRRORS) send each probe where pull would download from; the card's URL stays."""
    published = "https://download.example.invalid/zoo/"
    write_card(tmp_path, "me/cpu/2.3/net", [("ckpt", published + "ok.ckpt", sha(WEIGHTS))])
    with nginx(served_tree) as url:
        proc = run_cli("check-links", "--json", "--mirror", f"{published}={url}", "--registry", str(tmp_path), "net")
        text = run_cli("check-links", "--mirror", f"{published}={url}", "--registry", str(tmp_path), "net")
        gone = run_cli(
            "check-links", "--registry", str(tmp_path), "net", env={"REGISTRY_MIRRORS": f"{published}={url}sub/"}
        )
        log = url.access_log()
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert (row["url"], row["checked"], row["status"]) == (published + "ok.ckpt", url + "ok.ckpt", 206)
    assert text.returncode == 0 and url + "ok.ckpt" in text.stdout
    assert (
        gone.returncode == 1 and f"{published}ok.ckpt (checked at its mirror {url}sub/ok.ckpt): HTTP 404" in gone.stderr
    )
    assert [r["path"] for r in log] == ["/ok.ckpt", "/ok.ckpt", "/sub/ok.ckpt"]


def test_check_links_masks_passwords_and_escapes_control_characters(tmp_path, home):
    with nginx(tmp_path) as url:
        secret = url.replace("http://", "http://user:s3cret@") + "gone.ckpt"
        write_card(tmp_path, "me/cpu/2.3/net", [("ckpt", secret, sha(WEIGHTS))])
        text = run_cli("check-links", "--registry", str(tmp_path), "net")
        data = run_cli("check-links", "--registry", str(tmp_path), "net", "--json")
    for proc in (text, data):
        assert proc.returncode == 1 and "s3cret" not in proc.stdout + proc.stderr
        assert "user:***@" in proc.stdout + proc.stderr
    assert "\x1b" not in text.stdout + text.stderr


def test_add_asset_follows_the_hubs_dash_alone_layout(tmp_path):
    """Every MindSpore Hub card writes `-` alone on a line with the keys indented below it."""
    corpus_card = require_shared(CORPUS) / "mindspore" / "1.10" / "lenet_mnist.md"
    card = tmp_path / "lenet_mnist.md"
    shutil.copyfile(corpus_card, card)
    (tmp_path / "w.ckpt").write_bytes(WEIGHTS)
    before = parse_file(card).fields["asset"]
    proc = run_cli("add-asset", str(card), str(tmp_path / "w.ckpt"))
    assert proc.returncode == 0, proc.stderr
    after = parse_file(card)
    assert after.fields["asset"] == before + [
        {"file-format": "ckpt", "asset-link": "w.ckpt", "asset-sha256": sha(WEIGHTS), "asset-size": len(WEIGHTS)}
    ]
    lines = card.read_text().splitlines()
    at = lines.index("    asset-link: w.ckpt")
    assert lines[at - 2 : at + 3] == [
        "-",
        "    file-format: ckpt",
        "    asset-link: w.ckpt",
        f"    asset-sha256: {sha(WEIGHTS)}",
        f"    asset-size: {len(WEIGHTS)}",
    ]


def test_add_asset_of_a_url_hashes_the_bytes_as_sent_as_pull_does(tmp_path):
    """A .gz served with Content-Encoding: gzip: add-asset hashes the bytes sent (what pull keeps), not the
    decoded ones, so the card it writes pulls."""
    import gzip

    served = tmp_path / "srv"
    served.mkdir()
    packed = gzip.compress(WEIGHTS * 50)
    (served / "w.ckpt.gz").write_bytes(packed)
    reg = tmp_path / "reg"
    (reg / "me" / "cpu" / "2.10").mkdir(parents=True)
    card = reg / "me" / "cpu" / "2.10" / "gz.md"
    card.write_text("---\nmodel-name: gz\n---\n")
    with fault_server(served, content_encoding="gzip") as srv:
        proc = run_cli("add-asset", str(card), srv.url + "w.ckpt.gz", "--format", "ckpt")
        assert proc.returncode == 0, proc.stderr
        assert parse_file(card).fields["asset"][0]["asset-sha256"] == sha(packed)
        pulled = run_cli("--registry", str(reg), "pull", "gz", env={"REGISTRY_HOME": str(tmp_path / "home")})
    assert pulled.returncode == 0, pulled.stderr
