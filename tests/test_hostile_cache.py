"""The cache when others can write in it, when it is read-only or shared by two users, when its disk is
full, and when its bytes rot. Real files, a real tmpfs for a full disk, a real second user (another uid via
setpriv) where permissions matter; tests that need root for those say so when skipped."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from registry.cache import Cache
from registry.errors import RegistryError
from registry.transfer import pull
from tests.conftest import ROOT, run_cli
from tests.servers import fault_server, write_card
from tests.test_hostile_server import BASE, settings_for

CARD_ID = "mindspore/cpu/2.0/tiny"
WEIGHTS = os.urandom(200_000)
DIGEST = hashlib.sha256(WEIGHTS).hexdigest()
OTHER_UID = 54321  # no passwd entry needed: setpriv switches to any uid


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "tiny.ckpt").write_bytes(WEIGHTS)
    return root


@pytest.fixture
def reg(tmp_path) -> Path:
    root = tmp_path / "reg"
    write_card(root, CARD_ID, [("ckpt", BASE + "tiny.ckpt", DIGEST)])
    return root


def cached(home: Path, site: Path, reg: Path) -> Path:
    """Pull the asset into `home` (through a mirror to a file:// copy of the site); the blob's path."""
    (item,) = pull("tiny", registry=reg, settings=settings_for(home, site.as_uri() + "/"))
    return item.blob


# --------------------------------------------------------------------------- symlinks planted by others


def test_a_symlink_planted_at_the_partial_path_is_not_written_through(tmp_path, site, reg, home):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"the user's file")
    part = Cache(home).partial_path(DIGEST)
    part.parent.mkdir(parents=True)
    os.symlink(victim, part)
    with fault_server(site) as srv:
        (item,) = pull("tiny", registry=reg, settings=settings_for(home, srv.url))
    assert item.path.read_bytes() == WEIGHTS and victim.read_bytes() == b"the user's file"
    assert not os.path.lexists(part)


def test_a_view_directory_replaced_by_a_symlink_is_refused_and_the_target_untouched(tmp_path, site, reg, home):
    cached(home, site, reg)
    victim = tmp_path / "documents"
    victim.mkdir()
    (victim / "tiny.ckpt").write_bytes(b"my own file")
    (victim / ".notes.1.2.tmp").write_bytes(b"looks like a temporary file")
    view = Cache(home).model_dir(CARD_ID)
    shutil.rmtree(view)
    os.symlink(victim, view)
    with pytest.raises(
        RegistryError,
        match=r"cache directory .*/tiny is a symbolic link or not a directory, which the "
        r"cache never creates: remove it",
    ):
        pull("tiny", registry=reg, settings=settings_for(home, site.as_uri() + "/"), force=True)
    out = run_cli("cache", "rm", CARD_ID, env={"REGISTRY_HOME": str(home)})  # the sweep must not touch it either
    assert "internal error" not in out.stderr
    assert sorted(p.name for p in victim.iterdir()) == [".notes.1.2.tmp", "tiny.ckpt"]
    assert (victim / "tiny.ckpt").read_bytes() == b"my own file"


