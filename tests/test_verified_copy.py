"""The private copy a load parses (cache.verified_copy): never cut short by a small /dev/shm, and not left
behind by a process killed while loading."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from registry.cache import _sweep_verified, hash_file, verified_copy
from tests.conftest import ROOT


def test_a_copy_left_by_a_dead_process_is_swept_and_a_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"registry-verified-{dead.pid}-abc"
    left.mkdir()
    (left / "asset.ckpt").write_bytes(b"x" * 100)
    live = tmp_path / f"registry-verified-{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / "registry-verified-notapid"
    other.mkdir()
    _sweep_verified(str(tmp_path))
    assert not left.exists() and live.exists() and other.exists()


def test_the_copy_holds_exactly_the_bytes_verified(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(3 << 20))
    digest, _ = hash_file(blob)
    with verified_copy(blob, digest, "asset.ckpt") as path:
        assert path is not None and path.read_bytes() == blob.read_bytes()
        assert path.name == "asset.ckpt" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert not path.exists()
    with verified_copy(blob, "0" * 64, "asset.ckpt") as path:
        assert path is None


def test_a_load_with_a_tiny_dev_shm_copies_to_tmpdir_instead(tmp_path):
    """A 100 KiB /dev/shm (a container's can be 64 MiB) cannot hold the 207 KiB digits checkpoint: the copy
    goes to TMPDIR and the network loads with the card's accuracy, instead of a short copy or ENOSPC."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a private small /dev/shm needs root and unshare (util-linux) for a mount namespace")
    code = textwrap.dedent("""
        import numpy as np, registry
        from registry.builders.lenet import preprocess
        net = registry.load("lenet_digits")
        data = np.load("manifests/mindspore/cpu/2.10/lenet_digits_heldout.npz")
        import mindspore as ms
        pred = net(ms.Tensor(preprocess(data["images"]))).asnumpy().argmax(1)
        print(round(float((pred == data["labels"]).mean()), 4))
    """)
    env = dict(
        os.environ,
        REGISTRY_HOME=str(tmp_path / "home"),
        TMPDIR=str(tmp_path),
        PYTHONPATH=str(ROOT),
        REGISTRY_PROGRESS="0",
    )
    env.pop("REGISTRY_URL", None)
    script = f"mount -t tmpfs -o size=100k tmpfs /dev/shm && exec {sys.executable} -c '{code}'"
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    if proc.returncode != 0 and "mount" in proc.stderr and "permission" in proc.stderr.lower():
        pytest.skip(f"cannot mount a tmpfs in a mount namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.split()[-1]) >= 0.95
