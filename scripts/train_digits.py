"""Train the LeNet-style digits classifier shipped in the embedded registry, reproducibly, on the CPU.

Data: scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits" test set,
1,797 images of 8x8 pixels with values 0..16, ten classes. Only its data file
`sklearn/datasets/data/digits.csv.gz` is read (64 pixel columns then the label per row); scikit-learn
itself is never imported. Get the file without installing scikit-learn:

    pip download --no-deps scikit-learn -d /tmp/skl
    unzip -o /tmp/skl/scikit_learn-*.whl sklearn/datasets/data/digits.csv.gz -d /tmp/skl
    python scripts/train_digits.py --data /tmp/skl/sklearn/datasets/data/digits.csv.gz

Without --data the file is looked up in an installed scikit-learn (located, not imported).

Split: stratified 80/20 with numpy seed 0: within each class, a seeded permutation of its row
indices, the first round(20%) go to the held-out split. The held-out split is never seen in
training (no early stopping, fixed epochs), so its accuracy is an honest estimate.

Training: Adam, lr 1e-3, batch 32, 25 epochs, mindspore.set_seed(0) and numpy seed 0 for
initialisation and batch order. About two minutes on 2 CPU cores.

Writes, into --out (default manifests/mindspore/cpu/2.10):
  lenet_digits.ckpt          the trained weights (network parameters only)
  lenet_digits_heldout.npz   images uint8 (N, 8, 8), labels uint8 (N,), rows int32 (N,) = line in the CSV
and prints the held-out accuracy and both files' sha256 for the card.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = 0
HELDOUT_FRACTION = 0.2
EPOCHS = 25
BATCH = 32
LR = 1e-3


def find_installed_digits() -> Path | None:
    """digits.csv.gz inside an installed scikit-learn, found by its import spec without importing it."""
    spec = importlib.util.find_spec("sklearn")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if candidate.is_file():
            return candidate
    return None


def read_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65):
        raise SystemExit(f"{path}: expected 1797 rows of 65 columns (64 pixels and a label), got {table.shape}")
    return table[:, :64].reshape(-1, 8, 8).astype(np.uint8), table[:, 64].astype(np.uint8)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, heldout = [], []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_held = int(round(fraction * len(rows)))
        heldout.append(rows[:n_held])
        train.append(rows[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(heldout))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, help="path to digits.csv.gz (default: the one in an installed scikit-learn)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "manifests" / "mindspore" / "cpu" / "2.10",
        help="directory for lenet_digits.ckpt and lenet_digits_heldout.npz (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs (default: %(default)s)")
    args = parser.parse_args(argv)

    data = args.data or find_installed_digits()
    if data is None or not Path(data).is_file():
        parser.error("digits.csv.gz not found: pass --data PATH (see --help for how to get the file)")

    import mindspore as ms
    from mindspore import nn

    from registry.builders.lenet import lenet_digits, preprocess

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    ms.set_seed(SEED)

    images, labels = read_digits(Path(data))
    train_rows, held_rows = stratified_split(labels, HELDOUT_FRACTION, SEED)
    x_train, y_train = preprocess(images[train_rows]), labels[train_rows].astype(np.int32)
    print(f"data {data}: {len(labels)} images, train {len(train_rows)}, held-out {len(held_rows)}")

    net = lenet_digits()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = nn.Adam(net.trainable_params(), learning_rate=LR)

    def forward(x, y):
        return loss_fn(net(x), y)

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters)

    @ms.jit  # compiled once: ~10x faster than running the step op by op
    def step(x, y):
        loss, grads = grad_fn(x, y)
        optimizer(grads)
        return loss

    order_rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    net.set_train(True)
    for epoch in range(args.epochs):
        order = order_rng.permutation(len(y_train))
        total = 0.0
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            total += float(step(ms.Tensor(x_train[idx]), ms.Tensor(y_train[idx]))) * len(idx)
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d}  loss {total / len(order):.4f}  {time.perf_counter() - started:.0f} s")

    net.set_train(False)
    logits = net(ms.Tensor(preprocess(images[held_rows]))).asnumpy()
    accuracy = float((logits.argmax(axis=1) == labels[held_rows]).mean())

    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "lenet_digits.ckpt"
    heldout = args.out / "lenet_digits_heldout.npz"
    ms.save_checkpoint(net, str(ckpt))
    ckpt.chmod(0o644)  # MindSpore writes checkpoints owner-read-only; the shipped file is for everyone
    np.savez_compressed(heldout, images=images[held_rows], labels=labels[held_rows], rows=held_rows.astype(np.int32))

    print(f"held-out accuracy {accuracy:.4f} ({int(round(accuracy * len(held_rows)))}/{len(held_rows)})")
    for path in (ckpt, heldout):
        print(f"{path.name}  {path.stat().st_size} bytes  sha256 {sha256(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
