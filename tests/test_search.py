"""list/search filters against the real corpus, and the list/info output."""

from __future__ import annotations

import json

import pytest

from registry.catalog import LocalRegistry
from registry.errors import UsageError
from registry.listing import select
from registry.render import render_markdown
from tests.conftest import CORPUS, SEED_CARD, require_shared, run_cli


@pytest.fixture(scope="module")
def records():
    return LocalRegistry(require_shared(CORPUS)).index().records


def ids(records, text=None, **filters):
    return [r["id"] for r in select(records, text, **filters)]


def test_text_search_needs_every_word(records):
    found = ids(records, "SSD coco", mindspore_version=">=1.9")
    names = {
        "ssd300_coco2017",
        "ssdghostnet_coco2017",
        "ssdinceptionv2_coco2014mini",
        "ssdmobilenetv1fpn_coco2017",
        "ssdmobilenetv2_coco2017",
        "ssdmobilenetv2fpnlite_coco2017",
        "ssdresnet34_coco2017",
        "ssdresnet50_coco2017",
        "ssdresnet50fpn_coco2017",
        "ssdvgg16_coco2017",
    }
    assert found == [f"mindspore/{v}/{n}" for v in ("1.10", "1.9") for n in sorted(names)]
    # Words are looked up in the model-name too: ssdghostnet cards call their model ghostnet_ssd.
    by_name = select(records, "GHOSTNET_ssd")
    assert len(by_name) == 7 and all("ghostnet_ssd" in (r["id"] + r["fields"]["model-name"]).lower() for r in by_name)
    assert {"noah-cvlab/ascend/0.7/ghostnet_ssd_v1.0", "mindspore/1.3/ssdghostnet_coco2017"} <= {
        r["id"] for r in by_name
    }
    assert ids(records, "no-such-model-anywhere") == []


def test_mindspore_version_specifiers_compare_as_versions(records):
    exact = ids(records, mindspore_version="1.8")
    assert len(exact) == 456 and exact == ids(records, mindspore_version="==1.8")
    # 1.10 is newer than 1.9: a text comparison would get both of these wrong.
    newer = select(records, mindspore_version=">1.9")
    assert {r["fields"]["mindspore-version"] for r in newer} == {"1.10", "2.3", "2.5"}
    older = select(records, mindspore_version="<1.10")
    assert "1.10" not in {r["fields"]["mindspore-version"] for r in older}
    assert ids(records, mindspore_version="<1") == ["noah-cvlab/ascend/0.7/ghostnet_ssd_v1.0"]
    # Every card has a version now that the hub's YAML quirks are read as text.
    assert len(ids(records, mindspore_version=">=0")) == 2905
    with pytest.raises(UsageError, match="not a version or specifier"):
        select(records, mindspore_version=">=one")


def test_task_dataset_backbone_format_backend_filters(records):
    assert ids(records, task="object_detection") == [
        "mindspore/1.10/ctpn_finetune_icdar2013",
        "mindspore/1.10/ctpn_pretrain_icdar2013",
        "mindspore/1.10/tokenfusion_nyudv2",
        "mindspore/1.8/ctpn_finetune_icdar2013",
        "mindspore/1.8/ctpn_pretrain_icdar2013",
        "mindspore/1.8/efficientdetd0_coco2017",
        "mindspore/1.8/tokenfusion_nyudv2",
        "mindspore/1.9/ctpn_finetune_icdar2013",
        "mindspore/1.9/ctpn_pretrain_icdar2013",
        "mindspore/1.9/tokenfusion_nyudv2",
        "noah-cvlab/ascend/0.7/ghostnet_ssd_v1.0",
        "noah-cvlab/ascend/1.0/ghostnet_ssd_v1.0",
    ]
    cv = select(records, task="cv")
    assert len(cv) == 2320 and all(r["fields"]["module-type"].split("-")[0] == "cv" for r in cv)
    assert ids(records, file_format="mslite") == [
        "noah-cvlab/ascend/1.0/ghostnet_ssd_v1.0",
        "noah-cvlab/gpu/1.0/VGG-Small-low-bit_cifar10",
        "noah-cvlab/gpu/1.0/ghostnet-600_v1.0_oxford_pets",
        "noah-cvlab/gpu/1.0/ghostnet_int8_v1.0_oxford_pets",
        "noah-cvlab/gpu/1.0/ghostnet_v1.0_oxford_pets",
        "noah-cvlab/gpu/1.0/plain-CNN-resnet18_v1.0_cifar_10",
        "noah-cvlab/gpu/1.0/plain-CNN-resnet34_v1.0_cifar10",
        "noah-cvlab/gpu/1.0/plain-CNN-resnet50_v1.0_cifar10",
        "noah-cvlab/gpu/1.0/resnet-0.65x_v1.0_oxford_pets",
    ]
    assert ids(records, backend="mindspore") == []  # a user, not a backend
    gpu = ids(records, backend="GPU")
    assert len(gpu) == 24 and all(i.startswith("noah-cvlab/gpu/") for i in gpu)
    pets = ids(
        records, dataset="oxford", backbone="ghostnet", file_format="ckpt", backend="gpu", mindspore_version="~=1.0"
    )
    assert pets == [
        "noah-cvlab/gpu/1.0/ghostnet-600_v1.0_oxford_pets",
        "noah-cvlab/gpu/1.0/ghostnet_int8_v1.0_oxford_pets",
        "noah-cvlab/gpu/1.0/ghostnet_v1.0_oxford_pets",
    ]


