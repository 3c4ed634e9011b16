"""README "Publishing a registry": its shell block, run command by command in a fresh directory."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run_cli
from tests.servers import _wait_port, free_port


def _walk_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Publishing a registry\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


FILLED = {
    "backbone-name": "tinynet",
    "module-type": "cv-classification",
    "input-shape": "[32, 32, 3]",
    "train-dataset": "digits",
    "evaluation": "acc0.9",
    "author": "me",
    "repo-link": "https://example.org/tinynet",
    "license": "Apache2.0",
    "summary": "a tiny network",
}


def test_readme_walk_new_add_asset_validate_index_serve_pull(tmp_path, home):
    weights = os.urandom(300_000)
    (tmp_path / "tinynet.ckpt").write_bytes(weights)
    (tmp_path / "tinynet.ckpt").chmod(0o400)  # as mindspore.save_checkpoint leaves it
    port = free_port()
    server = None
    commands = _walk_commands()
    assert [c.split()[0] for c in commands] == [
        "registry",
        "$EDITOR",
        "cp",
        "registry",
        "registry",
        "registry",
        "registry",
        "registry",
        "registry",
    ]
    try:
        for command in commands:
            if command.startswith("$EDITOR"):
                card = tmp_path / command.split()[1]
                before = run_cli("validate", str(card), cwd=tmp_path)
                assert before.returncode == 1 and " placeholder: " in before.stdout
                card.write_text(
                    re.sub(
                        r"^([\w-]+): TODO .*$",
                        lambda m: f"{m.group(1)}: {FILLED[m.group(1)]}",
                        card.read_text(),
                        flags=re.M,
                    )
                )
            elif command.startswith("registry serve"):
                args = shlex.split(command.rstrip("&").replace("8000", str(port)))[1:]
                server = subprocess.Popen(
                    [sys.executable, "-m", "registry", *args],
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                assert _wait_port(port, server)
            elif command.startswith("registry "):
                proc = run_cli(*shlex.split(command.replace("8000", str(port)))[1:], cwd=tmp_path)
                assert proc.returncode == 0, f"{command}\n{proc.stdout}{proc.stderr}"
                last = proc
            else:
                subprocess.run(command, shell=True, check=True, cwd=tmp_path)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    # The pull verified the bytes: the file in the cache is the checkpoint.
    path = Path(last.stdout.split()[-1])
    assert path.read_bytes() == weights and hashlib.sha256(weights).hexdigest().startswith(last.stdout.split()[0])
    assert path.is_relative_to(home)
