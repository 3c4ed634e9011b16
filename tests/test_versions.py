"""Versions: which card a short name shared by several MindSpore versions means, locally and over HTTP."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version as installed_version

import pytest

from registry import catalog, versions
from registry.catalog import HttpRegistry, forget_remote_indexes
from registry.errors import NotFoundError, UsageError
from registry.index import build_index, dumps_index
from registry.listing import hub_list
from tests.conftest import CORPUS, require_shared, run_cli
from tests.servers import nginx, write_card

WEIGHTS = b"\x01" * 4096
SHA = hashlib.sha256(WEIGHTS).hexdigest()
INSTALLED = installed_version("mindspore")  # 2.10.0 in this project's environment


def card(root, card_id, declared=None):
    """A valid card at card_id; `declared` replaces its mindspore-version line (None: the id's version)."""
    path = write_card(root, card_id, [("ckpt", "w.ckpt", SHA)])
    (path.parent / "w.ckpt").write_bytes(WEIGHTS)
    if declared is not None:
        text = path.read_text()
        version = card_id.split("/")[-2]
        path.write_text(text.replace(f'mindspore-version: "{version}"', declared))
    return path


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "reg"
    for v in ("1.3", "1.9", "1.10", "2.3", "2.99"):  # 2.99: newer than any installed MindSpore here
        card(root, f"mindspore/cpu/{v}/net")
    card(root, "mindspore/cpu/1.8/net", declared="mindspore-version: -")  # unreadable: the directory says 1.8
    for user in ("alice", "bob"):
        card(root, f"{user}/cpu/1.5/twin")
    card(root, "alice/cpu/1.4/twin")
    return root


def test_the_installed_version_is_read_without_importing_mindspore():
    import subprocess
    import sys

    code = (
        "import sys; from registry import versions; print(versions.installed_mindspore(), 'mindspore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [INSTALLED, "False"]


def test_newest_not_newer_than_installed_compared_as_versions(tree):
    assert INSTALLED.startswith("2.10"), "these expectations are for MindSpore 2.10"
    entry = catalog.resolve("net", tree)
    assert entry.id == "mindspore/cpu/2.3/net"  # not 2.99 (newer), and 2.3 > 1.10 > 1.9 as versions
    assert str(entry.choice) == (
        "net -> mindspore/cpu/2.3/net (newest for the installed MindSpore "
        f"{INSTALLED}; others: 1.3, 1.8, 1.9, 1.10, 2.99)"
    )
    # A card's unreadable mindspore-version falls back to its directory: 1.8 is there.
    assert catalog.resolve("net", tree, mindspore_version="1.8").id == "mindspore/cpu/1.8/net"


@pytest.mark.parametrize(
    "installed, chosen",
    [
        ("2.10.0", "mindspore/cpu/2.3/net"),
        ("1.10.1", "mindspore/cpu/1.10/net"),  # major.minor: 1.10 is not newer than 1.10.1
        ("1.9.0", "mindspore/cpu/1.9/net"),
        ("1.2.0", "mindspore/cpu/1.3/net"),  # every card is newer: the oldest, the nearest
        (None, "mindspore/cpu/2.99/net"),  # MindSpore not installed: the newest
    ],
)
def test_choice_for_other_installed_versions(tree, installed, chosen):
    ids = catalog.LocalRegistry(tree).matches("net")
    found = catalog.LocalRegistry(tree).declared_versions(ids)
    choice = versions.choose("net", found, installed=installed)
    assert choice.id == chosen
    assert ("not installed" in choice.reason) is (installed is None)


@pytest.mark.parametrize(
    "wanted, chosen",
    [
        ("1.9", "mindspore/cpu/1.9/net"),
        ("1.10", "mindspore/cpu/1.10/net"),
        (">=1.8,<2", "mindspore/cpu/1.10/net"),
        ("<1.9", "mindspore/cpu/1.8/net"),
        (">2.5", "mindspore/cpu/2.99/net"),
        ("~=1.3", "mindspore/cpu/1.10/net"),
    ],
)
def test_explicit_version_or_specifier(tree, wanted, chosen):
    entry = catalog.resolve("net", tree, mindspore_version=wanted)
    assert entry.id == chosen and entry.choice.reason == f"newest for MindSpore {wanted}"


def test_unsatisfiable_or_malformed_version_is_one_sentence(tree):
    with pytest.raises(
        NotFoundError,
        match=r"no card of model 'net' in .* is for MindSpore 1.4: it has 1.3, 1.8, 1.9, "
        r"1.10, 2.3, 2.99; ask for one of those or give a full id",
    ):
        catalog.resolve("net", tree, mindspore_version="1.4")
    with pytest.raises(UsageError, match="not a version or specifier"):
        catalog.resolve("net", tree, mindspore_version="latest")


def test_exact_ids_always_work_and_are_checked_against_an_explicit_version(tree):
    entry = catalog.resolve("mindspore/cpu/2.99/net", tree)
    assert entry.id == "mindspore/cpu/2.99/net" and entry.choice is None
    assert catalog.resolve("mindspore/cpu/1.9/net", tree, mindspore_version="1.9").id == "mindspore/cpu/1.9/net"
    with pytest.raises(NotFoundError, match=r"card mindspore/cpu/1.9/net is for MindSpore 1.9, not 2.3"):
        catalog.resolve("mindspore/cpu/1.9/net", tree, mindspore_version="2.3")


def test_remaining_ambiguity_is_exit_3_with_candidates_by_version(tree):
    with pytest.raises(NotFoundError) as err:
        catalog.resolve("twin", tree)
    assert str(err.value).endswith(
        "use one of the full ids alice/cpu/1.4/twin, alice/cpu/1.5/twin, bob/cpu/1.5/twin "
        "(by MindSpore version; 2 are for 1.5)"
    )
    assert catalog.resolve("twin", tree, mindspore_version="1.4").id == "alice/cpu/1.4/twin"
    proc = run_cli("--registry", str(tree), "info", "twin")
    assert proc.returncode == 3 and "alice/cpu/1.4/twin, alice/cpu/1.5/twin, bob/cpu/1.5/twin" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_list_sorts_by_version_not_text(tree):
    proc = run_cli("--registry", str(tree), "list", "--json")
    assert proc.returncode == 0, proc.stderr
    order = [r["id"] for r in json.loads(proc.stdout)]
    # The 1.8 card declares `-`: it sorts by its directory's version, as the choice does.
    assert order == [
        "mindspore/cpu/1.3/net",
        "alice/cpu/1.4/twin",
        "alice/cpu/1.5/twin",
        "bob/cpu/1.5/twin",
        "mindspore/cpu/1.8/net",
        "mindspore/cpu/1.9/net",
        "mindspore/cpu/1.10/net",
        "mindspore/cpu/2.3/net",
        "mindspore/cpu/2.99/net",
    ]
    table = run_cli("--registry", str(tree), "list").stdout.splitlines()[1:]
    assert [line.split()[0] for line in table] == order


def test_pull_says_which_card_it_chose(tree, home):
    proc = run_cli("--registry", str(tree), "pull", "net")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("registry: net -> mindspore/cpu/2.3/net (newest for the installed MindSpore")
    assert "/models/mindspore/cpu/2.3/net/w.ckpt" in proc.stdout
    proc = run_cli("--registry", str(tree), "pull", "net", "--mindspore-version", "1.9")
    assert proc.returncode == 0 and "-> mindspore/cpu/1.9/net (newest for MindSpore 1.9;" in proc.stderr
    proc = run_cli("--registry", str(tree), "pull", "mindspore/cpu/1.3/net")  # an exact id: nothing to say
    assert proc.returncode == 0 and proc.stderr == ""


def test_corpus_resnet50_picks_2_5_under_mindspore_2_10_and_1_8_on_request():
    corpus = str(require_shared(CORPUS))
    proc = run_cli("info", "resnet50_imagenet2012", "--registry", corpus)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "registry: resnet50_imagenet2012 -> mindspore/2.5/resnet50_imagenet2012 (newest for the "
        f"installed MindSpore {INSTALLED}; others: 1.3, 1.5, 1.6, 1.7, 1.8, 1.9, 1.10, 2.3)\n"
    )
    assert "               id: mindspore/2.5/resnet50_imagenet2012\n" in proc.stdout
    proc = run_cli("info", "resnet50_imagenet2012", "--registry", corpus, "--mindspore-version", "1.8")
    assert proc.returncode == 0, proc.stderr
    assert "-> mindspore/1.8/resnet50_imagenet2012 (newest for MindSpore 1.8;" in proc.stderr
    assert "               id: mindspore/1.8/resnet50_imagenet2012\n" in proc.stdout
    assert "mindspore-version: 1.8\n" in proc.stdout


def test_http_registry_chooses_from_its_index_without_fetching_other_cards(tree, home):
    (tree / "index.json").write_bytes(dumps_index(build_index(tree)))
    forget_remote_indexes()
    with nginx(tree) as url:
        remote = HttpRegistry(url)
        entry = catalog.resolve("net", url)
        assert entry.id == "mindspore/cpu/2.3/net" and entry.choice == catalog.resolve("net", tree).choice
        assert catalog.resolve("net", url, mindspore_version="1.8").id == "mindspore/cpu/1.8/net"
        with pytest.raises(NotFoundError, match="alice/cpu/1.4/twin, alice/cpu/1.5/twin, bob/cpu/1.5/twin"):
            remote.resolve("twin")
        cards = [r["path"] for r in url.access_log() if r["path"].endswith(".md")]
        assert cards == ["/mindspore/cpu/2.3/net.md", "/mindspore/cpu/1.8/net.md"]
        assert hub_list(">=1.9", registry=url) == [
            "mindspore/cpu/1.9/net",
            "mindspore/cpu/1.10/net",
            "mindspore/cpu/2.3/net",
            "mindspore/cpu/2.99/net",
        ]
        proc = run_cli("--registry", url, "info", "net", env={"REGISTRY_HOME": str(home)})
        assert proc.returncode == 0 and "net -> mindspore/cpu/2.3/net" in proc.stderr
    forget_remote_indexes()
