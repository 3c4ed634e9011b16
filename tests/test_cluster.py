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
import threading
import time
from pathlib import Path

import pytest

from registry.cache import UNTRUSTED_LOCK_FS, Cache, fs_type, node
from tests.conftest import ROOT
from tests.servers import fault_server, nginx, write_card

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


# The CLI's main, entered by every process at once: each imports registry, says it is ready and waits for the go,
# so that interpreter start-up (slow on a loaded machine) does not spread the pulls apart.
_AT_ONCE = """
import os, sys, time
from registry.cli import main
open(sys.argv[1] + ".ready." + str(os.getpid()), "w").close()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
sys.exit(main(sys.argv[2:]))
"""


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
    go = Path(reg) / f".go-{time.monotonic_ns()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _AT_ONCE, str(go), "pull", "--registry", str(reg), CARD_ID],
            env={**full, "REGISTRY_HOME": str(h)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in homes
    ]
    deadline = time.monotonic() + 60
    while len(list(go.parent.glob(go.name + ".ready.*"))) < len(procs) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break  # one failed to start: its output says why
        time.sleep(0.01)
    go.touch()
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
    with nginx(site, limit_rate="2m") as url:  # 1.5 s each: the 8 downloads overlap, however slowly they start
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


def test_without_locks_a_killed_download_is_resumed_by_the_next_pull(tmp_path, site, reg):
    home, size = tmp_path / "home", (site / "shared.ckpt").stat().st_size
    digest = hashlib.sha256((site / "shared.ckpt").read_bytes()).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REGISTRY_HOME": str(home), "REGISTRY_PROGRESS": "0"}
    with nginx(site, limit_rate="1m") as url:  # 3 s: time to kill it halfway
        args = [sys.executable, "-m", "registry", "pull", "--registry", str(reg), "--mirror", f"{BASE}={url}", CARD_ID]
        first = subprocess.Popen(args, env={**env, "REGISTRY_LOCKS": "none"}, stderr=subprocess.PIPE)
        while first.poll() is None and partial_bytes(home) < 256 << 10:
            time.sleep(0.01)
        first.kill()
        first.communicate()
        (part,) = (home / "partial").glob("*.part")
        kept = part.stat().st_size
        assert 0 < kept < size
        after = pull_in_processes(4, reg, home, url, REGISTRY_LOCKS="none")
        gets = [r for r in url.access_log() if r["path"] == "/shared.ckpt"]
    assert [r.returncode for r in after] == [0] * 4, [r.stderr for r in after]
    # The killed process's partial is this machine's and its pid is gone: adopted at once and resumed, by
    # one of the four (the rename decides); the others download their own or find the blob.
    resumed = f"registry: resuming the interrupted download {part.name} ({kept} bytes) of another process"
    assert sum(resumed in r.stderr for r in after) == 1, [r.stderr for r in after]
    ranged = [r for r in gets[1:] if r["range"]]
    assert len(ranged) == 1 and ranged[0]["range"] == f"bytes={kept}-" and ranged[0]["status"] == 206
    assert ranged[0]["bytes"] == size - kept and all(r["bytes"] == size for r in gets[1:] if not r["range"])
    assert hashlib.sha256(Cache(home).blob_path(digest).read_bytes()).hexdigest() == digest
    assert not [f for f in files_under(home) if f.startswith("partial/")], files_under(home)


def partial_bytes(home) -> int:
    """The size of the largest partial file in cache `home` (0 when there is none)."""
    sizes = [0]
    for p in (home / "partial").glob("*.part") if (home / "partial").is_dir() else ():
        try:
            sizes.append(p.stat().st_size)
        except FileNotFoundError:  # renamed or committed meanwhile
            pass
    return max(sizes)


def another_machines(part, age: float) -> Path:
    """`part` and its record as another machine's download (another node in the name) last touched `age`
    seconds ago."""
    theirs = part.name.replace(f".{node()}-", ".0123456789ab-")
    for suffix in (".part", ".json"):
        os.rename(part.with_name(part.name[:-5] + suffix), part.with_name(theirs[:-5] + suffix))
    then = time.time() - age
    os.utime(part.with_name(theirs), (then, then))
    return part.with_name(theirs)


def interrupted_without_locks(home: Path, url: str, reg: Path):
    """A lock-free pull from `url` (a fault server that resets once) that fails midway: (its Settings, the
    partial file it left, that file's size)."""
    from registry.errors import TransferError
    from registry.settings import Settings
    from registry.transfer import pull

    s = Settings(home=home, mirrors=((BASE, url),), retries=0, progress=False, locks="none")
    with pytest.raises(TransferError):
        pull(CARD_ID, registry=reg, settings=s)
    (part,) = (home / "partial").glob("*.part")
    return s, part, part.stat().st_size


