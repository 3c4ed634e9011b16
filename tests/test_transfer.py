"""The transfer engine against real servers on 127.0.0.1: nginx for the normal path, Range and ETag; our
fault server for resets, truncation, 5xx/429, wrong bytes, no Range, trickles and cross-host redirects.

Cards link to https://download.example.org/m/ (as a published card would) and a mirror rewrites that prefix
to the local server, so every test also exercises mirrors.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from registry import transfer
from registry.cache import Cache
from registry.catalog import resolve
from registry.errors import CardError, CardWarning, IntegrityError, NotFoundError, OfflineError, TransferError
from registry.settings import Settings
from registry.transfer import Engine, _Hasher, apply_mirrors, pull
from tests.conftest import ROOT, run_cli
from tests.servers import fault_server, nginx, write_card

BASE = "https://download.example.org/m/"
CARD_ID = "mindspore/cpu/2.0/tiny"


@pytest.fixture
def site(tmp_path) -> Path:
    """Files to serve: a 2 MiB checkpoint and a small second asset."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "tiny.ckpt").write_bytes(os.urandom(2 << 20))
    (root / "tiny.air").write_bytes(os.urandom(5000))
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def reg(tmp_path, site) -> Path:
    root = tmp_path / "reg"
    write_card(
        root,
        CARD_ID,
        [("ckpt", BASE + "tiny.ckpt", sha(site / "tiny.ckpt")), ("air", BASE + "tiny.air", sha(site / "tiny.air"))],
    )
    return root


def settings_for(home: Path, url: str | None, **kw) -> Settings:
    base = dict(
        home=home,
        mirrors=((BASE, url),) if url else (),
        retries=2,
        backoff=0.01,
        connect_timeout=2,
        read_timeout=2,
        jobs=2,
        progress=False,
    )
    base.update(kw)
    return Settings(**base)


def assert_cache_clean(home: Path) -> None:
    report = Cache(home).verify()
    assert report.ok, report


def blobs(home: Path) -> list[str]:
    return sorted(d for d, _ in Cache(home).blobs())


# --------------------------------------------------------------------------- the normal path (nginx)


def test_pull_from_nginx_then_warm_pull_uses_no_network_and_no_hashing(reg, site, home, monkeypatch):
    with nginx(site) as url:
        s = settings_for(home, url)
        items = pull("tiny", registry=reg, settings=s)
        assert [p.asset.file_format for p in items] == ["ckpt", "air"]
        for p in items:
            assert p.downloaded
            assert p.path == home / "models" / CARD_ID / p.asset.filename
            assert p.path.read_bytes() == (site / p.asset.filename).read_bytes()
            assert p.blob == home / "blobs" / "sha256" / p.asset.sha256[:2] / p.asset.sha256
            assert p.path.is_symlink() and not os.path.isabs(os.readlink(p.path))
            assert not os.access(p.blob, os.W_OK) or os.geteuid() == 0
            assert p.blob.stat().st_mode & 0o777 == 0o444
        assert not list((home / "partial").iterdir())
        logged = len(url.access_log())
        assert logged == 2

        def no_hashing(*a, **k):
            raise AssertionError("a warm pull must not re-hash")

        monkeypatch.setattr("registry.cache.hash_file", no_hashing)
        again = pull(CARD_ID, registry=reg, settings=s)
        assert [p.downloaded for p in again] == [False, False]
        assert [p.path for p in again] == [p.path for p in items]
        assert len(url.access_log()) == logged
    monkeypatch.undo()
    assert_cache_clean(home)


def test_a_blob_swapped_after_a_warm_pull_for_same_size_bytes_with_its_mtime_is_fetched_again(reg, site, home):
    with nginx(site) as url:
        s = settings_for(home, url)
        pull("tiny", registry=reg, settings=s)
        first, _ = pull(CARD_ID, registry=reg, settings=s)
        assert not first.downloaded
        st = os.lstat(first.blob)
        swapped = first.blob.with_name("swapped")
        swapped.write_bytes(bytes(b ^ 1 for b in first.blob.read_bytes()))
        os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(swapped, first.blob)  # same size and mtime, another inode: neither stamp matches it
        again, _ = pull(CARD_ID, registry=reg, settings=s)
        assert again.downloaded and again.blob.read_bytes() == (site / first.asset.filename).read_bytes()
        assert again.path.read_bytes() == again.blob.read_bytes()
    assert_cache_clean(home)


