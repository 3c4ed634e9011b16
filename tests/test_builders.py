"""Builders for the real catalogue: which builder a corpus card gets, the table check, checkpoint
adaptation, the zoo LeNet5, the SSD family, mindcv, builder= and builder-args, broken entry points."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS, ROOT, require_shared

from registry.builders import CardFacts, find_builder, match_builtin
from registry.card import parse_file
from registry.errors import LoadError, UsageError


def facts(rel: str) -> CardFacts:
    return CardFacts.of(parse_file(require_shared(CORPUS / rel)).fields)


def corpus_cards(pattern: str) -> list[Path]:
    return sorted(p for p in require_shared(CORPUS).glob(pattern) if not p.name.endswith("_cn.md"))


# --------------------------------------------------------------------------- matching (no MindSpore)


def test_lenet_cards_choose_their_own_lenet():
    mnist = corpus_cards("mindspore/*/lenet_mnist.md")
    assert len(mnist) == 7
    for path in mnist:
        assert match_builtin(CardFacts.of(parse_file(path).fields)).name == "lenet5-mnist", path
    digits = CardFacts.of(parse_file(ROOT / "manifests/mindspore/cpu/2.10/lenet_digits.md").fields)
    assert match_builtin(digits).name == "lenet-digits"
    # The 8x8 digits network never claims a 32x32 card, whatever its data set says.
    assert match_builtin(CardFacts(model_name="lenet", dataset="digits", input_shape=(32, 32, 1))) is None


def test_ssd_family():
    ssd300 = [p for p in corpus_cards("mindspore/*/ssd*.md") if "model-name: ssd300" in p.read_text()]
    by_builder: dict[str, list[str]] = {}
    for path in ssd300:
        spec = match_builtin(CardFacts.of(parse_file(path).fields))
        by_builder.setdefault(spec.name if spec else "-", []).append(path.name)
    # 25 cards say model-name ssd300 / backbone-name ssd; only ssd300_coco2017 (7 versions) is
    # SSD300-MobileNetV2, the others are ResNet50-FPN, VGG16 and MobileNetV1-FPN variants.
    assert sorted(set(by_builder["ssd300-mobilenetv2"])) == ["ssd300_coco2017.md"]
    assert len(by_builder["ssd300-mobilenetv2"]) == 7
    assert len(by_builder["-"]) == 24
    assert (
        match_builtin(
            CardFacts.of(parse_file(require_shared(ROOT.parent / "shared/seed/ssd_v1_coco2017.md")).fields)
        ).name
        == "ssd300-mobilenetv2"
    )

    for rel, says in [
        ("mindspore/1.9/ssdvgg16_coco2017.md", r"its asset ssdvgg16_ascend_v190_\S+ is another variant"),
        ("mindspore/1.9/ssdresnet50_coco2017.md", r"backbone-name 'ssd_resnet50'"),
        ("mindspore/1.9/ssdmobilenetv2fpnlite_coco2017.md", r"model-name 'ssd_mobilenetV2_FPNlite'"),
    ]:
        with pytest.raises(
            LoadError,
            match=r"card x: no builder for this backbone: .*"
            + says
            + r".*builder ssd300-mobilenetv2 builds only SSD300 detector with a MobileNetV2 backbone",
        ):
            find_builder(facts(rel), "card x")


def test_mindcv_cards_choose_mindcv():
    cards = [p for p in corpus_cards("mindspore/*/*.md") if "mindspore-lab/mindcv" in p.read_text()]
    assert len(cards) == 94
    assert {match_builtin(CardFacts.of(parse_file(p).fields)).name for p in cards} == {"mindcv"}


def test_builder_fields_are_schema_checked():
    from registry.card import parse_text
    from registry.lint import check_card

    text = (ROOT / "manifests/mindspore/cpu/2.10/lenet_digits.md").read_text()

    def errors(extra: str) -> list[str]:
        card = parse_text(text.replace("\nlicense:", f"\n{extra}\nlicense:", 1), "mindspore/cpu/2.10/lenet_digits.md")
        return [p.rule for p in check_card(card) if p.severity == "error"]

    assert errors("builder: mindcv:resnet50\nbuilder-args:\n  num_classes: 1001\n  hidden: 64\n  act: relu") == []
    assert errors("builder-args:\n  num_classes: [1, 2]") == ["schema-type"]  # values are plain scalars
    assert errors("builder-args: 5") == ["schema-type"]
    assert errors("builder: two words") == ["schema-pattern"]


def test_unknown_model_still_lists_builders():
    with pytest.raises(
        LoadError,
        match=r"card x: no builder for model-name 'yolov3' .*known builders: lenet-digits, "
        r"lenet5-mnist, mindcv, ssd300-mobilenetv2.*builder=",
    ):
        find_builder(CardFacts(model_name="yolov3", backbone_name="darknet53"), "card x")


def test_without_mindcv_the_error_names_the_extra():
    code = textwrap.dedent("""
        import sys
        sys.modules["mindcv"] = None  # what an environment without the extra looks like to import
        from registry.builders import CardFacts, find_builder
        from registry.errors import LoadError
        try:
            find_builder(CardFacts(model_name="resnet50", repo_link="https://github.com/mindspore-lab/mindcv/tree/v0.5.0"), "card x")
        except LoadError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "card x: builder mindcv needs the mindcv library" in out.stdout
    assert "pip install 'registry[mindcv]'" in out.stdout