def test_without_locks_another_machines_partial_is_adopted_only_once_untouched_for_resume_after(tmp_path, site, reg):
    from registry.cache import RESUME_AFTER
    from registry.transfer import pull

    home, data = tmp_path / "home", (site / "shared.ckpt").read_bytes()
    with fault_server(site, reset_after=1 << 20, times=1) as srv:
        s, part, kept = interrupted_without_locks(home, srv.url, reg)
        # touched lately: its writer may be alive on the other machine, so it is left alone
        theirs = another_machines(part, RESUME_AFTER / 2)
        (item,) = pull(CARD_ID, registry=reg, settings=s)
        assert not srv.gets()[-1]["range"] and theirs.stat().st_size == kept
        # untouched for longer: adopted (renamed, so only one process can) and resumed under If-Range
        os.utime(theirs, (time.time() - RESUME_AFTER - 5,) * 2)
        (again,) = pull(CARD_ID, registry=reg, settings=s, force=True)
        assert srv.gets()[-1]["range"] == f"bytes={kept}-"
    assert again.downloaded and again.path.read_bytes() == data
    assert not list((home / "partial").iterdir())


def test_without_locks_an_adopted_partial_that_changes_while_resuming_is_discarded(tmp_path, site, reg, caplog):
    from registry.cache import RESUME_AFTER
    from registry.transfer import pull

    home, data = tmp_path / "home", (site / "shared.ckpt").read_bytes()
    with fault_server(site, reset_after=1 << 20, times=1) as srv:
        s, part, kept = interrupted_without_locks(home, srv.url, reg)
        theirs = another_machines(part, RESUME_AFTER + 5)
        # Its writer only looked dead: it still holds the file open and writes into it once the adopter
        # is receiving the rest (after the adopter hashed the resumed bytes from disk).
        zombie = os.open(theirs, os.O_WRONLY)
        stop = threading.Event()

        def write_late() -> None:
            while not stop.is_set() and os.fstat(zombie).st_size < kept + (64 << 10):
                time.sleep(0.001)
            os.pwrite(zombie, b"stale bytes", 0)

        writer = threading.Thread(target=write_late)
        srv.set(rate=2 << 20)  # 1 s for the rest: the late write lands while the adopter receives
        writer.start()
        try:
            with caplog.at_level("INFO", logger="registry"):
                (item,) = pull(CARD_ID, registry=reg, settings=s)
        finally:
            stop.set()
            writer.join()
            os.close(zombie)
        ranges = [r["range"] for r in srv.gets()]
    assert ranges[-2:] == [f"bytes={kept}-", ""]  # the resume, then one clean download of its own
    assert "changed while downloading; starting over" in caplog.text
    assert item.path.read_bytes() == data
    assert hashlib.sha256(item.blob.read_bytes()).hexdigest() == item.sha256


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


def many_assets(tmp_path: Path, n: int, size: int) -> tuple[Path, Path]:
    """A site of n random files (of size, size + 1, ... bytes) and a registry whose card mindspore/cpu/2.0/many
    lists them all: (site, registry)."""
    site = tmp_path / "many"
    site.mkdir()
    assets = []
    for i in range(n):
        data = os.urandom(size + i)
        (site / f"part{i}.ckpt").write_bytes(data)
        assets.append(("ckpt", BASE + f"part{i}.ckpt", hashlib.sha256(data).hexdigest()))
    reg = tmp_path / "reg"
    write_card(reg, "mindspore/cpu/2.0/many", assets)
    return site, reg


def test_a_warm_pull_reads_one_view_record_and_takes_no_lock(tmp_path):
    from registry.settings import Settings
    from registry.transfer import pull

    site, reg = many_assets(tmp_path, 20, 1000)
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

    site, reg = many_assets(tmp_path, 12, 2000)
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


def test_without_locks_a_writer_that_only_looked_dead_cannot_write_into_the_committed_blob(tmp_path, site, reg):
    from registry.cache import RESUME_AFTER
    from registry.errors import TransferError
    from registry.settings import Settings
    from registry.transfer import pull

    home, data = tmp_path / "home", (site / "shared.ckpt").read_bytes()
    with fault_server(site, reset_after=1 << 20, times=1) as srv:
        s = Settings(home=home, mirrors=((BASE, srv.url),), retries=0, progress=False, locks="none")
        with pytest.raises(TransferError):
            pull(CARD_ID, registry=reg, settings=s)
        (part,) = (home / "partial").glob("*.part")
        theirs = another_machines(part, RESUME_AFTER + 5)
        # Another machine's writer stalled past RESUME_AFTER keeps its descriptor of the file adopted by rename.
        zombie = os.open(theirs, os.O_WRONLY)
        try:
            (item,) = pull(CARD_ID, registry=reg, settings=s)
            assert srv.gets()[-1]["range"]  # resumed from the adopted file
            assert os.fstat(zombie).st_ino != item.blob.stat().st_ino
            os.pwrite(zombie, b"stale bytes", 0)  # it wakes up and goes on writing
        finally:
            os.close(zombie)
    assert item.blob.read_bytes() == data
