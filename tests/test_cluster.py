"""Many processes, one model: a shared cache without locks (REGISTRY_LOCKS=none) and the site caching proxy
of docs/nginx-cache.conf in front of an origin nginx, each with 8 real `registry pull` processes."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry.cache import UNTRUSTED_LOCK_FS, Cache, fs_type
from tests.conftest import ROOT
from tests.servers import nginx, write_card

BASE = "https://download.example.org/m/"
CARD_ID = "mindspore/cpu/2.0/shared"
CACHE_CONF = ROOT / "docs" / "nginx-cache.conf"


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "shared.ckpt").write_bytes(os.urandom(3 << 20))
    return root


@pytest.fixture
def reg(tmp_path, site):
    root = tmp_path / "reg"
    write_card(
        root, CARD_ID, [("ckpt", BASE + "shared.ckpt", hashlib.sha256((site / "shared.ckpt").read_bytes()).hexdigest())]
    )
    return root


def pull_in_processes(n: int, reg, home, mirror: str, **env) -> list[subprocess.CompletedProcess]:
    """n concurrent `registry pull` processes on cache `home` (a list: one cache each, as n machines)."""
    homes = home if isinstance(home, list) else [home] * n
    full = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REGISTRY_MIRRORS": f"{BASE}={mirror}",
        "REGISTRY_PROGRESS": "0",
        **env,
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "registry", "pull", "--registry", str(reg), CARD_ID],
            env={**full, "REGISTRY_HOME": str(h)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in homes
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_eight_processes_without_locks_leave_one_sound_blob(tmp_path, site, reg):
    home = tmp_path / "home"
    digest = hashlib.sha256((site / "shared.ckpt").read_bytes()).hexdigest()
    with nginx(site, limit_rate="8m") as url:  # ~0.4 s each: the 8 downloads overlap
        results = pull_in_processes(8, reg, home, url, REGISTRY_LOCKS="none")
        gets = [r for r in url.access_log() if r["path"] == "/shared.ckpt"]
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]
    assert len(gets) == 8  # nobody waited on a lock: every process downloaded into its own partial
    assert not (home / "locks").exists()
    blobs = [p for p in (home / "blobs").rglob("*") if p.is_file() and not p.name.endswith(".stamp")]
    assert [p.name for p in blobs] == [digest]
    assert hashlib.sha256(blobs[0].read_bytes()).hexdigest() == digest
    assert (home / "models" / "mindspore/cpu/2.0/shared" / "shared.ckpt").read_bytes() == (
        site / "shared.ckpt"
    ).read_bytes()
    prune = subprocess.run(
        [sys.executable, "-m", "registry", "cache", "prune"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "REGISTRY_HOME": str(home), "REGISTRY_LOCKS": "none"},
    )
    assert prune.returncode == 0, prune.stderr
    left = files_under(home)
    assert not [f for f in left if f.endswith(".tmp") or f.startswith("partial/")], left
    assert sorted(left) == sorted(
        [
            f"blobs/sha256/{digest[:2]}/{digest}",
            f"blobs/sha256/{digest[:2]}/{digest}.stamp",
            "models/mindspore/cpu/2.0/shared/.view.json",
            "models/mindspore/cpu/2.0/shared/shared.ckpt",
        ]
    )
    verify = subprocess.run(
        [sys.executable, "-m", "registry", "cache", "verify"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "REGISTRY_HOME": str(home)},
    )
    assert verify.returncode == 0 and "ok" in verify.stdout


def test_lock_modes(tmp_path):
    kind = UNTRUSTED_LOCK_FS.get(fs_type(tmp_path))
    if kind:
        pytest.skip(f"the test directory is on {kind}, where auto already means no locks")
    assert fs_type(tmp_path) is not None or not sys.platform.startswith("linux")
    assert Cache(tmp_path / "a").locking()
    assert Cache(tmp_path / "b", locks="file").locking()
    none = Cache(tmp_path / "c", locks="none")
    assert not none.locking() and none.stale_age() > 0
    with none.lock("ab" * 32):
        pass
    assert not (tmp_path / "c" / "locks").exists()


def cache_conf(part: str) -> str:
    text = CACHE_CONF.read_text()
    return re.search(rf"# --- {part} ---\n(.*?)# --- end of {part} ---", text, re.S).group(1)


def test_the_documented_caching_proxy_lets_an_asset_leave_the_origin_once(tmp_path, site, reg):
    with nginx(site) as origin:
        cache_dir = tmp_path / "proxy-cache"
        http = cache_conf("cache http").replace("/var/cache/nginx/registry", str(cache_dir))
        locations = cache_conf("cache locations").replace("https://download.example.org", origin.rstrip("/"))
        with nginx(tmp_path, http=http, locations=locations) as proxy:
            results = pull_in_processes(8, reg, [tmp_path / f"node{i}" for i in range(8)], proxy)
            assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]
            served = [r for r in proxy.access_log() if r["path"] == "/shared.ckpt"]
        sent = [r for r in origin.access_log() if r["path"] == "/shared.ckpt"]
    assert len(served) == 8 and all(r["status"] == 200 for r in served)
    # One slice request per 16 MiB piece (one here), each asked once: the asset left the origin once.
    assert len(sent) == 1 and sent[0]["range"] == "bytes=0-16777215" and sent[0]["bytes"] == 3 << 20
    # The same documented file as a whole is valid nginx configuration (with a host that resolves offline).
    whole = CACHE_CONF.read_text().replace("/var/cache/nginx/registry", str(cache_dir))
    conf = tmp_path / "check.conf"
    conf.write_text(
        f"pid {tmp_path}/check.pid;\nerror_log {tmp_path}/check.log;\nevents {{}}\n"
        f"http {{ {whole.replace('https://download.example.org', 'https://127.0.0.1')} }}\n"
    )
    from tests.servers import nginx_binary

    check = subprocess.run([nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_a_warm_pull_reads_one_view_record_and_takes_no_lock(tmp_path):
    from registry.settings import Settings
    from registry.transfer import pull

    site = tmp_path / "many"
    site.mkdir()
    assets = []
    for i in range(20):
        data = os.urandom(1000 + i)
        (site / f"part{i}.ckpt").write_bytes(data)
        assets.append(("ckpt", BASE + f"part{i}.ckpt", hashlib.sha256(data).hexdigest()))
    reg = tmp_path / "reg"
    write_card(reg, "mindspore/cpu/2.0/many", assets)
    with nginx(site) as url:
        settings = Settings(home=tmp_path / "home", mirrors=((BASE, url),), progress=False, jobs=4)
        assert all(p.downloaded for p in pull("mindspore/cpu/2.0/many", registry=reg, settings=settings))
        seen, recording = [], [True]

        def hook(event, args):
            if recording[0] and event == "open":
                seen.append(str(args[0]))

        sys.addaudithook(hook)
        try:
            warm = pull("mindspore/cpu/2.0/many", registry=reg, settings=settings)
        finally:
            recording[0] = False
        assert len(url.access_log()) == 20  # nothing more asked
    assert len(warm) == 20 and not any(p.downloaded for p in warm)
    assert [s for s in seen if s.endswith(".view.json")] == [".view.json"]  # one record read for 20 assets
    assert not [s for s in seen if s.endswith(".lock")]


# --------------------------------------------------------------------------- warm pulls skip the card's parse


def card_warnings(fn) -> tuple[object, list[str]]:
    """fn()'s result and the messages of the warnings it gave, in order."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [f"{w.category.__name__}: {w.message}" for w in caught]