def test_broken_entry_point_is_one_error_and_blocks_nothing(tmp_path):
    """A real installed distribution (dist-info on sys.path) with a broken and a working entry point."""
    site = tmp_path / "site"
    info = site / "fake_builders-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-builders\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[registry.builders]\nbroken = no_such_module_xyz:build\nmine = fake_builders_mod:build\n"
    )
    (site / "fake_builders_mod.py").write_text("def build():\n    return 'a network'\nbuild.model_names = ('mynet',)\n")
    code = textwrap.dedent("""
        import warnings
        from registry.builders import CardFacts, find_builder, BuilderWarning
        from registry.errors import LoadError
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec, fn = find_builder(CardFacts(model_name="my-net"), "card a")
        print("mine:", spec.name, fn(), [str(w.message) for w in caught if w.category is BuilderWarning])
        for facts in (CardFacts(builder="broken"), CardFacts(model_name="other")):
            try:
                find_builder(facts, "card b")
            except LoadError as exc:
                print("error:", exc)
        print("builtin:", find_builder(CardFacts(model_name="lenet", dataset="Mnist"), "card c")[0].name)
    """)
    env = {"PYTHONPATH": f"{site}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    problem = (
        "builder entry point broken = no_such_module_xyz:build (group registry.builders) cannot be imported "
        "(ModuleNotFoundError: No module named 'no_such_module_xyz'): reinstall or uninstall the package"
    )
    assert lines[0].startswith("mine: mine a network [") and problem in lines[0]
    assert lines[1] == "error: card b names " + problem + " that provides it"
    assert lines[2].startswith("error: card b: no builder for model-name 'other', and " + problem)
    assert lines[3] == "builtin: lenet5-mnist"


# --------------------------------------------------------------------------- loading (MindSpore)

ms = pytest.importorskip("mindspore", reason="MindSpore is not installed")

from conftest import PUBLISHED  # noqa: E402
from servers import fault_server  # noqa: E402
from test_loader import sha256  # noqa: E402

import registry  # noqa: E402
from registry.builders import lenet, ssd  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::registry.loader.VersionWarning")


def copy_card(reg: Path, rel: str, filename: str, digest: str, extra: str = "") -> str:
    """A corpus card copied into a test registry, its first asset rewritten to PUBLISHED + filename."""
    text = require_shared(CORPUS / rel).read_text()
    text, n = re.subn(r"asset-link: <?https://[^\s>]+>?", f"asset-link: {PUBLISHED}{filename}", text, count=1)
    text, m = re.subn(r"asset-sha256: [0-9a-fA-F]+", f"asset-sha256: {digest}", text, count=1)
    assert n == m == 1
    if extra:
        text = text.replace("\nlicense:", f"\n{extra}\nlicense:", 1)
    target = reg / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return rel.removesuffix(".md")


