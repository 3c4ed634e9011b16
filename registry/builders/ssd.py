"""SSD300 with a MobileNetV2 backbone, parameter-compatible with the 2020 MindSpore model-zoo checkpoint.

Written from the measured facts in `shared/reference/ssd300_mobilenetv2.md`: every parameter name,
shape and dtype equals the official network's, so its `ssd.ckpt` loads with nothing missing or left
over. In eval mode the network returns `(boxes, scores)`: raw encoded box offsets (B, 1917, 4) as
(dy, dx, dh, dw) and sigmoid class scores (B, 1917, num_classes). `detect()` adds the default boxes,
decoding and per-class NMS with the official settings.

Checkpoints of both eras load (`ssd300_mobilenetv2.adaptation`): the seed-era files (v0.3-v0.7 code)
store the 33 depthwise kernels [1, C, 3, 3] as this network does; the r1.x model-zoo files (nn.Conv2d
with group=C) store them [C, 1, 3, 3], which the loader reshapes (same memory order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, initializer

from . import Adaptation, Transform

COCO_CLASSES = (
    "background",
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

IMAGE_SIZE = 300
FEATURE_SIZES = (19, 10, 5, 3, 2, 1)
STEPS = (16, 32, 64, 100, 150, 300)
NUM_DEFAULT = (3, 6, 6, 6, 6, 6)
PRIOR_SCALING = (0.1, 0.2)
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
MIN_SCORE = 0.1
NMS_THRESHOLD = 0.6
MAX_BOXES = 100


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.97)


class DepthwiseConv(nn.Cell):
    """3x3 depthwise convolution whose weight keeps the 2020 layout [1, C, 3, 3].

    MindSpore 2.x grouped convolutions want [C, 1, 3, 3]; reshaping at run time (same memory order)
    keeps the parameter table identical to the official checkpoint's.
    """

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        self.channels = channels
        self.stride = stride
        self.weight = Parameter(initializer(HeUniform(math.sqrt(5)), (1, channels, 3, 3)), name="weight")

    def construct(self, x):
        weight = ops.reshape(self.weight, (self.channels, 1, 3, 3))
        return ops.conv2d(x, weight, stride=self.stride, pad_mode="same", groups=self.channels)


def _conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, depthwise: bool = False) -> nn.Cell:
    if depthwise:
        return DepthwiseConv(cin, stride)
    return nn.Conv2d(cin, cout, kernel, stride=stride, pad_mode="same", has_bias=False)


class ConvBNReLU(nn.Cell):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, depthwise: bool = False):
        super().__init__()
        self.features = nn.SequentialCell([_conv(cin, cout, kernel, stride, depthwise), _bn(cout), nn.ReLU6()])

    def construct(self, x):
        return self.features(x)


class InvertedResidual(nn.Cell):
    """MobileNetV2 block: optional 1x1 expansion, 3x3 depthwise, 1x1 projection + BN."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: float, last_relu: bool = False):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(cin, hidden, 1))
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, depthwise=True),
            nn.Conv2d(hidden, cout, 1, pad_mode="same", has_bias=False),
            _bn(cout),
        ]
        self.conv = nn.SequentialCell(layers)
        self.use_residual = stride == 1 and cin == cout
        self.last_relu = nn.ReLU6() if last_relu else None

    def construct(self, x):
        out = self.conv(x)
        if self.use_residual:
            out = out + x
        if self.last_relu is not None:
            out = self.last_relu(out)
        return out