def test_warm_pull_does_not_import_requests(reg, site, home):
    with nginx(site) as url:
        pull("tiny", registry=reg, settings=settings_for(home, url))
    code = (
        "import sys\nfrom registry.transfer import pull\nfrom registry.settings import Settings\n"
        f"items = pull('tiny', registry={str(reg)!r}, settings=Settings(home={str(home)!r}, progress=False))\n"
        "assert not any(p.downloaded for p in items)\nprint('requests' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_changed_stamp_rehashes_without_network(reg, site, home):
    with nginx(site) as url:
        s = settings_for(home, url)
        first = pull("tiny", registry=reg, settings=s, formats=["ckpt"])[0]
        os.utime(first.blob, ns=(1, 1))  # the stamp's mtime no longer matches
        assert Cache(home).trusted(first.asset.sha256) is None
        again = pull("tiny", registry=reg, settings=s, formats=["ckpt"])[0]
        assert not again.downloaded and len(url.access_log()) == 1
        assert Cache(home).trusted(first.asset.sha256) == first.blob  # restamped after the re-hash


def test_tampered_blob_is_replaced_by_a_fresh_download(reg, site, home):
    with nginx(site) as url:
        s = settings_for(home, url)
        first = pull("tiny", registry=reg, settings=s, formats=["ckpt"])[0]
        os.chmod(first.blob, 0o644)
        with open(first.blob, "r+b") as fh:
            fh.write(b"\0" * 16)
        again = pull("tiny", registry=reg, settings=s, formats=["ckpt"])[0]
        assert again.downloaded and sha(again.path) == first.asset.sha256
        assert len(url.access_log()) == 2
    assert_cache_clean(home)


def test_resume_from_nginx_with_range_and_if_range(reg, site, home):
    digest = sha(site / "tiny.ckpt")
    data = (site / "tiny.ckpt").read_bytes()
    cache = Cache(home)
    with nginx(site) as url:
        import requests

        etag = requests.head(url + "tiny.ckpt").headers["ETag"]
        cache.partial_path(digest).parent.mkdir(parents=True)
        cache.partial_path(digest).write_bytes(data[:700_000])
        cache.partial_meta_path(digest).write_text(
            json.dumps({"url": url + "tiny.ckpt", "etag": etag, "size": len(data)})
        )
        item = pull("tiny", registry=reg, settings=settings_for(home, url), formats=["ckpt"])[0]
        assert item.path.read_bytes() == data
        (row,) = [r for r in url.access_log() if r["method"] == "GET"]
        assert (row["status"], row["bytes"], row["range"], row["if_range"]) == (
            206,
            len(data) - 700_000,
            "bytes=700000-",
            etag,
        )
    assert not cache.partial_path(digest).exists() and not cache.partial_meta_path(digest).exists()
    assert_cache_clean(home)


def test_changed_etag_makes_nginx_send_the_whole_file_and_the_pull_restarts_cleanly(reg, site, home):
    digest = sha(site / "tiny.ckpt")
    data = (site / "tiny.ckpt").read_bytes()
    cache = Cache(home)
    cache.partial_path(digest).parent.mkdir(parents=True)
    cache.partial_path(digest).write_bytes(b"x" * 500_000)  # bytes of an older version of the file
    with nginx(site) as url:
        cache.partial_meta_path(digest).write_text(json.dumps({"url": url + "tiny.ckpt", "etag": '"old-version"'}))
        item = pull("tiny", registry=reg, settings=settings_for(home, url), formats=["ckpt"])[0]
        assert item.path.read_bytes() == data
        (row,) = url.access_log()
        assert (row["status"], row["bytes"], row["if_range"]) == (200, len(data), '"old-version"')
    assert_cache_clean(home)


def test_partial_complete_on_disk_is_verified_without_network(reg, site, home):
    digest = sha(site / "tiny.ckpt")
    cache = Cache(home)
    cache.partial_path(digest).parent.mkdir(parents=True)
    cache.partial_path(digest).write_bytes((site / "tiny.ckpt").read_bytes())
    with fault_server(site) as srv:
        cache.partial_meta_path(digest).write_text(
            json.dumps({"url": srv.url + "tiny.ckpt", "etag": '"e"', "size": (site / "tiny.ckpt").stat().st_size})
        )
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])[0]
        assert item.downloaded and srv.gets() == []