def train_layout(net, path: Path, depthwise_r1x: bool = False) -> None:
    """A training run's file: `network.` + each name, optimizer moments, counters; optionally with the
    r1.x depthwise kernels [C, 1, 3, 3]."""
    entries = []
    for p in net.get_parameters():
        data = p.asnumpy()
        if depthwise_r1x and data.ndim == 4 and data.shape[0] == 1 and data.shape[1] > 1:
            data = data.reshape(data.shape[1], 1, *data.shape[2:])
        entries.append({"name": "network." + p.name, "data": ms.Tensor(data)})
    entries += [
        {"name": "moments.network." + p.name, "data": ms.Tensor(np.zeros(p.shape, np.float32))}
        for p in net.trainable_params()
    ]
    entries += [
        {"name": "learning_rate", "data": ms.Tensor(np.float32(0.01))},
        {"name": "global_step", "data": ms.Tensor(np.array([7], np.int32))},
    ]
    ms.save_checkpoint(entries, str(path))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="module")
def server(files):
    with fault_server(files) as srv:
        yield srv


LENET_CARD = "mindspore/1.8/lenet_mnist.md"
X32 = np.random.default_rng(5).standard_normal((1, 1, 32, 32)).astype(np.float32)


def test_lenet_mnist_loads_zoo_lenet5_and_refuses_digits(files, server, reg):
    zoo = lenet.lenet5()
    ms.save_checkpoint(zoo, str(files / "lenet5.ckpt"))
    assert [(p.name, p.shape) for p in zoo.get_parameters()] == [
        ("conv1.weight", (6, 1, 5, 5)),
        ("conv2.weight", (16, 6, 5, 5)),
        ("fc1.weight", (120, 400)),
        ("fc1.bias", (120,)),
        ("fc2.weight", (84, 120)),
        ("fc2.bias", (84,)),
        ("fc3.weight", (10, 84)),
        ("fc3.bias", (10,)),
    ]
    name = copy_card(reg, LENET_CARD, "lenet5.ckpt", sha256(files / "lenet5.ckpt"))
    net = registry.load(name, registry=str(reg))
    assert isinstance(net, lenet.LeNet5) and net.load_report.ok and len(net.load_report.loaded) == 8
    assert net.load_report.network == "builder lenet5-mnist"
    out = net(ms.Tensor(X32)).asnumpy()
    assert out.shape == (1, 10)
    np.testing.assert_allclose(out, zoo(ms.Tensor(X32)).asnumpy(), atol=1e-6)

    ms.save_checkpoint(lenet.lenet_digits(), str(files / "digits.ckpt"))
    copy_card(reg, LENET_CARD, "digits.ckpt", sha256(files / "digits.ckpt"))
    card = f"checkpoint digits.ckpt of card {name} does not fit builder lenet5-mnist: "
    with pytest.raises(LoadError) as strict:
        registry.load(name, registry=str(reg))
    assert str(strict.value).startswith(card)
    assert "shape-mismatched (conv1.weight: file 32x1x3x3 vs network 6x1x5x5" in str(strict.value)
    with pytest.raises(LoadError) as loose:
        registry.load(name, registry=str(reg), strict=False)
    assert str(loose.value).startswith(card + "only 0 of its 8 parameters would load")
    assert "strict=False is for a changed head, not for another network" in str(loose.value)
    assert loose.value.exit_code == 7


def test_changed_head_still_loads_with_strict_false(files, server, reg):
    ms.save_checkpoint(lenet.lenet5(), str(files / "lenet5.ckpt"))
    name = copy_card(reg, LENET_CARD, "lenet5.ckpt", sha256(files / "lenet5.ckpt"))
    net = registry.load(name, registry=str(reg), num_classes=3, strict=False)
    report = net.load_report
    assert len(report.loaded) == 6 and [m[0] for m in report.mismatched] == ["fc3.weight", "fc3.bias"]