@pytest.fixture
def two_assets(tmp_path):
    """(registry, card path, settings factory, nginx url) of a card with a ckpt and an air asset, pulled once."""
    from registry.settings import Settings

    site = tmp_path / "two"
    site.mkdir()
    assets = []
    for name, size in (("w.ckpt", 5000), ("g.air", 3000)):
        data = os.urandom(size)
        (site / name).write_bytes(data)
        assets.append((name.split(".")[1], BASE + name, hashlib.sha256(data).hexdigest()))
    reg = tmp_path / "reg2"
    path = write_card(reg, "mindspore/cpu/2.0/two", assets)
    with nginx(site) as url:

        def settings(**kw):
            return Settings(home=tmp_path / "home", mirrors=((BASE, url),), progress=False, **kw)

        yield reg, path, settings, url


def view_record(settings) -> tuple[Path, dict]:
    import json

    path = Cache.from_settings(settings).model_dir("mindspore/cpu/2.0/two") / ".view.json"
    return path, json.loads(path.read_text())


def rewrite(path: Path, data: dict, mode: int = 0o644) -> None:
    import json

    tmp = path.with_name("forged.tmp")
    tmp.write_text(json.dumps(data))
    tmp.chmod(mode)
    tmp.replace(path)


FORGED = "forged-by-the-test: this text is only in the view record"


def forge_cosmetic(settings, mode: int = 0o644) -> None:
    """Put a cosmetic problem into the view's card record that no check of the card would find: a pull that
    warns it took the record instead of checking the card."""
    path, data = view_record(settings)
    data["card"]["cosmetic"].append(["card.md", 1, 1, "error", "forged", FORGED, ["model-name"]])
    rewrite(path, data, mode)


