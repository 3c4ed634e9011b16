"""Registries over HTTP: nginx with the documented configuration, and our development server."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from registry import catalog
from registry.catalog import HttpRegistry, LocalRegistry, forget_remote_indexes, open_registry
from registry.errors import IntegrityError, NotFoundError, OfflineError, RegistryWarning, TransferError, UsageError
from registry.index import build_index, dumps_index
from registry.shards import ShardedIndex
from tests.conftest import ROOT, run_cli
from tests.servers import nginx, nginx_binary

DOCS_CONF = ROOT / "docs" / "nginx.conf"
WEIGHTS = bytes(range(256)) * 64  # 16 KiB stand-in for a checkpoint
CARD = """# Tiny

---
model-name: tiny
backbone-name: tinynet
module-type: cv-classification
train-dataset: digits
mindspore-version: "2.10"
asset:
  - file-format: ckpt
    asset-link: weights/tiny.ckpt
    asset-sha256: {sha}
summary: a tiny network for {who}
---

## Usage

```python
net = registry.load("{id}")
```
"""


def documented_locations() -> str:
    text = DOCS_CONF.read_text()
    return text[text.index("# --- registry locations ---") : text.index("# --- end of registry locations ---")]


def write_card(root: Path, card_id: str, who: str = "tests") -> Path:
    path = root / (card_id + ".md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CARD.format(sha=hashlib.sha256(WEIGHTS).hexdigest(), who=who, id=card_id))
    (path.parent / "weights").mkdir(exist_ok=True)
    (path.parent / "weights" / "tiny.ckpt").write_bytes(WEIGHTS)
    return path


def reindex(root: Path) -> None:
    (root / "index.json").write_bytes(dumps_index(build_index(root)))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "site"
    write_card(root, "me/cpu/2.10/tiny")
    write_card(root, "me/cpu/2.10/other")
    write_card(root, "you/1.0/other")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[secret]\n")
    (root / "me" / ".draft.md").write_text("# not published\n")
    reindex(root)
    return root


@pytest.fixture
def site(tree, home):
    forget_remote_indexes()
    with nginx(tree, locations=documented_locations()) as url:
        yield url
    forget_remote_indexes()


NO_ROOT = ("/index/root.json", 404)  # a client looks for the sharded index first (registry/shards.py)


def gets(url) -> list[tuple[str, int]]:
    return [(r["path"], r["status"]) for r in url.access_log() if r["method"] == "GET"]


def test_remote_registry_resolves_like_a_local_one(tree, site):
    remote = open_registry(site)
    assert isinstance(remote, HttpRegistry) and remote.ids() == LocalRegistry(tree).ids()
    entry = catalog.resolve("tiny", registry=site)
    local = LocalRegistry(tree).resolve("tiny")
    assert entry.id == local.id == "me/cpu/2.10/tiny"
    assert entry.card.text == local.card.text and entry.fields == local.fields
    assert entry.source == site + "me/cpu/2.10/tiny.md" and entry.base_url == site + "me/cpu/2.10/"
    [asset] = entry.assets
    assert asset.url == site + "me/cpu/2.10/weights/tiny.ckpt" and asset.sha256 == local.assets[0].sha256
    # Only the index and the one card were fetched; asking again fetches nothing.
    assert gets(site) == [NO_ROOT, ("/index.json", 200), ("/me/cpu/2.10/tiny.md", 200)]
    assert catalog.resolve("me/cpu/2.10/tiny", registry=site).card.text == local.card.text
    assert len(gets(site)) == 3
    with pytest.raises(NotFoundError, match="ambiguous.*me/cpu/2.10/other, you/1.0/other"):
        remote.resolve("other")
    with pytest.raises(NotFoundError, match="no model 'tinny'.*did you mean tiny"):
        remote.resolve("tinny")
    # Assets relative to a remote card are served by the same server, with ranges.
    part = requests.get(asset.url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == WEIGHTS[100:200]


def test_index_is_revalidated_with_its_etag_and_cards_come_from_the_cache(tree, site):
    catalog.resolve("tiny", registry=site)
    forget_remote_indexes()  # as a new process would
    catalog.resolve("tiny", registry=site)
    assert gets(site) == [NO_ROOT, ("/index.json", 200), ("/me/cpu/2.10/tiny.md", 200), NO_ROOT, ("/index.json", 304)]
    # A published change reaches the next process.
    write_card(tree, "me/cpu/2.10/newer")
    reindex(tree)
    forget_remote_indexes()
    assert catalog.resolve("newer", registry=site).id == "me/cpu/2.10/newer"
    assert gets(site)[5:] == [NO_ROOT, ("/index.json", 200), ("/me/cpu/2.10/newer.md", 200)]
    # An ETag that no longer matches the cached bytes (a concurrent writer) is not sent.
    [cached] = (Path(os.environ["REGISTRY_HOME"]) / "registries").glob("*/index.json")
    cached.write_bytes(cached.read_bytes() + b" ")
    forget_remote_indexes()
    catalog.resolve("newer", registry=site)
    assert gets(site)[8:] == [NO_ROOT, ("/index.json", 200)]


def test_tampered_card_is_refused(tree, site):
    card = tree / "me/cpu/2.10/tiny.md"
    expected = hashlib.sha256(card.read_bytes()).hexdigest()
    card.write_text(card.read_text().replace("weights/tiny.ckpt", "https://evil.example/tiny.ckpt"))
    actual = hashlib.sha256(card.read_bytes()).hexdigest()
    with pytest.raises(IntegrityError) as err:
        catalog.resolve("tiny", registry=site)
    message = str(err.value)
    assert site + "me/cpu/2.10/tiny.md" in message and expected in message and actual in message
    proc = run_cli("--registry", site, "info", "tiny", env={"REGISTRY_HOME": os.environ["REGISTRY_HOME"]})
    assert proc.returncode == 4 and "has sha256 " + actual in proc.stderr and "Traceback" not in proc.stderr
    assert not list((Path(os.environ["REGISTRY_HOME"]) / "registries").glob("*/cards/*.md"))


def test_damaged_cache_entry_is_fetched_again(tree, site):
    catalog.resolve("tiny", registry=site)
    [cached] = (Path(os.environ["REGISTRY_HOME"]) / "registries").glob("*/cards/*.md")
    cached.write_text("damaged")
    assert catalog.resolve("tiny", registry=site).fields["model-name"] == "tiny"
    assert gets(site)[-1] == ("/me/cpu/2.10/tiny.md", 200)


def test_offline_and_unreachable_server_use_the_cache(tree, home, monkeypatch, capsys):
    monkeypatch.setenv("REGISTRY_RETRIES", "0")
    forget_remote_indexes()
    with nginx(tree, locations=documented_locations()) as url:
        catalog.resolve("tiny", registry=url)
    # The server is gone now.
    forget_remote_indexes()
    with pytest.warns(RegistryWarning, match="using the cached index"):
        assert catalog.resolve("tiny", registry=url).id == "me/cpu/2.10/tiny"
    with pytest.raises(TransferError, match=f"cannot fetch {url}me/cpu/2.10/other.md"):
        catalog.resolve("me/cpu/2.10/other", registry=url)
    monkeypatch.setenv("REGISTRY_OFFLINE", "1")
    forget_remote_indexes()
    assert catalog.resolve("tiny", registry=url).fields["summary"] == "a tiny network for tests"
    with pytest.raises(OfflineError, match="offline and card .*other.md is not cached"):
        catalog.resolve("you/1.0/other", registry=url)
    monkeypatch.setenv("REGISTRY_HOME", str(home.parent / "empty-home"))
    forget_remote_indexes()
    with pytest.raises(OfflineError, match="index of registry .* is not cached"):
        catalog.resolve("tiny", registry=url)
    monkeypatch.delenv("REGISTRY_OFFLINE")
    with pytest.raises(TransferError, match=f"cannot fetch {url}index.json"):
        catalog.resolve("tiny", registry=url)


def test_documented_nginx_config(tree, site):
    for hidden in (".git/config", "me/.draft.md", "index.json/../.git/config"):
        assert requests.get(site + hidden, timeout=10).status_code == 404, hidden
    index = requests.get(site + "index.json", timeout=10)
    assert index.headers["Cache-Control"] == "no-cache" and index.headers["ETag"]
    assert index.headers["Content-Type"] == "application/json; charset=utf-8"
    card = requests.get(site + "me/cpu/2.10/tiny.md", timeout=10)
    assert card.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert requests.get(site + "me/cpu/", timeout=10).status_code in (403, 404)  # no listings
    # The whole documented file, not only its locations, is valid nginx configuration.
    conf = Path(site.log_path).parent / "syntax-check.conf"
    conf.write_text(
        f"pid {conf.parent}/check.pid;\nerror_log {conf.parent}/check.log;\nevents {{}}\n"
        f"http {{ include {DOCS_CONF}; }}\n"
    )
    check = subprocess.run(
        [nginx_binary(), "-t", "-p", str(conf.parent), "-c", str(conf)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_missing_index_is_one_sentence(tmp_path, home):
    forget_remote_indexes()
    (tmp_path / "a.md").write_text("# x\n")
    with nginx(tmp_path) as url:
        with pytest.raises(UsageError, match=r"index.json does not exist \(HTTP 404\).*registry index DIR"):
            open_registry(url).ids()


# --------------------------------------------------------------------------- the development server


def start_dev_server(tree: Path) -> tuple[str, subprocess.Popen]:
    """`registry serve TREE` in its own process on a free port: (base URL, process)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", str(tree), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("serving "), line + proc.stderr.read()
    forget_remote_indexes()
    return line.split(" at ")[1].split()[0].rstrip(";"), proc


