"""Name resolution in a local registry: full ids, short names, card paths, and names that must not escape."""

from __future__ import annotations

import pytest

from registry.catalog import LocalRegistry, check_name, open_registry, resolve
from registry.errors import NotFoundError, UsageError
from registry.names import asset_filename
from tests.conftest import MANIFESTS, run_cli
from tests.servers import write_card

SHA = "ab" * 32


@pytest.fixture
def reg(tmp_path):
    root = tmp_path / "reg"
    for card_id in (
        "mindspore/ascend/0.7/ssd_v1_coco2017",
        "mindspore/gpu/1.0/lenet_mnist",
        "alice/cpu/1.0/lenet_mnist",
        "mindspore/gpu/1.0/resnet50_imagenet",
    ):
        write_card(root, card_id, [("ckpt", f"weights/{card_id.rsplit('/', 1)[-1]}.ckpt", SHA)])
    card = root / "mindspore/gpu/1.0/resnet50_imagenet.md"
    card.with_name("resnet50_imagenet_cn.md").write_text(card.read_text())  # a translation, not a model
    (root / "README.md").write_text("# not a card\n")
    return root


def test_ids_list_cards_without_translations_or_readmes(reg):
    assert LocalRegistry(reg).ids() == [
        "alice/cpu/1.0/lenet_mnist",
        "mindspore/ascend/0.7/ssd_v1_coco2017",
        "mindspore/gpu/1.0/lenet_mnist",
        "mindspore/gpu/1.0/resnet50_imagenet",
    ]


def test_full_id_short_name_and_card_path_resolve_to_the_same_card(reg):
    by_id = resolve("mindspore/ascend/0.7/ssd_v1_coco2017", reg)
    by_name = resolve("ssd_v1_coco2017", reg)
    by_path = resolve(str(reg / "mindspore/ascend/0.7/ssd_v1_coco2017.md"), reg)
    assert by_id.id == by_name.id == by_path.id == "mindspore/ascend/0.7/ssd_v1_coco2017"
    assert by_id.card.path == by_name.card.path == by_path.card.path
    assert resolve("mindspore/ascend/0.7/ssd_v1_coco2017.md", reg).id == by_id.id


def test_card_path_outside_a_registry_is_named_by_its_file(tmp_path):
    card = write_card(tmp_path / "elsewhere", "bob/cpu/1.0/my_net", [("ckpt", "w.ckpt", SHA)])
    entry = resolve(str(card))
    assert entry.id == "my_net" and entry.base_url == card.parent.as_uri() + "/"


def test_missing_card_path_is_named_as_a_file(reg, tmp_path):
    for name in ("../nope.md", str(tmp_path / "nope.md")):
        with pytest.raises(UsageError, match=f"no card file {name}: check the path"):
            resolve(name, reg)


def test_ambiguous_short_name_lists_the_candidates(reg):
    with pytest.raises(NotFoundError) as err:
        resolve("lenet_mnist", reg)
    assert str(err.value).endswith(
        "is ambiguous in " + str(reg) + ": use one of the full ids alice/cpu/1.0/lenet_mnist, "
        "mindspore/gpu/1.0/lenet_mnist (by MindSpore version; 2 are for 1.0)"
    )
    assert err.value.exit_code == 3


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("ssd_v1_coco", "ssd_v1_coco2017"),
        ("resnet50_imagnet", "resnet50_imagenet"),
        ("mindspore/gpu/1.0/resnet_imagenet", "resnet50_imagenet"),
        ("resnet50", "resnet50_imagenet"),
        ("ssd", "ssd_v1_coco2017"),
    ],
)
def test_unknown_name_says_did_you_mean(reg, name, suggestion):
    with pytest.raises(NotFoundError, match=f"no model '{name}' in registry .*; did you mean .*{suggestion}"):
        resolve(name, reg)