class MobileNetV2Backbone(nn.Cell):
    """Returns the 576x19x19 map (features_1 + expand_layer_conv_13) and the 1280x10x10 map."""

    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self):
        super().__init__()
        # Declared first: the official table lists it before features_1.
        self.expand_layer_conv_13 = ConvBNReLU(96, 576, 1)
        layers = [ConvBNReLU(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNReLU(cin, 1280, 1))
        self.features_1 = nn.SequentialCell(layers[:14])
        self.features_2 = nn.SequentialCell(layers[14:])

    def construct(self, x):
        x = self.features_1(x)
        return self.expand_layer_conv_13(x), self.features_2(x)


def _head(cin: int, cout: int) -> nn.SequentialCell:
    """Depthwise 3x3 + BN + ReLU6, then a 1x1 convolution with bias (names .0, .1, .3)."""
    return nn.SequentialCell(
        [DepthwiseConv(cin), _bn(cin), nn.ReLU6(), nn.Conv2d(cin, cout, 1, pad_mode="same", has_bias=True)]
    )


class MultiBox(nn.Cell):
    def __init__(self, num_classes: int, in_channels: Sequence[int]):
        super().__init__()
        self.num_classes = num_classes
        loc, cls = [], []
        for cin, n in zip(in_channels, NUM_DEFAULT):
            loc.append(_head(cin, 4 * n))
            cls.append(_head(cin, num_classes * n))
        self.multi_loc_layers = nn.CellList(loc)
        self.multi_cls_layers = nn.CellList(cls)

    def _flatten(self, outputs, width: int):
        # Per level: NCHW -> NHWC -> (B, -1), so boxes run row, column, default box.
        flat = [ops.reshape(ops.transpose(o, (0, 2, 3, 1)), (o.shape[0], -1)) for o in outputs]
        merged = ops.cat(flat, axis=1)
        return ops.reshape(merged, (merged.shape[0], -1, width))

    def construct(self, features):
        locs = [layer(f) for layer, f in zip(self.multi_loc_layers, features)]
        confs = [layer(f) for layer, f in zip(self.multi_cls_layers, features)]
        return self._flatten(locs, 4), self._flatten(confs, self.num_classes)


class SSD300(nn.Cell):
    """SSD300 + MobileNetV2. Eval mode: (encoded boxes, sigmoid scores); train mode: (boxes, logits)."""

    def __init__(self, num_classes: int = 81):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = MobileNetV2Backbone()
        self.multi_residual = nn.CellList(
            [
                InvertedResidual(1280, 512, 2, 0.2, last_relu=True),
                InvertedResidual(512, 256, 2, 0.25, last_relu=True),
                InvertedResidual(256, 256, 2, 0.5, last_relu=True),
                InvertedResidual(256, 128, 2, 0.25, last_relu=True),
            ]
        )
        self.multi_box = MultiBox(num_classes, (576, 1280, 512, 256, 256, 128))

    def construct(self, x):
        layer13, x = self.backbone(x)
        features = [layer13, x]
        for block in self.multi_residual:
            x = block(x)
            features.append(x)
        boxes, scores = self.multi_box(features)
        if not self.training:
            scores = ops.sigmoid(scores)
        return boxes, scores


def _is_depthwise_swap(file_shape: tuple, network_shape: tuple) -> bool:
    return (
        len(file_shape) == 4
        and network_shape[0] == 1
        and file_shape[1] == 1
        and file_shape == (network_shape[1], 1, *network_shape[2:])
    )


DEPTHWISE_R1X = Transform(
    "depthwise Cx1x3x3 -> 1xCx3x3 (r1.x model-zoo layout)",
    _is_depthwise_swap,
    lambda array, shape: array.reshape(shape),
    pattern=r"\.weight$",
)


def ssd300_mobilenetv2(num_classes: int = 81) -> SSD300:
    """Builder for `registry.load`: the network in eval mode, randomly initialised."""
    net = SSD300(num_classes=num_classes)
    net.set_train(False)
    return net


ssd300_mobilenetv2.adaptation = Adaptation(transforms=(DEPTHWISE_R1X,))


def default_boxes() -> np.ndarray:
    """(1917, 4) default boxes as normalised (cy, cx, h, w), in the network's output order."""
    scales = [0.2 + 0.15 * k for k in range(len(FEATURE_SIZES))] + [1.0]
    boxes = []
    for level, size in enumerate(FEATURE_SIZES):
        fk = IMAGE_SIZE / STEPS[level]
        s, s_next = scales[level], scales[level + 1]
        if level == 0:
            shapes = [(0.1, 0.1), (s / math.sqrt(2), s * math.sqrt(2)), (s * math.sqrt(2), s / math.sqrt(2))]
        else:
            shapes = [(s, s)]
            for r in (2, 3):
                shapes += [(s / math.sqrt(r), s * math.sqrt(r)), (s * math.sqrt(r), s / math.sqrt(r))]
            shapes.append((math.sqrt(s * s_next),) * 2)
        for i in range(size):
            for j in range(size):
                boxes += [((i + 0.5) / fk, (j + 0.5) / fk, h, w) for h, w in shapes]
    return np.asarray(boxes, dtype=np.float32)


def decode(loc: np.ndarray, defaults: np.ndarray | None = None) -> np.ndarray:
    """Encoded offsets (N, 4) -> normalised corners (y1, x1, y2, x2), clipped to [0, 1]."""
    defaults = default_boxes() if defaults is None else defaults
    yx = loc[:, :2] * PRIOR_SCALING[0] * defaults[:, 2:] + defaults[:, :2]
    hw = np.exp(loc[:, 2:] * PRIOR_SCALING[1]) * defaults[:, 2:]
    return np.clip(np.concatenate([yx - hw / 2, yx + hw / 2], axis=1), 0.0, 1.0)


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float = NMS_THRESHOLD, max_boxes: int = MAX_BOXES
) -> list[int]:
    """Greedy NMS on (y1, x1, y2, x2) pixel boxes, areas with the +1 pixel convention."""
    y1, x1, y2, x2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size and len(keep) < max_boxes:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return keep


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (OpenCV's INTER_LINEAR), aspect not kept."""
    src_h, src_w = image.shape[:2]
    ys = np.clip((np.arange(height) + 0.5) * src_h / height - 0.5, 0, src_h - 1)
    xs = np.clip((np.arange(width) + 0.5) * src_w / width - 0.5, 0, src_w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, src_h - 1), np.minimum(x0 + 1, src_w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = image.astype(np.float32)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def preprocess(image: np.ndarray, input_shape: Sequence[int] = (IMAGE_SIZE, IMAGE_SIZE, 3)) -> np.ndarray:
    """RGB HWC uint8 image -> (1, 3, H, W) float32 batch, per the card's input-shape [H, W, C]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    height, width = int(input_shape[0]), int(input_shape[1])
    resized = resize_bilinear(image, height, width)
    normalised = (resized - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None], dtype=np.float32)


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # (x1, y1, x2, y2) in pixels of the original image
    label: str
    class_id: int
    score: float


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    image_size: tuple[int, int],
    *,
    class_names: Sequence[str] = COCO_CLASSES,
    min_score: float = MIN_SCORE,
    nms_threshold: float = NMS_THRESHOLD,
    max_boxes: int = MAX_BOXES,
) -> list[Detection]:
    """One image's network outputs (1917, 4) and (1917, C) -> detections, best first."""
    height, width = image_size
    corners = decode(np.asarray(boxes, np.float32)) * np.asarray([height, width, height, width], np.float32)
    detections = []
    for c in range(1, scores.shape[1]):
        mask = scores[:, c] > min_score
        if not mask.any():
            continue
        cls_boxes, cls_scores = corners[mask], scores[mask, c]
        name = class_names[c] if c < len(class_names) else f"class_{c}"
        for i in nms(cls_boxes, cls_scores, nms_threshold, max_boxes):
            y1, x1, y2, x2 = (float(v) for v in cls_boxes[i])
            detections.append(Detection((x1, y1, x2, y2), name, c, float(cls_scores[i])))
    detections.sort(key=lambda d: d.score, reverse=True)
    return detections


def detect(
    network: nn.Cell, image: np.ndarray, input_shape: Sequence[int] = (IMAGE_SIZE, IMAGE_SIZE, 3), **options
) -> list[Detection]:
    """Run an eval-mode SSD on one RGB HWC uint8 image; `options` go to `postprocess`."""
    from mindspore import Tensor

    image = np.asarray(image)
    boxes, scores = network(Tensor(preprocess(image, input_shape)))
    return postprocess(boxes.asnumpy()[0], scores.asnumpy()[0], image.shape[:2], **options)
