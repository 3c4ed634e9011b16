"""registry.load end to end: a card, a checkpoint served over loopback HTTP, the cache, the network."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

ms = pytest.importorskip("mindspore", reason="MindSpore is not installed")

from servers import fault_server  # noqa: E402

import registry  # noqa: E402
from registry import loader  # noqa: E402
from registry.builders import ssd  # noqa: E402
from registry.errors import IntegrityError, LoadError, UsageError  # noqa: E402

SSD_ID = "mindspore/ascend/0.7/ssd_v1_coco2017"
from conftest import PUBLISHED  # noqa: E402 - cards link there; the `reg` fixture mirrors it to `server`

# The 0.7 card warns against MindSpore 2.x; tests that check the warning record it with pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore::registry.loader.VersionWarning")
X = np.random.default_rng(7).standard_normal((1, 3, 300, 300)).astype(np.float32)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_card(
    root: Path,
    card_id: str,
    assets: list[tuple[str, str, str]],
    *,
    model="ssd",
    backbone="mobilenetV2",
    input_shape="[300, 300, 3]",
) -> Path:
    """A card like the published SSD one, placed at USER/BACKEND/VERSION/NAME; assets are (file-format, link, sha256)."""
    user, backend, version, _ = card_id.split("/")
    lines = [
        "# Model",
        "",
        "---",
        f"model-name: {model}",
        f"backbone-name: {backbone}",
        "module-type: cv",
        "fine-tunable: True",
        f"input-shape: {input_shape}",
        "model-version: 1",
        "train-dataset: coco",
        "author: [network-fo]",
        "update-time: 2020-09-10",
        "repo-link: https://gitee.com/mindspore/mindspore/tree/master/model_zoo/official/cv/ssd",
        f"user-id: {user}",
        "used-for: inference",
        "train-backend: ascend",
        f"infer-backend: {backend}",
        f"mindspore-version: {version}",
        "asset:",
    ]
    for fmt, link, digest in assets:
        lines += [f"  - file-format: {fmt}", f"    asset-link: {link}", f"    asset-sha256: {digest}"]
    lines += ["license: Apache2.0", "summary: test card", "---", "", "## Introduction", "", "A test card.", ""]
    path = root.joinpath(*card_id.split("/")).with_suffix(".md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def save_train_layout(net, path: Path) -> None:
    """What a training run saves: `network.` + each name, optimizer moments, lr schedule, step counter."""
    entries = [{"name": "network." + p.name, "data": p.data} for p in net.get_parameters()]
    entries += [
        {"name": "moments.network." + p.name, "data": ms.Tensor(np.zeros(p.shape, np.float32))}
        for p in net.trainable_params()
    ]
    entries += [
        {"name": "learning_rate", "data": ms.Tensor(np.linspace(0.05, 0, 1000, dtype=np.float32))},
        {"name": "momentum", "data": ms.Tensor(np.float32(0.9))},
        {"name": "global_step", "data": ms.Tensor(np.array([1], np.int32))},
    ]
    ms.save_checkpoint(entries, str(path))


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """One SSD instance with non-trivial BatchNorm statistics, its outputs, and its checkpoints."""
    net = ssd.ssd300_mobilenetv2()
    rng = np.random.default_rng(11)
    for p in net.get_parameters():
        if "moving_" in p.name:
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    files = tmp_path_factory.mktemp("files")
    save_train_layout(net, files / "ssd.ckpt")
    boxes, scores = net(ms.Tensor(X))
    return {"net": net, "dir": files, "boxes": boxes.asnumpy(), "scores": scores.asnumpy()}


@pytest.fixture(scope="module")
def server(original):
    with fault_server(original["dir"]) as srv:  # no faults: a plain loopback file server
        yield srv


def ssd_card(reg: Path, server, filename="ssd.ckpt", digest=None, **kw) -> Path:
    digest = digest or sha256(server.root / filename)
    return write_card(reg, SSD_ID, [("ckpt", PUBLISHED + filename, digest)], **kw)


def test_load_pulls_verifies_builds_and_loads(original, server, reg):
    ssd_card(reg, server)
    with pytest.warns(loader.VersionWarning, match="MindSpore 0.7"):
        net = registry.load(SSD_ID, registry=str(reg))
    assert isinstance(net, ssd.SSD300) and not net.training
    report = net.load_report
    assert report.ok and len(report.loaded) == 409 and report.renamed == 409
    mine, theirs = net.parameters_dict(), original["net"].parameters_dict()
    assert list(mine) == list(theirs)
    for name, param in theirs.items():
        np.testing.assert_array_equal(mine[name].asnumpy(), param.asnumpy(), err_msg=name)
    boxes, scores = net(ms.Tensor(X))
    np.testing.assert_allclose(boxes.asnumpy(), original["boxes"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(scores.asnumpy(), original["scores"], atol=1e-6, rtol=0)

    # Warm cache: the short name resolves to the same card and nothing is downloaded again.
    downloads = len(server.gets("ssd.ckpt"))
    again = registry.load("ssd_v1_coco2017", registry=str(reg))
    assert len(server.gets("ssd.ckpt")) == downloads
    np.testing.assert_array_equal(again.parameters_dict()[name].asnumpy(), param.asnumpy())


def test_tampered_checkpoint_is_refused_before_loading(original, server, reg, monkeypatch):
    tampered = server.root / "tampered.ckpt"
    data = bytearray((server.root / "ssd.ckpt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    ssd_card(reg, server, "tampered.ckpt", digest=sha256(server.root / "ssd.ckpt"))
    parsed = []
    monkeypatch.setattr(loader, "read_checkpoint", lambda *a, **k: parsed.append(a) or {})
    with pytest.raises(IntegrityError):
        registry.load(SSD_ID, registry=str(reg))
    assert parsed == []


def test_other_architecture_gives_strict_error(server, reg):
    from registry.builders.lenet import lenet_digits

    ms.save_checkpoint(lenet_digits(), str(server.root / "lenet.ckpt"))
    ssd_card(reg, server, "lenet.ckpt")
    with pytest.raises(LoadError) as err:
        registry.load(SSD_ID, registry=str(reg))
    message = str(err.value)
    assert "checkpoint lenet.ckpt of card " + SSD_ID in message
    assert "409 missing (backbone.expand_layer_conv_13.features.0.weight" in message
    assert "and 401 more" in message
    assert "8 unexpected (conv1.weight, conv1.bias, conv2.weight" in message
    assert "strict=False" in message
    assert err.value.exit_code == 7


def test_shape_mismatch_strict_and_partial(original, server, reg):
    ms.save_checkpoint(original["net"], str(server.root / "bare.ckpt"))  # bare layout, no prefix
    ssd_card(reg, server, "bare.ckpt")
    with pytest.raises(
        LoadError,
        match=r"12 shape-mismatched \(multi_box\.multi_cls_layers\.0\.3\.weight: "
        r"file 243x576x1x1 vs network 63x576x1x1",
    ):
        registry.load(SSD_ID, registry=str(reg), num_classes=21)

    net = registry.load(SSD_ID, registry=str(reg), num_classes=21, strict=False)
    report = net.load_report
    assert len(report.mismatched) == 12 and len(report.loaded) == 397 and not report.missing and not report.unexpected
    np.testing.assert_array_equal(
        net.backbone.features_1[0].features[0].weight.asnumpy(),
        original["net"].backbone.features_1[0].features[0].weight.asnumpy(),
    )


def test_pretrained_false_downloads_nothing(server, reg):
    ssd_card(reg, server)
    before = len(server.gets("ssd.ckpt"))
    net = registry.load(SSD_ID, registry=str(reg), pretrained=False)
    assert isinstance(net, ssd.SSD300) and net.load_report is None
    assert len(server.gets("ssd.ckpt")) == before


def test_unknown_model_names_card_and_builders(server, reg):
    write_card(
        reg,
        "mindspore/ascend/0.7/yolo",
        [("ckpt", PUBLISHED + "ssd.ckpt", sha256(server.root / "ssd.ckpt"))],
        model="yolov3",
        backbone="darknet53",
    )
    with pytest.raises(
        LoadError,
        match=r"card mindspore/ascend/0\.7/yolo: no builder for model-name 'yolov3'.*"
        r"known builders: .*ssd300-mobilenetv2",
    ):
        registry.load("yolo", registry=str(reg))


def test_mindir_asset_loads_as_graph(server, reg, tmp_path):
    from registry.builders.lenet import lenet_digits

    net = lenet_digits()
    x = ms.Tensor(np.random.default_rng(3).random((1, 1, 8, 8), dtype=np.float32))
    ms.export(net, x, file_name=str(server.root / "lenet"), file_format="MINDIR")
    path = server.root / "lenet.mindir"
    card_id = "mindspore/cpu/2.10/graph_only"
    write_card(reg, card_id, [("mindir", PUBLISHED + "lenet.mindir", sha256(path))], model="unknownnet")
    graph = registry.load(card_id, registry=str(reg))
    assert isinstance(graph, ms.nn.GraphCell)
    np.testing.assert_allclose(graph(x).asnumpy(), net(x).asnumpy(), atol=1e-6)
    with pytest.raises(UsageError, match="builder arguments"):
        registry.load(card_id, registry=str(reg), num_classes=3)


def test_hub_compatible_helpers(original, server, reg):
    ssd_card(reg, server)
    assert registry.get_desired_input_shape(SSD_ID, registry=str(reg)) == [300, 300, 3]
    weights = registry.load_weights(SSD_ID, registry=str(reg))
    assert set(weights) == set(original["net"].parameters_dict())
    fresh = ssd.ssd300_mobilenetv2()
    report = registry.load_weights(fresh, SSD_ID, registry=str(reg))
    assert report.ok and len(report.loaded) == 409
    name = "multi_box.multi_cls_layers.5.3.bias"
    np.testing.assert_array_equal(
        fresh.parameters_dict()[name].asnumpy(), original["net"].parameters_dict()[name].asnumpy()
    )
    # mindspore_hub's positional builder arguments pass through too.
    assert registry.load(SSD_ID, 21, registry=str(reg), pretrained=False).num_classes == 21


@pytest.mark.parametrize(
    "card, installed, warns",
    [
        ("0.7", "2.10.0", True),  # another major version
        ("1.10", "2.10.0", True),
        ("2.11", "2.10.0", True),  # newer than installed
        ("2.10", "2.10.0", False),
        ("2.2", "2.10.0", False),  # older minor of the same major
        ("2.10.1", "2.10.0", False),  # patch releases do not matter
        ("r1.x", "2.10.0", False),  # not a version: nothing to compare
        (None, "2.10.0", False),
    ],
)
def test_version_rule(card, installed, warns):
    assert (loader.check_version(card, "card x", installed) is not None) is warns


def test_unknown_entries_are_reported_not_dropped():
    from registry.builders.lenet import lenet_digits

    net = lenet_digits()
    params = {f"network.{k}": v for k, v in net.parameters_dict().items()}
    params["network.extra.weight"] = ms.Parameter(ms.Tensor(np.zeros(3, np.float32)), name="x")
    params["moments.network.conv1.weight"] = params["network.conv1.weight"]
    with pytest.raises(LoadError, match=r"1 unexpected \(network\.extra\.weight\)"):
        loader.fit_parameters(lenet_digits(), params, source="x.ckpt")
    report = loader.fit_parameters(lenet_digits(), params, strict=False, source="x.ckpt")
    assert report.unexpected == ["network.extra.weight"] and report.ignored == ["moments.network.conv1.weight"]
    assert len(report.loaded) == 8


def test_embedded_card_chooses_ssd_and_refuses_air(home):
    net = registry.load("ssd_v1_coco2017", pretrained=False)  # the card shipped in manifests/
    assert isinstance(net, ssd.SSD300) and net.num_classes == 81
    assert registry.get_desired_input_shape("mindspore/ascend/0.7/ssd_v1_coco2017") == [300, 300, 3]
    with pytest.raises(
        LoadError, match=r"asset ssd\.geir of card mindspore/ascend/0\.7/ssd_v1_coco2017 is in air format"
    ):
        registry.load("ssd_v1_coco2017", file_format="air")
    with pytest.raises(UsageError, match=r"builder ssd300-mobilenetv2 takes \(num_classes\): .*'depth'"):
        registry.load("ssd_v1_coco2017", pretrained=False, depth=3)
    assert not (home / "blobs").exists()  # nothing was downloaded