@pytest.fixture
def dev_server(tree, home):
    """`registry serve` of `tree` without index.json (the server generates it); yields (base URL, process)."""
    (tree / "index.json").unlink()
    url, proc = start_dev_server(tree)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    forget_remote_indexes()


def raw_get(url: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), body


def test_dev_server_serves_a_registry_with_ranges(tree, dev_server):
    url, proc = dev_server
    entry = catalog.resolve("tiny", registry=url)
    assert entry.source == url + "me/cpu/2.10/tiny.md" and entry.fields == LocalRegistry(tree).resolve("tiny").fields
    asset = url + "me/cpu/2.10/weights/tiny.ckpt"
    whole = requests.get(asset, timeout=10)
    assert whole.status_code == 200 and whole.content == WEIGHTS and whole.headers["Accept-Ranges"] == "bytes"
    etag = whole.headers["ETag"]
    for rng, status, body in (
        ("bytes=10-19", 206, WEIGHTS[10:20]),
        ("bytes=16000-", 206, WEIGHTS[16000:]),
        ("bytes=-5", 206, WEIGHTS[-5:]),
        ("bytes=0-1,5-6", 200, WEIGHTS),
    ):
        r = requests.get(asset, headers={"Range": rng}, timeout=10)
        assert (r.status_code, r.content) == (status, body), rng
    r = requests.get(asset, headers={"Range": "bytes=16384-"}, timeout=10)
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */16384"
    r = requests.get(asset, headers={"Range": "bytes=0-9", "If-Range": '"stale"'}, timeout=10)
    assert r.status_code == 200 and r.content == WEIGHTS  # the file changed since: the whole of it
    r = requests.get(asset, headers={"Range": "bytes=0-9", "If-Range": etag}, timeout=10)
    assert r.status_code == 206 and r.content == WEIGHTS[:10]
    assert requests.get(asset, headers={"If-None-Match": etag}, timeout=10).status_code == 304
    head = requests.head(asset, timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(WEIGHTS)) and head.content == b""
    for path in (
        "/../../etc/passwd",
        "/me/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/.git/config",
        "/me/.draft.md",
        "/nope.md",
    ):
        assert raw_get(url, path)[0] == 404, path
    (tree / "escape").symlink_to("/etc")
    assert raw_get(url, "/escape/passwd")[0] == 404
    (tree / "loop").symlink_to("loop")
    (tree / "me" / "loop.md").symlink_to("loop.md")
    for path in ("/loop", "/loop/x.md", "/me/loop.md"):
        assert raw_get(url, path)[0] == 404, path
    # The generated index follows the tree.
    write_card(tree, "me/cpu/2.10/later")
    forget_remote_indexes()
    assert catalog.resolve("later", registry=url).id == "me/cpu/2.10/later"
    # A sharded index left by an earlier `registry index` is older than the live one: the generated one is served.
    (tree / "index" / "shards").mkdir(parents=True, exist_ok=True)
    (tree / "index" / "root.json").write_text("{}")
    (tree / "index" / "shards" / "stale.json").write_text("{}")
    forget_remote_indexes()
    status, _, body = raw_get(url, "/index/root.json")
    assert status == 200 and json.loads(body)["kind"] == "registry-index-root"
    assert raw_get(url, "/index/shards/stale.json")[0] == 404
    assert catalog.resolve("later", registry=url).id == "me/cpu/2.10/later"


