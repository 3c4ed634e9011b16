"""The CLI's contract: one line per failure, documented exit codes, no traceback."""

import argparse
import io

from hypothesis import given
from hypothesis import strategies as st

from registry.cli.output import Output, plain
from tests.conftest import ROOT, run_cli


def test_no_command_prints_help_and_exits_2():
    proc = run_cli()
    assert proc.returncode == 2 and "COMMAND" in proc.stdout


def test_unknown_option_is_a_usage_error():
    proc = run_cli("validate", "--nope", "x")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unrecognized arguments" in proc.stderr


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("registry ")


ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hash_prints_sha256sum_lines_that_sha256sum_checks(tmp_path):
    import shutil
    import subprocess

    (tmp_path / "w.bin").write_bytes(b"abc")
    (tmp_path / "v.bin").write_bytes(b"")
    proc = run_cli("hash", "w.bin", "v.bin", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"{ABC}  w.bin"
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(proc.stdout)
    tool = shutil.which("sha256sum")
    assert tool, "coreutils sha256sum is needed for this test"
    check = subprocess.run([tool, "-c", str(sums)], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0 and "w.bin: OK" in check.stdout, check.stdout + check.stderr
    (tmp_path / "w.bin").write_bytes(b"abd")
    assert subprocess.run([tool, "-c", str(sums)], cwd=tmp_path, capture_output=True).returncode == 1
    # names with a line break or a backslash are escaped as sha256sum itself escapes them
    odd = ["nl\nname.bin", "back\\slash.bin"]
    for name in odd:
        (tmp_path / name).write_bytes(b"abc")
    proc = run_cli("hash", *odd, cwd=tmp_path)
    assert proc.stdout.splitlines() == [f"\\{ABC}  nl\\nname.bin", f"\\{ABC}  back\\\\slash.bin"]
    sums.write_text(proc.stdout)
    check = subprocess.run([tool, "-c", str(sums)], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_limit_must_be_a_count():
    proc = run_cli("list", "--limit", "-1")
    assert proc.returncode == 2 and "--limit: '-1' is not a whole number of 0 or more" in proc.stderr
    assert "registry: error: registry: " not in run_cli("list", "--bogus").stderr


def test_hash_json_is_one_document_and_card_is_an_asset_snippet(tmp_path):
    import json

    import yaml

    (tmp_path / "w.ckpt").write_bytes(b"abc")
    (tmp_path / "x.bin").write_bytes(b"")
    proc = run_cli("hash", "--json", "w.ckpt", "x.bin", cwd=tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == [
        {"path": "w.ckpt", "sha256": ABC, "size": 3},
        {"path": "x.bin", "sha256": proc.stdout.split('"sha256": "')[2][:64], "size": 0},
    ]
    proc = run_cli("hash", "--card", "w.ckpt", cwd=tmp_path)
    assert yaml.safe_load(proc.stdout) == {
        "asset": [{"file-format": "ckpt", "asset-link": "w.ckpt", "asset-sha256": ABC, "asset-size": 3}]
    }


def test_hash_of_a_missing_file_is_one_sentence():
    proc = run_cli("hash", "no/such/file")
    assert proc.returncode == 2
    assert proc.stderr.startswith("registry: error: no/such/file: cannot read the file")
    assert "Traceback" not in proc.stderr


def test_registry_option_is_accepted_before_and_after_the_command(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    manifests = str(ROOT / "manifests")
    for args in (
        ["--registry", manifests, "info", "lenet_digits"],
        ["info", "lenet_digits", "--registry", manifests],
        ["--registry", str(empty), "info", "lenet_digits", "--registry", manifests],
    ):
        proc = run_cli(*args, env={"REGISTRY_URL": str(empty)})
        assert proc.returncode == 0, (args, proc.stderr)
        assert "lenet_digits" in proc.stdout
    # The option wins over the environment; without it the environment is used.
    proc = run_cli("info", "lenet_digits", env={"REGISTRY_URL": str(empty)})
    assert proc.returncode == 3 and "no model 'lenet_digits'" in proc.stderr


@given(
    st.lists(
        st.lists(
            st.lists(st.sampled_from(["a", " ", "\t", "\x1b", "\u202e", "é", "数", "://", "u:pw@h", "%s", "\n"])).map(
                "".join
            ),
            min_size=3,
            max_size=3,
        ),
        max_size=6,
    )
)
def test_a_table_is_its_plain_cells_left_justified_whatever_the_text(rows):
    # What Output.table promised before its shortcuts (one format per row, plain rows as they are).
    header = ["ID", "TASK", "FORMATS"]
    cells = [header, *([plain(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    buf = io.StringIO()
    Output(argparse.Namespace(format="text"), stdout=buf).table(rows, header)
    assert buf.getvalue() == "".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n" for row in cells
    )