def test_ssd300_corpus_card_loads_r1x_training_layout(files, server, reg):
    net = ssd.ssd300_mobilenetv2()
    rng = np.random.default_rng(11)
    for p in net.get_parameters():
        if "moving_" in p.name:
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    ms.save_checkpoint(net, str(files / "ssd_seed.ckpt"))  # the seed layout: bare, [1, C, 3, 3]
    train_layout(net, files / "ssd_r1x.ckpt", depthwise_r1x=True)
    table = ms.load_checkpoint(str(files / "ssd_r1x.ckpt"))
    assert table["network.backbone.features_1.1.conv.0.features.0.weight"].shape == (32, 1, 3, 3)

    r1x = copy_card(reg, "mindspore/1.9/ssd300_coco2017.md", "ssd_r1x.ckpt", sha256(files / "ssd_r1x.ckpt"))
    seed = copy_card(reg, "mindspore/1.8/ssd300_coco2017.md", "ssd_seed.ckpt", sha256(files / "ssd_seed.ckpt"))
    a = registry.load(r1x, registry=str(reg))
    b = registry.load(seed, registry=str(reg))
    assert a.load_report.ok and len(a.load_report.loaded) == 409
    assert len(a.load_report.adapted) == 33
    assert {what for _, what in a.load_report.adapted} == {ssd.DEPTHWISE_R1X.label}
    assert b.load_report.ok and not b.load_report.adapted
    x = ms.Tensor(np.random.default_rng(7).standard_normal((1, 3, 300, 300)).astype(np.float32))
    for got, want, ref in zip(a(x), b(x), net(x)):
        np.testing.assert_array_equal(got.asnumpy(), want.asnumpy())
        np.testing.assert_allclose(got.asnumpy(), ref.asnumpy(), atol=1e-6, rtol=0)


class MyLeNet(ms.nn.Cell):
    """A caller's own network with the zoo LeNet5's table."""

    def __init__(self, num_classes: int = 10, width: int = 120):
        super().__init__()
        self.body = lenet.LeNet5(num_classes)
        self.width = width

    def construct(self, x):
        return self.body(x)


def test_builder_keyword_and_builder_args(files, server, reg):
    zoo = lenet.lenet5()
    train_layout(zoo, files / "mine.ckpt")
    # Nested names: the caller's cell keeps the zoo network under `body.`; a plain builder= loads
    # them only when the names fit, so first a function returning the zoo cell itself.
    name = copy_card(
        reg, LENET_CARD, "mine.ckpt", sha256(files / "mine.ckpt"), extra="builder-args:\n  num_classes: 10"
    )
    net = registry.load(name, registry=str(reg), builder=lambda num_classes: lenet.LeNet5(num_classes))
    assert net.load_report.ok and net.load_report.network.startswith("builder test_builders.")
    np.testing.assert_allclose(net(ms.Tensor(X32)).asnumpy(), zoo(ms.Tensor(X32)).asnumpy(), atol=1e-6)

    with pytest.raises(
        LoadError, match=r"does not fit builder test_builders\.MyLeNet: .*8 missing \(body\.conv1\.weight"
    ):
        registry.load(name, registry=str(reg), builder=MyLeNet)
    mine = registry.load(name, registry=str(reg), builder=MyLeNet, pretrained=False, width=7)
    assert isinstance(mine, MyLeNet) and mine.width == 7
    # The caller's keyword arguments override the card's builder-args.
    small = registry.load(name, registry=str(reg), pretrained=False, num_classes=4)
    assert small.fc3.weight.shape == (4, 84)
    copy_card(reg, LENET_CARD, "mine.ckpt", sha256(files / "mine.ckpt"), extra="builder-args:\n  hidden: 64")
    with pytest.raises(UsageError, match=r"builder lenet5-mnist takes \(num_classes, in_channels\): .*'hidden'"):
        registry.load(name, registry=str(reg))
    # A builder that raises on its arguments is one LoadError naming the card and the builder.
    copy_card(reg, LENET_CARD, "mine.ckpt", sha256(files / "mine.ckpt"), extra="builder-args:\n  num_classes: abc")
    with pytest.raises(LoadError, match=r"^card .*: builder lenet5-mnist could not build the network \(TypeError"):
        registry.load(name, registry=str(reg))