# --------------------------------------------------------------------------- faults (our server)


def test_truncated_body_is_retried_and_resumed_with_range(reg, site, home):
    with fault_server(site, times=1, truncate_after=600_000) as srv:
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])[0]
        first, second = srv.gets("tiny.ckpt")
        assert first["status"] == 200 and first["range"] == ""
        assert second["status"] == 206 and second["range"] == "bytes=600000-" and second["if_range"]
    assert sha(item.path) == item.asset.sha256
    assert_cache_clean(home)


def test_connection_reset_mid_body_is_retried_and_resumed(reg, site, home):
    # A reset makes the kernel drop what was still unread: the resume starts somewhere in (0, 600000].
    with fault_server(site, times=1, reset_after=600_000) as srv:
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])[0]
        first, second = srv.gets("tiny.ckpt")
        assert first["status"] == 200 and second["status"] == 206
        assert 0 < int(second["range"].removeprefix("bytes=").rstrip("-")) <= 600_000
    assert sha(item.path) == item.asset.sha256
    assert_cache_clean(home)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_retried(reg, site, home, status):
    with fault_server(site, status=status, times=2) as srv:
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])[0]
        assert [r["status"] for r in srv.gets("tiny.ckpt")] == [status, status, 200]
    assert sha(item.path) == item.asset.sha256


def test_retry_after_is_honoured(reg, site, home):
    with fault_server(site, status=429, retry_after="1", times=1) as srv:
        began = time.monotonic()
        pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])
        assert time.monotonic() - began >= 1.0
        assert len(srv.gets("tiny.ckpt")) == 2


@pytest.mark.parametrize("retry_after", ["86400", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_beyond_the_cap_fails_at_once_instead_of_sleeping(reg, site, home, retry_after):
    with fault_server(site, status=503, retry_after=retry_after) as srv:
        began = time.monotonic()
        with pytest.raises(TransferError) as err:
            pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])
        assert time.monotonic() - began < 5 and len(srv.gets("tiny.ckpt")) == 1
    assert str(err.value).startswith(
        f"could not download {srv.url}tiny.ckpt: HTTP 503 Service Unavailable, and the server asks to wait "
    )
    assert str(err.value).endswith(
        f" s before retrying (more than the {transfer.MAX_RETRY_AFTER:g} s we wait): try again later"
    )


def test_retries_exhausted_names_the_url_the_attempts_and_the_cause(reg, site, home):
    with fault_server(site, status=503) as srv:
        with pytest.raises(TransferError) as err:
            pull("tiny", registry=reg, settings=settings_for(home, srv.url, retries=2), formats=["ckpt"])
        assert len(srv.gets("tiny.ckpt")) == 3
    msg = str(err.value)
    assert msg == f"could not download {srv.url}tiny.ckpt after 3 attempts: HTTP 503 Service Unavailable"
    assert blobs(home) == []
    assert_cache_clean(home)


@pytest.mark.parametrize("status", [404, 403])
def test_client_errors_fail_at_once(reg, site, home, status):
    with fault_server(site, status=status) as srv:
        with pytest.raises(TransferError) as err:
            pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])
        assert len(srv.gets()) == 1
    assert f"HTTP {status}" in str(err.value) and "\n" not in str(err.value)
    assert_cache_clean(home)


def test_wrong_bytes_are_discarded_and_both_digests_named(reg, site, home):
    digest = sha(site / "tiny.ckpt")
    with fault_server(site, corrupt=True) as srv:
        with pytest.raises(IntegrityError) as err:
            pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])
        assert len(srv.gets()) == 1
    data = (site / "tiny.ckpt").read_bytes()
    actual = hashlib.sha256(bytes(b ^ 0x5A for b in data)).hexdigest()
    assert f"expected {digest}, got {actual}" in str(err.value) and "tiny.ckpt" in str(err.value)
    assert blobs(home) == [] and list((home / "partial").iterdir()) == []
    assert not (home / "models" / CARD_ID / "tiny.ckpt").exists()
    assert_cache_clean(home)


