"""Schema, lint rules and the `registry validate` command on real files."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from registry import schema, validate_parallel
from registry.card import parse_file, parse_text
from registry.lint import check_card, validate_paths
from tests.conftest import MANIFESTS, ROOT, SEED_CARD, require_shared, run_cli

SHA_A = "29f52e7f8e3033e15d4423e0e1410b157cc81ff9fd31c1eef30ae862766c3617"
SHA_B = "a385d49b3471582fbfec4a762afec771fe36a9dec706a4614256126641c5e7cc"

FIELDS = {
    "model-name": "lenet",
    "backbone-name": "lenet5",
    "module-type": "cv-classification",
    "fine-tunable": "True",
    "input-shape": "[1, 32, 32]",
    "model-version": "1.0",
    "train-dataset": "digits",
    "evaluation": "acc0.97",
    "author": "MindSpore team",
    "update-time": "2024-08-01",
    "repo-link": "<https://gitee.com/mindspore/models/tree/master/official/cv/lenet>",
    "user-id": "mindspore",
    "used-for": "inference",
    "train-backend": "cpu",
    "infer-backend": "cpu",
    "mindspore-version": "2.10",
    "license": "Apache2.0",
    "summary": "lenet classifies digits",
}
ASSETS = f"""asset:
  - file-format: ckpt
    asset-link: lenet.ckpt
    asset-sha256: {SHA_A}
  - file-format: npz
    asset-link: <https://download.example.org/lenet/lenet.npz>
    asset-sha256: {SHA_B}
