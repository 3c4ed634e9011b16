"""A non-editable wheel carries the schema and the embedded registry, and finds them installed."""

import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_wheel_ships_schemas_and_manifests(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("registry-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "registry/_data/schemas/model-card.schema.json" in names
    assert "registry/_data/manifests/mindspore/ascend/0.7/ssd_v1_coco2017.md" in names
    assert "registry/_data/manifests/mindspore/cpu/2.10/lenet_digits.ckpt" in names

    # Installed from that wheel (unpacked, as pip lays it out), the package reads its own copies.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import registry.settings as s, registry.lint as l;"
        "print(s.embedded_registry()); print(s.schemas_dir());"
        "r = l.validate_paths([str(s.embedded_registry())]); print(r.exit_code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    registry_dir, schemas, exit_code = out.stdout.split()
    assert registry_dir == str(site / "registry" / "_data" / "manifests")
    assert schemas == str(site / "registry" / "_data" / "schemas")
    assert exit_code == "0"