def test_dev_server_serves_current_shards_that_follow_edits(tree, dev_server):
    url, _ = dev_server
    env = {"REGISTRY_HOME": os.environ["REGISTRY_HOME"]}
    assert isinstance(open_registry(url).index(), ShardedIndex)
    status, _, body = raw_get(url, "/index/root.json")
    first_root = json.loads(body)
    proc = run_cli("--registry", url, "list", "--json", env=env)
    ids = {r["id"] for r in json.loads(proc.stdout)}
    assert proc.returncode == 0 and ids == {r["id"] for r in build_index(tree)["cards"]}, proc.stderr
    assert {"me/cpu/2.10/tiny", "me/cpu/2.10/other", "you/1.0/other"} <= ids
    # The generated shards are the writer's: what `registry index` would write for the tree, byte for byte.
    written = tree.parent / "written"
    shutil.copytree(tree, written, ignore=shutil.ignore_patterns(".git"))
    assert run_cli("index", str(written), "--allow-invalid").returncode == 0
    assert json.loads((written / "index" / "root.json").read_text()) == first_root
    for entry in first_root["shards"]:
        shard = f"/index/shards/{entry['sha256']}.json"
        assert raw_get(url, shard)[2] == (written / shard[1:]).read_bytes()
    # An edited card and a new one: the next process sees both through the shards (info and list).
    card = tree / "me/cpu/2.10/tiny.md"
    card.write_text(card.read_text().replace("a tiny network for tests", "an edited summary"))
    write_card(tree, "me/cpu/2.10/later")
    proc = run_cli("--registry", url, "info", "tiny", "--json", env=env)
    assert proc.returncode == 0 and "an edited summary" in proc.stdout, proc.stderr
    proc = run_cli("--registry", url, "list", "--json", env=env)
    listed = {r["id"]: r["fields"].get("summary") for r in json.loads(proc.stdout)}
    assert listed["me/cpu/2.10/tiny"] == "an edited summary" and "me/cpu/2.10/later" in listed
    # A client holding the previous root still gets its shards.
    for entry in first_root["shards"]:
        assert raw_get(url, f"/index/shards/{entry['sha256']}.json")[0] == 200