def test_mismatch_after_resume_retries_once_from_scratch(reg, site, home):
    """Partial bytes from another file with a matching validator: the spliced result fails the digest, so the
    engine discards everything and downloads the whole file once more."""
    digest = sha(site / "tiny.ckpt")
    cache = Cache(home)
    cache.partial_path(digest).parent.mkdir(parents=True)
    cache.partial_path(digest).write_bytes(b"y" * 100_000)
    with fault_server(site) as srv:
        import requests

        etag = requests.head(srv.url + "tiny.ckpt").headers["ETag"]
        cache.partial_meta_path(digest).write_text(json.dumps({"url": srv.url + "tiny.ckpt", "etag": etag}))
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])[0]
        assert [r["status"] for r in srv.gets()] == [206, 200]
    assert sha(item.path) == digest


def test_a_compressed_body_sent_although_identity_was_asked_is_never_decoded(reg, site, home):
    # The bytes stored are the bytes sent: a server compressing a file on the fly sent other bytes than the file.
    with fault_server(site, gzip=True) as srv:
        with pytest.raises(IntegrityError, match=r"Content-Encoding: gzip although asked for identity"):
            pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])
        assert [r["status"] for r in srv.gets("tiny.ckpt")] == [200]
    assert blobs(home) == [] and list((home / "partial").iterdir()) == []


def test_a_gz_asset_served_with_content_encoding_gzip_keeps_its_bytes_and_sha256(tmp_path, home):
    import gzip

    site = tmp_path / "gz"
    site.mkdir()
    (site / "tiny.ckpt.gz").write_bytes(gzip.compress(os.urandom(100_000)))
    root = tmp_path / "reg"
    write_card(root, CARD_ID, [("ckpt", BASE + "tiny.ckpt.gz", sha(site / "tiny.ckpt.gz"))])
    with fault_server(site, content_encoding="gzip") as srv:  # as nginx gzip_static or S3 metadata label .gz files
        (item,) = pull("tiny", registry=root, settings=settings_for(home, srv.url))
    assert item.path.read_bytes() == (site / "tiny.ckpt.gz").read_bytes()


@pytest.mark.parametrize("manner", ["chunked"])
def test_chunked_and_compressed_bodies_go_through_the_general_reader(reg, site, home, manner):
    # Not the plain known-length body of the fast reader: http.client's chunked reader.
    with fault_server(site, **{manner: True}) as srv:
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])[0]
        assert [r["status"] for r in srv.gets("tiny.ckpt")] == [200]
    assert item.downloaded and sha(item.path) == item.asset.sha256
    assert_cache_clean(home)


def test_server_without_range_support_restarts_cleanly(reg, site, home):
    with fault_server(site, truncate_after=300_000, times=1, no_range=True) as srv:
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])[0]
        first, second = srv.gets("tiny.ckpt")
        assert second["range"] == "bytes=300000-" and second["status"] == 200
    assert sha(item.path) == item.asset.sha256
    assert_cache_clean(home)


def test_no_validator_means_no_resume(reg, site, home):
    with fault_server(site, reset_after=300_000, times=1, no_etag=True) as srv:
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url), formats=["ckpt"])[0]
        assert [r["range"] for r in srv.gets()] == ["", ""]
    assert sha(item.path) == item.asset.sha256


def test_trickle_slower_than_the_read_timeout_is_retried(reg, site, home):
    with fault_server(site, stall_after=200_000, stall=3, times=1) as srv:
        began = time.monotonic()
        item = pull("tiny", registry=reg, settings=settings_for(home, srv.url, read_timeout=0.5), formats=["ckpt"])[0]
        assert time.monotonic() - began < 2.5
        assert [r["range"] for r in srv.gets()] == ["", "bytes=200000-"]
    assert sha(item.path) == item.asset.sha256