def test_a_warm_pull_of_an_unchanged_card_uses_the_view_record_not_the_card(two_assets):
    from registry.transfer import pull

    reg, _, settings, url = two_assets
    assert all(p.downloaded for p in pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
    forge_cosmetic(settings())
    pulled, said = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
    assert [p.downloaded for p in pulled] == [False, False]
    assert any(FORGED in s for s in said), said  # the record's problems, not a fresh check of the card
    assert [p.asset.file_format for p in pulled] == ["ckpt", "air"]
    assert pulled[0].entry.card.fields["model-name"] == "two"  # still the whole card for those who read it
    # formats selection on the warm path
    (air,), said = card_warnings(
        lambda: pull("mindspore/cpu/2.0/two", registry=reg, formats=["air"], settings=settings())
    )
    assert air.asset.file_format == "air" and not air.downloaded and any(FORGED in s for s in said)
    assert len(url.access_log()) == 2


def test_a_card_edited_in_place_is_parsed_and_checked_again(two_assets):
    from registry.transfer import pull

    reg, path, settings, _ = two_assets
    pull("mindspore/cpu/2.0/two", registry=reg, settings=settings())
    forge_cosmetic(settings())
    before = os.stat(path)
    text = path.read_text()
    assert "module-type: cv\n" in text
    path.write_text(text.replace("module-type: cv\n", "module-type: cx\n"))  # one byte: same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns
    pulled, said = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
    assert not any(p.downloaded for p in pulled)
    assert not any(FORGED in s for s in said), said  # the old record is not used for other bytes
    assert [s for s in said if "module-type" in s and "schema-pattern" in s], said  # the new problem, found now
    # ... and the record now describes the new bytes: the next pull says the same, from it
    _, again = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
    assert again == said
    _, data = view_record(settings())
    assert data["card"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_cosmetic_warnings_are_the_same_on_warm_pulls(two_assets):
    from registry.transfer import pull

    reg, path, settings, _ = two_assets
    path.write_text(path.read_text().replace("module-type: cv\n", "module-type: cx\n"))
    first, said = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
    assert all(p.downloaded for p in first) and len(said) == 1 and "schema-pattern" in said[0], said
    for _ in range(2):
        warm, again = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
        assert not any(p.downloaded for p in warm) and again == said


@pytest.mark.parametrize(
    "garble",
    [
        lambda d: d.update(card="not a record"),
        lambda d: d["card"].update(assets=[["ckpt"]]),
        lambda d: d["card"].update(assets=[[1, 2, 3, 4, 5, 6, 7]] * 2),
        lambda d: d["card"].update(cosmetic=[[None] * 7]),
        lambda d: d["card"]["assets"][0].__setitem__(3, "../../etc/passwd"),
        lambda d: d["card"]["assets"][0].__setitem__(5, True),
        lambda d: d["card"]["assets"][0].__setitem__(4, "../../../outside.ckpt"),
        lambda d: d["card"].update(rules="another version of the rules"),
        lambda d: d["card"].pop("source"),
    ],
)
def test_a_garbled_card_record_falls_back_to_the_card(two_assets, garble):
    from registry.transfer import pull

    reg, _, settings, url = two_assets
    pull("mindspore/cpu/2.0/two", registry=reg, settings=settings())
    path, data = view_record(settings())
    data["card"]["cosmetic"].append(["card.md", 1, 1, "error", "forged", FORGED, []])
    garble(data)
    rewrite(path, data)
    pulled, said = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
    assert [p.downloaded for p in pulled] == [False, False] and not any(FORGED in s for s in said), said
    assert len(url.access_log()) == 2
    _, data = view_record(settings())
    assert data["card"]["assets"][0][0] == "ckpt"  # rewritten from the card


def test_a_truncated_view_record_and_a_swapped_blob_are_never_trusted(two_assets):
    from registry.transfer import pull

    reg, _, settings, url = two_assets
    first = pull("mindspore/cpu/2.0/two", registry=reg, settings=settings())
    path, _ = view_record(settings())
    path.write_bytes(path.read_bytes()[:100])
    pulled = pull("mindspore/cpu/2.0/two", registry=reg, settings=settings())
    assert [p.blob for p in pulled] == [p.blob for p in first] and not any(p.downloaded for p in pulled)
    blob = first[0].blob  # the same bytes under a new inode: its stamp no longer matches, it is re-hashed
    data = blob.read_bytes()
    blob.chmod(0o644)
    blob.unlink()
    blob.write_bytes(b"x" * len(data))
    pulled = pull("mindspore/cpu/2.0/two", registry=reg, settings=settings())
    assert pulled[0].downloaded and pulled[0].blob.read_bytes() == data
    assert len(url.access_log()) == 3


def test_a_card_record_others_can_write_is_not_trusted(two_assets):
    from registry.transfer import pull

    reg, _, settings, _ = two_assets
    pull("mindspore/cpu/2.0/two", registry=reg, settings=settings())
    forge_cosmetic(settings(), mode=0o664)  # group-writable: anyone of the group may have written it
    pulled, said = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
    assert not any(p.downloaded for p in pulled) and not any(FORGED in s for s in said), said
    if os.geteuid() != 0:
        print("skipping the other-owner half: chown needs root")
        return
    forge_cosmetic(settings())
    path, _ = view_record(settings())
    os.chown(path, 65534, 65534)  # another user's record in a shared cache
    pulled, said = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
    assert not any(p.downloaded for p in pulled) and not any(FORGED in s for s in said), said
    assert os.stat(path).st_uid == 65534  # left as it is: not ours to rewrite


def test_prefix_warning_and_full_sha256_requirement_hold_on_warm_pulls(two_assets):
    from registry.errors import CardError, PrefixWarning
    from registry.transfer import pull

    reg, path, settings, _ = two_assets
    text = path.read_text()
    digest = re.search(r"asset-sha256: ([0-9a-f]{64})", text).group(1)
    path.write_text(text.replace(digest, digest[:16]))
    for downloaded in (True, False):
        pulled, said = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=reg, settings=settings()))
        assert pulled[0].downloaded is downloaded and pulled[0].sha256 == digest
        assert [s for s in said if s.startswith(PrefixWarning.__name__)], said
    with pytest.raises(CardError, match="full digests are required"):
        pull("mindspore/cpu/2.0/two", registry=reg, settings=settings(require_full_sha256=True))