def test_a_tampered_view_record_naming_outside_paths_makes_rm_delete_nothing_outside(tmp_path, site, reg, home):
    cached(home, site, reg)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    view = Cache(home).model_dir(CARD_ID)
    rel = os.path.relpath(victim, view)
    record = json.loads((view / ".view.json").read_text())
    record["files"][rel] = {"sha256": DIGEST, "size": 7, "format": "ckpt", "url": "x"}
    record["files"]["/" + str(victim).lstrip("/")] = {"sha256": DIGEST, "size": 7}
    (view / ".view.json").write_text(json.dumps(record))
    out = run_cli("cache", "rm", "tiny", env={"REGISTRY_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    assert victim.read_bytes() == b"keep me" and not view.exists()


@pytest.mark.parametrize(
    "record",
    [
        "[1, 2]",
        '{"files": [1]}',
        '{"files": {"a": 5}}',
        '{"files": {"a": {"sha256": 5, "size": "x"}}}',
        '{"files": {"a": {"sha256": "' + "0" * 64 + '", "size": "big", "format": 7}}}',
        '{"files": {"../../x": {"sha256": "' + "0" * 64 + '"}}}',
        "not json",
        "[" * 100_000,
    ],
)
def test_a_malformed_view_record_never_crashes_ls_verify_or_prune(tmp_path, site, reg, home, record):
    cached(home, site, reg)
    (Cache(home).model_dir(CARD_ID) / ".view.json").write_text(record)
    for action in ("ls", "verify", "prune", "ls"):
        out = run_cli("cache", action, env={"REGISTRY_HOME": str(home)})
        assert out.returncode in (0, 1) and "internal error" not in out.stderr, (action, out.stderr)


def test_a_symlinked_lock_file_is_one_sentence(tmp_path, site, reg, home):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    locks = home / "locks"
    locks.mkdir(parents=True)
    os.symlink(victim, locks / f"{DIGEST}.lock")
    out = run_cli(
        "--registry",
        str(reg),
        "pull",
        "tiny",
        env={"REGISTRY_HOME": str(home), "REGISTRY_PROGRESS": "0", "REGISTRY_MIRRORS": f"{BASE}={site.as_uri()}/"},
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("registry: error: cannot take the lock ") and "symbolic link" in out.stderr
    assert "internal error" not in out.stderr and victim.read_bytes() == b"keep me"


# --------------------------------------------------------------------------- names and leftovers


def test_a_245_character_file_name_fits_in_the_view_and_a_longer_one_gets_the_right_advice(tmp_path, home):
    site = tmp_path / "site"
    site.mkdir()
    (site / "short.ckpt").write_bytes(WEIGHTS)
    for n in (245, 300):
        root = tmp_path / f"reg{n}"
        name = "w" * (n - 5) + ".ckpt"
        write_card(root, CARD_ID, [("ckpt", BASE + name, DIGEST)])
        s = settings_for(home, None, mirrors=((BASE + name, (site / "short.ckpt").as_uri()),))  # served by any name
        if n == 245:
            (item,) = pull("tiny", registry=root, settings=s)
            assert item.path.name == name and item.path.read_bytes() == WEIGHTS
        else:
            with pytest.raises(
                RegistryError, match=r"File name too long; the file name is too long for this file system"
            ):
                pull("tiny", registry=root, settings=s, force=True)


def test_temporary_files_of_a_killed_stamp_or_metadata_write_are_removed_by_prune_and_the_next_fetch(
    tmp_path, site, reg, home
):
    blob = cached(home, site, reg)
    cache = Cache(home)
    stray = [
        blob.parent / f".{DIGEST}.stamp.4242.77.tmp",
        cache.partial_path(DIGEST).parent / f".{DIGEST}.json.4242.tmp",
    ]
    for p in stray:
        p.write_text("half")
    out = run_cli("cache", "prune", env={"REGISTRY_HOME": str(home)})
    assert out.returncode == 0 and not any(p.exists() for p in stray), out.stderr
    for p in stray:
        p.write_text("half")
    os.utime(blob, ns=(1, 1))  # no longer trusted by its stamp: the next fetch takes the lock and re-hashes
    cached(home, site, reg)
    assert not any(p.exists() for p in stray)


# --------------------------------------------------------------------------- bit rot


def test_load_parses_only_bytes_it_verified_and_repairs_a_rotten_blob(tmp_path, home, monkeypatch):
    ms = pytest.importorskip("mindspore", reason="MindSpore is not installed")
    import numpy as np

    import registry

    weights = {"w": np.arange(5000, dtype=np.float32)}
    site = tmp_path / "site"
    site.mkdir()
    ms.save_checkpoint([{"name": "w", "data": ms.Tensor(weights["w"])}], str(site / "tiny.ckpt"))
    root = tmp_path / "reg"
    write_card(
        root, CARD_ID, [("ckpt", BASE + "tiny.ckpt", hashlib.sha256((site / "tiny.ckpt").read_bytes()).hexdigest())]
    )
    monkeypatch.setenv("REGISTRY_MIRRORS", f"{BASE}={site.as_uri()}/")
    first = registry.load_weights(CARD_ID, registry=str(root))
    assert np.array_equal(first["w"].asnumpy(), weights["w"])
    blob = Cache(home).blob_path(hashlib.sha256((site / "tiny.ckpt").read_bytes()).hexdigest())
    st = os.stat(blob)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0x01  # one bit inside the float data
    blob.write_bytes(data)
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(blob, 0o444)
    assert Cache(home).trusted(blob.name) == blob  # size, mtime and inode unchanged: the stamp still matches
    again = registry.load_weights(CARD_ID, registry=str(root))
    assert np.array_equal(again["w"].asnumpy(), weights["w"])  # the rotten blob was removed and pulled again
    assert blob.read_bytes() == (site / "tiny.ckpt").read_bytes()


# --------------------------------------------------------------------------- other users: read-only and shared


def as_other_user(uid: int, *args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python ARGS` as another uid (a real second user: its own permissions, no root powers)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("a second user needs root and setpriv (util-linux) to switch uid; not available here")
    full = {**os.environ, "HOME": "/tmp", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", **env}
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, *args],
        capture_output=True,
        text=True,
        env=full,
        cwd="/",
        timeout=timeout,
    )


@contextlib.contextmanager
def world_dir(mode: int):
    """A directory every user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="registry-users-", dir="/tmp"))
    os.chmod(path, mode)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def readable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return dst


def test_a_populated_cache_another_user_cannot_write_serves_pull_offline_and_load(tmp_path, site):
    ms = pytest.importorskip("mindspore", reason="MindSpore is not installed")
    import numpy as np

    with world_dir(0o755) as shared:
        ms.save_checkpoint([{"name": "w", "data": ms.Tensor(np.arange(10, dtype=np.float32))}], str(site / "w.ckpt"))
        reg = shared / "reg"
        write_card(
            reg, CARD_ID, [("ckpt", BASE + "w.ckpt", hashlib.sha256((site / "w.ckpt").read_bytes()).hexdigest())]
        )
        os.chmod(reg, 0o755)
        home = shared / "home"
        pull("tiny", registry=reg, settings=settings_for(home, site.as_uri() + "/"))  # by root: the owner
        for p in [reg, *reg.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        env = {"REGISTRY_HOME": str(home), "REGISTRY_PROGRESS": "0"}
        out = as_other_user(OTHER_UID, "-m", "registry", "--registry", str(reg), "pull", "--offline", "tiny", env=env)
        assert out.returncode == 0 and out.stderr == "", out.stderr
        code = (
            "import registry, numpy as np\n"
            f"w = registry.load_weights({CARD_ID!r}, registry={str(reg)!r})\nprint(w['w'].asnumpy().sum())"
        )
        out = as_other_user(OTHER_UID, "-c", code, env={**env, "REGISTRY_OFFLINE": "1"}, timeout=300)
        assert out.returncode == 0 and out.stdout.split()[-1] == "45.0", out.stderr
        # a model that is not cached yet: one sentence saying why and what to do, not a PermissionError
        write_card(reg, "mindspore/cpu/2.0/other", [("ckpt", BASE + "tiny.ckpt", DIGEST)])
        for p in [reg, *reg.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        out = as_other_user(
            OTHER_UID,
            "-m",
            "registry",
            "--registry",
            str(reg),
            "pull",
            "other",
            env={**env, "REGISTRY_MIRRORS": f"{BASE}={readable_copy(site, shared / 'site').as_uri()}/"},
        )
        assert out.returncode == 2 and "is not writable by you: ask its owner" in out.stderr, out.stderr
        assert "internal error" not in out.stderr
        # verifying only reads: the other user can check the cache, and a bad blob is reported, not removed
        verified = as_other_user(OTHER_UID, "-m", "registry", "cache", "verify", env=env)
        assert verified.returncode == 0 and "1 blob" in verified.stdout + verified.stderr, verified.stderr
        blob = next((home / "blobs").rglob("*"))
        while blob.is_dir():
            blob = next(blob.iterdir())
        os.chmod(blob, 0o644)
        blob.write_bytes(b"rotten")
        os.chmod(blob, 0o444)
        rotten = as_other_user(OTHER_UID, "-m", "registry", "cache", "verify", env=env)
        assert rotten.returncode == 1 and "not removed: ask the cache's owner" in rotten.stdout + rotten.stderr
        assert blob.exists()


def test_a_shared_1777_cache_works_for_a_second_user(tmp_path, site):
    with world_dir(0o777) as shared:
        site_copy = readable_copy(site, shared / "site")
        (site_copy / "b.ckpt").write_bytes(WEIGHTS[::-1])
        os.chmod(site_copy / "b.ckpt", 0o644)
        reg = shared / "reg"
        write_card(reg, CARD_ID, [("ckpt", BASE + "tiny.ckpt", DIGEST)])
        write_card(reg, "mindspore/cpu/2.0/b", [("ckpt", BASE + "b.ckpt", hashlib.sha256(WEIGHTS[::-1]).hexdigest())])
        for p in [reg, *reg.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        home = shared / "home"
        home.mkdir()
        os.chmod(home, 0o1777)  # as /tmp: everyone may create, the sticky bit guards each one's files
        pull("tiny", registry=reg, settings=settings_for(home, site_copy.as_uri() + "/"))  # the first user
        assert stat.S_IMODE(os.stat(home / "locks").st_mode) & 0o002
        assert all(stat.S_IMODE(os.stat(p).st_mode) & 0o002 for p in (home / "locks").iterdir())
        env = {
            "REGISTRY_HOME": str(home),
            "REGISTRY_PROGRESS": "0",
            "REGISTRY_MIRRORS": f"{BASE}={site_copy.as_uri()}/",
        }
        for args in (["pull", "b"], ["pull", "--offline", "tiny"], ["cache", "verify"], ["cache", "ls"]):
            out = as_other_user(OTHER_UID, "-m", "registry", "--registry", str(reg), *args, env=env)
            assert out.returncode == 0, (args, out.stderr)
        assert Cache(home).blob_path(hashlib.sha256(WEIGHTS[::-1]).hexdigest()).stat().st_uid == OTHER_UID
        # the sticky bit keeps the first user's blob from being replaced by the second: a sentence, nothing left
        out = as_other_user(OTHER_UID, "-m", "registry", "--registry", str(reg), "pull", "tiny", "--force", env=env)
        assert out.returncode == 2 and "Operation not permitted; the cache" in out.stderr, out.stderr
        assert list((home / "partial").iterdir()) == []


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk():
    """A 1 MiB tmpfs: a real file system that fills up."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a full disk needs a small tmpfs, which needs root to mount; not available here")
    path = Path(tempfile.mkdtemp(prefix="registry-full-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True).returncode:
        path.rmdir()
        pytest.skip("mount -t tmpfs failed (no privilege to mount here): cannot make a full disk")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)
        path.rmdir()


def test_a_pull_failing_on_a_full_disk_deletes_its_partial(tmp_path, small_disk):
    big = os.urandom(3 << 20)
    site = tmp_path / "site"
    site.mkdir()
    (site / "tiny.ckpt").write_bytes(big)
    reg = tmp_path / "reg"
    write_card(reg, CARD_ID, [("ckpt", BASE + "tiny.ckpt", hashlib.sha256(big).hexdigest())])
    with fault_server(site, chunked=True) as srv:  # no length announced: the disk fills while writing
        with pytest.raises(RegistryError, match=r"No space left on device; free some space or set REGISTRY_HOME"):
            pull("tiny", registry=reg, settings=settings_for(small_disk, srv.url))
        with fault_server(site) as sized:  # a length announced: refused before writing
            with pytest.raises(RegistryError, match=r"bytes free, and the asset needs 3,145,728 more"):
                pull("tiny", registry=reg, settings=settings_for(small_disk, sized.url))
    assert [p for p in small_disk.rglob("*") if p.is_file() and p.parent.name == "partial"] == []


def test_list_on_a_full_disk_warns_that_the_index_is_not_kept_and_still_lists(tmp_path, small_disk):
    tree = tmp_path / "tree"
    write_card(tree, CARD_ID, [("ckpt", BASE + "tiny.ckpt", DIGEST)])
    from registry.index import build_index, dumps_index

    index = dumps_index(build_index(tree))
    (tree / "index.json").write_bytes(index + b" " * (2 << 20))  # larger than the disk
    with fault_server(tree) as srv:
        out = run_cli("--registry", srv.url, "list", env={"REGISTRY_HOME": str(small_disk)})
    assert out.returncode == 0 and CARD_ID in out.stdout, out.stderr
    assert "could not keep a copy of" in out.stderr and "No space left on device" in out.stderr