def test_trickle_that_never_recovers_fails_with_a_read_timeout(reg, site, home):
    with fault_server(site, stall_after=1000, stall=2) as srv:
        with pytest.raises(TransferError, match=r"after 2 attempts: no data for 0.3 s \(read timeout\)$"):
            pull(
                "tiny",
                registry=reg,
                settings=settings_for(home, srv.url, read_timeout=0.3, retries=1),
                formats=["ckpt"],
            )
    assert_cache_clean(home)


def test_connection_refused(reg, site, home):
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(TransferError, match=r"after 2 attempts: connection refused$"):
        pull("tiny", registry=reg, settings=settings_for(home, url, retries=1), formats=["ckpt"])


RESOLVED: list[str] | None = None  # host names looked up (socket.getaddrinfo) while a test records them


def _record_lookups(event: str, args: tuple) -> None:
    if event == "socket.getaddrinfo" and RESOLVED is not None:
        RESOLVED.append(args[0])


sys.addaudithook(_record_lookups)


def lookups(fn) -> tuple[list[str], TransferError]:
    """The host names `fn()` looked up, with the error it raised (TransferError expected)."""
    global RESOLVED
    RESOLVED = []
    try:
        with pytest.raises(TransferError) as caught:
            fn()
        return RESOLVED, caught.value
    finally:
        RESOLVED = None


def test_a_host_that_does_not_resolve_fails_at_once_naming_the_host(reg, site, home):
    # .invalid resolves nowhere (RFC 2606): the resolver answers "no such name" (here in milliseconds: the
    # local resolver answers NXDOMAIN; /etc/hosts has no .invalid names), which no retry can change.
    url = "http://registry-test.invalid/m/"

    def asset(retries: int):
        return lambda: pull("tiny", registry=reg, settings=settings_for(home, url, retries=retries), formats=["ckpt"])

    once, _ = lookups(asset(0))
    asked, error = lookups(asset(3))
    assert asked == once and set(once) == {"registry-test.invalid"}  # as many lookups as with no retries
    message = str(error)
    assert "the host registry-test.invalid does not resolve" in message
    assert "REGISTRY_URL" in message and "--mirror" in message and "attempt" not in message
    assert error.exit_code == 5 and message.count(". ") == 0
    out = run_cli("pull", "tiny", "--registry", str(reg), "--mirror", f"{BASE}={url}", env={"REGISTRY_RETRIES": "3"})
    assert out.returncode == 5 and "registry-test.invalid does not resolve" in out.stderr, out.stderr
    # the registry's index is not asked again either
    remote = "http://registry-test.invalid/"
    once, _ = lookups(lambda: pull("tiny", registry=remote, settings=settings_for(home, None, retries=0)))
    asked, error = lookups(lambda: pull("tiny", registry=remote, settings=settings_for(home, None, retries=3)))
    assert asked == once and "registry-test.invalid/index.json" in str(error) and error.exit_code == 5


def test_token_goes_only_to_its_host_and_not_after_a_redirect(reg, site, home):
    with fault_server(site, host="localhost") as other, fault_server(site, redirect=other.url) as first:
        s = settings_for(home, first.url, token="s3cret", token_host="127.0.0.1")
        item = pull("tiny", registry=reg, settings=s, formats=["ckpt"])[0]
        assert [r["authorization"] for r in first.gets()] == ["Bearer s3cret"]
        assert [r["authorization"] for r in other.gets()] == [""]
        assert other.gets()[0]["status"] == 200
    assert sha(item.path) == item.asset.sha256


def test_a_password_in_a_link_is_not_shown_in_error_messages(reg, site, home):
    with fault_server(site, status=404) as srv:
        mirror = srv.url.replace("http://", "http://user:s3cret@")
        with pytest.raises(TransferError) as err:
            pull("tiny", registry=reg, settings=settings_for(home, mirror), formats=["ckpt"])
    assert "s3cret" not in str(err.value)
    assert str(err.value).startswith(f"could not download {srv.url.replace('http://', 'http://user:***@')}tiny.ckpt: ")


def test_token_is_not_sent_to_another_host(reg, site, home):
    with fault_server(site) as srv:
        pull(
            "tiny",
            registry=reg,
            settings=settings_for(home, srv.url, token="s3cret", token_host="models.example.org"),
            formats=["ckpt"],
        )
        assert [r["authorization"] for r in srv.gets()] == [""]


