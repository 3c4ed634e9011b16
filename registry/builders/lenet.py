"""LeNet-style CNN for scikit-learn's 8x8 handwritten digits (card `mindspore/cpu/2.10/lenet_digits`).

Input: float32 (N, 1, 8, 8) made by `preprocess` from pixel values 0..16; output: (N, 10) logits.
Training (`scripts/train_digits.py`), the demo and the tests all use this one `preprocess`.
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
