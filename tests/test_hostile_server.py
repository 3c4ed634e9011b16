"""A hostile or careless server: credentials in the registry URL, bodies that would fill the disk, trickles,
indexes built to exhaust the parser. Real servers on 127.0.0.1 (tests/servers.py), real files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.errors import IntegrityError, TransferError
from registry.index import build_index, dumps_index
from registry.settings import Settings
from registry.transfer import pull
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
        outs = [
            cli(home, "--registry", url, *args)
            for args in (["info", "tiny"], ["info", "tiny", "--json"], ["list"], ["info", "tinny"], ["pull", "tiny"])
        ]
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


# --------------------------------------------------------------------------- disk fill

BASE = "https://download.example.org/m/"


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "tiny.ckpt").write_bytes(WEIGHTS)
    return root


def card_for(tmp_path: Path, size: int | None = None, link: str = BASE + "tiny.ckpt") -> Path:
    root = tmp_path / "reg"
    card = write_card(root, CARD_ID, [("ckpt", link, hashlib.sha256(WEIGHTS).hexdigest())])
    if size is not None:
        card.write_text(card.read_text().replace("    asset-sha256:", f"    asset-size: {size}\n    asset-sha256:"))
    return root


def settings_for(home: Path, url: str | None, **kw) -> Settings:
    base = dict(
        home=home,
        mirrors=((BASE, url),) if url else (),
        retries=1,
        backoff=0.01,
        connect_timeout=2,
        read_timeout=2,
        jobs=1,
        progress=False,
    )
    base.update(kw)
    return Settings(**base)


def nothing_kept(home: Path) -> bool:
    return not [
        p
        for p in home.rglob("*")
        if p.is_file() and p.parent.name in ("partial", "sha256") or p.parent.parent.name == "sha256"
    ]


def test_an_endless_body_is_refused_as_soon_as_it_passes_the_asset_size(tmp_path, site, home):
    reg = card_for(tmp_path, size=len(WEIGHTS))
    with fault_server(site, endless=True) as srv:
        began = time.monotonic()
        with pytest.raises(
            IntegrityError, match=r"sent more than the card's asset-size of 300,000 bytes: refused at once"
        ):
            pull("tiny", registry=reg, settings=settings_for(home, srv.url))
        assert time.monotonic() - began < 10 and len(srv.gets()) == 1  # not retried: it can never be valid
    assert nothing_kept(home)


def test_a_card_with_asset_size_pulls_and_a_server_length_that_differs_is_refused_up_front(tmp_path, site, home):
    reg = card_for(tmp_path, size=len(WEIGHTS))
    with fault_server(site) as srv:
        (item,) = pull("tiny", registry=reg, settings=settings_for(home, srv.url))
        assert item.asset.size == len(WEIGHTS) and item.path.read_bytes() == WEIGHTS
    other = card_for(tmp_path / "b", size=len(WEIGHTS) - 1)
    with fault_server(site) as srv:
        with pytest.raises(
            IntegrityError, match=r"is 300,000 bytes by the server's account, but the card's asset-size is 299,999"
        ):
            pull("tiny", registry=other, settings=settings_for(tmp_path / "home2", srv.url))
    assert nothing_kept(tmp_path / "home2")


def test_a_huge_content_length_is_refused_before_writing_and_nothing_is_kept(tmp_path, site, home):
    reg = card_for(tmp_path)
    with fault_server(site, length=10_000_000_000_000) as srv:
        with pytest.raises(TransferError, match=r"is 10,000,000,000,000 bytes, over REGISTRY_MAX_ASSET_SIZE"):
            pull("tiny", registry=reg, settings=settings_for(home, srv.url))
        with pytest.raises(Exception, match=r"has [\d,]+ bytes free, and the asset needs 10,000,000,000,000 more"):
            pull("tiny", registry=reg, settings=settings_for(home, srv.url, max_asset_size=1 << 60))
        assert len(srv.gets()) == 2  # one request each: refused at once, not retried
    assert nothing_kept(home)


def test_an_undeclared_endless_body_is_capped_by_the_setting(tmp_path, site, home):
    reg = card_for(tmp_path)
    with fault_server(site, endless=True) as srv:
        with pytest.raises(
            TransferError, match=r"sent more than REGISTRY_MAX_ASSET_SIZE \(1,000,000 bytes\) without declaring"
        ):
            pull("tiny", registry=reg, settings=settings_for(home, srv.url, max_asset_size=1_000_000))
    assert nothing_kept(home)


def test_a_file_link_to_a_huge_sparse_file_is_bounded_likewise(tmp_path, home):
    sparse = tmp_path / "sparse.ckpt"
    with open(sparse, "wb") as fh:
        fh.truncate(1 << 40)  # 1 TiB claimed, no block used
    reg = card_for(tmp_path, link=sparse.as_uri())
    began = time.monotonic()
    with pytest.raises(TransferError, match=r"is 1,099,511,627,776 bytes, over REGISTRY_MAX_ASSET_SIZE"):
        pull("tiny", registry=reg, settings=settings_for(home, None))
    assert time.monotonic() - began < 5 and nothing_kept(home)


def test_file_links_in_cards_from_a_remote_registry_are_refused(tmp_path, home):
    secret = tmp_path / "secret.ckpt"
    secret.write_bytes(WEIGHTS)
    root = tmp_path / "tree"
    write_card(root, CARD_ID, [("ckpt", secret.as_uri(), hashlib.sha256(WEIGHTS).hexdigest())])
    (root / "index.json").write_bytes(dumps_index(build_index(root)))
    with fault_server(root) as srv:
        out = cli(home, "--registry", srv.url, "pull", "tiny")
    assert out.returncode == 5 and "a remote card may not copy files of this machine" in out.stderr, out.stderr
    assert nothing_kept(home)


# --------------------------------------------------------------------------- deadlines


def test_a_body_trickled_under_the_speed_limit_fails_within_the_window(tmp_path, site, home):
    reg = card_for(tmp_path)
    with fault_server(site, rate=2000) as srv:  # each read arrives well within the read timeout
        began = time.monotonic()
        with pytest.raises(
            TransferError, match=r"after 2 attempts: .* slower than REGISTRY_SPEED_LIMIT \(50000 bytes/s"
        ):
            pull("tiny", registry=reg, settings=settings_for(home, srv.url, speed_limit=50_000, speed_time=1))
        assert time.monotonic() - began < 8


def test_an_index_trickled_under_the_speed_limit_fails(tree, home):
    with open(tree / "index.json", "ab") as fh:
        fh.write(b" " * 20_000)  # JSON allows trailing space: a body long enough to trickle
    with fault_server(tree, rate=200) as srv:
        began = time.monotonic()
        out = run_cli(
            "--registry",
            srv.url,
            "list",
            env={
                "REGISTRY_HOME": str(home),
                "REGISTRY_SPEED_LIMIT": "5000",
                "REGISTRY_SPEED_TIME": "1",
                "REGISTRY_RETRIES": "0",
            },
        )
        assert time.monotonic() - began < 15
    assert out.returncode == 5 and "slower than REGISTRY_SPEED_LIMIT" in out.stderr, out.stderr


def test_a_second_pull_says_it_waits_for_the_first_and_a_lock_timeout_ends_the_wait(tmp_path, site, home):
    from registry.cache import Cache

    reg = card_for(tmp_path)
    digest = hashlib.sha256(WEIGHTS).hexdigest()
    code = (
        "import sys, time\nfrom registry.cache import Cache\n"
        f"lock = Cache({str(home)!r}).lock({digest!r})\nlock.acquire()\nprint('held', flush=True)\n"
        "time.sleep(float(sys.argv[1]))\nlock.release()\n"
    )
    with fault_server(site) as srv:
        env = {"REGISTRY_HOME": str(home), "REGISTRY_PROGRESS": "0", "REGISTRY_MIRRORS": f"{BASE}={srv.url}"}
        holder = subprocess.Popen(
            [sys.executable, "-c", code, "2.5"], stdout=subprocess.PIPE, text=True, env={**os.environ, **env}
        )
        assert holder.stdout.readline().strip() == "held"
        out = run_cli("--registry", str(reg), "pull", "tiny", env=env)
        holder.wait(10)
        assert out.returncode == 0, out.stderr
        lines = out.stderr.splitlines()
        assert lines[0].startswith(f"registry: waiting for another process that holds the lock of blob {digest[:12]}")
        assert lines[1].startswith("registry: waited ") and lines[1].endswith(f" s for the lock of blob {digest[:12]}")
        assert 1.0 <= float(lines[1].split()[2]) < 5
        Cache(home).rm("tiny")
        holder = subprocess.Popen(
            [sys.executable, "-c", code, "10"], stdout=subprocess.PIPE, text=True, env={**os.environ, **env}
        )
        assert holder.stdout.readline().strip() == "held"
        out = run_cli("--registry", str(reg), "pull", "tiny", env={**env, "REGISTRY_LOCK_TIMEOUT": "1.5"})
        at_once = run_cli("--registry", str(reg), "pull", "tiny", env={**env, "REGISTRY_LOCK_TIMEOUT": "0"})
        holder.kill()
        holder.wait()
    assert out.returncode == 2 and "gave up waiting for the lock of blob" in out.stderr and "after 1.5 s" in out.stderr
    assert at_once.returncode == 2 and "is held by another process; try again later" in at_once.stderr, at_once.stderr


# --------------------------------------------------------------------------- what the parser is given


def test_an_index_nested_200000_levels_or_of_millions_of_objects_is_one_sentence(tmp_path, home):
    root = tmp_path / "srv"
    root.mkdir()
    for name, body in (("deep", b"[" * 200_000 + b"]" * 200_000), ("wide", b"[" + b"{}," * 2_000_000 + b"{}]")):
        (root / name).mkdir()
        (root / name / "index.json").write_bytes(body)
    with fault_server(root) as srv:
        deep = cli(home, "--registry", srv.url + "deep/", "list")
        wide = cli(home, "--registry", srv.url + "wide/", "list")
    assert deep.returncode == 2 and "nests JSON deeper than an index ever does" in deep.stderr, deep.stderr
    assert wide.returncode == 2 and "holds 2,000,002 JSON objects and lists, over the 1,000,000" in wide.stderr, (
        wide.stderr
    )
