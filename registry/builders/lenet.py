"""Two LeNets that share `model-name: lenet` and nothing else.

- `lenet_digits`: a LeNet-style CNN for scikit-learn's 8x8 handwritten digits (card
  `mindspore/cpu/2.10/lenet_digits`). Input: float32 (N, 1, 8, 8) made by `preprocess` from pixel
  values 0..16; output: (N, 10) logits. Training (`scripts/train_digits.py`), the demo and the tests
  all use this one `preprocess`.
- `lenet5`: the MindSpore model zoo's LeNet5 (cards `lenet_mnist`, MindSpore 1.3-1.10). Input: float32
  (N, 1, 32, 32); output: (N, 10) logits. Parameter table, as the zoo saves it: conv1.weight 6x1x5x5,
  conv2.weight 16x6x5x5 (no conv biases), fc1 120x400, fc2 84x120, fc3 10x84, each with its bias.
"""

from __future__ import annotations

import numpy as np
from mindspore import nn

PIXEL_MAX = 16  # the data set's pixels count "on" bits in a 4x4 block: 0..16


def preprocess(images) -> np.ndarray:
    """Pixel arrays (N, 8, 8) or (N, 64) with values 0..16 -> float32 (N, 1, 8, 8) in [0, 1]."""
    arr = np.asarray(images, dtype=np.float32)
    return (arr / PIXEL_MAX).reshape(-1, 1, 8, 8)


class LeNetDigits(nn.Cell):
    """Two 3x3 conv + max-pool stages (8x8 -> 4x4 -> 2x2) and two dense layers."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, pad_mode="same", has_bias=True)
        self.conv2 = nn.Conv2d(32, 64, 3, pad_mode="same", has_bias=True)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(64 * 2 * 2, 128)
        self.fc2 = nn.Dense(128, num_classes)

    def construct(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.relu(self.fc1(self.flatten(x)))
        return self.fc2(x)


def lenet_digits(num_classes: int = 10, in_channels: int = 1) -> nn.Cell:
    """Builder for `model-name: lenet`: the untrained network; the loader puts the card's weights in.

    No **kwargs on purpose: the loader checks arguments against this signature, so a mistyped one is
    a one-line usage error naming the accepted parameters.
    """
    return LeNetDigits(num_classes=num_classes, in_channels=in_channels)


class LeNet5(nn.Cell):
    """The model-zoo LeNet5: two valid 5x5 conv + max-pool stages (32 -> 28 -> 14 -> 10 -> 5), three dense layers."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        from mindspore.common.initializer import Normal

        self.conv1 = nn.Conv2d(in_channels, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
        self.fc2 = nn.Dense(120, 84, weight_init=Normal(0.02))
        self.fc3 = nn.Dense(84, num_classes, weight_init=Normal(0.02))
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def construct(self, x):
        x = self.max_pool2d(self.relu(self.conv1(x)))
        x = self.max_pool2d(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def lenet5(num_classes: int = 10, in_channels: int = 1) -> nn.Cell:
    """Builder for the model zoo's `lenet_mnist` cards: the untrained LeNet5."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
