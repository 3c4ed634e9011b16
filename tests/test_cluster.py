"""Many processes, one model: a shared cache without locks (REGISTRY_LOCKS=none) and the site caching proxy
of docs/nginx-cache.conf in front of an origin nginx, each with 8 real `registry pull` processes."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

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