# --------------------------------------------------------------------------- links, mirrors, selection, offline


def test_relative_links_resolve_against_the_card_and_file_links_copy(tmp_path, site, home):
    root = tmp_path / "static"
    card = write_card(
        root,
        CARD_ID,
        [("ckpt", "weights/tiny.ckpt", sha(site / "tiny.ckpt")), ("air", BASE + "tiny.air", sha(site / "tiny.air"))],
    )
    (card.parent / "weights").mkdir()
    os.link(site / "tiny.ckpt", card.parent / "weights" / "tiny.ckpt")
    # the card's own relative link becomes file://; the https one is mirrored to a directory (file://)
    items = pull("tiny", registry=root, settings=settings_for(home, site.as_uri() + "/"))
    assert [urlsplit(p.asset.url).scheme for p in items] == ["file", "https"]
    assert [p.path.read_bytes() for p in items] == [(site / "tiny.ckpt").read_bytes(), (site / "tiny.air").read_bytes()]
    # the same card hosted as static files: its relative link resolves against the card's URL
    from registry.catalog import Entry, resolve

    local = resolve("tiny", root)
    with nginx(root) as url:
        remote = Entry(local.id, local.card, url + CARD_ID + ".md", url + "mindspore/cpu/2.0/")
        item = pull(remote, settings=settings_for(tmp_path / "home2", None), formats=["ckpt"])[0]
        assert item.asset.url == url + "mindspore/cpu/2.0/weights/tiny.ckpt"
        assert item.path.read_bytes() == (site / "tiny.ckpt").read_bytes()
        assert [r["path"] for r in url.access_log()] == ["/mindspore/cpu/2.0/weights/tiny.ckpt"]


def test_file_url_link_in_a_card_is_copied_and_verified(tmp_path, site, home):
    root = tmp_path / "cards"
    write_card(root, CARD_ID, [("ckpt", (site / "tiny.ckpt").as_uri(), sha(site / "tiny.ckpt"))])
    (item,) = pull("tiny", registry=root, settings=settings_for(home, None))
    assert urlsplit(item.asset.url).scheme == "file"
    assert item.path.read_bytes() == (site / "tiny.ckpt").read_bytes()
    assert_cache_clean(home)


def test_missing_file_link_is_one_clear_sentence(tmp_path, site, home):
    root = tmp_path / "static"
    write_card(root, CARD_ID, [("ckpt", "weights/none.ckpt", "0" * 64)])
    with pytest.raises(
        TransferError, match=r"^cannot read .*none\.ckpt \(asset 1 of mindspore/cpu/2\.0/tiny\): No such file"
    ):
        pull("tiny", registry=root, settings=settings_for(home, None))
    assert_cache_clean(home)


def test_file_link_to_something_not_a_regular_file_is_refused_at_once(tmp_path, site, home):
    # A FIFO would block the copy forever, /dev/zero would fill the disk: only regular files are copied.
    root = tmp_path / "static"
    os.mkfifo(tmp_path / "fifo")
    write_card(root, CARD_ID, [("ckpt", (tmp_path / "fifo").as_uri(), "0" * 64), ("air", "file:///dev/zero", "1" * 64)])
    env = {"REGISTRY_HOME": str(home), "REGISTRY_PROGRESS": "0", "REGISTRY_JOBS": "1"}
    for fmt, name in (("ckpt", "fifo"), ("air", "/dev/zero")):
        out = subprocess.run(
            [sys.executable, "-m", "registry", "--registry", str(root), "pull", "tiny", "--file-format", fmt],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=ROOT,
            timeout=60,
        )
        assert out.returncode == 5, out.stderr
        assert out.stderr.startswith(
            f"registry: error: cannot read {tmp_path / name if fmt == 'ckpt' else name} "
            f"(asset {1 if fmt == 'ckpt' else 2} of {CARD_ID}): not a regular file"
        ), out.stderr
    assert_cache_clean(home)


