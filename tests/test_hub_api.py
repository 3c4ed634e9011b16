"""The MindSpore Hub API: a snippet written for mindspore_hub runs with only its import changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ms = pytest.importorskip("mindspore", reason="MindSpore is not installed")

import registry  # noqa: E402
from registry import catalog as remote_module  # noqa: E402  (HttpRegistry's limits)
from registry import settings  # noqa: E402
from registry.builders.lenet import lenet_digits, preprocess  # noqa: E402
from registry.errors import NotFoundError, OfflineError, TransferError, UsageError  # noqa: E402
from registry.loader import VersionWarning  # noqa: E402
from tests.conftest import MANIFESTS, ROOT, run_cli  # noqa: E402
from tests.servers import nginx  # noqa: E402

LENET = "mindspore/cpu/2.10/lenet_digits"
LENET_DIR = MANIFESTS / "mindspore/cpu/2.10"
HELDOUT = LENET_DIR / "lenet_digits_heldout.npz"
CORRECT = 353  # of the 359 held-out images, as the card says

# In the style of the corpus cards' usage sections (`import mindspore_hub as mshub` ... `mshub.load(model)`),
# written against mindspore_hub 2.0's API.
SNIPPET = """\
import mindspore_hub as mshub
import numpy as np
from mindspore import Tensor, context

context.set_context(mode=context.GRAPH_MODE, device_target="CPU")

mshub.set_hub_dir({hub_dir!r})
model = "{model}"
network = mshub.load(model, num_classes=10)
network.set_train(False)

data = np.load({heldout!r})
images = Tensor((data["images"] / 16.0).reshape(-1, 1, 8, 8).astype(np.float32))
logits = network(images).asnumpy()
print("correct", int((logits.argmax(axis=1) == data["labels"]).sum()))

param_dict = mshub.load_weights(model, source="gitee", force_reload=False)
print("weights", sorted(param_dict))
print("listed", model in mshub.hub_list())
print("hub_dir", mshub.get_hub_dir())
"""


@pytest.fixture
def hub_dir_reset():
    yield
    settings.set_hub_dir(None)


def copy_lenet(dest: Path) -> Path:
    """The embedded lenet card and its assets in another directory; returns the card path."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in LENET_DIR.glob("lenet_digits*"):
        shutil.copy(path, dest / path.name)
    return dest / "lenet_digits.md"


def accuracy_of(net) -> int:
    with np.load(HELDOUT) as data:
        logits = net(ms.Tensor(preprocess(data["images"]))).asnumpy()
        return int((logits.argmax(axis=1) == data["labels"]).sum())


