"""The sharded index (registry/shards.py) end to end over nginx, the local parse cache, parallel validate."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import jsonschema
import numpy as np
import pytest

import registry
from registry import catalog, shards
from registry.catalog import forget_remote_indexes
from registry.cli import main
from registry.index import INDEX_NAME, build_index
from registry.parse_cache import cache_path, local_index_data
from tests.conftest import CORPUS, MANIFESTS, ROOT, require_shared, run_cli
from tests.servers import nginx
from tests.test_remote import documented_locations, write_card

LENET = "mindspore/cpu/2.10/lenet_digits"


def schema(name: str) -> dict:
    return json.loads((ROOT / "schemas" / name).read_text())


@pytest.fixture
def sharded(tmp_path, monkeypatch):
    """The embedded registry, indexed into 4 buckets: its two cards in buckets 2 and 0, two empty ones
    (one file: the same bytes), so a lookup that fetches one shard shows."""
    root = tmp_path / "site"
    shutil.copytree(MANIFESTS, root)
    monkeypatch.setattr(shards, "shard_count", lambda cards: 4)
    assert main(["index", str(root), "--allow-invalid"]) == 0
    return root


@pytest.fixture
def paged(tmp_path, monkeypatch):
    """The embedded registry in 4 buckets and pages of 2 shards: a format 2 root, as above 256 shards."""
    root = tmp_path / "paged"
    shutil.copytree(MANIFESTS, root)
    monkeypatch.setattr(shards, "shard_count", lambda cards: 4)
    monkeypatch.setattr(shards, "PAGE_SHARDS", 2)
    monkeypatch.setattr(shards, "FLAT_MAX_SHARDS", 2)
    assert main(["index", str(root), "--allow-invalid"]) == 0
    return root


def page_of(tree, name: str) -> tuple[dict, dict, str]:
    """(root, page, shard sha256) that `name` lies in, in a format 2 tree."""
    root = json.loads((tree / shards.ROOT_PATH).read_text())
    b = shards.bucket_of(name, root["buckets"])
    sha = root["pages"][b // root["page-shards"]]["sha256"]
    page = json.loads((tree / shards.SHARD_DIR / f"{sha}.json").read_text())
    return root, page, page["shards"][b % root["page-shards"]]["sha256"]


def test_index_writes_shards_that_match_the_schemas_and_the_single_file(sharded):
    root_doc = json.loads((sharded / shards.ROOT_PATH).read_text())
    jsonschema.validate(root_doc, schema("index-root.schema.json"))
    single = json.loads((sharded / INDEX_NAME).read_text())
    assert root_doc["counts"] == single["counts"] and [s["cards"] for s in root_doc["shards"]] == [1, 0, 1, 0]
    seen = []
    for bucket, entry in enumerate(root_doc["shards"]):
        path = sharded / shards.SHARD_DIR / f"{entry['sha256']}.json"
        doc = json.loads(path.read_bytes())
        jsonschema.validate(doc, schema("index-shard.schema.json"))
        assert len(doc["cards"]) == entry["cards"]
        assert all(shards.bucket_of(r["id"], 4) == bucket for r in doc["cards"])
        seen += doc["cards"]
    assert sorted(seen, key=lambda r: r["id"]) == single["cards"]
    # Indexing again writes the same bytes: shard names are stable, nothing accumulates.
    before = sorted(p.name for p in (sharded / shards.SHARD_DIR).iterdir())
    assert main(["index", str(sharded), "--allow-invalid"]) == 0
    assert sorted(p.name for p in (sharded / shards.SHARD_DIR).iterdir()) == before


def test_index_check_sees_a_stale_sharded_index_beside_a_current_index_json(sharded, capsys):
    assert main(["index", "--check", str(sharded)]) == 0
    root_path = sharded / shards.ROOT_PATH
    root_path.write_text(root_path.read_text().replace('"cards": 1', '"cards": 2', 1))
    assert main(["index", "--check", str(sharded)]) == 1
    err = capsys.readouterr().err
    assert f"{root_path} is stale" in err and "sharded index" in err, err
    assert main(["index", str(sharded), "--allow-invalid"]) == 0
    for shard in (sharded / shards.SHARD_DIR).iterdir():  # a current root whose shards are gone
        shard.unlink()
    assert main(["index", "--check", str(sharded)]) == 1
    assert "the shard the root names is missing" in capsys.readouterr().err
    shutil.rmtree(sharded / "index")  # a tree indexed before shards existed still passes
    assert main(["index", "--check", str(sharded)]) == 0


def test_a_root_listing_a_shard_twice_is_refused():
    root = {
        "format": 1,
        "kind": shards.KIND,
        "bucket-hash": shards.BUCKET_HASH,
        "counts": {"cards": 6, "invalid": 0, "translations": 0, "collisions": 0},
        "shards": [{"sha256": "a" * 64, "cards": 2}] * 3,
    }
    assert "not a power of two" in shards._root_flaw(root)
    root["shards"] = [{"sha256": "a" * 64, "cards": 2}] * 2
    assert "one shard twice" in shards._root_flaw(root)


def test_a_sharded_remote_registry_lists_searches_resolves_pulls_and_loads(sharded, home, monkeypatch):
    (sharded / INDEX_NAME).unlink()  # so only the shards can answer
    env = {"REGISTRY_HOME": str(home)}
    forget_remote_indexes()
    with nginx(sharded, locations=documented_locations()) as url:
        proc = run_cli("--registry", url, "list", env=env)
        assert proc.returncode == 0, proc.stderr
        assert LENET in proc.stdout and "mindspore/ascend/0.7/ssd_v1_coco2017" in proc.stdout
        proc = run_cli("--registry", url, "search", "digits", "--task", "classification", "--json", env=env)
        local = run_cli("--registry", str(MANIFESTS), "search", "digits", "--task", "classification", "--json", env=env)
        assert proc.returncode == 0 and [r["id"] for r in json.loads(proc.stdout)] == [LENET]
        assert json.loads(proc.stdout) == json.loads(local.stdout)
        log_start = len(url.access_log())
        proc = run_cli("--registry", url, "info", "lenet_digits", env={**env, "REGISTRY_HOME": str(home.parent / "h2")})
        assert proc.returncode == 0 and LENET in proc.stdout, proc.stderr
        fetched = [r["path"] for r in url.access_log()[log_start:]]
        # A fresh cache: the root, the one shard the short name lies in, the card. Nothing else.
        assert fetched[0] == "/" + shards.ROOT_PATH and len(fetched) == 3, fetched
        assert fetched[1].startswith("/index/shards/") and fetched[2] == f"/{LENET}.md"
        # Again with a warm cache: the root is revalidated (304), the shard and the card are not fetched.
        log_start = len(url.access_log())
        assert (
            run_cli("--registry", url, "info", LENET, env={**env, "REGISTRY_HOME": str(home.parent / "h2")}).returncode
            == 0
        )
        assert [(r["path"], r["status"]) for r in url.access_log()[log_start:]] == [("/" + shards.ROOT_PATH, 304)]
        forget_remote_indexes()
        pulled = registry.pull("lenet_digits", registry=url)
        assert {p.asset.file_format for p in pulled} == {"ckpt", "npz"}
        net = registry.load("lenet_digits", registry=url)
    expected = registry.load("lenet_digits", registry=MANIFESTS)
    assert all(
        np.array_equal(a.asnumpy(), b.asnumpy()) for a, b in zip(net.get_parameters(), expected.get_parameters())
    )
    # The server is gone: offline, everything comes from the cache.
    monkeypatch.setenv("REGISTRY_OFFLINE", "1")
    forget_remote_indexes()
    assert registry.load("lenet_digits", registry=url).load_report is not None
    h2 = {"REGISTRY_HOME": str(home.parent / "h2"), "REGISTRY_OFFLINE": "1"}  # it fetched lenet's shard only
    proc = run_cli("--registry", url, "info", "lenet_digits", env=h2)
    assert proc.returncode == 0 and LENET in proc.stdout, proc.stderr
    proc = run_cli("--registry", url, "info", "ssd_v1_coco2017", env=h2)
    assert proc.returncode == 6 and "shard" in proc.stderr and "not cached" in proc.stderr, proc.stderr


def test_list_limit_stops_fetching_shards_and_works_on_any_registry(sharded, home):
    forget_remote_indexes()
    env = {"REGISTRY_HOME": str(home)}
    with nginx(sharded, locations=documented_locations()) as url:
        proc = run_cli("--registry", url, "list", "--limit", "1", env=env)
        fetched = [r["path"] for r in url.access_log()]
    rows = proc.stdout.splitlines()
    assert proc.returncode == 0 and rows[0].split() == ["ID", "TASK", "DATASET", "FORMATS", "MINDSPORE"], proc.stdout
    assert len(rows) == 2 and rows[1].split()[0] == "mindspore/ascend/0.7/ssd_v1_coco2017", proc.stdout  # bucket 0
    assert fetched == [
        "/" + shards.ROOT_PATH,
        f"/{shards.SHARD_DIR}/{json.loads((sharded / shards.ROOT_PATH).read_text())['shards'][0]['sha256']}.json",
    ]
    local = run_cli("--registry", str(MANIFESTS), "list", "--limit", "1", "--json", env=env)
    assert local.returncode == 0 and len(json.loads(local.stdout)) == 1
    none = run_cli("--registry", str(MANIFESTS), "list", "--limit", "0", env=env)
    assert none.returncode == 0 and none.stdout == "" and "0 models" in none.stderr


def test_a_tampered_shard_is_refused_with_exit_4_and_not_cached(sharded, home):
    root_doc = json.loads((sharded / shards.ROOT_PATH).read_text())
    bucket = shards.bucket_of("lenet_digits", len(root_doc["shards"]))
    shard = sharded / shards.SHARD_DIR / f"{root_doc['shards'][bucket]['sha256']}.json"
    shard.write_text(shard.read_text().replace("lenet_digits.ckpt", "https://evil.example/x.ckpt"))
    forget_remote_indexes()
    with nginx(sharded, locations=documented_locations()) as url:
        proc = run_cli("--registry", url, "info", "lenet_digits", env={"REGISTRY_HOME": str(home)})
    assert proc.returncode == 4 and "index shard" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not list(home.glob("registries/*/shards/*.json"))


@pytest.mark.parametrize("kept", ["root.json", INDEX_NAME])
def test_a_damaged_cached_index_is_dropped_as_if_never_cached(sharded, home, kept):
    """A cached root (or index.json) that no longer parses is the cache's damage, not the publisher's: removed
    with a warning, then offline says it is not cached (exit 6), online fetches it again."""
    if kept == INDEX_NAME:
        shutil.rmtree(sharded / "index")  # a registry with index.json only
    env = {"REGISTRY_HOME": str(home), "REGISTRY_RETRIES": "0"}
    forget_remote_indexes()
    with nginx(sharded, locations=documented_locations()) as url:
        assert run_cli("--registry", url, "info", "lenet_digits", env=env).returncode == 0
        (cached,) = home.glob(f"registries/*/{kept}")
        cached.write_bytes(b'{"format": 1, "car')
        proc = run_cli("--registry", url, "info", "lenet_digits", "--offline", env=env)
        assert proc.returncode == 6 and "Traceback" not in proc.stderr, proc.stderr
        assert f"the cached copy of {url}{'index/' if kept == 'root.json' else ''}{kept} in {cached} was damaged" in (
            proc.stderr
        )
        assert "is not cached" in proc.stderr and "registry index" not in proc.stderr  # not a publisher's fix
        assert not cached.exists()
        assert run_cli("--registry", url, "info", "lenet_digits", env=env).returncode == 0  # online: fetched again
        # A damaged copy whose ETag record still matches it: the server's 304 is not taken for it either.
        meta = cached.with_name(cached.name.replace(".json", ".meta.json"))
        record = json.loads(meta.read_bytes())
        cached.write_bytes(b"[]")
        meta.write_text(json.dumps({"etag": record["etag"], "sha256": hashlib.sha256(b"[]").hexdigest()}))
        began = len(url.access_log())
        proc = run_cli("--registry", url, "info", "lenet_digits", env=env)
        assert proc.returncode == 0 and LENET in proc.stdout, proc.stderr
        assert [r["status"] for r in url.access_log()[began:] if r["path"].endswith("/" + kept)] == [304, 200]
        assert json.loads(cached.read_bytes()) != []


def test_a_card_changed_after_indexing_names_the_sharded_root_that_promised_its_digest(sharded, home):
    card = sharded / (LENET + ".md")
    card.write_text(card.read_text() + "\nedited after indexing\n")
    forget_remote_indexes()
    with nginx(sharded, locations=documented_locations()) as url:
        proc = run_cli("--registry", url, "info", "lenet_digits", env={"REGISTRY_HOME": str(home)})
    assert proc.returncode == 4 and "the card was changed after indexing" in proc.stderr, proc.stderr
    assert f"the index {url}{shards.ROOT_PATH} says" in proc.stderr


def test_a_registry_that_drops_its_shards_is_read_from_index_json_again(sharded, home):
    forget_remote_indexes()
    with nginx(sharded, locations=documented_locations()) as url:
        assert isinstance(catalog.open_registry(url).index(), shards.ShardedIndex)
        shutil.rmtree(sharded / "index")
        forget_remote_indexes()
        reg = catalog.open_registry(url)
        assert not isinstance(reg.index(), shards.ShardedIndex) and reg.resolve("lenet_digits").id == LENET
    forget_remote_indexes()


def test_local_listing_uses_a_fresh_index_json_and_else_a_parse_cache_that_sees_edits(tmp_path, home):
    root = tmp_path / "tree"
    card = write_card(root, "me/cpu/2.10/tiny")
    write_card(root, "me/cpu/2.10/other")
    expected = build_index(root)
    assert local_index_data(root) == expected
    assert cache_path(root.resolve()).is_file()
    # A cached record is used as it is: a planted one shows the cache answered.
    blob = json.loads(cache_path(root.resolve()).read_text())
    blob["records"][blob["paths"].index("me/cpu/2.10/other.md")]["fields"]["summary"] = "from the cache"
    cache_path(root.resolve()).write_text(json.dumps(blob))
    assert {r["id"]: r["fields"]["summary"] for r in local_index_data(root)["cards"]}[
        "me/cpu/2.10/other"
    ] == "from the cache"
    # A changed card (size and mtime) is parsed again.
    card.write_text(card.read_text().replace("a tiny network for tests", "an edited summary"))
    summaries = {r["id"]: r["fields"]["summary"] for r in local_index_data(root)["cards"]}
    assert summaries["me/cpu/2.10/tiny"] == "an edited summary"
    # A fresh index.json is read instead of any card; an edit after it makes it stale.
    assert main(["index", str(root), "--allow-invalid"]) == 0
    (root / INDEX_NAME).write_text((root / INDEX_NAME).read_text().replace("an edited summary", "from index.json"))
    assert "from index.json" in json.dumps(local_index_data(root))
    stat = card.stat()
    os.utime(card, ns=(stat.st_atime_ns, (root / INDEX_NAME).stat().st_mtime_ns + 10**9))
    assert "from index.json" not in json.dumps(local_index_data(root))
    # The CLI sees it too.
    proc = run_cli("--registry", str(root), "search", "edited", env={"REGISTRY_HOME": str(home)})
    assert proc.returncode == 0 and "me/cpu/2.10/tiny" in proc.stdout
    reg = catalog.LocalRegistry(root)
    assert [r["id"] for r in reg.index().records] == ["me/cpu/2.10/other", "me/cpu/2.10/tiny"]


def test_parallel_validate_output_is_the_serial_output_on_the_corpus(capsys):
    corpus = str(require_shared(CORPUS))
    outputs = []
    for jobs in (1, 2):
        code = main(["validate", "--jobs", str(jobs), corpus])
        outputs.append((capsys.readouterr().out, code))
    assert outputs[0] == outputs[1]
    assert outputs[0][0].count("sha256-reused") > 100  # the cross-card rule ran over both cores' cards
    assert outputs[0][0].count("\n") > 1000


def test_validate_jobs_must_be_positive(tmp_path):
    card = write_card(tmp_path, "me/cpu/2.10/tiny")
    proc = run_cli("validate", "--jobs", "0", str(card))
    assert proc.returncode == 2 and "--jobs 0" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unknown_name_fetches_every_shard_for_suggestions_only_in_a_small_registry(sharded, home, monkeypatch):
    forget_remote_indexes()
    with nginx(sharded, locations=documented_locations()) as url:
        with pytest.raises(registry.errors.NotFoundError, match="did you mean lenet_digits"):
            catalog.open_registry(url).resolve("lenet_digit")
        monkeypatch.setattr(shards, "SUGGEST_MAX_CARDS", 1)
        monkeypatch.setenv("REGISTRY_HOME", str(home.parent / "h3"))
        forget_remote_indexes()
        with pytest.raises(registry.errors.NotFoundError, match="no model 'lenet_digit'.*`registry list`"):
            catalog.open_registry(url).resolve("lenet_digit")
        fetched = [r["path"] for r in url.access_log()]
    assert fetched.count("/" + shards.ROOT_PATH) == 2 and len(fetched) == 2 + 3 + 1  # 3 shard files, then one
    forget_remote_indexes()


def test_above_page_shards_the_root_lists_pages_that_match_the_schemas_and_the_single_file(paged):
    root = json.loads((paged / shards.ROOT_PATH).read_text())
    jsonschema.validate(root, schema("index-root.schema.json"))
    assert root["format"] == 2 and root["buckets"] == 4 and root["page-shards"] == 2 and len(root["pages"]) == 2
    assert "shards" not in root
    single = json.loads((paged / INDEX_NAME).read_text())
    seen = []
    for p, entry in enumerate(root["pages"]):
        page = json.loads((paged / shards.SHARD_DIR / f"{entry['sha256']}.json").read_bytes())
        jsonschema.validate(page, schema("index-page.schema.json"))
        assert page["first"] == 2 * p and entry["cards"] == sum(s["cards"] for s in page["shards"])
        for i, s in enumerate(page["shards"]):
            doc = json.loads((paged / shards.SHARD_DIR / f"{s['sha256']}.json").read_bytes())
            assert all(shards.bucket_of(r["id"], 4) == 2 * p + i for r in doc["cards"])
            seen += doc["cards"]
    assert sorted(seen, key=lambda r: r["id"]) == single["cards"]
    # A format 1 root is what the same cards give up to FLAT_MAX_SHARDS buckets: both are read (below and above).
    assert json.loads(shards.build_shards(single["cards"], single["counts"], buckets=2)[0])["format"] == 1


def test_a_paged_remote_registry_fetches_root_page_shard_and_card_and_lists_everything(paged, home):
    (paged / INDEX_NAME).unlink()
    env = {"REGISTRY_HOME": str(home)}
    forget_remote_indexes()
    _, page, shard = page_of(paged, "lenet_digits")
    with nginx(paged, locations=documented_locations()) as url:
        proc = run_cli("--registry", url, "info", "lenet_digits", env=env)
        assert proc.returncode == 0 and LENET in proc.stdout, proc.stderr
        fetched = [r["path"] for r in url.access_log()]
        page_sha = hashlib.sha256((paged / shards.SHARD_DIR / f"{fetched[1].rsplit('/', 1)[1]}").read_bytes())
        assert fetched == ["/" + shards.ROOT_PATH, fetched[1], f"/{shards.SHARD_DIR}/{shard}.json", f"/{LENET}.md"]
        assert page_sha.hexdigest() + ".json" == fetched[1].rsplit("/", 1)[1]
        # Warm: only the root is revalidated; the page and the shard come from the cache (hashed again).
        log_start = len(url.access_log())
        assert run_cli("--registry", url, "info", LENET, env=env).returncode == 0
        assert [(r["path"], r["status"]) for r in url.access_log()[log_start:]] == [("/" + shards.ROOT_PATH, 304)]
        proc = run_cli("--registry", url, "list", "--json", env=env)
        local = run_cli("--registry", str(MANIFESTS), "list", "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        assert sorted(json.dumps(r) for r in json.loads(proc.stdout)) == sorted(
            json.dumps(r) for r in json.loads(local.stdout)
        )
        # A cached shard damaged on disk fails its hash and is fetched again, not trusted.
        cached = next(home.glob(f"registries/*/shards/{shard}.json"))
        cached.write_bytes(cached.read_bytes().replace(b"lenet_digits.ckpt", b"https://evil.example/x.ckpt"))
        log_start = len(url.access_log())
        proc = run_cli("--registry", url, "info", "lenet_digits", "--json", env=env)
        assert proc.returncode == 0 and "evil" not in proc.stdout, proc.stderr
        assert f"/{shards.SHARD_DIR}/{shard}.json" in [r["path"] for r in url.access_log()[log_start:]]
    forget_remote_indexes()


def test_a_tampered_page_is_refused_with_exit_4_and_index_check_sees_it(paged, home, capsys):
    root, page, _ = page_of(paged, "lenet_digits")
    path = next(
        paged / shards.SHARD_DIR / f"{e['sha256']}.json"
        for e in root["pages"]
        if json.loads((paged / shards.SHARD_DIR / f"{e['sha256']}.json").read_text()) == page
    )
    assert main(["index", "--check", str(paged)]) == 0
    page["shards"].reverse()
    path.write_text(json.dumps(page))
    forget_remote_indexes()
    with nginx(paged, locations=documented_locations()) as url:
        proc = run_cli("--registry", url, "info", "lenet_digits", env={"REGISTRY_HOME": str(home)})
    assert proc.returncode == 4 and "index shard" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not list(home.glob("registries/*/shards/*.json"))
    capsys.readouterr()
    assert main(["index", "--check", str(paged)]) == 1
    assert "the shard the root names is missing or differs" in capsys.readouterr().err
    # Indexing again repairs it; a root whose page count does not match its buckets is refused.
    assert main(["index", str(paged), "--allow-invalid"]) == 0 and main(["index", "--check", str(paged)]) == 0
    root["pages"] = root["pages"][:1]
    assert "pages of 4 buckets of 2" in shards._root_flaw(root)


def test_reindexing_keeps_the_previous_roots_pages_and_shards_and_drops_older_ones(paged):
    def named():
        return {f"{sha}.json" for sha in shards._files_of(paged / shards.ROOT_PATH, paged / shards.SHARD_DIR)}

    card = paged / (LENET + ".md")
    generations = [named()]
    for edit in ("one", "two"):
        card.write_text(card.read_text() + f"\nedit {edit}\n")
        assert main(["index", str(paged), "--allow-invalid"]) == 0
        generations.append(named())
    first, second, third = generations
    assert len(first) == 2 + 3 and first != second != third  # 2 pages, 3 distinct shards (2 empty: 1 file)
    # Clients may still read the previous root: its files stay; the one before is gone.
    assert {p.name for p in (paged / shards.SHARD_DIR).iterdir()} == second | third
    assert first - second - third


@pytest.fixture
def many(tmp_path, monkeypatch):
    """24 small cards in 8 buckets, pages of 4 (a format 2 root): enough shards to see a limit stop early."""
    root = tmp_path / "many"
    for i in range(24):
        write_card(root, f"me/cpu/2.10/net{i:02}")
    monkeypatch.setattr(shards, "shard_count", lambda cards: 8)
    monkeypatch.setattr(shards, "PAGE_SHARDS", 4)
    monkeypatch.setattr(shards, "FLAT_MAX_SHARDS", 4)
    assert main(["index", str(root), "--allow-invalid"]) == 0
    (root / INDEX_NAME).unlink()  # only the shards can answer
    return root


def test_python_search_and_list_models_stream_shards_up_to_the_limit_as_the_cli_does(many, home, monkeypatch):
    forget_remote_indexes()
    with nginx(many, locations=documented_locations()) as url:
        cli = run_cli("--registry", url, "search", "net", "--limit", "3", "--json", env={"REGISTRY_HOME": str(home)})
        assert cli.returncode == 0, cli.stderr
        forget_remote_indexes()
        start = len(url.access_log())
        found = registry.search("net", registry=url, limit=3)
        fetched = [r["path"] for r in url.access_log()[start:]]
        assert [r.id for r in found] == [r["id"] for r in json.loads(cli.stdout)] and len(found) == 3
        # Cached by the CLI run: only the root is revalidated; with a fresh cache, fewer than 8 shards are read.
        assert fetched == ["/" + shards.ROOT_PATH], fetched
        forget_remote_indexes()
        start = len(url.access_log())
        monkeypatch.setenv("REGISTRY_HOME", str(home.parent / "h4"))
        few = registry.list_models(registry=url, limit=3)
        fetched = [r["path"] for r in url.access_log()[start:]]
        assert [r.id for r in few] == [r.id for r in found]
        # root, then in bucket order each page and shard until 3 models are found (here one page, 1 shard)
        root = json.loads((many / shards.ROOT_PATH).read_text())
        entries = [
            e
            for p in root["pages"]
            for e in json.loads((many / shards.SHARD_DIR / f"{p['sha256']}.json").read_text())["shards"]
        ]
        k = next(k for k in range(1, 9) if sum(e["cards"] for e in entries[:k]) >= 3)
        pages = [f"/{shards.SHARD_DIR}/{p['sha256']}.json" for p in root["pages"][: (k + 3) // 4]]
        needed = list(dict.fromkeys(f"/{shards.SHARD_DIR}/{e['sha256']}.json" for e in entries[:k]))
        assert k < 8 and sorted(fetched) == sorted(["/" + shards.ROOT_PATH, *pages, *needed]), fetched
        forget_remote_indexes()
        everything = registry.list_models(registry=url)
        cli_all = run_cli("--registry", url, "list", "--json", env={"REGISTRY_HOME": str(home)})
        assert [r.id for r in everything] == [r["id"] for r in json.loads(cli_all.stdout)] and len(everything) == 24
        assert registry.search("net", registry=url, limit=0) == []
        with pytest.raises(registry.UsageError, match="limit"):
            registry.search("net", registry=url, limit=-1)
    forget_remote_indexes()


def test_index_check_above_the_single_file_limit_checks_the_shards_alone(tmp_path, monkeypatch, capsys):
    root = tmp_path / "big"
    shutil.copytree(MANIFESTS, root)
    monkeypatch.setattr(shards, "shard_count", lambda cards: 4)
    monkeypatch.setattr(shards, "PAGE_SHARDS", 2)
    monkeypatch.setattr(shards, "FLAT_MAX_SHARDS", 2)
    monkeypatch.setattr(shards, "SINGLE_FILE_MAX_CARDS", 1)
    assert main(["index", str(root), "--allow-invalid"]) == 0
    assert not (root / INDEX_NAME).exists() and json.loads((root / shards.ROOT_PATH).read_text())["format"] == 2
    assert main(["index", "--check", str(root)]) == 0
    card = root / (LENET + ".md")
    card.write_text(card.read_text() + "\nedited\n")
    capsys.readouterr()
    assert main(["index", "--check", str(root)]) == 1
    assert f"{root / shards.ROOT_PATH} is stale" in capsys.readouterr().err
    shutil.rmtree(root / "index")
    assert main(["index", "--check", str(root)]) == 1
    assert f"{root / shards.ROOT_PATH}" in capsys.readouterr().err


def test_a_root_of_a_newer_format_asks_for_an_upgrade():
    root = {"format": 3, "kind": shards.KIND, "bucket-hash": shards.BUCKET_HASH}
    with pytest.raises(registry.UsageError, match=r"root format 3; this tool reads formats 1, 2\): upgrade registry"):
        shards.ShardedIndex(root, lambda sha, parse: None, "https://example.org/index/root.json")


def _list(root, home) -> str:
    proc = run_cli("--registry", str(root), "list", env={"REGISTRY_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_listing_is_the_same_from_a_fresh_parse_the_parse_cache_and_index_json(tmp_path, home):
    # Part of the corpus: invalid cards, twins, shared short names; every way a local list can be read.
    root = tmp_path / "tree"
    corpus = require_shared(CORPUS)
    for user in sorted(p.name for p in corpus.iterdir() if p.is_dir() and not p.name.startswith("."))[:3]:
        shutil.copytree(corpus / user, root / user)
    (root / "me" / "2.10").mkdir(parents=True)
    # Cells that are not plain ASCII: masked and non-ASCII ones.
    (root / "me" / "2.10" / "odd.md").write_text(
        "---\nmodel-name: odd\ntrain-dataset: https://u:pw@h/data\nmodule-type: 分类\n---\n", encoding="utf-8"
    )
    parsed = _list(root, home)  # nothing cached: every card parsed
    assert parsed.count("\n") > 100 and "https://u:***@h/data" in parsed and "分类" in parsed
    assert _list(root, home) == parsed  # from the parse cache
    assert main(["index", str(root), "--allow-invalid"]) == 0
    assert _list(root, home) == parsed  # index.json, checked
    assert _list(root, home) == parsed  # index.json, known sound
    assert json.loads(cache_path(root.resolve()).with_suffix(".sound").read_text()).keys() == {"cache", INDEX_NAME}


@pytest.mark.parametrize(
    "edit, flaw",
    [
        (lambda r: r.update(fields=["a list"]), "are not a mapping of texts"),
        (lambda r: r.update(sha256="f" * 63), "not 64 hex digits"),
        (lambda r: r["assets"].append({"link": "x"}), "not a list of records with a file-format"),
        (lambda r: r.pop("id"), "lacks its id or path"),
    ],
)
def test_a_hand_edited_index_json_is_checked_again_and_a_wrong_record_named(tmp_path, home, edit, flaw):
    root = tmp_path / "tree"
    write_card(root, "me/cpu/2.10/tiny")
    write_card(root, "me/cpu/2.10/other")
    assert main(["index", str(root), "--allow-invalid"]) == 0
    listed = _list(root, home)
    assert "me/cpu/2.10/tiny" in listed  # index.json read and found sound: its stamp noted
    data = json.loads((root / INDEX_NAME).read_text())
    edit(data["cards"][1])
    (root / INDEX_NAME).write_text(json.dumps(data, indent=1))  # still newer than every card: still fresh
    proc = run_cli("--registry", str(root), "list", env={"REGISTRY_HOME": str(home)})
    assert proc.returncode == 2 and flaw in proc.stderr and "regenerate it with `registry index DIR`" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and not proc.stdout
    assert main(["index", str(root), "--allow-invalid"]) == 0  # the fix the sentence gives
    assert _list(root, home) == listed


def test_an_index_json_whose_ids_are_not_its_cards_paths_is_not_read_as_fresh(tmp_path, home):
    """A local card's id is its path: an index.json naming another id for a card path (edited by hand, or
    copied from another tree) would list a model that info cannot find; the cards are read instead."""
    root = tmp_path / "tree"
    write_card(root, "me/cpu/2.10/tiny")
    write_card(root, "me/cpu/2.10/other")
    assert main(["index", str(root), "--allow-invalid"]) == 0
    listed = _list(root, home)
    data = json.loads((root / INDEX_NAME).read_text())
    data["cards"][1]["id"] = "me/cpu/2.10/renamed"
    (root / INDEX_NAME).write_text(json.dumps(data, indent=1))  # still newer than every card
    assert _list(root, home) == listed and "renamed" not in listed


def test_a_damaged_parse_cache_record_is_parsed_again_not_trusted(tmp_path, home):
    root = tmp_path / "tree"
    write_card(root, "me/cpu/2.10/tiny")
    write_card(root, "me/cpu/2.10/other")
    expected = build_index(root)
    assert local_index_data(root) == expected
    where = cache_path(root.resolve())
    blob = json.loads(where.read_text())
    blob["records"][0]["fields"] = {"summary": 7}  # not a text: a record no parse gives
    blob["records"][1]["problems"] = "not a list"
    where.write_text(json.dumps(blob))
    assert local_index_data(root) == expected
    assert catalog.LocalRegistry(root).index().records == expected["cards"]
    # Rewritten whole: the next run takes every record from the cache again.
    assert json.loads(where.read_text())["records"] == [dict(r) for r in expected["cards"]]


def test_walk_tree_stats_is_walk_tree_with_the_stats_of_its_files(tmp_path):
    from registry.names import walk_markdown, walk_tree, walk_tree_stats

    root = tmp_path / "tree"
    for rel in ("u/1.8/a.md", "u/1.8/a_cn.md", "u/1.8/b.md", "u/ign/c.md", ".hidden/d.md", "docs/e.md", "README.md"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".registryignore").write_text("ign/\n")
    os.symlink(root / "u", root / "linked")  # a symlinked directory is not entered, as os.walk does
    os.symlink(root / "u/1.8/b.md", root / "u/1.8/alias.md")
    os.symlink(root / "nowhere.md", root / "u/1.8/broken.md")  # listed, no stat: card_record reports it
    paths, twins, stats = walk_tree_stats(root)
    cards = ["u/1.8/a.md", "u/1.8/alias.md", "u/1.8/b.md", "u/1.8/broken.md"]
    assert (paths, twins) == walk_tree(root) == (cards, {"u/1.8/a.md": ["u/1.8/a_cn.md"]})
    assert list(walk_markdown(root)) == [
        "u/1.8/a.md",
        "u/1.8/a_cn.md",
        "u/1.8/alias.md",
        "u/1.8/b.md",
        "u/1.8/broken.md",
    ]
    want = {
        rel: [(st := os.stat(root / rel)).st_size, st.st_mtime_ns]
        for rel in list(walk_markdown(root))
        if rel != "u/1.8/broken.md"
    }
    assert stats == want


def test_a_record_edited_behind_its_stamp_still_gives_one_sentence(tmp_path, home):
    root = tmp_path / "tree"
    write_card(root, "me/cpu/2.10/tiny")
    write_card(root, "me/cpu/2.10/other")
    assert main(["index", str(root), "--allow-invalid"]) == 0
    _list(root, home)
    marks = cache_path(root.resolve(), None).with_suffix(".sound")
    for edit, flaw in (
        (lambda r: r.update(fields=["a list"]), "are not a mapping of texts"),
        (lambda r: r.pop("id"), "lacks its id or path"),
    ):
        data = json.loads((root / INDEX_NAME).read_text())
        edit(data["cards"][1])
        (root / INDEX_NAME).write_text(json.dumps(data, indent=1))
        st = (root / INDEX_NAME).stat()  # the edit passed off as the file found sound (a forged stamp)
        marks.write_text(json.dumps({INDEX_NAME: [st.st_size, st.st_mtime_ns, st.st_ino]}))
        proc = run_cli("--registry", str(root), "list", env={"REGISTRY_HOME": str(home)})
        assert proc.returncode == 2 and flaw in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and not proc.stdout


def test_a_sound_note_another_user_wrote_vouches_for_nothing(tmp_path, home):
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    from registry import parse_cache

    root = tmp_path / "tree"
    write_card(root, "me/cpu/2.10/tiny")
    assert main(["index", str(root), "--allow-invalid"]) == 0
    data = json.loads((root / INDEX_NAME).read_text())
    data["cards"][0]["fields"] = ["a list"]
    (root / INDEX_NAME).write_text(json.dumps(data, indent=1))
    st = (root / INDEX_NAME).stat()
    marks = cache_path(root.resolve()).with_suffix(".sound")
    marks.parent.mkdir(parents=True)
    marks.write_text(json.dumps({INDEX_NAME: [st.st_size, st.st_mtime_ns, st.st_ino]}))
    assert parse_cache._local(root.resolve(), None)[1] is True  # this user's note: taken
    os.chown(marks, 54321, 54321)
    assert parse_cache._local(root.resolve(), None)[1] is False  # another's: the records are checked
    with pytest.raises(registry.UsageError, match="are not a mapping of texts"):
        parse_cache.local_index(root)


@pytest.mark.parametrize("counts", [[1], "x", {"cards": "many"}, None])
def test_a_root_whose_counts_are_not_counts_is_refused_in_one_sentence(paged, home, counts):
    """The schema requires counts.cards, an integer; a root without it is not read (it sized suggestions)."""
    path = paged / shards.ROOT_PATH
    doc = json.loads(path.read_text())
    doc["counts"] = counts
    path.write_text(json.dumps(doc))
    (paged / INDEX_NAME).unlink()
    forget_remote_indexes()
    with nginx(paged, locations=documented_locations()) as url:
        proc = run_cli("--registry", url, "info", "no_such_model", env={"REGISTRY_HOME": str(home)})
    assert proc.returncode == 2 and "internal error" not in proc.stderr, proc.stderr
    assert "is not a registry index root (its counts" in proc.stderr, proc.stderr


def test_a_name_that_is_not_utf_8_is_not_found_in_a_sharded_registry(sharded, home):
    """A name from argv with undecodable bytes (surrogate escapes) hashes to a bucket like any other."""
    forget_remote_indexes()
    with nginx(sharded, locations=documented_locations()) as url:
        proc = run_cli("--registry", url, "info", "len\udcffet", env={"REGISTRY_HOME": str(home)})
    assert proc.returncode == 3 and "internal error" not in proc.stderr, proc.stderr
    assert "no model 'len\\udcffet'" in proc.stderr, proc.stderr