def test_apply_mirrors_longest_prefix_wins():
    mirrors = (
        ("https://a.org/", "http://m1/"),
        ("https://a.org/models/", "http://m2/x/"),
        ("https://b.org/", "file:///srv/"),
    )
    assert apply_mirrors("https://a.org/models/n.ckpt", mirrors) == "http://m2/x/n.ckpt"
    assert apply_mirrors("https://a.org/other/n.ckpt", mirrors) == "http://m1/other/n.ckpt"
    assert apply_mirrors("https://c.org/n.ckpt", mirrors) == "https://c.org/n.ckpt"


def test_pull_of_chosen_assets_downloads_only_those(reg, site, home):
    from registry.catalog import resolve

    entry = resolve("tiny", reg)
    with fault_server(site) as srv:
        (item,) = pull(entry, assets=[entry.assets[1]], settings=settings_for(home, srv.url))
        assert item.asset.filename == "tiny.air" and item.path.read_bytes() == (site / "tiny.air").read_bytes()
        assert [r["path"] for r in srv.gets()] == ["/tiny.air"]


def test_format_selection(reg, site, home):
    with nginx(site) as url:
        items = pull("tiny", registry=reg, settings=settings_for(home, url), formats=[".AIR"])
        assert [p.asset.filename for p in items] == ["tiny.air"]
        assert [r["path"] for r in url.access_log()] == ["/tiny.air"]
        with pytest.raises(NotFoundError, match="has no asset of format onnx; formats it has: air, ckpt"):
            pull("tiny", registry=reg, settings=settings_for(home, url), formats=["onnx"])


def test_offline_serves_the_cache_and_names_what_is_missing(reg, site, home):
    with pytest.raises(OfflineError) as err:
        pull("tiny", registry=reg, settings=settings_for(home, None, offline=True), formats=["ckpt"])
    assert str(err.value).startswith("offline mode: asset 1 of mindspore/cpu/2.0/tiny (tiny.ckpt, sha256 ")
    assert "REGISTRY_OFFLINE" in str(err.value)
    with nginx(site) as url:
        pull("tiny", registry=reg, settings=settings_for(home, url), formats=["ckpt"])
    item = pull("tiny", registry=reg, settings=settings_for(home, None, offline=True), formats=["ckpt"])[0]
    assert not item.downloaded
    with pytest.raises(OfflineError, match=r"asset 2 of .*tiny\.air"):
        pull("tiny", registry=reg, settings=settings_for(home, None, offline=True))


def test_two_assets_with_one_file_name_get_distinct_view_names(tmp_path, site, home):
    (site / "v2").mkdir()
    (site / "v2" / "tiny.ckpt").write_bytes(b"another checkpoint")
    root = tmp_path / "reg"
    write_card(
        root,
        CARD_ID,
        [
            ("ckpt", BASE + "tiny.ckpt", sha(site / "tiny.ckpt")),
            ("mindir", BASE + "v2/tiny.ckpt", sha(site / "v2" / "tiny.ckpt")),
        ],
    )
    with nginx(site) as url:
        only_second = pull("tiny", registry=root, settings=settings_for(home, url), formats=["mindir"])
        both = pull("tiny", registry=root, settings=settings_for(home, url))
    second = sha(site / "v2" / "tiny.ckpt")
    assert only_second[0].path.name == both[1].path.name == f"{second[:12]}-tiny.ckpt"
    assert [p.path.read_bytes() for p in both] == [(site / "tiny.ckpt").read_bytes(), b"another checkpoint"]


def test_an_asset_named_like_the_view_record_does_not_replace_it(tmp_path, site, home):
    (site / ".view.json").write_bytes(b"checkpoint bytes")
    root = tmp_path / "reg"
    write_card(root, CARD_ID, [("ckpt", BASE + ".view.json", sha(site / ".view.json"))])
    (item,) = pull("tiny", registry=root, settings=settings_for(home, site.as_uri() + "/"))
    assert item.path.name != ".view.json" and item.path.read_bytes() == b"checkpoint bytes"
    assert Cache(home).ls().models[0]["files"][0]["path"] == str(item.path)
    assert_cache_clean(home)


def test_force_downloads_again(reg, site, home):
    with nginx(site) as url:
        s = settings_for(home, url)
        pull("tiny", registry=reg, settings=s, formats=["ckpt"])
        again = pull("tiny", registry=reg, settings=s, formats=["ckpt"], force=True)[0]
        assert again.downloaded and len(url.access_log()) == 2
    assert_cache_clean(home)