def test_unknown_name_without_close_match_points_to_the_list(reg):
    with pytest.raises(NotFoundError, match="`registry list` shows the models it has"):
        resolve("bert_zh", reg)


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "mindspore/../../x",
        "/etc/passwd",
        "a\\b",
        "C:evil",
        "a//b",
        "./x",
        "a/./b",
        "",
        "  ",
        "x\x00y",
        "a/\tb",
    ],
)
def test_names_that_could_escape_the_root_are_refused(reg, name):
    with pytest.raises(UsageError):
        check_name(name)
    with pytest.raises(UsageError):
        resolve(name, reg)


def test_card_path_keeps_dots_in_ids(reg):
    write_card(reg, "mindspore/gpu/1.0/albert_squadv1.1", [("ckpt", "w.ckpt", SHA)])
    assert LocalRegistry(reg).card_path("mindspore/gpu/1.0/albert_squadv1.1").name == "albert_squadv1.1.md"
    assert resolve("albert_squadv1.1", reg).id == "mindspore/gpu/1.0/albert_squadv1.1"


def test_registry_location_from_argument_env_var_or_the_embedded_default(reg, monkeypatch):
    monkeypatch.delenv("REGISTRY_URL", raising=False)
    assert isinstance(open_registry(), LocalRegistry) and open_registry().root == MANIFESTS.resolve()
    assert resolve("ssd_v1_coco2017").card.path.endswith("manifests/mindspore/ascend/0.7/ssd_v1_coco2017.md")
    monkeypatch.setenv("REGISTRY_URL", str(reg))
    assert open_registry().root == reg.resolve()
    assert resolve("resnet50_imagenet").id == "mindspore/gpu/1.0/resnet50_imagenet"
    assert open_registry(reg.as_uri()).root == reg.resolve()  # file:// URLs are directories too
    with pytest.raises(UsageError, match="is not a directory"):
        open_registry(reg / "nothing")
    (reg / "loop").symlink_to("loop")
    with pytest.raises(UsageError, match="is not a directory"):
        open_registry(reg / "loop")


def test_relative_links_resolve_against_the_card_location(reg):
    entry = resolve("ssd_v1_coco2017", reg)
    (asset,) = entry.assets
    assert asset.url == (reg / "mindspore/ascend/0.7/weights/ssd_v1_coco2017.ckpt").as_uri()
    assert asset.link == "weights/ssd_v1_coco2017.ckpt" and asset.filename == "ssd_v1_coco2017.ckpt"


def test_asset_filenames_never_carry_path_parts():
    assert asset_filename("https://h/a/b/c.ckpt?x=1", SHA, "ckpt") == "c.ckpt"
    assert asset_filename("https://h/a/%2e%2e", SHA, "ckpt") == f"{SHA[:12]}.ckpt"
    assert asset_filename("https://h/", SHA, "") == f"{SHA[:12]}.bin"


def test_cli_global_registry_option_selects_the_registry(reg, tmp_path):
    (reg / "mindspore/ascend/0.7/weights").mkdir()
    data = b"checkpoint bytes"
    import hashlib

    write_card(
        reg, "mindspore/ascend/0.7/ssd_v1_coco2017", [("ckpt", "weights/ssd.ckpt", hashlib.sha256(data).hexdigest())]
    )
    (reg / "mindspore/ascend/0.7/weights/ssd.ckpt").write_bytes(data)
    env = {"REGISTRY_HOME": str(tmp_path / "home"), "REGISTRY_PROGRESS": "0"}
    out = run_cli("--registry", str(reg), "pull", "ssd_v1_coco2017", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("models/mindspore/ascend/0.7/ssd_v1_coco2017/ssd.ckpt")
    out = run_cli("pull", "ssd_v1_coco2017", env=dict(env, REGISTRY_URL=str(reg)))
    assert out.returncode == 0, out.stderr
    out = run_cli("--registry", str(reg), "pull", "lenet_mnist", env=env)
    assert out.returncode == 3 and "ambiguous" in out.stderr and len(out.stderr.splitlines()) == 1
