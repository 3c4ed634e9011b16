"""The CLI's conventions (README "CLI conventions"): one JSON document per command with --format json or
--json, --file-format for the file-format filter, help with a description and examples, settings that reach
the registry (the --offline bug), and the Python listing API beside it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import registry
from tests.conftest import MANIFESTS, ROOT, run_cli

LENET = "mindspore/cpu/2.10/lenet_digits"


@pytest.fixture
def tree(tmp_path):
    """A copy of the embedded registry (lenet_digits with its local assets), to write into."""
    copy = tmp_path / "registry"
    shutil.copytree(MANIFESTS, copy)
    return copy


def _json(*args, env=None, cwd=None, code=0):
    proc = run_cli(*args, env=env, cwd=cwd)
    assert proc.returncode == code, (args, proc.stderr)
    return json.loads(proc.stdout)


def test_every_command_writes_one_json_document(tree, tmp_path, home):
    env = {"REGISTRY_HOME": str(home), "REGISTRY_URL": str(tree)}
    card = tree / "mindspore/cpu/2.10/lenet_digits.md"
    weights = tree / "mindspore/cpu/2.10/lenet_digits.ckpt"
    assert _json("validate", "--format", "json", str(tree), env=env)["exit_code"] == 0
    assert _json("hash", "--json", str(weights), env=env)[0]["size"] == weights.stat().st_size
    new = _json("new", "me/cpu/2.3/tiny", "--dir", str(tmp_path / "drafts"), "--json", env=env)
    assert new["placeholders"] > 0
    extra = tmp_path / "drafts/me/cpu/2.3/extra.ckpt"
    extra.write_bytes(b"weights")
    added = _json("add-asset", new["path"], str(extra), "--json", env=env)
    assert added["file-format"] == "ckpt" and added["size"] == 7
    index = _json("index", str(tree), "--json", env=env)
    assert index["counts"]["cards"] >= 1 and index["published"] is True
    assert _json("index", "--check", str(tree), "--json", env=env)["state"] == "current"
    assert _json("check-links", str(card), "--json", env=env) == []  # local assets only: nothing to ask
    pulled = _json("pull", "lenet_digits", "--file-format", "ckpt", "--json", env=env)
    assert [p["file-format"] for p in pulled] == ["ckpt"] and pulled[0]["id"] == LENET
    assert LENET in [r["id"] for r in _json("list", "--format", "json", env=env)]
    assert [r["id"] for r in _json("search", "digits", "--json", env=env)] == [LENET]
    assert _json("info", "lenet_digits", "--json", env=env)["id"] == LENET
    assert _json("info", "lenet_digits", "--tensors", "--json", env=env)["assets"][0]["tensors"]
    assert _json("cache", "ls", "--json", env=env)["models"][0]["id"] == LENET
    assert _json("cache", "verify", "--json", env=env)["checked"] == 1
    assert _json("cache", "prune", "--dry-run", "--json", env=env)["dry_run"] is True
    assert _json("cache", "dir", "--json", env=env) == {"home": str(home)}
    assert _json("cache", "rm", "lenet_digits", "--json", env=env)["id"] == LENET
    assert _json("cache", "purge", "--json", env=env)["models"] == []
    assert _json("env", "--json", env=env)["paths"]["cache"] == str(home)
    # serve runs until stopped: its first line is the document.
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", str(tree), "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        lines = [proc.stdout.readline()]
        while lines[-1] not in ("}\n", ""):  # one document, indented as every other
            lines.append(proc.stdout.readline())
        first = json.loads("".join(lines))
        assert first["url"].startswith("http://127.0.0.1:") and first["index_generated"] is False
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_json_is_written_the_same_way_everywhere(tree, home):
    """One writer: keys sorted, non-ASCII kept (not \\u-escaped), control characters escaped."""
    card = tree / "mindspore/cpu/2.10/lenet_digits.md"
    card.write_text(
        card.read_text(encoding="utf-8").replace("author: MindSpore registry team", "author: Zoë", 1), encoding="utf-8"
    )
    env = {"REGISTRY_HOME": str(home), "REGISTRY_URL": str(tree)}
    listed = run_cli("info", "lenet_digits", "--json", env=env).stdout
    assert "Zoë" in listed and "\\u00eb" not in listed
    run_cli("pull", "lenet_digits", env=env)
    ls = run_cli("cache", "ls", "--json", env=env).stdout
    assert ls == json.dumps(json.loads(ls), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(
    "command", [("pull", "lenet_digits"), ("info", "lenet_digits"), ("list",), ("search", "lenet")]
)
def test_the_offline_option_reaches_the_remote_registry(home, command):
    """`--offline` travels to the registry, on pull and on the reading commands: no index cached means exit 6
    at once, not a network attempt (5)."""
    proc = run_cli(
        *command,
        "--offline",
        "--registry",
        "http://127.0.0.1:9/",
        env={"REGISTRY_RETRIES": "0", "REGISTRY_HOME": str(home)},
    )
    assert proc.returncode == 6, proc.stderr
    assert "offline and the index of registry http://127.0.0.1:9/ is not cached" in proc.stderr


def test_format_is_the_output_format_and_file_format_the_filter(tree, home):
    env = {"REGISTRY_HOME": str(home), "REGISTRY_URL": str(tree)}
    proc = run_cli("list", "--format", "json", env=env)
    assert proc.returncode == 0 and LENET in [r["id"] for r in json.loads(proc.stdout)]  # not "0 models"
    assert [r["id"] for r in _json("list", "--file-format", "npz", "--json", env=env)] == [LENET]
    assert _json("list", "--file-format", "onnx", "--json", env=env) == []
    # The old spelling on pull still filters, with a warning naming the new one.
    proc = run_cli("pull", "lenet_digits", "--format", "npz", env=env)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1 and proc.stdout.split()[1].endswith(".npz")
    assert "registry: warning: --format npz filters by file-format as before; write --file-format npz" in proc.stderr
    proc = run_cli("hash", "--format", "yaml", str(tree / "mindspore/cpu/2.10/lenet_digits.ckpt"))
    assert proc.returncode == 2 and "'yaml' is not an output format: use one of text, json" in proc.stderr


def test_pull_quiet_prints_nothing(tree, home):
    proc = run_cli("pull", "lenet_digits", "--quiet", env={"REGISTRY_HOME": str(home), "REGISTRY_URL": str(tree)})
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def test_cache_rm_several_names_prune_dry_run_dir_and_purge(tree, home):
    env = {"REGISTRY_HOME": str(home), "REGISTRY_URL": str(tree)}
    other = tree / "me/cpu/2.10/lenet_copy.md"
    other.parent.mkdir(parents=True)
    other.write_text(
        (tree / "mindspore/cpu/2.10/lenet_digits.md")
        .read_text(encoding="utf-8")
        .replace("asset-link: lenet_digits", "asset-link: ../../../mindspore/cpu/2.10/lenet_digits"),
        encoding="utf-8",
    )
    assert run_cli("pull", "lenet_digits", "lenet_copy", "--quiet", env=env).returncode == 0
    assert run_cli("cache", "dir", env=env).stdout == f"{home}\n"
    partial = home / "partial" / ("a" * 64 + ".part")
    partial.write_bytes(b"x" * 10)
    dry = _json("cache", "prune", "--dry-run", "--json", env=env)
    assert dry["removed_partial"] == [partial.name] and dry["freed"] == 10 and partial.exists()  # nothing removed
    removed = _json("cache", "rm", "lenet_digits", "lenet_copy", "--json", env=env)
    assert [r["id"] for r in removed] == [LENET, "me/cpu/2.10/lenet_copy"]
    assert len(removed[0]["removed_blobs"]) + len(removed[1]["removed_blobs"]) == 2  # shared blobs go with the last
    assert run_cli("pull", "lenet_digits", "--quiet", env=env).returncode == 0
    purged = _json("cache", "purge", "--json", env=env)
    assert purged["models"] == [LENET] and purged["removed_partial"] == [partial.name]
    assert _json("cache", "ls", "--json", env=env)["models"] == [] and not partial.exists()


def test_env_shows_versions_paths_and_settings_with_the_token_masked(home):
    env = {
        "REGISTRY_HOME": str(home),
        "REGISTRY_TOKEN": "s3cret-token",
        "REGISTRY_TOKEN_HOST": "example.org",
        "REGISTRY_RETRIES": "2",
    }
    data = _json("env", "--json", env=env)
    assert data["versions"]["registry"] == registry.__version__ and data["versions"]["mindspore"]
    assert data["settings"]["token"] == "***" and data["settings"]["retries"] == 2
    text = run_cli("env", env=env).stdout
    assert "s3cret" not in text and "token: ***" in text and f"cache: {home}" in text


def test_every_subcommand_help_has_a_description_and_an_example():
    from registry.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = dict(sub.choices)
    cache = next(a for a in commands["cache"]._actions if a.dest == "cache_command")
    commands.update({f"cache {k}": v for k, v in cache.choices.items()})
    for name, p in commands.items():
        assert p.description and "examples:\n  " in (p.epilog or ""), name
        assert "--format" in p.format_help() and "--json" in p.format_help() or name == "cache", name
    # --registry only where a registry is read
    with_registry = {n for n, p in commands.items() if any("--registry" in a.option_strings for a in p._actions)}
    assert with_registry == {"pull", "list", "search", "info", "check-links", "env"}


def test_python_listing_api_returns_typed_records(tree, home):
    found = registry.search("digits", registry=str(tree))
    assert [type(r).__name__ for r in found] == ["ModelRecord"]
    assert found[0].id == LENET and found[0].name == "lenet_digits" and found[0].formats == ["ckpt", "npz"]
    assert registry.list_models(registry=str(tree), file_format="npz") == found
    assert registry.list_models(registry=str(tree), task="nlp") == []


def test_errors_and_result_types_are_importable_from_the_package_and_builtin_catchable(tmp_path):
    assert issubclass(registry.NotFoundError, LookupError) and issubclass(registry.UsageError, ValueError)
    assert issubclass(registry.CardError, ValueError) and issubclass(registry.MissingFileError, FileNotFoundError)
    assert issubclass(registry.LoadError, RuntimeError) and issubclass(registry.IntegrityError, ValueError)
    with pytest.raises(FileNotFoundError, match="no card file"):
        registry.resolve(str(tmp_path / "missing.md"), source="local")
    with pytest.raises(LookupError, match="no model 'nothing_like_it'"):
        registry.resolve("nothing_like_it", registry=str(MANIFESTS))
    for name in ("ModelRecord", "Entry", "Asset", "Pulled", "LoadReport", "Settings", "RegistryError"):
        assert isinstance(getattr(registry, name), type), name
    assert set(registry.__all__) <= set(dir(registry))


def test_settings_passed_to_the_python_api_reach_the_cache_and_the_registry(tree, tmp_path, home):
    """An explicit Settings wins over the environment at every layer: the cache it names is the one filled."""
    from registry.settings import Settings

    other = tmp_path / "other-home"
    settings = Settings(home=other, registry_url=str(tree), progress=False)
    items = registry.pull("lenet_digits", settings=settings)  # no registry=: settings.registry_url is used
    assert items and all(str(p.path).startswith(str(other)) for p in items)
    assert not home.exists() or not any(home.rglob("*.ckpt"))
    assert registry.get_desired_input_shape("lenet_digits", settings=settings)
    offline = Settings(home=tmp_path / "empty", offline=True)
    with pytest.raises(registry.OfflineError, match="offline and the index of registry http://127.0.0.1:9/"):
        registry.search(registry="http://127.0.0.1:9/", settings=offline)
