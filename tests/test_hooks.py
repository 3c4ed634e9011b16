"""The pre-commit hooks (run for real by `pre-commit try-repo`) and the GitHub composite action's steps."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.test_publish import fill_template


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_pre_commit_hooks_for_real(tmp_path):
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which("pre-commit")
    if pre_commit is None:
        pytest.skip("pre-commit is not installed: pip install -e '.[test]' installs it")
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("the project is not a git checkout (or git is missing): pre-commit try-repo needs one")
    # A committed copy of this checkout as it is (uncommitted changes included): try-repo on a dirty tree
    # makes a new commit, hence a new hook environment, at every call.
    hooks = tmp_path / "hooks"
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (hooks / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, hooks / rel)
    repo = tmp_path / "repo"
    for where in (hooks, repo):
        where.mkdir(exist_ok=True)
        _git(where, "init", "-q")
        _git(where, "config", "user.email", "tests@example.org")
        _git(where, "config", "user.name", "tests")
    _git(hooks, "add", "-A")
    _git(hooks, "commit", "-qm", "snapshot")
    assert run_cli("new", "me/cpu/2.3/tiny", "--dir", str(repo)).returncode == 0
    (repo / "README.md").write_text("# Our models\n\nNo front matter: documentation needs no card.\n")
    _git(repo, "add", "-A")
    # The hook runs the package pre-commit installs into its own environment, not this checkout's path.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")

    def hooks_run() -> subprocess.CompletedProcess:
        # Both hooks in one call: try-repo builds the hook environment afresh each time (a temporary store).
        proc = subprocess.run(
            [pre_commit, "try-repo", str(hooks), "--all-files"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if "- hook id:" not in proc.stdout and "Passed" not in proc.stdout and "Installing environment" in proc.stdout:
            last = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
            pytest.skip(f"pre-commit could not build the hook's environment (it needs the package index): {last}")
        return proc

    proc = hooks_run()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    index, validate = proc.stdout.split("- hook id: registry-validate")  # try-repo lists hooks by id
    assert "- hook id: registry-index-check" in index and "me/cpu/2.3/tiny.md:5:16: error placeholder" in validate
    assert "README.md" not in validate  # documentation is excluded
    assert "index.json is missing: run `registry index .`" in index
    card = repo / "me/cpu/2.3/tiny.md"
    card.write_text(fill_template(card.read_text()))
    assert run_cli("index", str(repo)).returncode == 0
    _git(repo, "add", "-A")
    proc = hooks_run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^registry validate\.+Passed$", proc.stdout, re.M)
    assert re.search(r"^registry index --check\.+Passed$", proc.stdout, re.M)


def _action_steps(tmp_path: Path, root: Path, **inputs: str) -> list[subprocess.CompletedProcess]:
    """Run the steps of action.yml after its install step, as the runner would (bash -e, inputs through
    the env), with `registry` on PATH being this checkout."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    defaults = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    values = {**defaults, **inputs}
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "registry").write_text(f'#!/bin/sh\nexec {sys.executable} -m registry "$@"\n')
    (shim / "registry").chmod(0o755)
    results = []
    install, *steps = action["runs"]["steps"]
    assert "pip install" in install["run"] and "GITHUB_PATH" in install["run"]
    for step in steps:
        env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}")
        for key, value in step.get("env", {}).items():
            env[key] = re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: values[m.group(1)], value)
        assert "${{" not in step["run"]  # inputs reach the scripts through the environment only
        results.append(
            subprocess.run(
                ["bash", "-e", "-c", step["run"]], cwd=root, env=env, capture_output=True, text=True, timeout=300
            )
        )
    return results


def test_action_validates_with_annotations_and_checks_the_index(tmp_path):
    repo = tmp_path / "repo"
    assert run_cli("new", "me/cpu/2.3/tiny", "--dir", str(repo)).returncode == 0
    validate, index = _action_steps(tmp_path, tmp_path, path="repo")
    assert (
        validate.returncode == 1
        and "::error file=repo/me/cpu/2.3/tiny.md,line=5,col=16,title=placeholder::" in validate.stdout
    )
    assert index.returncode == 1 and "index.json is missing" in index.stderr
    card = repo / "me/cpu/2.3/tiny.md"
    card.write_text(fill_template(card.read_text()))
    (repo / "me/cpu/2.3/tiny.ckpt").write_bytes(b"w" * 100)
    assert run_cli("add-asset", str(repo / "me/cpu/2.3/tiny.md"), str(repo / "me/cpu/2.3/tiny.ckpt")).returncode == 0
    (repo / "me/cpu/2.3/tiny.ckpt").chmod(0o600)
    assert run_cli("index", str(repo)).returncode == 1  # written, but the asset is not world-readable
    validate, index = _action_steps(tmp_path, repo)
    assert validate.returncode == 1 and "title=asset-not-readable" in validate.stdout
    assert index.returncode == 0 and "is current" in index.stdout
    validate, _ = _action_steps(tmp_path, repo, **{"check-assets": "false"})
    assert validate.returncode == 0, validate.stdout
    (repo / "me/cpu/2.3/tiny.ckpt").chmod(0o644)
    validate, _ = _action_steps(tmp_path, repo)
    assert validate.returncode == 0, validate.stdout