def test_a_cold_pull_of_many_assets_writes_the_view_record_once(tmp_path):
    from registry.settings import Settings
    from registry.transfer import pull

    site = tmp_path / "many"
    site.mkdir()
    assets = []
    for i in range(12):
        data = os.urandom(2000 + i)
        (site / f"part{i}.ckpt").write_bytes(data)
        assets.append(("ckpt", BASE + f"part{i}.ckpt", hashlib.sha256(data).hexdigest()))
    reg = tmp_path / "reg"
    write_card(reg, "mindspore/cpu/2.0/many", assets)
    written, recording = [], [True]

    def hook(event, args):
        if recording[0] and event == "open" and str(args[0]).startswith("..view.json."):
            written.append(str(args[0]))  # write_atomic's temporary file, renamed over .view.json

    with nginx(site) as url:
        settings = Settings(home=tmp_path / "home", mirrors=((BASE, url),), progress=False, jobs=4)
        sys.addaudithook(hook)
        try:
            pulled = pull("mindspore/cpu/2.0/many", registry=reg, settings=settings)
        finally:
            recording[0] = False
    assert len(pulled) == 12 and all(p.downloaded and p.path.read_bytes() == p.blob.read_bytes() for p in pulled)
    assert len(written) == 1, written  # with the card record; not once per asset
    view = Cache(tmp_path / "home").views()[0][2]
    assert sorted(view) == sorted(f"part{i}.ckpt" for i in range(12))


def test_a_warm_pull_from_a_remote_registry_uses_the_card_record_too(tmp_path):
    from registry.catalog import forget_remote_indexes
    from registry.index import build_index, dumps_index
    from registry.settings import Settings
    from registry.transfer import pull

    tree = tmp_path / "tree"
    data = os.urandom(4000)
    path = write_card(tree, "mindspore/cpu/2.0/two", [("ckpt", "weights/w.ckpt", hashlib.sha256(data).hexdigest())])
    (path.parent / "weights").mkdir()
    (path.parent / "weights" / "w.ckpt").write_bytes(data)
    (tree / "index.json").write_bytes(dumps_index(build_index(tree)))
    forget_remote_indexes()
    try:
        with nginx(tree) as url:
            settings = Settings(home=tmp_path / "home", progress=False)
            (first,) = pull("mindspore/cpu/2.0/two", registry=url, settings=settings)
            assert first.downloaded and first.asset.url == url + "mindspore/cpu/2.0/weights/w.ckpt"
            forge_cosmetic(settings)
            (warm,), said = card_warnings(lambda: pull("mindspore/cpu/2.0/two", registry=url, settings=settings))
            assert not warm.downloaded and warm.path.read_bytes() == data
            assert any(FORGED in s for s in said), said  # the remote card's bytes matched the record: not parsed
            assert [r["path"] for r in url.access_log()].count("/mindspore/cpu/2.0/weights/w.ckpt") == 1
    finally:
        forget_remote_indexes()
