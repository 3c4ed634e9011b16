"""Many processes, one model: a shared cache without locks (REGISTRY_LOCKS=none) and the site caching proxy
of docs/nginx-cache.conf in front of an origin nginx, each with 8 real `registry pull` processes."""

from __future__ import annotations

import errno
import hashlib
import json
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


# Runs `registry ARGS` with fcntl.flock failing as a file system without lock support makes it fail: the
# fault is injected at the OS call, so everything of ours above it runs as it would on such a mount.
NO_LOCKS = """
import errno, fcntl, os, stat, sys
real, only_files = fcntl.flock, sys.argv.pop(1) == "files"
def flock(fd, op):
    if only_files and not stat.S_ISREG(os.fstat(fd).st_mode):
        return real(fd, op)
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
fcntl.flock = flock
from registry.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_flock(where: str, *args: str, home, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_LOCKS, where, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "REGISTRY_HOME": str(home), "REGISTRY_PROGRESS": "0", **env},
        timeout=120,
    )


# "everywhere": the probe of the cache directory finds it; "files": only lock files fail (the directory
# probe passes), so the first lock taken switches the cache to lock-free mode mid-pull (_Lock._try).
@pytest.mark.parametrize("where", ["everywhere", "files"])
def test_a_file_system_refusing_locks_with_enolck_pulls_without_locks_and_says_so(tmp_path, site, reg, where):
    if UNTRUSTED_LOCK_FS.get(fs_type(tmp_path)):
        pytest.skip("the test directory is on a file system where auto already means no locks")
    home = tmp_path / "home"
    digest = hashlib.sha256((site / "shared.ckpt").read_bytes()).hexdigest()
    with nginx(site) as url:
        pull = ("pull", "--registry", str(reg), "--mirror", f"{BASE}={url}", CARD_ID)
        out = run_without_flock(where, *pull, home=home)
        # REGISTRY_LOCKS=file is a promise to lock: a refusal is then an error, not a silent switch
        forced = run_without_flock(where, *pull, "--force", home=tmp_path / "other", REGISTRY_LOCKS="file")
    assert forced.returncode == 2 and "cannot take the lock" in forced.stderr, forced.stderr
    assert out.returncode == 0, out.stderr
    assert f"registry: cache {home}: working without locks (REGISTRY_LOCKS=none): the file system refuses locks" in (
        out.stderr
    )
    assert os.strerror(errno.ENOLCK) in out.stderr
    assert [d for d, _ in Cache(home).blobs()] == [digest]
    assert not (home / "partial").exists() or not list((home / "partial").iterdir())
    if where == "everywhere":
        assert not (home / "locks").exists()  # decided before the first lock file
        env = run_without_flock(where, "env", "--json", home=home)
        assert json.loads(env.stdout)["locks"] == {
            "setting": "auto",
            "in_force": "none",
            "reason": f"the file system refuses locks ({os.strerror(errno.ENOLCK)})",
        }


def test_lock_mode_follows_the_statfs_type_of_the_cache_directory(tmp_path, site, reg, monkeypatch, caplog):
    # fs_type reads f_type with statfs(2); coreutils' `stat -f` reads it independently.
    real = fs_type(tmp_path)
    assert real == int(
        subprocess.run(["stat", "-f", "-c", "%t", str(tmp_path)], capture_output=True, text=True).stdout, 16
    )
    if UNTRUSTED_LOCK_FS.get(real):
        pytest.skip(f"the test directory is on {UNTRUSTED_LOCK_FS[real]}, where auto already means no locks")
    assert Cache(tmp_path / "home").lock_mode() == ("file", "flock works on its file system")
    # The table is the seam: this real file system's type, listed as untrusted, switches the mode.
    monkeypatch.setitem(UNTRUSTED_LOCK_FS, real, "testfs")
    home = tmp_path / "home"
    assert Cache(home).lock_mode() == ("none", "the cache is on testfs, whose locks are not trusted across machines")
    assert Cache(home, locks="file").lock_mode() == ("file", "REGISTRY_LOCKS=file")
    from registry.settings import Settings
    from registry.transfer import pull

    with nginx(site) as url, caplog.at_level("INFO", logger="registry"):
        (item,) = pull(CARD_ID, registry=reg, settings=Settings(home=home, mirrors=((BASE, url),), progress=False))
    assert item.downloaded and not (home / "locks").exists()
    assert f"cache {home}: working without locks (REGISTRY_LOCKS=none): the cache is on testfs" in caplog.text


@pytest.mark.parametrize(
    "setting, shown",
    [
        ("auto", "auto (in force: file: flock works on its file system)"),
        ("none", "none (in force: none: REGISTRY_LOCKS=none)"),
        ("file", "file (in force: file: REGISTRY_LOCKS=file)"),
    ],
)
def test_env_shows_the_lock_setting_and_the_mode_in_force_with_its_reason(tmp_path, setting, shown):
    if UNTRUSTED_LOCK_FS.get(fs_type(tmp_path)):
        pytest.skip("the test directory is on a file system where auto already means no locks")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REGISTRY_HOME": str(tmp_path / "home"), "REGISTRY_LOCKS": setting}
    text = subprocess.run([sys.executable, "-m", "registry", "env"], capture_output=True, text=True, env=env)
    assert f"\n  locks: {shown}\n" in text.stdout, text.stdout
    doc = json.loads(
        subprocess.run(
            [sys.executable, "-m", "registry", "env", "--format", "json"], capture_output=True, text=True, env=env
        ).stdout
    )
    mode, reason = shown.split("(in force: ")[1].rstrip(")").split(": ", 1)
    assert doc["locks"] == {"setting": setting, "in_force": mode, "reason": reason}
    assert doc["settings"]["locks"] == setting
    assert not (tmp_path / "home").exists()  # finding the mode wrote nothing


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
