"""Shared test fixtures. Data paths are relative to the project root, as CI lays them out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "mindspore-hub"
SEED_CARD = SHARED / "seed" / "ssd_v1_coco2017.md"
REFERENCE = SHARED / "reference"
MANIFESTS = ROOT / "manifests"
# Cards carry https links, as the lint requires; REGISTRY_MIRRORS sends them to the loopback server.
PUBLISHED = "https://download.mindspore.cn/model_zoo/test/"


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data {path} is not present beside the project (expected at ../shared)")
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh cache (REGISTRY_HOME) and no ambient registry settings."""
    cache = tmp_path / "home"
    monkeypatch.setenv("REGISTRY_HOME", str(cache))
    for var in ("REGISTRY_URL", "REGISTRY_OFFLINE", "REGISTRY_MIRRORS", "REGISTRY_TOKEN", "REGISTRY_TOKEN_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REGISTRY_PROGRESS", "0")
    return cache


def run_cli(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `python -m registry ARGS` in a fresh process, as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",  # a file name that is not UTF-8 is printed as its bytes, as ls does
        env=full_env,
        cwd=str(cwd or ROOT),
        timeout=timeout,
    )


@pytest.fixture
def reg(tmp_path, home, server, monkeypatch) -> Path:
    """An empty test registry whose PUBLISHED links go to the requesting module's `server` fixture."""
    monkeypatch.setenv("REGISTRY_MIRRORS", f"{PUBLISHED}={server.url}")
    root = tmp_path / "registry"
    root.mkdir()
    return root
