"""`registry pull` as users run it: separate processes, killed halfway, racing each other, failing loudly."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.cache import Cache
from tests.conftest import ROOT, run_cli
from tests.servers import fault_server, nginx, write_card

BASE = "https://download.example.org/m/"
CARD_ID = "mindspore/cpu/2.0/tiny"
SIZE = 8 << 20


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "tiny.ckpt").write_bytes(os.urandom(SIZE))
    (root / "tiny.air").write_bytes(os.urandom(3000))
    return root


@pytest.fixture
def reg(tmp_path, site) -> Path:
    root = tmp_path / "reg"
    write_card(
        root,
        CARD_ID,
        [
            ("ckpt", BASE + "tiny.ckpt", digest_of(site / "tiny.ckpt")),
            ("air", BASE + "tiny.air", digest_of(site / "tiny.air")),
        ],
    )
    return root


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def env_for(home: Path, url: str, **extra) -> dict:
    env = {
        "REGISTRY_HOME": str(home),
        "REGISTRY_MIRRORS": f"{BASE}={url}",
        "REGISTRY_PROGRESS": "0",
        "REGISTRY_RETRIES": "2",
        "REGISTRY_BACKOFF": "0.01",
        "REGISTRY_READ_TIMEOUT": "5",
    }
    env.update(extra)
    return env


def pull_cmd(reg: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "registry", "--registry", str(reg), "pull", "tiny", *args]


def verify_clean(home: Path) -> None:
    out = run_cli("cache", "verify", "--json", env={"REGISTRY_HOME": str(home)})
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["bad"] == [] and report["missing"] == []


def test_pull_prints_each_asset_and_a_second_pull_is_served_from_the_cache(reg, site, home):
    with nginx(site) as url:
        first = run_cli("--registry", str(reg), "pull", "tiny", env=env_for(home, url))
        assert first.returncode == 0, first.stderr
        assert first.stderr == ""  # piped: no progress bar
        view = home / "models" / CARD_ID
        ckpt, air = digest_of(site / "tiny.ckpt"), digest_of(site / "tiny.air")
        assert first.stdout.splitlines() == [f"{ckpt[:12]}  {view / 'tiny.ckpt'}", f"{air[:12]}  {view / 'tiny.air'}"]
        second = run_cli("--registry", str(reg), "pull", "tiny", env=env_for(home, url))
        assert second.returncode == 0 and second.stdout == first.stdout
        assert len(url.access_log()) == 2
    verify_clean(home)


def test_cli_mirror_option_format_and_progress_bar(reg, site, home):
    with nginx(site) as url:
        env = env_for(home, "http://127.0.0.1:9/", REGISTRY_PROGRESS="1")  # the env mirror is overridden below
        out = run_cli(
            "--registry", str(reg), "pull", "tiny", "--file-format", "air", "--mirror", f"{BASE}={url}", env=env
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().endswith("tiny.air") and len(out.stdout.splitlines()) == 1
        assert "100%" in out.stderr
        assert [r["path"] for r in url.access_log()] == ["/tiny.air"]


@pytest.mark.parametrize(
    "case, code, pattern",
    [
        (
            "corrupt",
            4,
            "sha256 mismatch for http://127.0.0.1:{port}/tiny.ckpt (asset 1 of mindspore/cpu/2.0/tiny): expected {digest}, got ",
        ),
        (
            "503",
            5,
            "could not download http://127.0.0.1:{port}/tiny.ckpt after 3 attempts: HTTP 503 Service Unavailable",
        ),
        ("404", 5, "could not download http://127.0.0.1:{port}/tiny.ckpt: the server answered HTTP 404 Not Found; "),
        (
            "offline",
            6,
            "offline mode: asset 1 of mindspore/cpu/2.0/tiny (tiny.ckpt, sha256 {short}) is not in the cache",
        ),
    ],
)
def test_failures_are_one_line_with_their_exit_code_and_leave_the_cache_consistent(
    reg, site, home, case, code, pattern
):
    faults = {"corrupt": {"corrupt": True}, "503": {"status": 503}, "404": {"status": 404}, "offline": {}}[case]
    with fault_server(site, **faults) as srv:
        env = env_for(home, srv.url, **({"REGISTRY_OFFLINE": "1"} if case == "offline" else {}))
        out = run_cli("--registry", str(reg), "pull", "tiny", "--file-format", "ckpt", env=env)
    digest = digest_of(site / "tiny.ckpt")
    assert out.returncode == code
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("registry: error: ")
    assert pattern.format(port=srv.port, digest=digest, short=digest[:12]) in lines[0]
    assert not Cache(home).blob_path(digest).exists()
    verify_clean(home)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_pull_killed_halfway_resumes_from_the_partial_file(reg, site, home):
    digest = digest_of(site / "tiny.ckpt")
    part = Cache(home).partial_path(digest)
    with fault_server(site, rate=4_000_000) as srv:  # 8 MiB at 4 MB/s: about 2 s
        env = dict(os.environ, **env_for(home, srv.url))
        proc = subprocess.Popen(
            pull_cmd(reg, "--file-format", "ckpt"), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            wait_for(lambda: part.exists() and part.stat().st_size >= SIZE // 4, 30, "a quarter of the download")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        kept = part.stat().st_size
        assert SIZE // 4 <= kept < SIZE
        assert not Cache(home).blob_path(digest).exists()
        srv.set()  # full speed for the second pull
        out = subprocess.run(pull_cmd(reg, "--file-format", "ckpt"), env=env, cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        first, second = srv.gets("tiny.ckpt")
        assert first["status"] == 200
        assert second["status"] == 206 and second["range"] == f"bytes={kept}-" and second["if_range"]
    assert digest_of(home / "models" / CARD_ID / "tiny.ckpt") == digest
    assert not part.exists()
    verify_clean(home)


def test_eight_processes_pulling_the_same_asset_download_it_once(reg, site, home):
    digest = digest_of(site / "tiny.ckpt")
    with nginx(site, limit_rate="8m") as url:  # about 1 s per download, so the processes overlap
        env = dict(os.environ, **env_for(home, url))
        procs = [
            subprocess.Popen(
                pull_cmd(reg, "--file-format", "ckpt"),
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
        gets = [r for r in url.access_log() if r["method"] == "GET"]
    assert [rc for _, _, rc in results] == [0] * 8, [err for _, err, _ in results]
    assert len({out for out, _, _ in results}) == 1
    assert len(gets) == 1 and gets[0]["status"] == 200 and gets[0]["bytes"] == SIZE
    assert sorted(d for d, _ in Cache(home).blobs()) == [digest]
    assert list((home / "partial").iterdir()) == []
    verify_clean(home)