def test_dev_server_generated_index_is_modified_when_a_card_is_removed(tree, dev_server):
    """Last-Modified of the generated index moves on whenever it changes, also when the newest card stays (a
    card removed or renamed): a client or cache asking If-Modified-Since is not answered 304 with the old one."""
    url, _ = dev_server
    old = tree / "you/1.0/other.md"
    newest = max(os.stat(p).st_mtime for p in tree.rglob("*.md") if p != old)
    os.utime(old, (newest - 10, newest - 10))  # not the newest card: its removal leaves the newest as is
    before = {path: raw_get(url, path) for path in ("/index.json", "/index/root.json")}
    old.unlink()
    for path, (status, headers, body) in before.items():
        assert status == 200
        status, again, fresh = raw_get(url, path, {"If-Modified-Since": headers["Last-Modified"]})
        assert status == 200 and fresh != body, (path, status, headers["Last-Modified"], again["Last-Modified"])


def test_dev_server_keeps_serving_the_shards_of_a_root_read_a_few_generations_ago(tree, dev_server):
    """Cards published one after another while clients read: a root read before two later regenerations
    (other clients' requests) still has its shards, not a 404 the client would take for a broken index."""
    url, _ = dev_server
    first = json.loads(raw_get(url, "/index/root.json")[2])
    for name in ("later1", "later2", "later3"):
        write_card(tree, f"me/cpu/2.10/{name}")
        assert raw_get(url, "/index/root.json")[0] == 200  # another client: a new generation
    for entry in first["shards"]:
        assert raw_get(url, f"/index/shards/{entry['sha256']}.json")[0] == 200


