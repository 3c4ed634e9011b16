"""The main job end to end on the model shipped in the embedded registry: pull, load, predict.

    python scripts/digits_demo.py [--registry LOCATION] [--name NAME]

Pulls the card's assets into the cache (REGISTRY_HOME; verified by sha256), builds the network with
`registry.load`, runs it on the held-out split pulled with it and prints the accuracy. Needs no
network with the embedded registry: the assets sit next to the card.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import registry  # noqa: E402
from registry.errors import RegistryError  # noqa: E402

NAME = "mindspore/cpu/2.10/lenet_digits"


def heldout_accuracy(name: str = NAME, *, registry_location=None) -> tuple[float, int, int]:
    """(accuracy, correct, total) of the card's network on the card's `npz` held-out split."""
    import mindspore as ms

    from registry.builders.lenet import preprocess

    net = registry.load(name, registry=registry_location)
    split = registry.pull(name, registry=registry_location, formats=["npz"])
    if not split:
        raise RegistryError(f"card {name} has no npz asset holding a held-out split")
    with np.load(split[0].path) as data:
        images, labels = data["images"], data["labels"]
    logits = net(ms.Tensor(preprocess(images))).asnumpy()
    correct = int((logits.argmax(axis=1) == labels).sum())
    return correct / len(labels), correct, len(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Load the digits model through the registry and print its held-out accuracy."
    )
    parser.add_argument("--name", default=NAME, help="card name (default: %(default)s)")
    parser.add_argument(
        "--registry", help="registry directory or http(s) base URL (default: $REGISTRY_URL, else the embedded one)"
    )
    args = parser.parse_args(argv)
    try:
        accuracy, correct, total = heldout_accuracy(args.name, registry_location=args.registry)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{args.name}: held-out accuracy {accuracy:.2%} ({correct}/{total})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