def test_a_mindspore_hub_snippet_runs_with_only_its_import_changed(tmp_path):
    hub_dir = tmp_path / "mscache"
    snippet = SNIPPET.format(hub_dir=str(hub_dir), model=LENET, heldout=str(HELDOUT))
    script = tmp_path / "snippet.py"
    script.write_text(snippet.replace("import mindspore_hub as mshub", "import registry as mshub"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REGISTRY_HOME": str(tmp_path / "env-home"), "REGISTRY_PROGRESS": "0"}
    env.pop("REGISTRY_URL", None)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert out["correct"] == str(CORRECT)
    assert out["weights"] == str(sorted(p.name for p in lenet_digits().get_parameters()))
    assert out["listed"] == "True" and out["hub_dir"] == str(hub_dir)
    # set_hub_dir moved the cache: the verified checkpoint is there, and nothing under REGISTRY_HOME.
    assert (hub_dir / "models" / LENET / "lenet_digits.ckpt").is_file()
    assert not (tmp_path / "env-home").exists()


def test_source_local_reads_a_card_file_and_other_sources_the_registry(tmp_path, home):
    card = copy_lenet(tmp_path / "somewhere")
    local = registry.load(str(card), source="local")
    assert accuracy_of(local) == CORRECT and local.load_report.ok
    assert accuracy_of(registry.load("lenet_digits", source="github")) == CORRECT
    # `source` is the hub's and never reaches the builder (lenet_digits takes no such argument).
    assert registry.load(LENET, source="gitee", pretrained=False).load_report is None
    with pytest.raises(UsageError, match=r"no card file lenet_digits: with source='local' the name is the path"):
        registry.load("lenet_digits", source="local")
    with pytest.raises(UsageError, match=r"source='hf' is not one of 'gitee', 'github', 'local'"):
        registry.load("lenet_digits", source="hf")
    with pytest.raises(UsageError, match=r"source='hf'"):
        registry.load_weights("lenet_digits", source="hf")


def test_load_weights_in_the_hub_2_0_and_2020_forms(tmp_path, home):
    card = copy_lenet(tmp_path / "cards")
    expected = {p.name: p.asnumpy() for p in registry.load(LENET).get_parameters()}
    by_source = registry.load_weights(str(card), "local")  # mindspore_hub 2.0's positional source
    assert {k: v.asnumpy() for k, v in by_source.items()}.keys() == expected.keys()
    assert all(np.array_equal(by_source[k].asnumpy(), expected[k]) for k in expected)
    net = lenet_digits()
    report = registry.load_weights(net, handle="lenet_digits")  # the 2020 form
    assert report.ok and accuracy_of(net) == CORRECT
    with pytest.raises(UsageError, match="give the model name once"):
        registry.load_weights(net, "lenet_digits", handle="lenet_digits")


def test_hub_list_filters_by_version_and_reloads(tmp_path, home):
    assert registry.hub_list() == ["mindspore/ascend/0.7/ssd_v1_coco2017", LENET]  # by version: 0.7, then 2.10
    assert registry.hub_list("2.10") == [LENET] and registry.hub_list(version=">=1") == [LENET]
    assert registry.hub_list("r0.7") == ["mindspore/ascend/0.7/ssd_v1_coco2017"]  # the hub's branch names
    assert registry.hub_list("master") == registry.hub_list()
    with pytest.raises(UsageError, match="give a MindSpore version"):
        registry.hub_list(1.8)
    with pytest.raises(UsageError, match=r"^hub_list\(version='bad'\): 'bad' is not a version or specifier"):
        registry.hub_list("bad")  # in the words of the call, not of the CLI's option
    tree = tmp_path / "tree"
    copy_lenet(tree / "me/cpu/2.10")
    assert registry.hub_list(registry=tree) == ["me/cpu/2.10/lenet_digits"]
    copy_lenet(tree / "me/cpu/1.9")
    assert registry.hub_list(registry=tree) == ["me/cpu/2.10/lenet_digits"]  # the index read before
    assert registry.hub_list(registry=tree, force_reload=True) == [
        "me/cpu/1.9/lenet_digits",
        "me/cpu/2.10/lenet_digits",
    ]


def test_set_hub_dir_overrides_registry_home_for_later_calls(tmp_path, home, hub_dir_reset):
    assert registry.get_hub_dir() == str(home)
    registry.set_hub_dir(tmp_path / "hub")
    assert registry.get_hub_dir() == str(tmp_path / "hub") and settings.current().home == tmp_path / "hub"
    assert settings.Settings.from_env({"REGISTRY_HOME": str(tmp_path / "other")}).home == tmp_path / "hub"
    [ckpt] = registry.pull("lenet_digits", formats=["ckpt"])
    assert ckpt.path.is_relative_to(tmp_path / "hub") and not home.exists()
    registry.set_hub_dir("~/x")
    assert registry.get_hub_dir() == str(Path("~/x").expanduser())
    registry.set_hub_dir(None)  # back to REGISTRY_HOME
    assert registry.get_hub_dir() == str(home)
    with pytest.raises(UsageError, match=r"set_hub_dir\(''\): give the directory"):
        registry.set_hub_dir("")


def test_a_card_url_loads_with_relative_links_resolved_against_it(tmp_path, home, monkeypatch):
    copy_lenet(tmp_path / "site" / "cards")
    with nginx(tmp_path / "site") as url:
        card_url = url + "cards/lenet_digits.md"
        net = registry.load(card_url)
        assert accuracy_of(net) == CORRECT
        entry = registry.resolve(card_url)
        assert entry.id == "lenet_digits" and entry.source == card_url
        assert entry.assets[0].url == url + "cards/lenet_digits.ckpt"
        assert [r["path"] for r in url.access_log()][:2] == ["/cards/lenet_digits.md", "/cards/lenet_digits.ckpt"]
        proc = run_cli("info", url + "cards/nothing.md", env={"REGISTRY_HOME": str(home)})
        assert proc.returncode == 3 and f"there is no card at {url}cards/nothing.md (HTTP 404)" in proc.stderr
        with pytest.raises(UsageError, match="is not the URL of a card"):
            registry.resolve(url + "cards/")
        monkeypatch.setattr(remote_module, "MAX_CARD_BYTES", 1000)  # the card is larger: refused, not read whole
        with pytest.raises(TransferError, match="is over 1,000 bytes"):
            registry.resolve(card_url)
        monkeypatch.setenv("REGISTRY_OFFLINE", "1")
        with pytest.raises(OfflineError, match="is a card URL"):
            registry.resolve(card_url)


def test_version_choice_reaches_load_and_pull(tmp_path, home):
    tree = tmp_path / "tree"
    for version in ("1.9", "2.10", "2.99"):
        card = copy_lenet(tree / "mindspore/cpu" / version)
        card.write_text(card.read_text().replace("mindspore-version: 2.10", f"mindspore-version: {version}"))
    net = registry.load("lenet_digits", registry=tree)  # 2.10: 2.99 is newer than the installed MindSpore
    assert net.load_report.source == "checkpoint lenet_digits.ckpt of card mindspore/cpu/2.10/lenet_digits"
    with pytest.warns(VersionWarning, match="made with MindSpore 1.9"):  # the card it was asked for, and says so
        weights = registry.load_weights("lenet_digits", registry=tree, mindspore_version="1.9")
    assert len(weights) == len(lenet_digits().parameters_dict())
    [item] = registry.pull("lenet_digits", registry=tree, formats=["npz"], mindspore_version=">2.10")
    assert item.entry.id == "mindspore/cpu/2.99/lenet_digits" and item.entry.choice.others == ("1.9", "2.10")
    with pytest.raises(NotFoundError, match="is for MindSpore 3"):
        registry.load("lenet_digits", registry=tree, mindspore_version="3")