def test_explicit_builder_field(files, server, reg):
    ms.save_checkpoint(lenet.lenet5(), str(files / "lenet5.ckpt"))
    name = copy_card(
        reg,
        "mindspore/1.9/ssd300_coco2017.md",
        "lenet5.ckpt",
        sha256(files / "lenet5.ckpt"),
        extra="builder: lenet5-mnist",
    )
    assert registry.load(name, registry=str(reg)).load_report.ok


# --------------------------------------------------------------------------- mindcv

MINDCV_CARD = "mindspore/2.5/mobilenet_v1_025_imagenet2012.md"


def test_mindcv_card_loads_through_the_cache_without_mindcv_downloading(files, server, reg):
    mindcv = pytest.importorskip("mindcv", reason="the mindcv extra is not installed")
    own = mindcv.create_model("mobilenet_v1_025", pretrained=False)
    rng = np.random.default_rng(2)
    for p in own.get_parameters():
        if "moving_" in p.name:
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    own.set_train(False)
    filename = "mobilenet_v1_025-cbe3d3b3-910v2.ckpt"  # the card's own file name
    ms.save_checkpoint(own, str(files / filename))
    name = copy_card(reg, MINDCV_CARD, filename, sha256(files / filename))

    connections, recording = [], [True]

    def audit(event, args):
        if recording[0] and event == "socket.connect":
            connections.append(args[1])
        elif recording[0] and event == "urllib.Request":
            connections.append(args[0])

    sys.addaudithook(audit)  # a hook cannot be removed; it records only during this load
    try:
        net = registry.load(name, registry=str(reg))
    finally:
        recording[0] = False
    hosts = {c[0] if isinstance(c, tuple) else c for c in connections}
    assert hosts == {"127.0.0.1"}, f"the hook saw the download from the loopback server, and nothing else: {hosts}"
    assert net.load_report.ok and len(net.load_report.loaded) == len(own.parameters_dict())
    assert net.load_report.network == "builder mindcv:mobilenet_v1_025"
    x = ms.Tensor(np.random.default_rng(4).standard_normal((1, 3, 224, 224)).astype(np.float32))
    np.testing.assert_allclose(net(x).asnumpy(), own(x).asnumpy(), atol=1e-5, rtol=0)

    # An explicit `builder: mindcv:MODEL` and builder-args; pretrained=False downloads nothing.
    before = len(server.gets(filename))
    other = copy_card(
        reg,
        LENET_CARD,
        filename,
        sha256(files / filename),
        extra="builder: mindcv:mobilenet_v1_025\nbuilder-args:\n  num_classes: 10",
    )
    small = registry.load(other, registry=str(reg), pretrained=False)
    assert small.load_report is None and len(server.gets(filename)) == before
    assert small(x).shape == (1, 10)
    with pytest.raises(UsageError, match="checkpoint_path would let mindcv load weights itself"):
        registry.load(other, registry=str(reg), pretrained=False, checkpoint_path="x.ckpt")


def test_mindcv_model_names():
    from registry.builders.mindcv import model_name

    models = ["BiT_resnet50", "vit_b_32_224", "resnet50", "resnet18"]
    assert (
        model_name(CardFacts(model_name="bit_resnet50", asset_files=("BiT_resnet50-77dcaf0f-910v2.ckpt",)), models)
        == "BiT_resnet50"
    )
    assert model_name(CardFacts(model_name="vit_b32_224"), models) == "vit_b_32_224"
    assert model_name(CardFacts(model_name="x", asset_files=("resnet50-f369a08d-910v2.ckpt",)), models) == "resnet50"
    assert model_name(CardFacts(model_name="resnet50"), models, model="resnet18") == "resnet18"
    assert model_name(CardFacts(model_name="alexnet"), models) is None
