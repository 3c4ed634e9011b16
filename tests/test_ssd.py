"""SSD300 + MobileNetV2: parameter table, forward pass, default boxes, decoding, NMS, detect()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ms = pytest.importorskip("mindspore", reason="MindSpore is not installed")

from registry.builders import ssd  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def read_table(name: str) -> list[list[str]]:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference table {path} is not present")
    return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def net():
    return ssd.ssd300_mobilenetv2()


@pytest.fixture(scope="module")
def outputs(net):
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, 300, 300)).astype(np.float32))
    boxes, scores = net(x)
    return boxes.asnumpy(), scores.asnumpy()


def test_parameter_table_equals_official(net):
    reference = read_table("ssd300_mobilenetv2_params.tsv")
    mine = [[p.name, "x".join(map(str, p.shape)), str(p.dtype), str(p.requires_grad)] for p in net.get_parameters()]
    assert len(mine) == len(reference) == 409
    assert mine == reference
    assert sum(int(np.prod(p.shape)) for p in net.get_parameters()) == 4_445_365


def test_forward_shapes_and_sigmoid_scores(outputs):
    boxes, scores = outputs
    assert boxes.shape == (1, 1917, 4)
    assert scores.shape == (1, 1917, 81)
    assert np.isfinite(boxes).all()
    assert (scores > 0).all() and (scores < 1).all()


def test_num_classes_passes_through():
    small = ssd.ssd300_mobilenetv2(num_classes=21)
    assert small.multi_box.multi_cls_layers[0][3].weight.shape == (63, 576, 1, 1)
    _, scores = small(ms.Tensor(np.zeros((1, 3, 300, 300), np.float32)))
    assert scores.shape == (1, 1917, 21)


@pytest.mark.parametrize("depthwise", [True, False])
def test_same_padding_is_tensorflow_style(depthwise):
    # Stride 2 on an even input: no padding top/left, one row/column bottom/right.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    if depthwise:
        layer = ssd.DepthwiseConv(2, stride=2)
        w = layer.weight.asnumpy()[0][:, None]  # [C, 1, 3, 3]
    else:
        layer = ms.nn.Conv2d(2, 2, 3, stride=2, pad_mode="same", has_bias=False, group=2)
        w = layer.weight.asnumpy()
    got = layer(ms.Tensor(x)).asnumpy()
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    want = np.zeros((1, 2, 3, 3), np.float32)
    for c in range(2):
        for i in range(3):
            for j in range(3):
                want[0, c, i, j] = (padded[0, c, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * w[c, 0]).sum()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_default_boxes():
    boxes = ssd.default_boxes()
    assert boxes.shape == (1917, 4)
    np.testing.assert_allclose(boxes[0], [0.5 / 18.75, 0.5 / 18.75, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(boxes[1, 2:], [0.2 / np.sqrt(2), 0.2 * np.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(boxes[2, 2:], [0.2 * np.sqrt(2), 0.2 / np.sqrt(2)], rtol=1e-6)
    # Level 0 runs row, column, box: box 3 is row 0, column 1.
    np.testing.assert_allclose(boxes[3, :2], [0.5 / 18.75, 1.5 / 18.75], rtol=1e-6)
    level1 = boxes[1083:1089]
    np.testing.assert_allclose(level1[0], [0.5 / 9.375, 0.5 / 9.375, 0.35, 0.35], rtol=1e-6)
    np.testing.assert_allclose(level1[5, 2:], [np.sqrt(0.35 * 0.5)] * 2, rtol=1e-6)
    np.testing.assert_allclose(boxes[-1], [0.5, 0.5, np.sqrt(0.95), np.sqrt(0.95)], rtol=1e-6)


def test_decode():
    defaults = ssd.default_boxes()
    corners = ssd.decode(np.zeros((1917, 4), np.float32), defaults)
    cy, cx, h, w = defaults[500]
    np.testing.assert_allclose(corners[500], [cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], rtol=1e-6)
    loc = np.zeros((1917, 4), np.float32)
    loc[500] = [1.0, -1.0, np.log(2) / 0.2, 0.0]  # shift by 0.1 of the size, double the height
    got = ssd.decode(loc, defaults)[500]
    ny, nx = cy + 0.1 * h, cx - 0.1 * w
    np.testing.assert_allclose(got, [ny - h, nx - w / 2, ny + h, nx + w / 2], rtol=1e-5)
    assert ssd.decode(np.full((1917, 4), 5.0, np.float32), defaults).min() >= 0
    assert ssd.decode(np.full((1917, 4), 5.0, np.float32), defaults).max() <= 1


def test_nms_suppresses_overlaps():
    boxes = np.array([[0, 0, 99, 99], [5, 5, 104, 104], [200, 200, 260, 260], [0, 0, 99, 49]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    # IoU(0, 1) = 9025/10975 = 0.82 > 0.6: dropped; IoU(0, 3) = 0.5: kept.
    assert ssd.nms(boxes, scores) == [0, 2, 3]
    assert ssd.nms(boxes, scores, max_boxes=2) == [0, 2]


def test_postprocess_picks_scores_and_suppresses():
    defaults = ssd.default_boxes()
    loc = np.zeros((1917, 4), np.float32)
    scores = np.zeros((1917, 81), np.float32)
    a, b = 1083, 1088  # level 1, same centre: (0.35, 0.35) and (0.418, 0.418), IoU 0.70
    far = 1083 + 6 * (9 * 10 + 9)  # level 1, bottom-right cell
    scores[a, 1], scores[b, 1], scores[far, 1] = 0.9, 0.8, 0.5
    scores[a, 18] = 0.05  # under the 0.1 threshold
    dets = ssd.postprocess(loc, scores, (480, 640))
    assert [(d.label, d.class_id, round(d.score, 3)) for d in dets] == [("person", 1, 0.9), ("person", 1, 0.5)]
    cy, cx, h, w = defaults[a]
    want = [max(cx - w / 2, 0) * 640, max(cy - h / 2, 0) * 480, (cx + w / 2) * 640, (cy + h / 2) * 480]
    np.testing.assert_allclose(dets[0].box, want, rtol=1e-5)


def test_preprocess():
    image = np.tile(np.asarray(ssd.MEAN, np.float32).round().astype(np.uint8), (240, 320, 1))
    batch = ssd.preprocess(image, [300, 300, 3])
    assert batch.shape == (1, 3, 300, 300) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], (np.round(ssd.MEAN) - ssd.MEAN) / np.asarray(ssd.STD), atol=1e-5)
    ramp = np.arange(12, dtype=np.float32).reshape(3, 4, 1).repeat(3, axis=2)
    np.testing.assert_allclose(ssd.resize_bilinear(ramp, 3, 4), ramp)
    # Half-pixel centres: 2x upsampling of [0, 4] gives [0, 1, 3, 4].
    np.testing.assert_allclose(ssd.resize_bilinear(np.array([[[0.0], [4.0]]]), 1, 4)[0, :, 0], [0, 1, 3, 4])
    with pytest.raises(ValueError):
        ssd.preprocess(np.zeros((300, 300)), [300, 300, 3])


def iou_plus_one(a, b):
    x1, y1, x2, y2 = a
    u1, v1, u2, v2 = b
    iw = max(0.0, min(x2, u2) - max(x1, u1) + 1)
    ih = max(0.0, min(y2, v2) - max(y1, v1) + 1)
    inter = iw * ih
    return inter / ((x2 - x1 + 1) * (y2 - y1 + 1) + (u2 - u1 + 1) * (v2 - v1 + 1) - inter)


def test_detect_on_synthetic_image(net):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    image[60:180, 80:240] = (220, 30, 30)
    dets = ssd.detect(net, image)
    assert dets, "a randomly initialised SSD scores many boxes above 0.1"
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)
    by_class: dict[int, list] = {}
    for d in dets:
        assert 1 <= d.class_id <= 80 and d.label == ssd.COCO_CLASSES[d.class_id]
        assert 0.1 < d.score <= 1.0
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 <= x2 <= 320 and 0 <= y1 <= y2 <= 240
        by_class.setdefault(d.class_id, []).append(d)
    for kept in by_class.values():
        assert len(kept) <= 100
        for i in range(len(kept)):
            for j in range(i + 1, len(kept)):
                assert iou_plus_one(kept[i].box, kept[j].box) <= 0.6 + 1e-6


def test_train_layout_checkpoint_loads(net, tmp_path):
    """The official file's layout: `network.` + every name, optimizer moments, lr schedule, counters."""
    from registry.loader import fit_parameters, read_checkpoint

    layout = read_table("ssd300_mobilenetv2_train_checkpoint_params.tsv")
    assert len(layout) == 667
    rng = np.random.default_rng(3)
    dtypes = {"float32": np.float32, "int32": np.int32}
    entries, originals = [], {}
    for name, shape, dtype in layout:
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        value = rng.standard_normal(dims).astype(dtypes[dtype])
        entries.append({"name": name, "data": ms.Tensor(value)})
        if name.startswith("network."):
            originals[name[len("network.") :]] = value
    path = tmp_path / "ssd.ckpt"
    ms.save_checkpoint(entries, str(path))

    fresh = ssd.ssd300_mobilenetv2()
    report = fit_parameters(fresh, read_checkpoint(path, "ssd.ckpt"), source="ssd.ckpt")
    assert report.ok and report.renamed == 409 and len(report.loaded) == 409
    assert not report.ignored  # optimizer entries are skipped while parsing
    params = fresh.parameters_dict()
    assert set(originals) == set(params)
    for name, value in originals.items():
        np.testing.assert_array_equal(params[name].asnumpy(), value)

    everything = read_checkpoint(path, "ssd.ckpt", keep_optimizer=True)
    report = fit_parameters(ssd.ssd300_mobilenetv2(), everything, source="ssd.ckpt")
    assert report.ok and len(report.ignored) == 258
    assert {"learning_rate", "momentum", "global_step"} <= set(report.ignored)
