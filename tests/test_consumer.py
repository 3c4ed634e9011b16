"""The consumer's contract on the real MindSpore Hub catalogue: cards refused only for defects that block use,
cosmetic ones warned about once, sha256 prefixes checked (and refused on request), the seed card still refused.

Cards are the real corpus files (or copies of them in tmp_path with one field changed, where the real
checkpoint cannot be served); asset links go to nginx on loopback through --mirror.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from registry import lint, rules
from registry.cache import Cache
from registry.catalog import resolve
from registry.errors import CardError, CardWarning, PrefixWarning, TransferError
from registry.settings import Settings
from registry.transfer import pull
from tests.conftest import CORPUS, MANIFESTS, ROOT, SEED_CARD, require_shared, run_cli
from tests.servers import fault_server, nginx, write_card

ALEXNET = "mindspore/1.10/alexnet_cifar10"
ALEXNET_FILE = "alexnet_ascend_v1100_cifar10_official_cv_acc88.0.ckpt"
ALEXNET_BASE = "https://download.mindspore.cn/models/r1.10/"
HRNET = "mindspore/2.3/hrnet_w32_imagenet2012"  # a mindcv card: asset-sha256 e616cdcb
HRNET_FILE = "hrnet_w32-e616cdcb-910v2.ckpt"
HRNET_BASE = "https://download-mindspore.osinfra.cn/toolkits/mindcv/hrnet/"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def env(home: Path, **extra) -> dict:
    return {"REGISTRY_HOME": str(home), "REGISTRY_PROGRESS": "0", "REGISTRY_RETRIES": "0", **extra}


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("registry: warning:")]


def copy_card(card_id: str, root: Path, old: str, new: str) -> Path:
    """The real card at the same place in a registry of its own, with one text changed."""
    source = require_shared(CORPUS).joinpath(card_id + ".md")
    target = root.joinpath(card_id + ".md")
    target.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1
    target.write_text(text.replace(old, new), encoding="utf-8")
    return target


def assert_nothing_cached(home: Path) -> None:
    cache = Cache(home)
    assert list(cache.blobs()) == []
    partial = home / "partial"
    assert not partial.exists() or list(partial.iterdir()) == []
    assert cache.views() == []


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    return root


# --------------------------------------------------------------------------- one table of severities


def test_every_rule_of_the_table_says_whether_it_blocks_use_and_the_docstring_agrees():
    table = {}
    for line in lint.__doc__.splitlines():
        m = re.match(r"^    ([a-z0-9-]+)\s+(error|warning)\s+(blocks|-|path)\s", line)
        if m:
            table[m.group(1)] = m.group(3)
    assert set(table) == set(rules.BLOCKS_USE)
    for rule, use in table.items():
        assert use == {True: "blocks", False: "-", "schema": "path"}[rules.BLOCKS_USE[rule]], rule


def test_schema_rules_block_use_only_for_the_asset_list():
    blocking = [("asset",), ("asset", 0), ("asset", 1, "asset-link"), ("asset", 0, "asset-sha256")]
    cosmetic = [(), ("update-time",), ("module-type",), ("asset", 0, "file-format"), ("asset", 0, "size")]
    for rule in (
        "schema-required",
        "schema-type",
        "schema-enum",
        "schema-pattern",
        "schema-unknown-key",
        "schema-value",
    ):
        assert all(rules.blocks_use(rule, path) for path in blocking), rule
        assert not any(rules.blocks_use(rule, path) for path in cosmetic), rule
    assert rules.blocks_use("a-rule-nobody-classified")  # strict until classified


# --------------------------------------------------------------------------- the real alexnet card


def test_real_alexnet_card_is_attempted_and_other_bytes_fail_with_exit_4(tmp_path, site):
    # The real card (its update-time 2023-2-17 is not zero-padded); the bytes served are not its checkpoint.
    (site / ALEXNET_FILE).write_bytes(os.urandom(200_000))
    home = tmp_path / "home"
    with nginx(site) as url:
        out = run_cli(
            "pull",
            ALEXNET,
            "--registry",
            str(require_shared(CORPUS)),
            "--mirror",
            f"{ALEXNET_BASE}={url}",
            env=env(home),
        )
        assert len(url.access_log()) == 1  # attempted
    assert out.returncode == 4, out.stderr
    assert "sha256 mismatch" in out.stderr and "not valid" not in out.stderr
    (warning,) = warnings_in(out.stderr)  # the cosmetic defect, once
    assert "alexnet_cifar10.md:21:14: schema-pattern: update-time `2023-2-17`" in warning
    assert_nothing_cached(home)


def test_copy_of_alexnet_card_with_the_served_bytes_digest_pulls(tmp_path, site):
    data = os.urandom(300_000)
    (site / ALEXNET_FILE).write_bytes(data)
    real = "f5f74f1bff1de9c46da58fb0b13fd81dfa0208cc49c3108dadf2f313eac349f2"
    root = tmp_path / "reg"
    copy_card(ALEXNET, root, real, digest(data))  # everything else as published, update-time 2023-2-17 included
    home = tmp_path / "home"
    with nginx(site) as url:
        out = run_cli("pull", ALEXNET, "--registry", str(root), "--mirror", f"{ALEXNET_BASE}={url}", env=env(home))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{digest(data)[:12]}  {home / 'models' / ALEXNET / ALEXNET_FILE}\n"
    assert len(warnings_in(out.stderr)) == 1 and "update-time" in out.stderr
    assert (home / "models" / ALEXNET / ALEXNET_FILE).read_bytes() == data


def test_hub_quirk_cards_are_pulled(tmp_path, site):
    # `evaluation: -` (162 cards) reads as "-": the pull goes ahead, with the quirk as a warning.
    card_id = "mindspore/1.7/melgan_ljspeech"
    text = require_shared(CORPUS).joinpath(card_id + ".md").read_text()
    link, real = re.search(r"asset-link: <?(\S+?)>?\n\s*asset-sha256: (\w+)", text).groups()
    data = os.urandom(10_000)
    (site / "f.ckpt").write_bytes(data)
    copy_card(card_id, tmp_path / "reg", real, digest(data))
    home = tmp_path / "home"
    with nginx(site) as url:
        out = run_cli(
            "pull", card_id, "--registry", str(tmp_path / "reg"), "--mirror", f"{link}={url}f.ckpt", env=env(home)
        )
    assert out.returncode == 0, out.stderr
    assert any("yaml-dash-placeholder" in w for w in warnings_in(out.stderr))
    assert resolve(card_id, tmp_path / "reg").fields["evaluation"] == "-"


def test_seed_card_is_still_refused_with_its_located_error(tmp_path):
    out = run_cli("pull", str(require_shared(SEED_CARD)), env=env(tmp_path / "home"))
    assert out.returncode == 1
    assert out.stderr.startswith(
        f"registry: error: card ssd_v1_coco2017 is not valid: {SEED_CARD}:45:5: error "
        "duplicate-key: duplicate key `file-format` (first at line 41)"
    ), out.stderr
    assert_nothing_cached(tmp_path / "home")


# --------------------------------------------------------------------------- sha256 prefixes (a mindcv card)


def prefix_card(tmp_path: Path, data: bytes) -> Path:
    root = tmp_path / "reg"
    copy_card(HRNET, root, "asset-sha256: e616cdcb", f"asset-sha256: {digest(data)[:8]}")
    return root


def test_prefix_card_pulls_a_file_whose_sha256_starts_with_it_and_finds_it_again(tmp_path, site):
    data = os.urandom(250_000)
    (site / HRNET_FILE).write_bytes(data)
    root, home, full = prefix_card(tmp_path, data), tmp_path / "home", digest(data)
    with nginx(site) as url:
        args = ("pull", HRNET, "--registry", str(root), "--mirror", f"{HRNET_BASE}={url}")
        out = run_cli(*args, env=env(home))
        assert out.returncode == 0, out.stderr
        view = home / "models" / HRNET / HRNET_FILE
        assert out.stdout == f"{full[:12]}  {view}\n"  # the whole digest, not the card's 8 digits
        prefix_warnings = [w for w in warnings_in(out.stderr) if "gives only sha256 prefixes" in w]
        assert len(prefix_warnings) == 1 and "not a hostile server" in prefix_warnings[0]
        # content-addressed by the full digest; the stamp and the view record it
        cache = Cache(home)
        assert [d for d, _ in cache.blobs()] == [full]
        assert json.loads(cache.stamp_path(full).read_text())["sha256"] == full
        assert json.loads((view.parent / ".view.json").read_text())["files"][HRNET_FILE]["sha256"] == full
        assert not (home / "partial").exists() or list((home / "partial").iterdir()) == []
        # later pulls find the cached blob through the view: offline works, and nothing is downloaded
        again = run_cli(*args, env=env(home, REGISTRY_OFFLINE="1"))
        assert again.returncode == 0 and again.stdout == out.stdout, again.stderr
        assert len(url.access_log()) == 1
    hashed = run_cli("hash", str(view))
    assert hashed.stdout.split()[0] == full  # `registry hash` prints the whole digest to put in the card


def test_a_prefix_card_uses_the_one_blob_another_card_pulled_from_its_link(tmp_path, site):
    data = os.urandom(250_000)
    (site / "file.ckpt").write_bytes(data)
    (site / "copy.ckpt").write_bytes(data)
    full, root, home = digest(data), tmp_path / "reg", tmp_path / "home"
    base = "https://download.example.org/m/"
    write_card(root, "mindspore/cpu/2.0/whole", [("ckpt", base + "file.ckpt", full)])
    for name, link in (("short", "file.ckpt"), ("elsewhere", "copy.ckpt"), ("other", "file.ckpt")):
        write_card(root, f"mindspore/cpu/2.0/{name}", [("ckpt", base + link, full[:8])])
    with nginx(site) as url:
        pull = ("--registry", str(root), "--mirror", f"{base}={url}")
        assert run_cli("pull", "mindspore/cpu/2.0/whole", *pull, env=env(home)).returncode == 0
        # offline: no download is possible, so the prefix card can only have found the whole card's blob
        out = run_cli("pull", "mindspore/cpu/2.0/short", *pull, env=env(home, REGISTRY_OFFLINE="1"))
        assert out.returncode == 0, out.stderr
        view = home / "models" / "mindspore/cpu/2.0/short" / "file.ckpt"
        assert out.stdout == f"{full[:12]}  {view}\n" and view.read_bytes() == data
        assert [r["path"] for r in url.access_log()] == ["/file.ckpt"]
        # another link: its bytes come from that link, whatever the cache holds under the prefix
        assert run_cli("pull", "mindspore/cpu/2.0/elsewhere", *pull, env=env(home)).returncode == 0
        assert [r["path"] for r in url.access_log()] == ["/file.ckpt", "/copy.ckpt"]
        # a second blob whose name starts with the prefix: the prefix names neither for sure, so download
        fake = full[:8] + "0" * 56
        Cache(home).blob_path(fake).write_bytes(b"not the file")
        out = run_cli("pull", "mindspore/cpu/2.0/other", *pull, env=env(home))
        assert out.returncode == 0, out.stderr
        assert [r["path"] for r in url.access_log()] == ["/file.ckpt", "/copy.ckpt", "/file.ckpt"]
    assert (home / "models" / "mindspore/cpu/2.0/other" / "file.ckpt").read_bytes() == data
    # a corrupt blob under the prefix is checked like any other before use: re-hashed, removed, not used
    Cache(home).blob_path(fake).unlink()
    blob = Cache(home).blob_path(full)
    blob.chmod(0o644)
    blob.write_bytes(bytes(reversed(data)))
    shutil.rmtree(home / "models" / "mindspore/cpu/2.0/short")
    out = run_cli("pull", "mindspore/cpu/2.0/short", *pull, env=env(home, REGISTRY_OFFLINE="1"))
    assert out.returncode == 6 and "not in the cache" in out.stderr, out.stderr
    assert not blob.exists()


@pytest.mark.skipif(not hasattr(os, "chown") or os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_prefix_card_trusts_no_view_record_a_co_user_of_the_cache_wrote(tmp_path, site):
    # In a shared cache a co-user can commit a blob whose name starts with a prefix (2^32 tries) and write a
    # view record of their own model saying it came from the prefix card's link: that record vouches for nothing.
    data = os.urandom(250_000)
    (site / "file.ckpt").write_bytes(data)
    full, root, home = digest(data), tmp_path / "reg", tmp_path / "home"
    base = "https://download.example.org/m/"
    write_card(root, "mindspore/cpu/2.0/whole", [("ckpt", base + "file.ckpt", full)])
    write_card(root, "mindspore/cpu/2.0/short", [("ckpt", base + "file.ckpt", full[:8])])
    with nginx(site) as url:
        pull = ("--registry", str(root), "--mirror", f"{base}={url}")
        assert run_cli("pull", "mindspore/cpu/2.0/whole", *pull, env=env(home)).returncode == 0
    os.chown(home / "models" / "mindspore/cpu/2.0/whole" / ".view.json", 4242, 4242)
    out = run_cli("pull", "mindspore/cpu/2.0/short", *pull, env=env(home, REGISTRY_OFFLINE="1"))
    assert out.returncode == 6 and "not in the cache" in out.stderr, out.stderr


@pytest.mark.skipif(not hasattr(os, "chown") or os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_prefix_cards_own_view_written_by_a_co_user_is_not_trusted_for_its_digest(tmp_path, site):
    # The co-user pulled the prefix card first (its view record is theirs): which full digest it names for
    # the prefix is their word, so the view record they own sends this user's pulls to the link again.
    data = os.urandom(250_000)
    (site / HRNET_FILE).write_bytes(data)
    root, home = prefix_card(tmp_path, data), tmp_path / "home"
    with nginx(site) as url:
        args = ("pull", HRNET, "--registry", str(root), "--mirror", f"{HRNET_BASE}={url}")
        assert run_cli(*args, env=env(home)).returncode == 0
        os.chown(home / "models" / HRNET / ".view.json", 4242, 4242)
        out = run_cli(*args, env=env(home, REGISTRY_OFFLINE="1"))
        assert out.returncode == 6 and "not in the cache" in out.stderr, out.stderr
        assert run_cli(*args, env=env(home)).returncode == 0  # online: downloaded again, the view now ours
        assert len(url.access_log()) == 2


def test_prefix_card_refuses_a_file_that_does_not_start_with_it(tmp_path, site):
    data = os.urandom(250_000)
    (site / HRNET_FILE).write_bytes(data)
    other = bytes(reversed(data))
    root, home = prefix_card(tmp_path, other), tmp_path / "home"  # the card's prefix is another file's
    assert not digest(data).startswith(digest(other)[:8])
    with nginx(site) as url:
        out = run_cli("pull", HRNET, "--registry", str(root), "--mirror", f"{HRNET_BASE}={url}", env=env(home))
    assert out.returncode == 4, out.stderr
    assert f"expected a sha256 starting with {digest(other)[:8]}, got {digest(data)}" in out.stderr
    assert_nothing_cached(home)


@pytest.mark.parametrize("how", ["env", "flag"])
def test_strict_setting_refuses_prefixes_in_one_sentence(tmp_path, site, how):
    data = os.urandom(1000)
    (site / HRNET_FILE).write_bytes(data)
    home = tmp_path / "home"
    for root in (require_shared(CORPUS), prefix_card(tmp_path, data)):  # not matching, and matching
        with nginx(site) as url:
            args = ["pull", HRNET, "--registry", str(root), "--mirror", f"{HRNET_BASE}={url}"]
            extra = {"REGISTRY_REQUIRE_FULL_SHA256": "1"} if how == "env" else {}
            out = run_cli(*args, *(["--require-full-sha256"] if how == "flag" else []), env=env(home, **extra))
            assert url.access_log() == []
        assert out.returncode == 1, out.stderr
        error = out.stderr.splitlines()[-1]
        assert error.startswith(f"registry: error: card {HRNET} gives only the 8-hex-digit sha256 prefix ")
        assert error.count(". ") == 0 and "REGISTRY_REQUIRE_FULL_SHA256" in error
        assert_nothing_cached(home)


def test_prefix_download_resumes_under_its_own_key(tmp_path, site):
    # A prefix cannot name the partial file; the key it gets must survive between attempts.
    data = os.urandom(600_000)
    (site / HRNET_FILE).write_bytes(data)
    root, home = prefix_card(tmp_path, data), tmp_path / "home"
    entry = resolve(HRNET, root)
    (asset,) = entry.assets
    key = Cache.download_key(asset.sha256, asset.url)
    assert key.startswith(digest(data)[:8] + "-") and "." not in key
    with fault_server(site, reset_after=200_000, times=1) as srv, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = Settings(home=home, mirrors=((HRNET_BASE, srv.url),), retries=0, progress=False)
        with pytest.raises(TransferError):
            pull(entry, settings=s)
        kept = Cache(home).partial_path(key).stat().st_size  # what arrived before the reset
        assert 0 < kept <= 200_000 and Cache(home).partial_meta_path(key).exists()
        (item,) = pull(entry, settings=s)
        assert srv.requests[-1]["range"] == f"bytes={kept}-"
    assert item.sha256 == digest(data) and item.path.read_bytes() == data
    assert not Cache(home).partial_path(key).exists()


@pytest.mark.filterwarnings("ignore::registry.errors.CardWarning")
def test_prefix_warning_is_a_warning_class_not_printed_by_the_library(tmp_path, site):
    data = os.urandom(1000)
    (site / HRNET_FILE).write_bytes(data)
    with (
        nginx(site) as url,
        pytest.warns(PrefixWarning, match="catches corruption but not a hostile server"),
        pytest.warns(CardWarning, match="update-time"),
    ):
        pull(
            HRNET,
            registry=prefix_card(tmp_path, data),
            settings=Settings(home=tmp_path / "home", mirrors=((HRNET_BASE, url),), progress=False),
        )
    with pytest.raises(CardError, match="full digests are required"):
        pull(
            HRNET,
            registry=prefix_card(tmp_path, data),
            settings=Settings(home=tmp_path / "home", require_full_sha256=True, progress=False),
        )


# --------------------------------------------------------------------------- load: one check, one warning


def test_load_checks_the_card_once_and_warns_once(tmp_path, home, monkeypatch):
    pytest.importorskip("mindspore", reason="MindSpore is not installed")
    import registry

    root = tmp_path / "reg"
    shutil.copytree(MANIFESTS, root)
    card = root / "mindspore/cpu/2.10/lenet_digits.md"
    text = card.read_text()
    card.write_text(re.sub(r"update-time: \S+", "update-time: 2023-2-17", text))  # as the hub writes dates
    calls = []
    real_check = lint.check_card
    monkeypatch.setattr(lint, "check_card", lambda c: calls.append(c.path) or real_check(c))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = registry.load("lenet_digits", registry=root)
    assert net.load_report.ok and len(calls) == 1
    card_warnings = [w for w in caught if "schema-pattern" in str(w.message)]
    assert len(card_warnings) == 1 and "update-time" in str(card_warnings[0].message)


def test_info_shows_blocking_problems_and_warns_cosmetic_ones_once(tmp_path):
    corpus = str(require_shared(CORPUS))
    out = run_cli("info", ALEXNET, "--registry", corpus, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["problems"] == [] and len(info["warnings"]) == 1 and "update-time" in info["warnings"][0]
    assert len(warnings_in(out.stderr)) == 1
    out = run_cli("info", str(require_shared(SEED_CARD)), "--json")
    assert out.returncode == 0 and any("duplicate-key" in p for p in json.loads(out.stdout)["problems"])


def test_processes_pulling_the_same_prefix_asset_download_it_once(tmp_path, site):
    data = os.urandom(4 << 20)
    (site / HRNET_FILE).write_bytes(data)
    root, home = prefix_card(tmp_path, data), tmp_path / "home"
    with nginx(site, limit_rate="4m") as url:  # about 1 s per download, so the processes overlap
        cmd = [
            sys.executable,
            "-m",
            "registry",
            "pull",
            HRNET,
            "--registry",
            str(root),
            "--mirror",
            f"{HRNET_BASE}={url}",
        ]
        procs = [
            subprocess.Popen(
                cmd,
                env={**os.environ, **env(home)},
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
        gets = [r for r in url.access_log() if r["method"] == "GET"]
    assert [rc for _, _, rc in results] == [0] * 4, [err for _, err, _ in results]
    assert len(gets) == 1 and len({out for out, _, _ in results}) == 1
    assert [d for d, _ in Cache(home).blobs()] == [digest(data)]


def test_pull_of_a_card_without_assets_says_there_is_nothing_to_pull(home):
    """26 hub cards list no asset (e.g. noah-cvlab's ghostnet_ssd): one sentence and exit 1, not a silent 0."""
    corpus = str(require_shared(CORPUS))
    proc = run_cli("--registry", corpus, "pull", "noah-cvlab/ascend/0.7/ghostnet_ssd_v1.0")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "card noah-cvlab/ascend/0.7/ghostnet_ssd_v1.0 lists no assets" in proc.stderr
    assert not (home / "blobs").exists()


def test_info_tensors_reads_a_prefix_cards_cached_checkpoint_and_names_bit_rot(tmp_path, site):
    """`info --tensors` finds the blob of a prefix asset through the model's view (the full digest), reads
    the bytes it verified, and calls a damaged blob damaged."""
    pytest.importorskip("mindspore", reason="MindSpore is not installed")
    data = (ROOT / "manifests" / "mindspore" / "cpu" / "2.10" / "lenet_digits.ckpt").read_bytes()
    (site / HRNET_FILE).write_bytes(data)
    root, home = prefix_card(tmp_path, data), tmp_path / "home"
    with nginx(site) as url:
        assert (
            run_cli("pull", HRNET, "--registry", str(root), "--mirror", f"{HRNET_BASE}={url}", env=env(home)).returncode
            == 0
        )
    listed = run_cli("--registry", str(root), "info", HRNET, "--tensors", env=env(home))
    assert listed.returncode == 0, listed.stderr
    assert "conv1.weight" in listed.stdout and "not cached" not in listed.stdout + listed.stderr
    blob = Cache(home).blob_path(digest(data))
    st = blob.stat()
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 1
    blob.chmod(0o644)
    blob.write_bytes(bytes(raw))
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    rotten = run_cli("--registry", str(root), "info", HRNET, "--tensors", env=env(home))
    assert rotten.returncode == 4 and "no longer matches its sha256" in rotten.stderr, rotten.stderr


def test_a_rotten_prefix_blob_is_pulled_again_with_one_prefix_warning(tmp_path, site, monkeypatch):
    pytest.importorskip("mindspore", reason="MindSpore is not installed")
    import registry
    from registry.errors import PrefixWarning
    from registry.settings import Settings

    data = (ROOT / "manifests" / "mindspore" / "cpu" / "2.10" / "lenet_digits.ckpt").read_bytes()
    (site / HRNET_FILE).write_bytes(data)
    root, home = prefix_card(tmp_path, data), tmp_path / "home"
    with nginx(site) as url:
        settings = Settings(home=home, mirrors=((HRNET_BASE, url),), progress=False)
        with warnings.catch_warnings(record=True):
            registry.load_weights(HRNET, registry=str(root), settings=settings)
        blob = Cache(home).blob_path(digest(data))
        st = blob.stat()
        blob.chmod(0o644)
        raw = bytearray(blob.read_bytes())
        raw[-10] ^= 1
        blob.write_bytes(bytes(raw))
        os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            weights = registry.load_weights(HRNET, registry=str(root), settings=settings)
        assert len(url.access_log()) == 2  # downloaded again after the bit rot
    assert "conv1.weight" in weights
    assert sum(issubclass(w.category, PrefixWarning) for w in caught) == 1
