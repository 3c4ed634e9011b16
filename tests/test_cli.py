"""The CLI's contract: one line per failure, documented exit codes, no traceback."""
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


def test_hash_prints_digest_and_size(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    proc = run_cli("hash", str(f))
    assert proc.returncode == 0
    assert proc.stdout.split() == ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "3", str(f)]


def test_hash_of_a_missing_file_is_one_sentence():
    proc = run_cli("hash", "no/such/file")
    assert proc.returncode == 2
    assert proc.stderr.startswith("registry: error: no/such/file: cannot read the file")
    assert "Traceback" not in proc.stderr


def test_registry_option_is_accepted_before_and_after_the_command(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    manifests = str(ROOT / "manifests")
    for args in (["--registry", manifests, "info", "lenet_digits"], ["info", "lenet_digits", "--registry", manifests],
                 ["--registry", str(empty), "info", "lenet_digits", "--registry", manifests]):
        proc = run_cli(*args, env={"REGISTRY_URL": str(empty)})
        assert proc.returncode == 0, (args, proc.stderr)
        assert "lenet_digits" in proc.stdout
    # The option wins over the environment; without it the environment is used.
    proc = run_cli("info", "lenet_digits", env={"REGISTRY_URL": str(empty)})
    assert proc.returncode == 3 and "no model 'lenet_digits'" in proc.stderr