"""


def card_text(assets: str = ASSETS, extra: str = "", drop: tuple = (), **changes) -> str:
    fields = dict(FIELDS)
    for key, value in changes.items():
        fields[key.replace("_", "-")] = value
    lines = [f"{k}: {v}" for k, v in fields.items() if k not in drop]
    return "# LeNet\n\n---\n" + "\n".join(lines) + "\n" + extra + assets + "---\n\n## Usage\n\ntext\n"


def write_card(root: Path, text: str, rel: str = "mindspore/cpu/2.10/lenet.md") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path, text, rel="mindspore/cpu/2.10/lenet.md"):
    card = parse_file(write_card(tmp_path, text, rel))
    found = card.problems + check_card(card)
    # The fast path and jsonschema must agree on every card the tests build.
    if isinstance(card.data, dict):
        assert schema._fast_check()(card.data) == schema.validator().is_valid(card.data)
    return found


def only(problems, rule):
    picked = [p for p in problems if p.rule == rule]
    assert picked, f"no {rule} among {[p.format() for p in problems]}"
    return picked


# --------------------------------------------------------------------------- sound cards


def test_sound_card_with_relative_links_cpu_and_npz(tmp_path):
    assert problems_of(tmp_path, card_text()) == []


def test_corrected_ssd_card_passes():
    card = parse_file(MANIFESTS / "mindspore/ascend/0.7/ssd_v1_coco2017.md")
    assert card.problems == [] and check_card(card) == []
    assets = card.fields["asset"]
    assert [(a["file-format"], a["asset-sha256"]) for a in assets] == [("ckpt", SHA_A), ("air", SHA_B)]
    assert assets[1]["asset-link"].endswith("/ssd.geir")


def test_validate_manifests_exits_0():
    proc = run_cli("validate", "manifests/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith(f"{len(list(MANIFESTS.rglob('*.md')))} card")
    assert " 0 with errors; 0 errors" in proc.stdout


def test_seed_card_fails_with_duplicate_keys_at_their_lines():
    seed = require_shared(SEED_CARD)
    proc = run_cli("validate", str(seed))
    assert proc.returncode == 1 and proc.stderr == ""
    dup = [line for line in proc.stdout.splitlines() if " duplicate-key: " in line]
    assert [line.split(": error")[0] for line in dup] == [f"{seed}:45:5", f"{seed}:46:5", f"{seed}:47:5"]


def test_hash_output_pasted_into_a_card_validates(tmp_path):
    weights = tmp_path / "mindspore/cpu/2.10/lenet.ckpt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"\x01weights" * 1000)
    proc = run_cli("hash", str(weights))
    assert proc.returncode == 0
    digest, path = proc.stdout.split()
    assert digest == hashlib.sha256(weights.read_bytes()).hexdigest() and path == str(weights)
    proc = run_cli("hash", "--card", "lenet.ckpt", cwd=weights.parent)  # the snippet, size included, as it is
    assert proc.returncode == 0 and "    asset-size: 8000\n" in proc.stdout
    write_card(tmp_path, card_text(assets=proc.stdout))
    assert run_cli("validate", str(tmp_path)).returncode == 0


# --------------------------------------------------------------------------- schema rules


def test_missing_required_fields_each_reported(tmp_path):
    found = only(problems_of(tmp_path, card_text(drop=("train-dataset", "summary"))), "schema-required")
    assert sorted(p.message.split("`")[1] for p in found) == ["summary", "train-dataset"]
    assert all(p.line == 4 for p in found)  # at the start of the front matter


@pytest.mark.parametrize(
    "change, rule, line, words",
    [
        ({"fine_tunable": "yes please"}, "schema-type", 7, "true or false"),
        ({"used_for": "training"}, "schema-enum", 16, "allowed: inference"),
        ({"infer_backend": "npu"}, "schema-enum", 18, "allowed: ascend, gpu, cpu"),
        ({"module_type": "CV"}, "schema-pattern", 6, "write `cv`"),
        ({"module_type": "vision"}, "schema-pattern", 6, "cv-classification"),
        ({"update_time": "2023-2-17"}, "schema-pattern", 13, "write `2023-02-17`"),
        ({"update_time": "2023-02-30"}, "schema-pattern", 13, "real date"),
        ({"input_shape": "[0, 32, 32]"}, "schema-value", 8, "positive whole numbers"),
        ({"input_shape": "[1.5, 32]"}, "schema-value", 8, "positive whole numbers"),
        ({"mindspore_version": "two"}, "schema-pattern", 19, "such as 1.10"),
        ({"repo_link": ""}, "schema-type", 14, "is empty"),
        ({"repo_link": "gitee.com/mindspore"}, "schema-pattern", 14, "http(s) URL"),
        ({"summary": "[a, b]"}, "schema-type", 21, "must be text"),
    ],
)
def test_schema_failures_located_with_a_fix(tmp_path, change, rule, line, words):
    found = only(problems_of(tmp_path, card_text(**change)), rule)
    assert len(found) == 1
    assert found[0].line == line, found[0].format()
    assert words in found[0].message


def test_multi_input_shape_accepted(tmp_path):
    assert problems_of(tmp_path, card_text(input_shape="[[640, 480, 3], [640, 480, 3]]")) == []


def test_short_sha256_names_registry_hash(tmp_path):
    assets = "asset:\n  - file-format: ckpt\n    asset-link: lenet.ckpt\n    asset-sha256: e10bad35\n"
    (p,) = problems_of(tmp_path, card_text(assets=assets))
    assert (p.rule, p.line, p.col, p.severity) == ("sha256-prefix", 25, 19, "error")  # validate stays strict
    assert "8 hex digits" in p.message and "prefix" in p.message and "registry hash FILE" in p.message
    assert not p.blocks_use  # pull checks the prefix (rules.py)
    assets = assets.replace("e10bad35", "e10bad3")  # under 8 digits: not a prefix, and it blocks
    (p,) = problems_of(tmp_path, card_text(assets=assets))
    assert (p.rule, p.blocks_use) == ("schema-pattern", True) and "7 hex digits" in p.message


def test_asset_problems(tmp_path):
    assets = (
        "asset:\n  - file-format: tar\n    asset-link: lenet.ckpt\n    asset-sha256: "
        + SHA_A
        + "\n    size: 12\n  - asset-link: https://x.org/b.ckpt\n    asset-sha256: "
        + SHA_B
        + "\n"
    )
    found = problems_of(tmp_path, card_text(assets=assets))
    assert {(p.rule, p.line) for p in found} == {
        ("schema-enum", 23),
        ("schema-unknown-key", 26),
        ("schema-required", 27),
    }
    enum = only(found, "schema-enum")[0]
    assert "file-format of asset 1" in enum.message and "ckpt, air, mindir, onnx, mslite, npz" in enum.message


def test_metrics_are_extra_fields_but_typos_are_not(tmp_path):
    assert problems_of(tmp_path, card_text(extra="accuracy: 0.97\nmAP: 0.24\n")) == []
    (p,) = problems_of(tmp_path, card_text(extra="modle-name: lenet\n"))
    assert p.rule == "unknown-key" and "did you mean `model-name`" in p.message and p.col == 1


# --------------------------------------------------------------------------- lint rules


def test_path_mismatch_user_backend_version(tmp_path):
    text = card_text(user_id="Noah's Ark Lab", infer_backend="gpu", mindspore_version="2.3")
    found = only(problems_of(tmp_path, text), "path-mismatch")
    assert [p.message.split("`")[1] for p in found] == ["Noah's Ark Lab", "gpu", "2.3"]
    assert "write `user-id: mindspore`" in found[0].message
    # user-ids are compared without case and punctuation; patch versions sit in their minor's directory
    assert problems_of(tmp_path, card_text(user_id="MindSpore", mindspore_version="2.10.1")) == []
    # outside a registry tree (no version directory) the rule does not apply
    assert problems_of(tmp_path, card_text(user_id="someone"), rel="cards/lenet.md") == []
    # USER/VERSION/NAME.md, as in mindspore-hub/mindspore/1.8/
    assert problems_of(tmp_path, card_text(), rel="mindspore/2.10/lenet.md") == []


def test_insecure_links(tmp_path):
    assets = f"asset:\n  - file-format: ckpt\n    asset-link: http://x.org/a.ckpt\n    asset-sha256: {SHA_A}\n"
    (p,) = problems_of(tmp_path, card_text(assets=assets))
    assert (p.rule, p.severity, p.line) == ("insecure-link", "warning", 24) and "https://x.org/a.ckpt" in p.message
    loopback = assets.replace("http://x.org", "http://127.0.0.1:8080")
    assert problems_of(tmp_path, card_text(assets=loopback)) == []
    (p,) = problems_of(tmp_path, card_text(assets=assets.replace("http://x.org", "file:///srv")))
    assert (p.rule, p.severity, p.line) == ("local-link", "warning", 24) and "relative path" in p.message
    (p,) = problems_of(tmp_path, card_text(repo_link="http://gitee.com/x"))
    assert (p.rule, p.severity) == ("insecure-link", "warning")
    proc = run_cli("validate", str(tmp_path))  # warnings alone pass
    assert proc.returncode == 0 and "1 warning" in proc.stdout


def test_future_update_time_is_a_warning_past_today_in_utc_plus_14(tmp_path):
    kiribati = datetime.now(timezone(timedelta(hours=14))).date()
    # Today in UTC+14 is already tomorrow in most zones, and it is not "the future" anywhere.
    assert problems_of(tmp_path, card_text(update_time=kiribati.isoformat())) == []
    (p,) = problems_of(tmp_path, card_text(update_time=(kiribati + timedelta(days=1)).isoformat()))
    assert (p.rule, p.severity, p.line) == ("future-date", "warning", 13) and "UTC+14" in p.message
    assert run_cli("validate", str(tmp_path)).returncode == 0  # a warning does not block


def test_stray_delimiter_leaves_fields_below(tmp_path):
    text = card_text().replace("license: Apache2.0\n", "---\nlicense: Apache2.0\n")
    found = problems_of(tmp_path, text)
    stray = only(found, "fields-after-front-matter")[0]
    assert stray.line == 21 and "`license`" in stray.message and "line 20" in stray.message
    # a stray `---` right after the opening one: an empty front matter, and the fields below it
    text = card_text().replace("---\n", "---\n---\n", 1)
    assert [p.rule for p in validate_paths([str(write_card(tmp_path, text))]).problems] == [
        "empty-front-matter",
        "fields-after-front-matter",
    ]
    # field-like lines further down the body (a YAML example) are the body's own business
    text = card_text().replace("## Usage\n", "## Usage\n\n```yaml\nmodel-name: lenet\n```\n")
    assert problems_of(tmp_path, text) == []


def test_sha256_reused_within_a_card(tmp_path):
    assets = (
        f"asset:\n  - file-format: ckpt\n    asset-link: a.ckpt\n    asset-sha256: {SHA_A}\n"
        f"  - file-format: air\n    asset-link: a.air\n    asset-sha256: {SHA_A}\n"
    )
    (p,) = problems_of(tmp_path, card_text(assets=assets))
    assert (p.rule, p.severity, p.line) == ("sha256-reused", "error", 28)


def test_sha256_reused_across_cards(tmp_path):
    def one_asset(link):
        return f"asset:\n  - file-format: ckpt\n    asset-link: {link}\n    asset-sha256: {SHA_A}\n"

    write_card(tmp_path, card_text(assets=one_asset("https://x.org/r2.10/lenet_v2100_digits.ckpt")))
    # the same bytes re-published under another release's URL: not reported
    write_card(
        tmp_path,
        card_text(mindspore_version="2.9", assets=one_asset("https://x.org/r2.9/lenet_v290_digits.ckpt")),
        "mindspore/cpu/2.9/lenet.md",
    )
    assert validate_paths([str(tmp_path)]).problems == []
    # a differently named file with the same digest: one digest may have been copied
    write_card(
        tmp_path,
        card_text(mindspore_version="2.9", assets=one_asset("https://x.org/r2.9/alexnet.ckpt")),
        "mindspore/cpu/2.9/alexnet.md",
    )
    report = validate_paths([str(tmp_path)])
    assert sorted((Path(p.path).parent.name, Path(p.path).name, p.rule, p.severity) for p in report.problems) == [
        ("2.10", "lenet.md", "sha256-reused", "warning"),
        ("2.9", "alexnet.md", "sha256-reused", "warning"),
        ("2.9", "lenet.md", "sha256-reused", "warning"),
    ]
    assert report.exit_code == 0


def test_localized_twins_checked_for_readability_only(tmp_path):
    write_card(tmp_path, card_text())
    twin = "# LeNet\n\n---\n模型名称：LeNet\n\n用户ID：mindspore\n---\n"
    write_card(tmp_path, twin, "mindspore/cpu/2.10/lenet_cn.md")
    report = validate_paths([str(tmp_path)])
    assert report.problems == [] and report.summary()["localized"] == 1
    write_card(tmp_path, twin, "mindspore/cpu/2.10/alexnet_cn.md")
    write_card(tmp_path, "# broken\n---\n模型名称：x\n", "mindspore/cpu/2.10/vgg_cn.md")
    report = validate_paths([str(tmp_path)])
    assert sorted((Path(p.path).name, p.rule) for p in report.problems) == [
        ("alexnet_cn.md", "orphan-translation"),
        ("vgg_cn.md", "orphan-translation"),
        ("vgg_cn.md", "unterminated-front-matter"),
    ]


def test_check_card_has_no_side_effects(tmp_path):
    card = parse_text(card_text(update_time="2023-2-17"), str(tmp_path / "mindspore/cpu/2.10/x.md"))
    before = list(card.problems)
    assert check_card(card) == check_card(card)
    assert card.problems == before


# --------------------------------------------------------------------------- the command


BAD_FILES = {
    "empty.md": (b"", "empty-file"),
    "binary.md": (b"\x89PNG\r\n\x1a\n\x00\x00", "binary-file"),
    "latin1.md": (b"---\nmodel-name: caf\xe9\n---\n", "encoding"),
    "nofm.md": (b"# Title\n\nNo front matter.\n", "no-front-matter"),
    "unterminated.md": (b"# Title\n---\nmodel-name: x\n", "unterminated-front-matter"),
    "tabs.md": (b"---\nasset:\n\t- file-format: ckpt\n---\n", "yaml-tab"),
    "syntax.md": (b"---\nmodel-name: [x\nuser-id: y\n---\n", "yaml-syntax"),
    "list.md": (b"---\n- model-name\n- ssd\n---\n", "front-matter-not-mapping"),
    "scalar.md": (b"---\nssd\n---\n", "front-matter-not-mapping"),
    "bomb.md": (
        (
            "---\na: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
            + "---\n"
        ).encode(),
        "yaml-too-complex",
    ),
    "large.md": (b"---\nmodel-name: x\n---\n" + b"x" * (1 << 20), "too-large"),
    "deep.md": (b"---\na: " + b"[" * 900 + b"]" * 900 + b"\n---\n", "yaml-too-complex"),
}


def test_every_bad_input_one_clear_line_no_traceback(tmp_path):
    for name, (raw, _) in BAD_FILES.items():
        (tmp_path / name).write_bytes(raw)
    proc = run_cli("validate", str(tmp_path), timeout=60)
    assert proc.returncode == 1 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    found = {Path(line.split(":")[0]).name: line.split(" ")[2].rstrip(":") for line in lines[:-1]}
    assert found == {name: rule for name, (_, rule) in BAD_FILES.items()}
    assert lines[-1].startswith(f"{len(BAD_FILES)} cards checked: 0 clean, {len(BAD_FILES)} with errors")


def test_exit_codes_for_missing_paths_and_empty_dirs(tmp_path):
    proc = run_cli("validate", str(tmp_path / "nope"), "manifests")
    assert proc.returncode == 2 and "nope:0:0: error not-found" in proc.stdout
    (tmp_path / "empty").mkdir()
    proc = run_cli("validate", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no-cards" in proc.stdout
    assert run_cli("validate").returncode == 2  # usage: a PATH is required


def test_json_and_github_formats(tmp_path):
    path = write_card(tmp_path, card_text(update_time="2023-2-17"))
    proc = run_cli("validate", "--format", "json", str(tmp_path))
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and data["exit_code"] == 1
    assert data["problems"] == [
        {
            "path": str(path),
            "line": 13,
            "col": 14,
            "severity": "error",
            "rule": "schema-pattern",
            "message": data["problems"][0]["message"],
        }
    ]
    assert data["summary"]["cards"] == 1 and data["summary"]["with_errors"] == 1
    proc = run_cli("validate", "--format", "github", str(path))
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"::error file={str(path).replace(':', '%3A')},line=13,col=14,title=schema-pattern::")
    assert "write `2023-02-17`" in first


def test_help_and_validate_do_not_import_mindspore():
    code = (
        "import sys\n"
        "from registry.cli import main\n"
        "rc = main(['validate', 'manifests'])\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(rc, [m for m in ('mindspore', 'numpy', 'markdown_it', 'requests') if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 []"


def test_line_breaks_in_values_keys_and_names_keep_one_line_per_problem(tmp_path):
    path = tmp_path / "two\nlines.md"
    path.write_text('---\nmodel-version: "1.0\\nfoo"\nupdate-time: "2023-1-1\\r\\nx"\n"model-nam\\ne": x\n---\n')
    proc = run_cli("validate", str(tmp_path))
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1 and len(lines) > 3
    assert all(line.startswith(str(tmp_path) + "/two\\nlines.md:") for line in lines[:-1]), lines
    assert any("`1.0\\nfoo`" in line for line in lines) and any("`2023-1-1\\r\\nx`" in line for line in lines)


def test_symlink_loop_is_a_read_error_not_a_missing_file(tmp_path):
    (tmp_path / "a.md").symlink_to(tmp_path / "b.md")
    (tmp_path / "b.md").symlink_to(tmp_path / "a.md")
    proc = run_cli("validate", str(tmp_path / "a.md"))
    assert (
        proc.returncode == 2
        and "a.md:0:0: error read-error: cannot read the file: Too many levels of symbolic links" in proc.stdout
    )


# --------------------------------------------------------------------------- parallel validate


def _parallel_tree(root: Path) -> int:
    """More cards than MIN_PARALLEL, with cross-card findings far apart (other chunks, other processes)."""
    n = validate_parallel.MIN_PARALLEL + 3 * validate_parallel.CHUNK
    for k in range(n):
        link = f"https://x.org/r2.10/net{k}_v2100.ckpt"
        if k in (0, n - 1):  # one digest, two file names, at both ends of the tree: sha256-reused
            link = f"https://x.org/r2.10/{'first' if k == 0 else 'last'}.ckpt"
        assets = f"asset:\n  - file-format: ckpt\n    asset-link: {link}\n    asset-sha256: {SHA_A if k in (0, n - 1) else hashlib.sha256(str(k).encode()).hexdigest()}\n"
        changes = {"update_time": "2023-2-17"} if k % 7 == 0 else {}
        write_card(root, card_text(assets=assets, model_name=f"net{k}", **changes), f"mindspore/cpu/2.10/net{k:04}.md")
    write_card(root, "# x\n---\n模型名称：x\n---\n", "mindspore/cpu/2.10/net0100_cn.md")  # a twin with its card
    write_card(root, "# x\n---\n模型名称：x\n---\n", "mindspore/cpu/2.10/zz_cn.md")  # orphan-translation
    write_card(root, "no front matter\n", "mindspore/cpu/2.10/net0200b.md")
    return n + 3


def test_parallel_output_and_exit_code_are_the_serial_ones(tmp_path):
    files = _parallel_tree(tmp_path)
    for fmt in ("text", "json", "github"):
        runs = [run_cli("validate", "--format", fmt, "--jobs", str(jobs), str(tmp_path)) for jobs in (1, 2, 3)]
        assert runs[0].returncode == 1 and runs[0].stderr == ""
        assert all((r.stdout, r.returncode, r.stderr) == (runs[0].stdout, 1, "") for r in runs[1:]), fmt
    data = json.loads(run_cli("validate", "--format", "json", "--jobs", "2", str(tmp_path)).stdout)
    rules = collections.Counter(p["rule"] for p in data["problems"])
    assert rules["sha256-reused"] == 2 and rules["orphan-translation"] == 1 and rules["no-front-matter"] == 1
    assert rules["schema-pattern"] == len(range(0, files - 3, 7)) and data["summary"]["localized"] == 2
    assert data["summary"]["cards"] == files - 2
    # the in-process report is the same too, whatever the number of processes
    reports = [validate_paths([str(tmp_path)], jobs=jobs) for jobs in (1, 2)]
    assert reports[0].problems == reports[1].problems and reports[0].summary() == reports[1].summary()
    assert [(r.path, r.problems, r.localized) for r in reports[0].results] == [
        (r.path, r.problems, r.localized) for r in reports[1].results
    ]


_TEST_PROCESS = os.getpid()


def _dies_in_a_worker(item):
    if os.getpid() != _TEST_PROCESS:  # whichever chunk the worker is handed
        os.kill(os.getpid(), signal.SIGKILL)
    return item


def _raises_in_a_worker(item):
    if os.getpid() != _TEST_PROCESS:
        raise MemoryError("in a worker")
    return item


def _raises(item):
    if item == 300:
        raise MemoryError("card 300")
    return item


def test_a_worker_that_dies_is_one_clear_error_not_a_hang():
    items = list(range(1000))
    with pytest.raises(validate_parallel.WorkerDied, match=r"was killed by SIGKILL .* rerun with --jobs 1") as died:
        list(validate_parallel.ordered_map(_dies_in_a_worker, items, jobs=2))
    assert died.value.exit_code == 2  # a documented code: the system stopped the check
    assert list(validate_parallel.ordered_map(_dies_in_a_worker, items, jobs=1)) == items
    # an exception in a worker is raised at its item's turn, as in the serial run
    for jobs in (1, 2):
        seen = []
        with pytest.raises(MemoryError, match="card 300"):
            for item in validate_parallel.ordered_map(_raises, items, jobs=jobs):
                seen.append(item)
        assert seen == items[:300]
    assert list(validate_parallel.ordered_map(_raises, items[:300], jobs=2)) == items[:300]
    # one raised in whichever chunk the worker is handed comes back as itself, after the items before it
    seen = []
    with pytest.raises(MemoryError, match="in a worker"):
        for item in validate_parallel.ordered_map(_raises_in_a_worker, items, jobs=2):
            seen.append(item)
    assert seen == items[: len(seen)] and validate_parallel.CHUNK <= len(seen) < len(items)


# --------------------------------------------------------------------------- fast paths


def test_schema_errors_walking_only_rejected_fields_match_jsonschemas_whole_walk(tmp_path):
    # A sound card, one bad field, several, and top-level failures (a missing field, an extra that is
    # not a plain value), which take jsonschema's whole walk: each lists the same errors as jsonschema.
    texts = [
        card_text(),
        card_text(update_time="2024-8-1"),
        card_text(update_time="2024-8-1", train_backend="tpu", repo_link="[1, 2]", module_type="CV"),
        card_text(assets=ASSETS.replace(f"asset-sha256: {SHA_A}", "asset-sha256: abc")),
        card_text(drop=("license",), update_time="2024-8-1"),
        card_text(extra="notes:\n  - a\n", update_time="2024-8-1"),
    ]

    def listed(errors):
        return [(tuple(e.absolute_path), e.validator, e.message, list(e.absolute_schema_path)) for e in errors]

    for n, text in enumerate(texts):
        card = parse_file(write_card(tmp_path, text, f"mindspore/cpu/2.10/lenet{n}.md"))
        assert listed(schema.errors(card.data)) == listed(schema.validator().iter_errors(card.data)), text
    assert listed(schema.errors(parse_file(write_card(tmp_path, texts[2])).data))  # not vacuous


def test_placeholder_written_as_an_escape_is_still_found(tmp_path):
    # The visit is skipped when the text holds neither `TODO` nor a backslash: an escape spells it too.
    found = problems_of(tmp_path, card_text(author='"\\x54ODO write the author"'))
    assert [p.keypath for p in only(found, "placeholder")] == [("author",)]
    assert not [p for p in problems_of(tmp_path, card_text(author='"T\\x4fDAY"')) if p.rule == "placeholder"]
