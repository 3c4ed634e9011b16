"""The cache on real files: commit, stamps, views, and `registry cache ls | verify | prune | rm`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from registry.cache import Cache, hash_file
from registry.errors import NotFoundError, UsageError
from tests.conftest import run_cli


def put(cache: Cache, data: bytes, model: str, filename: str) -> str:
    """Commit `data` as a blob and link it into `model`'s view, as a pull does."""
    digest = hashlib.sha256(data).hexdigest()
    part = cache.partial_path(digest)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    with cache.lock(digest):
        cache.commit(part, digest)
        cache.link(
            model,
            filename,
            digest,
            size=len(data),
            file_format=filename.rsplit(".", 1)[-1],
            url=f"https://example.org/{filename}",
        )
    return digest


def cli(home: Path, *args: str):
    return run_cli("cache", *args, env={"REGISTRY_HOME": str(home)})


def test_hash_file_streams_whole_files_and_prefixes(tmp_path):
    data = os.urandom((3 << 20) + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hash_file(path) == (hashlib.sha256(data).hexdigest(), len(data))
    assert hash_file(path, 1_000_003) == (hashlib.sha256(data[:1_000_003]).hexdigest(), 1_000_003)
    with pytest.raises(UsageError, match="is a directory"):
        hash_file(tmp_path)
    with pytest.raises(UsageError, match="cannot read the file"):
        hash_file(tmp_path / "missing")


def test_commit_makes_a_read_only_stamped_blob_and_a_relative_link(tmp_path):
    cache = Cache(tmp_path / "home")
    digest = put(cache, b"weights", "mindspore/cpu/2.0/tiny", "tiny.ckpt")
    blob = cache.blob_path(digest)
    assert blob == tmp_path / "home" / "blobs" / "sha256" / digest[:2] / digest
    assert blob.stat().st_mode & 0o777 == 0o444
    stamp = json.loads(cache.stamp_path(digest).read_text())
    st = blob.stat()
    assert (stamp["sha256"], stamp["size"], stamp["mtime_ns"], stamp["ino"]) == (digest, 7, st.st_mtime_ns, st.st_ino)
    view = tmp_path / "home" / "models" / "mindspore" / "cpu" / "2.0" / "tiny" / "tiny.ckpt"
    assert os.readlink(view) == os.path.relpath(blob, view.parent) and view.read_bytes() == b"weights"
    assert cache.trusted(digest) == blob
    assert not cache.partial_path(digest).exists()


def test_stamp_mismatch_triggers_a_rehash_and_bad_bytes_are_removed(tmp_path):
    cache = Cache(tmp_path / "home")
    digest = put(cache, b"weights", "m/cpu/1/a", "a.ckpt")
    blob = cache.blob_path(digest)
    os.utime(blob, ns=(5, 5))
    assert cache.trusted(digest) is None
    with cache.lock(digest):
        assert cache.lookup(digest) == blob  # intact: re-hashed and restamped
    assert cache.trusted(digest) == blob
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    with cache.lock(digest):
        assert cache.lookup(digest) is None
    assert not blob.exists() and not cache.stamp_path(digest).exists()


def test_link_replaces_a_stale_view_file_and_records_it(tmp_path):
    cache = Cache(tmp_path / "home")
    first = put(cache, b"v1", "m/cpu/1/a", "a.ckpt")
    second = put(cache, b"v2", "m/cpu/1/a", "a.ckpt")
    view = cache.model_dir("m/cpu/1/a")
    assert (view / "a.ckpt").read_bytes() == b"v2"
    record = json.loads((view / ".view.json").read_text())
    assert record["id"] == "m/cpu/1/a" and record["files"]["a.ckpt"]["sha256"] == second
    assert first in {d for d, _ in cache.blobs()}  # now unreferenced: prune's business


def test_model_dir_refuses_names_that_escape(tmp_path):
    cache = Cache(tmp_path / "home")
    for bad in ("../x", "/etc/passwd", "a\\b", "a/../../b"):
        with pytest.raises(UsageError):
            cache.model_dir(bad)


def test_ls_json_and_text(tmp_path):
    home = tmp_path / "home"
    cache = Cache(home)
    a = put(cache, b"a" * 3000, "m/cpu/1/alpha", "alpha.ckpt")
    put(cache, b"b" * 10, "m/cpu/1/alpha", "alpha.air")
    put(cache, b"a" * 3000, "n/gpu/2/beta", "beta.ckpt")  # the same bytes: one blob, two views
    out = cli(home, "ls", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [m["id"] for m in data["models"]] == ["m/cpu/1/alpha", "n/gpu/2/beta"]
    assert data["models"][0]["size"] == 3010
    assert data["models"][1]["files"] == [
        {
            "filename": "beta.ckpt",
            "sha256": a,
            "size": 3000,
            "format": "ckpt",
            "path": str(home / "models" / "n/gpu/2/beta" / "beta.ckpt"),
            "present": True,
        }
    ]
    assert data["blobs"] == {"count": 2, "size": 3010}
    text = cli(home, "ls").stdout.splitlines()
    assert text[0] == f"cache {home}"
    assert "m/cpu/1/alpha  2.9 KiB" in text
    assert f"  {a[:12]}     2.9 KiB  alpha.ckpt" in text
    assert text[-1] == "2 blobs, 2.9 KiB; 0 unreferenced; 0 partial downloads, 0 B"


def test_verify_finds_and_removes_a_corrupted_blob_then_is_clean(tmp_path):
    home = tmp_path / "home"
    cache = Cache(home)
    digest = put(cache, b"weights", "m/cpu/1/a", "a.ckpt")
    good = put(cache, b"other", "m/cpu/1/a", "a.air")
    assert cli(home, "verify").stdout.splitlines() == ["verified 2 blobs, 12 B: ok"]
    blob = cache.blob_path(digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"weightz")
    out = cli(home, "verify")
    assert out.returncode == 1
    actual = hashlib.sha256(b"weightz").hexdigest()
    assert out.stdout.splitlines() == [
        f"bad blob {digest}: its bytes hash to {actual}; removed (pull again)",
        f"model m/cpu/1/a: a.ckpt has no blob {digest[:12]} (pull it again)",
        "verified 2 blobs, 12 B: 1 bad, 1 missing",
    ]
    assert {d for d, _ in cache.blobs()} == {good}
    # the view still names the missing blob until it is pulled again or removed
    assert cli(home, "rm", "a").returncode == 0
    out = cli(home, "verify", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["checked"] == 0


def test_prune_removes_unreferenced_blobs_and_idle_partials_but_not_locked_ones(tmp_path):
    home = tmp_path / "home"
    cache = Cache(home)
    kept = put(cache, b"kept", "m/cpu/1/a", "a.ckpt")
    orphan = put(cache, b"orphan", "m/cpu/1/a", "a.ckpt")  # replaces `kept` in the view
    put(cache, b"kept", "m/cpu/1/b", "b.ckpt")
    idle, busy = "1" * 64, "2" * 64
    cache.partial_path(idle).write_bytes(b"x" * 100)
    cache.partial_meta_path(idle).write_text("{}")
    cache.partial_path(busy).write_bytes(b"y" * 50)
    with cache.lock(busy):  # a download in progress in another process
        out = cli(home, "prune", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["removed_blobs"] == [] and sorted(data["removed_partial"]) == [f"{idle}.json", f"{idle}.part"]
    assert {d for d, _ in cache.blobs()} == {kept, orphan}  # both referenced: a->orphan, b->kept
    assert cache.partial_path(busy).exists()
    assert cli(home, "rm", "m/cpu/1/a").returncode == 0
    assert {d for d, _ in cache.blobs()} == {kept}  # orphan went with a; kept is still b's
    out = cli(home, "prune")
    assert out.stdout.startswith("removed 0 blobs and 1 partial file,")


def test_rm_removes_the_view_and_only_blobs_no_other_view_uses(tmp_path):
    home = tmp_path / "home"
    cache = Cache(home)
    shared = put(cache, b"shared", "m/cpu/1/alpha", "alpha.ckpt")
    own = put(cache, b"own", "m/cpu/1/alpha", "alpha.air")
    put(cache, b"shared", "n/gpu/2/beta", "beta.ckpt")
    out = cli(home, "rm", "alpha", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data == {"id": "m/cpu/1/alpha", "removed_blobs": [own], "freed": 3}
    assert not (home / "models" / "m").exists()
    assert {d for d, _ in cache.blobs()} == {shared}
    assert (home / "models" / "n/gpu/2/beta" / "beta.ckpt").read_bytes() == b"shared"


def test_temporary_links_left_by_a_killed_pull_are_swept_by_the_next_link_and_by_rm(tmp_path):
    home = tmp_path / "home"
    cache = Cache(home)
    put(cache, b"one", "m/cpu/1/alpha", "alpha.ckpt")
    view = home / "models" / "m/cpu/1/alpha"
    os.symlink("nowhere", view / ".alpha.ckpt.4242.77.tmp")  # as a pull killed between symlink and rename leaves it
    put(cache, b"two", "m/cpu/1/alpha", "alpha.air")
    assert not list(view.glob(".*.tmp"))
    os.symlink("nowhere", view / ".alpha.air.4242.78.tmp")
    out = cli(home, "rm", "alpha")
    assert out.returncode == 0, out.stderr
    assert not (home / "models" / "m").exists()


def test_rm_names_unknown_and_ambiguous_models(tmp_path):
    home = tmp_path / "home"
    cache = Cache(home)
    put(cache, b"1", "m/cpu/1/alpha", "a.ckpt")
    put(cache, b"2", "n/cpu/1/alpha", "a.ckpt")
    with pytest.raises(
        NotFoundError, match="ambiguous in the cache: use one of the full ids m/cpu/1/alpha, n/cpu/1/alpha"
    ):
        cache.rm("alpha")
    with pytest.raises(NotFoundError, match="did you mean alpha"):
        cache.rm("alpah")
    out = cli(home, "rm", "nothing")
    assert out.returncode == 3 and out.stderr.startswith("registry: error: no model 'nothing' in the cache")
    assert cli(home, "rm", "../x").returncode == 2


def test_a_stamp_that_cannot_be_written_leaves_a_verified_blob_that_is_rehashed_later(tmp_path):
    # The stamp only spares a re-hash: failing to write it (a full disk) must not fail the pull that verified the blob.
    cache = Cache(tmp_path / "home")
    data = b"weights"
    digest = hashlib.sha256(data).hexdigest()
    cache.stamp_path(digest).mkdir(parents=True)  # the stamp cannot be written there
    put(cache, data, "m/cpu/1/a", "a.ckpt")
    assert cache.trusted(digest) is None
    with cache.lock(digest):
        assert cache.lookup(digest) == cache.blob_path(digest)  # re-hashed, still usable
    assert [p.name for p in cache.blob_path(digest).parent.iterdir() if p.name.endswith(".tmp")] == []
    assert cache.verify().bad == []


def test_a_view_record_that_cannot_be_written_is_one_sentence_naming_the_cache(tmp_path):
    from registry.errors import RegistryError

    cache = Cache(tmp_path / "home")
    (cache.model_dir("m/cpu/1/a") / ".view.json").mkdir(parents=True)  # as a full disk or an I/O error would refuse it
    with pytest.raises(
        RegistryError, match=r"^cannot write to the cache directory .*/models/m/cpu/1/a: .*; check the disk"
    ):
        put(cache, b"weights", "m/cpu/1/a", "a.ckpt")


def test_link_waits_for_the_model_lock_so_rm_cannot_remove_the_directory_under_it(tmp_path):
    import threading

    cache = Cache(tmp_path / "home")
    data = b"weights"
    digest = put(cache, data, "m/cpu/1/b", "b.ckpt")
    done = threading.Event()

    def link():
        cache.link("m/cpu/1/a", "a.ckpt", digest, size=len(data), file_format="ckpt", url="https://example.org/a.ckpt")
        done.set()

    with cache.model_lock("m/cpu/1/a"):  # what `cache rm` holds while it empties and removes the directory
        worker = threading.Thread(target=link)
        worker.start()
        assert not done.wait(0.5)
        assert not cache.home.joinpath("models", "m", "cpu", "1", "a").exists()
    worker.join(10)
    assert done.is_set() and (cache.model_dir("m/cpu/1/a") / "a.ckpt").read_bytes() == data


def test_warm_trusts_a_blob_only_while_its_stat_matches_the_stamp_its_view_record_copied(tmp_path):
    cache = Cache(tmp_path)
    data = os.urandom(4096)
    digest = put(cache, data, "m/a", "w.ckpt")
    wanted = {"w.ckpt": (digest, "ckpt", "https://example.org/w.ckpt")}
    blob, record_file = cache.blob_path(digest), cache.model_dir("m/a") / ".view.json"
    st = os.lstat(blob)
    assert json.loads(record_file.read_text())["files"]["w.ckpt"]["stamp"] == [st.st_size, st.st_mtime_ns, st.st_ino]
    assert cache.warm("m/a", wanted) == {"w.ckpt": blob}

    # Other bytes of the same size put in its place, mtime restored: a new inode, matching no stamp.
    other = blob.with_name("other")
    other.write_bytes(bytes(b ^ 1 for b in data))
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, blob)
    assert os.lstat(blob).st_ino != st.st_ino and os.lstat(blob).st_mtime_ns == st.st_mtime_ns
    assert cache.warm("m/a", wanted) is None
    with cache.lock(digest):
        assert cache.lookup(digest) is None and not blob.exists()  # re-hashed: wrong bytes, removed

    # Bytes changed in place (same inode and size, mtime not restored): the old record does not match.
    digest = put(cache, data, "m/a", "w.ckpt")
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as fh:
        fh.write(b"\0" * 16)
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert cache.warm("m/a", wanted) is None

    # The view record of an older cache (no stamp) and one whose stamp is outdated (the blob re-verified
    # since): the blob's own stamp decides, as before.
    with cache.lock(digest):
        assert cache.lookup(digest) is None
    digest = put(cache, data, "m/a", "w.ckpt")
    view = json.loads(record_file.read_text())
    del view["files"]["w.ckpt"]["stamp"]
    record_file.write_text(json.dumps(view))
    assert cache.warm("m/a", wanted) == {"w.ckpt": blob}
    view["files"]["w.ckpt"]["stamp"] = [st.st_size, st.st_mtime_ns, st.st_ino + 1]
    record_file.write_text(json.dumps(view))
    assert cache.warm("m/a", wanted) == {"w.ckpt": blob}
    cache.stamp_path(digest).unlink()  # a blob without a stamp is never trusted on a stat
    assert cache.warm("m/a", wanted) is None
