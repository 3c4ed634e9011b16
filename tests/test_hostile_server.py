"""A hostile or careless server: credentials in the registry URL, bodies that would fill the disk, trickles,
indexes built to exhaust the parser. Real servers on 127.0.0.1 (tests/servers.py), real files."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from registry.index import build_index, dumps_index
from tests.conftest import run_cli
from tests.servers import fault_server, write_card

CARD_ID = "mindspore/cpu/2.0/tiny"
WEIGHTS = os.urandom(300_000)


@pytest.fixture
def tree(tmp_path) -> Path:
    """A registry tree with an index and one card whose asset is linked relative to the card."""
    root = tmp_path / "tree"
    card = write_card(root, CARD_ID, [("ckpt", "weights/tiny.ckpt", hashlib.sha256(WEIGHTS).hexdigest())])
    (card.parent / "weights").mkdir()
    (card.parent / "weights" / "tiny.ckpt").write_bytes(WEIGHTS)
    (root / "index.json").write_bytes(dumps_index(build_index(root)))
    return root


def cli(home: Path, *args: str):
    return run_cli(*args, env={"REGISTRY_HOME": str(home), "REGISTRY_PROGRESS": "0", "REGISTRY_RETRIES": "0"})


# --------------------------------------------------------------------------- secrets


def test_a_password_in_the_registry_url_is_masked_in_every_output_and_never_stored(tree, tmp_path):
    home = tmp_path / "home"
    with fault_server(tree) as srv:
        url = srv.url.replace("http://", "http://user:s3cret@")
        outs = [cli(home, "--registry", url, *args) for args in
                (["info", "tiny"], ["info", "tiny", "--json"], ["list"], ["info", "tinny"], ["pull", "tiny"])]
        (tree / "mindspore/cpu/2.0/weights/tiny.ckpt").unlink()
        outs.append(cli(home, "--registry", url, "pull", "tiny", "--force"))  # 404 on the asset
        outs.append(cli(home, "--registry", url + "nothing/", "list"))  # 404 on the index
    assert [o.returncode for o in outs] == [0, 0, 0, 3, 0, 5, 2], [o.stderr for o in outs]
    for o in outs:
        assert "s3cret" not in o.stdout + o.stderr, o.stdout + o.stderr
    assert "user:***@" in outs[1].stdout and "user:***@" in outs[3].stderr and "user:***@" in outs[5].stderr
    stored = [p for p in home.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()]
    assert stored == []
    view = json.loads(next(home.rglob(".view.json")).read_text())
    assert view["files"]["tiny.ckpt"]["url"].startswith(srv.url.replace("http://", "http://user:***@"))