def test_dev_server_serves_cards_of_a_namespace_named_index(tree, dev_server):
    """Only index.json, index/root.json and the shards are generated: a card under a top-level `index/`
    directory (a user called index) is a file of the tree, served as the generated index lists it."""
    url, _ = dev_server
    write_card(tree, "index/cpu/2.10/listed")
    entry = catalog.resolve("listed", registry=url)
    assert entry.id == "index/cpu/2.10/listed"
    assert raw_get(url, "/index/cpu/2.10/listed.md")[2] == (tree / "index/cpu/2.10/listed.md").read_bytes()


def test_dev_server_of_an_indexed_tree_serves_its_shards_and_a_tampered_one_is_refused(tree, home):
    assert run_cli("index", str(tree), "--allow-invalid").returncode == 0
    root = json.loads((tree / "index" / "root.json").read_text())
    shard = next(
        tree / "index" / "shards" / f"{e['sha256']}.json"
        for e in root["shards"]
        if b"me/cpu/2.10/tiny" in (tree / "index" / "shards" / f"{e['sha256']}.json").read_bytes()
    )
    shard.write_text(shard.read_text().replace("weights/tiny.ckpt", "https://evil.example/x.ckpt"))
    url, proc = start_dev_server(tree)
    try:
        done = run_cli("--registry", url, "info", "me/cpu/2.10/tiny", env={"REGISTRY_HOME": str(home)})
    finally:
        proc.kill()
        proc.wait()
        forget_remote_indexes()
    assert done.returncode == 4 and "index shard" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_dev_server_stops_cleanly_on_ctrl_c(dev_server):
    url, proc = dev_server
    assert requests.get(url + "index.json", timeout=10).status_code == 200
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err


def test_dev_server_refuses_a_missing_directory(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    for name in ("nope", "loop"):
        proc = run_cli("serve", str(tmp_path / name), "--port", "0")
        assert proc.returncode == 2 and "is not a directory" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- end to end


LENET_CARD = """# LeNet digits

---
model-name: lenet
backbone-name: lenet
module-type: cv-classification
fine-tunable: True
input-shape: [1, 8, 8]
model-version: 1
train-dataset: digits
author: tests
update-time: 2026-01-01
repo-link: https://example.org/lenet
user-id: me
used-for: inference
train-backend: cpu
infer-backend: cpu
mindspore-version: "2.10"
asset:
  - file-format: ckpt
    asset-link: weights/lenet_digits.ckpt
    asset-sha256: {sha}
license: Apache2.0
summary: LeNet for 8x8 digits
---
"""


def test_remote_registry_pulls_and_loads_like_a_local_one(tmp_path, home, monkeypatch):
    import mindspore as ms
    import numpy as np

    from registry import loader, transfer
    from registry.builders.lenet import lenet_digits

    root = tmp_path / "site"
    ckpt = root / "me/cpu/2.10/weights/lenet_digits.ckpt"
    ckpt.parent.mkdir(parents=True)
    trained = lenet_digits()
    ms.save_checkpoint(trained, str(ckpt))
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    (root / "me/cpu/2.10/lenet_digits.md").write_text(LENET_CARD.format(sha=digest))
    reindex(root)
    expected = {p.name: p.asnumpy() for p in trained.get_parameters()}
    fresh = {p.name: p.asnumpy() for p in lenet_digits().get_parameters()}
    assert not all(np.array_equal(fresh[k], expected[k]) for k in expected)  # so equality below means loaded

    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "local-home"))
    local = loader.load("lenet_digits", registry=root)
    monkeypatch.setenv("REGISTRY_HOME", str(home))
    forget_remote_indexes()
    with nginx(root, locations=documented_locations()) as url:
        [pulled] = transfer.pull("lenet_digits", registry=url)
        assert pulled.downloaded and hashlib.sha256(pulled.path.read_bytes()).hexdigest() == digest
        remote = loader.load("lenet_digits", registry=url)
        assert [p for p, status in gets(url)] == [
            "/index/root.json",
            "/index.json",
            "/me/cpu/2.10/lenet_digits.md",
            "/me/cpu/2.10/weights/lenet_digits.ckpt",
        ]
    for net in (local, remote):
        loaded = {p.name: p.asnumpy() for p in net.get_parameters()}
        assert loaded.keys() == expected.keys()
        assert all(np.array_equal(loaded[k], expected[k]) for k in expected)
    x = ms.Tensor(np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32))
    assert np.array_equal(local(x).asnumpy(), remote(x).asnumpy())
    # Offline, from the cache, after the server is gone.
    monkeypatch.setenv("REGISTRY_OFFLINE", "1")
    forget_remote_indexes()
    assert loader.load("lenet_digits", registry=url).load_report is not None