def test_card_with_errors_is_refused_before_any_download(tmp_path, site, home):
    root = tmp_path / "reg"
    card = write_card(root, CARD_ID, [("ckpt", BASE + "tiny.ckpt", sha(site / "tiny.ckpt"))])
    card.write_text(card.read_text().replace("model-name: tiny\n", "model-name: tiny\nmodel-name: tiny2\n"))
    with fault_server(site) as srv:
        with pytest.raises(CardError, match="card mindspore/cpu/2.0/tiny is not valid: .* duplicate-key"):
            pull("tiny", registry=root, settings=settings_for(home, srv.url))
        assert srv.requests == []


def test_cosmetic_card_defects_are_warned_once_and_do_not_stop_a_pull(tmp_path, site, home):
    root = tmp_path / "reg"
    card = write_card(root, CARD_ID, [("ckpt", BASE + "tiny.ckpt", sha(site / "tiny.ckpt"))])
    card.write_text(card.read_text().replace("model-name: tiny\n", ""))  # a required field, but not one pull needs
    entry = resolve("tiny", root)
    with fault_server(site) as srv, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (item,) = pull(entry, settings=settings_for(home, srv.url))
        pull(entry, settings=settings_for(home, srv.url))  # the same entry again: no second warning
    assert item.sha256 == sha(site / "tiny.ckpt")
    assert [(w.category, "schema-required" in str(w.message)) for w in caught] == [(CardWarning, True)]


def test_one_failed_asset_fails_the_pull_and_the_rest_is_cached(reg, site, home):
    (site / "tiny.air").write_bytes(b"not the promised bytes")
    with nginx(site) as url, pytest.raises(IntegrityError, match="tiny.air"):
        pull("tiny", registry=reg, settings=settings_for(home, url))
    assert blobs(home) == [sha(site / "tiny.ckpt")]
    assert_cache_clean(home)


# --------------------------------------------------------------------------- the hasher


@pytest.mark.parametrize("threaded", [True, False])
def test_hasher_matches_hashlib_with_prefix_and_reset(tmp_path, threaded):
    data = os.urandom(3 << 20)
    path = tmp_path / "f"
    path.write_bytes(data)
    h = _Hasher(threaded=threaded, size=1 << 16)
    try:
        h.prefix(path, 100_001)
        pos = 100_001
        while pos < len(data):
            buf = h.buffer()
            chunk = data[pos : pos + len(buf) - 7]
            buf[: len(chunk)] = chunk
            h.feed(buf, len(chunk))
            pos += len(chunk)
        assert h.hexdigest() == hashlib.sha256(data).hexdigest() and h.size == len(data)
        h.reset()
        assert h.hexdigest() == hashlib.sha256().hexdigest()
    finally:
        h.close()


def test_inline_and_threaded_engines_give_the_same_blob(reg, site, home, tmp_path):
    with nginx(site) as url:
        for threaded, where in ((True, home), (False, tmp_path / "inline")):
            engine = Engine(settings_for(where, url), threaded_hash=threaded)
            try:
                from registry.catalog import resolve

                entry = resolve("tiny", reg)
                blob, downloaded = engine.fetch(entry.assets[0], entry)
            finally:
                engine.close()
            assert downloaded and sha(blob) == entry.assets[0].sha256


def test_progress_bar_only_when_asked(reg, site, home, capsys):
    with nginx(site) as url:
        pull("tiny", registry=reg, settings=settings_for(home, url), formats=["ckpt"])
        assert capsys.readouterr().err == ""
        pull("tiny", registry=reg, settings=settings_for(home, url), formats=["air"], progress=True)
        err = capsys.readouterr().err
    assert "tiny" in err and "100%" in err


def test_backoff_doubles_with_jitter_and_a_cap(home):
    engine = Engine(settings_for(home, None, backoff=1.0))
    try:
        for attempt, (low, high) in {1: (0.5, 1), 2: (1, 2), 3: (2, 4), 10: (15, 30)}.items():
            delays = {engine._backoff(attempt) for _ in range(50)}
            assert all(low <= d <= high for d in delays) and len(delays) > 1
    finally:
        engine.close()
