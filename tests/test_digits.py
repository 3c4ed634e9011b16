"""The LeNet digits model shipped in the embedded registry: pull, load, predict, refuse tampering,
and the training script that made it."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import MANIFESTS, ROOT, run_cli

import registry
from registry.errors import IntegrityError, UsageError

NAME = "mindspore/cpu/2.10/lenet_digits"
CARD_DIR = MANIFESTS / "mindspore" / "cpu" / "2.10"
CKPT_SHA256 = "1c1929f599c2cfff39f4a91b921565d506a342a73c000710010b3aaa3f59014c"  # as in the card


def _heldout_accuracy(net, split_path) -> float:
    import mindspore as ms

    from registry.builders.lenet import preprocess

    with np.load(split_path) as data:
        images, labels = data["images"], data["labels"]
    assert images.shape == (359, 8, 8) and labels.shape == (359,)
    logits = net(ms.Tensor(preprocess(images))).asnumpy()
    return float((logits.argmax(axis=1) == labels).mean())


def test_pull_load_and_heldout_accuracy_matches_card(home):
    pulled = registry.pull("lenet_digits")
    by_format = {p.asset.file_format: p for p in pulled}
    assert set(by_format) == {"ckpt", "npz"}
    for p in pulled:
        assert p.path.is_file() and p.path.is_relative_to(home)
        assert hashlib.sha256(p.path.read_bytes()).hexdigest() == p.asset.sha256

    net = registry.load("lenet_digits")
    assert net.load_report.ok
    accuracy = _heldout_accuracy(net, by_format["npz"].path)

    card_accuracy = float(registry.resolve(NAME).fields["accuracy"])
    assert accuracy >= 0.95
    assert abs(accuracy - card_accuracy) <= 0.005, f"measured {accuracy:.4f}, card says {card_accuracy}"


def test_one_flipped_byte_is_refused_and_nothing_is_cached(tmp_path, home):
    copy = tmp_path / "registry"
    shutil.copytree(MANIFESTS, copy)
    ckpt = copy / "mindspore" / "cpu" / "2.10" / "lenet_digits.ckpt"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x01
    ckpt.write_bytes(bytes(data))
    actual = hashlib.sha256(data).hexdigest()

    with pytest.raises(IntegrityError) as caught:
        registry.pull("lenet_digits", registry=copy, formats=["ckpt"])
    message = str(caught.value)
    assert CKPT_SHA256 in message and actual in message

    cached = [p for p in home.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert cached == [], f"a refused asset left files in the cache: {cached}"

    # The CLI says the same in one line, with the integrity exit code.
    result = run_cli(
        "--registry", str(copy), "pull", "lenet_digits", "--format", "ckpt", env={"REGISTRY_HOME": str(home)}
    )
    assert result.returncode == 4, result.stderr
    assert CKPT_SHA256 in result.stderr and "Traceback" not in result.stderr


def test_builder_arguments_are_checked(home):
    net = registry.load("lenet_digits", pretrained=False, num_classes=3)
    assert net.fc2.weight.shape == (3, 128)
    with pytest.raises(UsageError, match="num_class"):
        registry.load("lenet_digits", pretrained=False, num_class=3)


def test_demo_prints_the_card_accuracy(home):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "digits_demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(home.parent),
    )
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy 98.33% (353/359)" in result.stdout


def test_training_script_writes_a_loadable_checkpoint_and_stratified_split(tmp_path):
    """One epoch on synthetic data in the real file layout: the script's plumbing, not its accuracy."""
    rng = np.random.default_rng(1)
    labels = np.arange(1797) % 10
    pixels = rng.integers(0, 17, size=(1797, 64))
    csv = tmp_path / "digits.csv.gz"
    with gzip.open(csv, "wt") as fh:
        np.savetxt(fh, np.column_stack([pixels, labels]), fmt="%d", delimiter=",")

    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_digits.py"),
            "--data",
            str(csv),
            "--out",
            str(out),
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    expected_per_class = np.round(0.2 * np.bincount(labels)).astype(int)
    assert f"train {1797 - expected_per_class.sum()}, held-out {expected_per_class.sum()}" in result.stdout

    with np.load(out / "lenet_digits_heldout.npz") as split:
        rows, images, held_labels = split["rows"], split["images"], split["labels"]
    assert len(np.unique(rows)) == len(rows)
    assert np.array_equal(images.reshape(-1, 64), pixels[rows]) and np.array_equal(held_labels, labels[rows])
    assert np.array_equal(np.bincount(held_labels, minlength=10), expected_per_class)

    import mindspore as ms

    from registry.builders.lenet import lenet_digits
    from registry.loader import fit_parameters

    report = fit_parameters(lenet_digits(), ms.load_checkpoint(str(out / "lenet_digits.ckpt")))
    assert report.ok