def test_search_cli_json_and_table():
    proc = run_cli(
        "--registry",
        str(require_shared(CORPUS)),
        "search",
        "ghostnet",
        "--task",
        "classification",
        "--mindspore-version",
        ">=1.0,<1.2",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert [r["id"] for r in found] == [
        "noah-cvlab/gpu/1.0/ghostnet-600_v1.0_oxford_pets",
        "noah-cvlab/gpu/1.0/ghostnet_int8_v1.0_oxford_pets",
        "noah-cvlab/gpu/1.0/ghostnet_v1.0_oxford_pets",
    ]
    assert found[0]["fields"]["train-dataset"] == "Oxford-IIIT Pet" and found[0]["assets"][0]["file-format"]
    proc = run_cli("--registry", str(CORPUS), "list", "--backend", "ascend", "--format", "mslite")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["ID", "TASK", "DATASET", "FORMATS", "MINDSPORE"]
    assert lines[1].split() == ["noah-cvlab/ascend/1.0/ghostnet_ssd_v1.0", "cv-object_detection", "mslite", "1.0"]
    assert len(lines) == 2
    proc = run_cli("--registry", str(CORPUS), "search", "nothing-like-this")
    assert proc.returncode == 0 and proc.stdout == "" and "0 models" in proc.stderr
    proc = run_cli("--registry", str(CORPUS), "list", "--mindspore-version", "latest")
    assert proc.returncode == 2 and "not a version or specifier" in proc.stderr and "Traceback" not in proc.stderr


def test_info_renders_fields_assets_and_usage(tmp_path):
    card = tmp_path / "mindspore/ascend/0.7/ssd_v1_coco2017.md"
    card.parent.mkdir(parents=True)
    card.write_bytes(require_shared(SEED_CARD).read_bytes())
    proc = run_cli("--registry", str(tmp_path), "info", "ssd_v1_coco2017")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("SSD\n===\n")
    assert "       model-name: ssd\n" in out and "mindspore-version: 0.7\n" in out
    assert "duplicate-key" in out  # the seed card's malformed asset list is shown, not hidden
    assert "\nUsage\n=====\n\n    import mindspore_hub as mshub\n" in out
    assert '    model = "mindspore/ascend/0.7/ssd_v1_coco2017"\n' in out
    proc = run_cli("--registry", str(tmp_path), "info", "ssd_v1_coco2017", "--json")
    data = json.loads(proc.stdout)
    assert data["id"] == "mindspore/ascend/0.7/ssd_v1_coco2017" and data["fields"]["train-dataset"] == "coco"
    assert [s["title"] for s in data["sections"]] == ["Introduction", "Usage", "Citation"]
    assert data["assets"][0]["sha256"].startswith("29f52e7f")
    proc = run_cli("--registry", str(tmp_path), "info", "ssd_v2")
    assert proc.returncode == 3 and "no model 'ssd_v2'" in proc.stderr


def test_markdown_rendering_for_a_terminal():
    text = (
        "## Results\n\nSee [the paper](https://arxiv.org/abs/1) and <https://x.org>.\n\n"
        "- one\n- two\n  1. nested\n\n```\ncode line\n```\n\n| a | bb |\n|---|----|\n| 1 | 2 |\n"
    )
    assert render_markdown(text) == (
        "Results\n=======\n\nSee the paper (https://arxiv.org/abs/1) and https://x.org.\n\n"
        "- one\n- two\n  1. nested\n\n    code line\n\na | bb\n--+---\n1 | 2\n\n"
    )
    assert "\x1b[1;4mResults\x1b[0m" in render_markdown(text, tty=True)


def test_list_and_info_never_pass_terminal_escapes_from_a_card(tmp_path):
    card = tmp_path / "me/1.0/evil.md"
    card.parent.mkdir(parents=True)
    card.write_text(
        '# Evil\x1b[2J\n\n---\nmodel-name: "evil\\e]0;owned\\a"\nmodule-type: "cv\\e[31m"\n'
        'summary: "two\\nlines"\n---\n\nbody \x1b[2J text\n'
    )
    for command in (["list"], ["info", "evil"]):
        proc = run_cli("--registry", str(tmp_path), *command)
        assert proc.returncode == 0 and "evil" in proc.stdout, proc.stderr
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout, proc.stdout
    assert "\\x1b[2J" in proc.stdout and "two\nlines" in proc.stdout