def test_a_file_that_is_not_an_index_is_one_sentence(tmp_path, home):
    forget_remote_indexes()
    with nginx(tmp_path) as url:
        for content, message in (
            (b"<html>", "is not valid JSON"),
            (b'{"format": 1, "cards": [{}]}', "lacks its id"),
            (b'{"format": 9, "cards": []}', "index format 9"),
        ):
            (tmp_path / "index.json").write_bytes(content)
            forget_remote_indexes()
            proc = run_cli("--registry", url, "list", env={"REGISTRY_HOME": str(home)})
            assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_index_records_are_checked_before_use(tmp_path, home):
    """A broken or hostile index names no file outside the cache and crashes no command."""
    victim = tmp_path / "victim.md"
    victim.write_text("precious\n")
    root = tmp_path / "site"
    write_card(root, "me/1.0/tiny")
    good = build_index(root)["cards"][0]
    traversal = "../" * 12 + str(victim)[1:-3]  # the card cache names files by the index's sha256
    cases = (
        ({**good, "sha256": traversal}, "not 64 hex digits"),
        ({**good, "fields": [1]}, "fields"),
        ({**good, "assets": 5}, "assets"),
        ({**good, "assets": [{"link": "x"}]}, "assets"),
        ({**good, "problems": "zz"}, "problems"),
    )
    with nginx(root) as url:
        (HttpRegistry(url).cache_dir / "cards").mkdir(parents=True)  # as after any earlier use
        for record, words in cases:
            (root / "index.json").write_text(json.dumps({"format": 1, "cards": [record]}))
            for command in (["info", "tiny"], ["list"], ["search", "tiny"]):
                proc = run_cli("--registry", url, *command, env={"REGISTRY_HOME": str(home)})
                assert proc.returncode == 2 and words in proc.stderr and "me/1.0/tiny" in proc.stderr, proc.stderr
                assert proc.stderr.count("\n") == 1 and "internal error" not in proc.stderr, proc.stderr
        assert victim.read_text() == "precious\n"
        (root / "index.json").write_text(json.dumps({"format": 1, "cards": [{**good, "path": "../../x.md"}]}))
        proc = run_cli("--registry", url, "info", "tiny", env={"REGISTRY_HOME": str(home)})
        assert proc.returncode == 2 and "index" in proc.stderr and "../../x.md" in proc.stderr, proc.stderr


def test_index_and_card_requests_carry_the_token_only_to_its_host(tree, home, monkeypatch):
    from tests.servers import fault_server

    monkeypatch.setenv("REGISTRY_TOKEN", "s3cret")
    for token_host, expected in (("127.0.0.1", "Bearer s3cret"), ("models.example.org", "")):
        monkeypatch.setenv("REGISTRY_TOKEN_HOST", token_host)
        monkeypatch.setenv("REGISTRY_HOME", str(home / token_host))
        forget_remote_indexes()
        with fault_server(tree) as srv:
            assert catalog.resolve("tiny", registry=srv.url).id == "me/cpu/2.10/tiny"
            assert [(r["path"], r["authorization"]) for r in srv.gets()] == [
                ("/index/root.json", expected),
                ("/index.json", expected),
                ("/me/cpu/2.10/tiny.md", expected),
            ]
    forget_remote_indexes()


def test_an_oversized_index_is_refused_without_reading_it_all(tmp_path, home, monkeypatch):
    from registry import catalog as remote_module
    from tests.servers import fault_server

    (tmp_path / "index.json").write_bytes(b" " * 5000)
    monkeypatch.setattr(remote_module, "MAX_INDEX_BYTES", 4096)
    forget_remote_indexes()
    with fault_server(tmp_path) as srv, pytest.raises(TransferError, match=r"index\.json is over 4,096 bytes"):
        open_registry(srv.url).ids()
    assert not (home / "registries").exists() or not list((home / "registries").rglob("index.json"))
    forget_remote_indexes()
