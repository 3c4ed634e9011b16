"""Parallel ranges for one large asset (ranges.py, Engine._ranged) against nginx and the fault server: the
asset arrives over several connections, hashed in order, resumable per chunk, and falls back to one stream
when the server stops honouring ranges or the file changes; size, max-size and speed rules still hold.

The threshold and chunk size are lowered (1 MiB, 256 KiB) so a 3 MiB file is cut into 12 chunks. From a fast
server (loopback) the first connection's 2 MiB probe chooses one stream (its own test); the other tests set the
probe's thresholds out of reach (`parallel`) so that the ranges are what they exercise.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from registry import transfer
from registry.errors import IntegrityError, TransferError
from registry.settings import Settings
from registry.transfer import pull
from tests.servers import fault_server, nginx, write_card

BASE = "https://download.example.org/m/"
CARD_ID = "mindspore/cpu/2.0/big"
SIZE = 3 << 20
CHUNK = 256 << 10


@pytest.fixture(autouse=True)
def parallel(request, monkeypatch):
    if "fast_server" not in request.node.name:
        monkeypatch.setattr(transfer, "PROBE", 0)  # ranges from the first byte


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "big.ckpt").write_bytes(os.urandom(SIZE))
    return root


@pytest.fixture
def digest(site) -> str:
    return hashlib.sha256((site / "big.ckpt").read_bytes()).hexdigest()


@pytest.fixture
def reg(tmp_path, digest) -> Path:
    root = tmp_path / "reg"
    write_card(root, CARD_ID, [("ckpt", BASE + "big.ckpt", digest)])
    return root


def ranged(home: Path, url: str, **kw) -> Settings:
    base = dict(
        home=home,
        mirrors=((BASE, url),),
        retries=3,
        backoff=0.01,
        connect_timeout=2,
        read_timeout=2,
        progress=False,
        connections=4,
        range_threshold=1 << 20,
        range_chunk=CHUNK,
    )
    base.update(kw)
    return Settings(**base)


def ranges_asked(requests) -> list[str]:
    return [r["range"] for r in requests if r["method"] == "GET" and r["range"]]


def assert_pulled(home: Path, digest: str, site: Path, items) -> None:
    (item,) = items
    assert item.blob.name == digest and item.path.read_bytes() == (site / "big.ckpt").read_bytes()
    assert not [p.name for p in (home / "partial").iterdir()]  # no partial, metadata or chunk record left


def test_a_fast_server_gets_one_stream_after_the_probe(tmp_path, site, reg, digest):
    with nginx(site) as url:
        home = tmp_path / "home"
        assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, url)))
        log = url.access_log()
    assert [r["bytes"] for r in log] == [SIZE]  # the whole file in one stream, measured as it came


def test_ranges_take_over_from_a_slow_first_stream_and_keep_its_bytes(tmp_path, site, reg, digest, monkeypatch):
    monkeypatch.setattr(transfer, "PROBE", 1 << 20)
    with fault_server(site, rate=5e6) as srv:  # 5 MB/s: well under FAST, and the thread mostly waits
        home = tmp_path / "home"
        assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, srv.url)))
        gets = srv.gets()
    assert gets[0]["range"] == "" and len(gets) - 1 < SIZE // CHUNK  # the first stream's chunks were kept
    assert min(int(r["range"].split("=")[1].split("-")[0]) for r in gets[1:]) >= 1 << 20


def test_a_large_asset_arrives_as_parallel_ranges_from_nginx(tmp_path, site, reg, digest):
    with nginx(site, limit_rate="20m") as url:  # a CDN-like cap: slower than FAST, so 4 connections are used
        home = tmp_path / "home"
        assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, url)))
        log = url.access_log()
    parts = [r for r in log if r["range"]]
    assert len(parts) == SIZE // CHUNK and all(r["status"] == 206 and r["if_range"] for r in parts)
    assert sorted(int(r["range"].split("=")[1].split("-")[0]) for r in parts) == list(range(0, SIZE, CHUNK))
    # Below the threshold, or with one connection, it is one stream as before.
    with nginx(site) as url:
        for kw in ({"connections": 1}, {"range_threshold": SIZE + 1}):
            home = tmp_path / f"one-{len(kw)}-{next(iter(kw))}"
            assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, url, **kw)))
        assert not [r for r in url.access_log() if r["range"]]


def test_a_range_that_resets_is_retried_from_where_it_stopped(tmp_path, site, reg, digest):
    with fault_server(site, reset_after=100_000, after=1, times=2, rate=5e6) as srv:  # capped: 4 connections
        home = tmp_path / "home"
        assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, srv.url)))
        asked = ranges_asked(srv.requests)
    starts = [int(r.split("=")[1].split("-")[0]) for r in asked]
    assert len(asked) == SIZE // CHUNK + 2  # 12 chunks, two of them asked again
    assert sorted(s % CHUNK for s in starts if s % CHUNK) in (
        [100_000, 100_000],
        [100_000, 200_000],
    )  # what they lacked


def test_a_server_that_stops_honouring_range_falls_back_to_one_stream(tmp_path, site, reg, digest):
    with fault_server(site, range_requests=4, rate=5e6) as srv:
        home = tmp_path / "home"
        assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, srv.url)))
        gets = srv.gets()
    assert any(r["range"] and r["status"] == 200 for r in gets)  # a range answered with the whole file
    assert gets[-1]["range"] == "" and gets[-1]["status"] == 200  # then one plain download


def test_a_file_changed_between_ranges_falls_back_to_one_stream(tmp_path, site, reg, digest):
    with fault_server(site, etag_after=3, rate=5e6) as srv:
        home = tmp_path / "home"
        assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, srv.url)))
        gets = srv.gets()
    assert any(r["if_range"] and r["status"] == 200 for r in gets)  # If-Range no longer matched
    assert gets[-1]["range"] == "" and gets[-1]["status"] == 200


def test_an_interrupted_ranged_download_resumes_only_the_missing_chunks(tmp_path, site, reg, digest):
    home = tmp_path / "home"
    with fault_server(site, status=500, after=12, rate=5e6) as srv:  # the first request and 11 ranges, then errors
        with pytest.raises(TransferError, match="HTTP 500"):
            pull(CARD_ID, registry=reg, settings=ranged(home, srv.url, retries=0))
        (record,) = (home / "partial").glob("*.ranges")
        done = json.loads(record.read_text())["done"]
        assert 1 <= len(done) <= 11 and os.path.getsize(home / "partial" / f"{digest}.part") == SIZE
        srv.set()  # the same server (the record names its URL), now without faults
        srv.requests.clear()
        assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, srv.url)))
        asked = ranges_asked(srv.requests)
    assert len(asked) == SIZE // CHUNK - len(done)  # the chunks recorded were kept, only hashed from disk
    assert not {f"bytes={i * CHUNK}-{(i + 1) * CHUNK - 1}" for i in done} & set(asked)


@pytest.mark.parametrize("record", ['{"url": 1}', "[]", "{", '{"done": [99]}'])
def test_a_malformed_or_foreign_chunk_record_is_ignored(tmp_path, site, reg, digest, record):
    home = tmp_path / "home"
    (home / "partial").mkdir(parents=True)
    (home / "partial" / f"{digest}.part").write_bytes(b"\0" * SIZE)
    (home / "partial" / f"{digest}.ranges").write_text(record)
    with fault_server(site, rate=5e6) as srv:
        assert_pulled(home, digest, site, pull(CARD_ID, registry=reg, settings=ranged(home, srv.url)))
        assert len(ranges_asked(srv.requests)) == SIZE // CHUNK


def test_size_rules_hold_for_ranged_downloads(tmp_path, site, digest):
    reg = tmp_path / "reg"
    card = write_card(reg, CARD_ID, [("ckpt", BASE + "big.ckpt", digest)])
    with fault_server(site) as srv:
        home = tmp_path / "max"
        with pytest.raises(TransferError, match="over REGISTRY_MAX_ASSET_SIZE"):
            pull(CARD_ID, registry=reg, settings=ranged(home, srv.url, max_asset_size=SIZE - 1))
        assert not ranges_asked(srv.requests) and not list((home / "partial").iterdir())
        card.write_text(card.read_text().replace("    asset-sha256:", "    asset-size: 3000000\n    asset-sha256:"))
        home = tmp_path / "declared"
        with pytest.raises(IntegrityError, match="asset-size"):
            pull(CARD_ID, registry=reg, settings=ranged(home, srv.url))
        assert not ranges_asked(srv.requests) and not list((home / "partial").iterdir())


def test_the_speed_limit_applies_to_a_ranged_download(tmp_path, site, reg):
    with fault_server(site, rate=100_000) as srv:  # per connection: even 4 x 100 kB/s is under the 1 MB/s asked
        home = tmp_path / "home"
        with pytest.raises(TransferError, match="slower than REGISTRY_SPEED_LIMIT"):
            pull(
                CARD_ID, registry=reg, settings=ranged(home, srv.url, speed_limit=1_000_000, speed_time=0.5, retries=0)
            )
        assert ranges_asked(srv.requests)


def test_the_cursor_hashes_in_file_order_whatever_order_the_chunks_arrive_in(tmp_path):
    from registry.ranges import RangedFile

    data = os.urandom(10 * 1000 + 7)
    with open(tmp_path / "part", "w+b", buffering=0) as out:
        out.truncate(len(data))
        rf = RangedFile(out, len(data), 1000, done={2})
        os.pwrite(out.fileno(), data[2000:3000], 2000)  # chunk 2 "from an earlier run"
        rf.start()
        order = [5, 0, 10, 1, 3, 4, 9, 8, 6, 7]  # written out of order, each in two pieces
        for i in order:
            start, end = rf.chunks[i]
            mid = (start + end) // 2
            rf.write(i, start, memoryview(data[start:mid]))
            rf.write(i, mid, memoryview(data[mid:end]))
        assert rf.complete and rf.digest().hexdigest() == hashlib.sha256(data).hexdigest()
        assert 0 < rf.read_back < len(data)  # chunk 2 and those ahead of the cursor were read back, not the rest
