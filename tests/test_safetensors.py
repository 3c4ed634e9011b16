"""safetensors assets: the header is checked before anything is parsed, a lying header is one error
sentence, and a card's safetensors asset served by nginx loads like the ckpt of the same weights."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.errors import LoadError
from registry.tensors import safetensors_table


def write(path: Path, header, data: bytes = b"", raw_header: bytes | None = None) -> Path:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def test_header_table(tmp_path):
    header = {
        "__metadata__": {"format": "ms"},
        "b": {"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 32]},
        "a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]},
        "empty": {"dtype": "F16", "shape": [0, 4], "data_offsets": [32, 32]},
    }
    table = safetensors_table(write(tmp_path / "ok.safetensors", header, bytes(32)), "x")
    assert {k: (v.shape, v.dtype) for k, v in table.items()} == {
        "a": ((1,), "I64"),
        "b": ((2, 3), "F32"),
        "empty": ((0, 4), "F16"),
    }


GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(
    "header, data, raw, says",
    [
        (None, b"", b"", "the header is not UTF-8 JSON"),
        (["w"], bytes(8), None, "the header is not a JSON object"),
        (
            None,
            bytes(8),
            b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {}}',
            "the name 'w' appears twice",
        ),
        ({"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), None, "unknown dtype 'F33'"),
        (
            {"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},
            bytes(8),
            None,
            "not a list of non-negative integers",
        ),
        (
            {"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}},
            bytes(8),
            None,
            "not a list of non-negative integers",
        ),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 80]}}, bytes(8), None, "outside the 8 bytes of data"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 0]}}, bytes(8), None, "outside the 8 bytes of data"),
        (
            {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
            bytes(8),
            None,
            "spans 8 bytes but F32 x [3] needs 12",
        ),
        (
            {
                "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            bytes(12),
            None,
            "inside the previous entry",
        ),
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            bytes(12),
            None,
            "leaving a hole after byte 0",
        ),
        (GOOD, bytes(12), None, "the entries cover 8 of the 12 data bytes"),
        ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), None, "does not have exactly dtype, shape and data_offsets"),
        ({"__metadata__": {"n": 1}, **GOOD}, bytes(8), None, "__metadata__ is not a mapping of strings"),
        (None, b"", b"\xff\xfe", "the header is not UTF-8 JSON"),
        (None, b"", b"[" * 100_000, "the header nests too deeply"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.5]}}, bytes(8), None, "not two integers"),
    ],
)
def test_lying_headers_are_one_sentence(tmp_path, header, data, raw, says):
    path = write(tmp_path / "bad.safetensors", header, data, raw)
    with pytest.raises(LoadError) as err:
        safetensors_table(path, "checkpoint bad.safetensors of card c")
    message = str(err.value)
    assert says in message and message.startswith(
        "checkpoint bad.safetensors of card c has an invalid safetensors header"
    )
    assert "\n" not in message and err.value.exit_code == 7


def test_lint_wants_the_extension_mindspore_needs(tmp_path):
    from servers import write_card

    from registry.card import parse_file
    from registry.lint import check_card

    path = write_card(
        tmp_path,
        "mindspore/cpu/2.10/tiny",
        [
            ("safetensors", "https://h/x/weights.bin", "a" * 64),
            ("safetensors", "https://h/x/w.safetensors", "b" * 64),
            ("ckpt", "https://h/x/w.ckpt?raw=1", "c" * 64),
        ],
    )
    found = [p for p in check_card(parse_file(path)) if p.rule == "format-extension"]
    assert [(p.severity, p.message.split(" but")[0]) for p in found] == [("warning", "asset 1 is safetensors")]
    assert "publish the file as NAME.safetensors" in found[0].message


def test_lengths_past_the_end(tmp_path):
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x01\x00")
    with pytest.raises(LoadError, match="fewer than the 8 of the header length"):
        safetensors_table(short, "x")
    long = tmp_path / "long.safetensors"
    long.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    with pytest.raises(LoadError, match="runs past the end of the 10-byte file"):
        safetensors_table(long, "x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 199), st.integers(0, 255))
def test_mutated_files_never_crash(tmp_path_factory, tail, where, byte):
    """Any damage to a valid file is either still a valid table or one LoadError, never another exception."""
    base = bytearray(struct.pack("<Q", 62) + json.dumps(GOOD).encode().ljust(62) + bytes(8))
    base[where % len(base)] = byte
    path = tmp_path_factory.mktemp("m") / "x.safetensors"
    path.write_bytes(bytes(base) + tail)
    try:
        safetensors_table(path, "x")
    except LoadError:
        pass


# --------------------------------------------------------------------------- through registry.load (MindSpore, nginx)

ms = pytest.importorskip("mindspore", reason="MindSpore is not installed")

from conftest import run_cli  # noqa: E402
from servers import nginx, write_card  # noqa: E402

import registry  # noqa: E402
from registry import loader  # noqa: E402
from registry.builders import lenet, ssd  # noqa: E402

CARD_ID = "mindspore/cpu/2.10/tiny"
X32 = np.random.default_rng(5).standard_normal((1, 1, 32, 32)).astype(np.float32)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card(reg: Path, url: str, files: Path, names: list[str], builder: str) -> None:
    assets = [(name.rsplit(".", 1)[1], url + name, sha256(files / name)) for name in names]
    path = write_card(reg, CARD_ID, assets)
    path.write_text(path.read_text().replace("\nlicense:", f"\nbuilder: {builder}\nlicense:", 1))


@pytest.fixture
def site(tmp_path, home):
    files = tmp_path / "site"
    files.mkdir()
    return files


def test_safetensors_asset_loads_like_the_ckpt(site, tmp_path, home):
    zoo = lenet.lenet5()
    ms.save_checkpoint(zoo, str(site / "lenet5.safetensors"), format="safetensors")
    ms.save_checkpoint(zoo, str(site / "lenet5.ckpt"))
    reg = tmp_path / "registry"
    with nginx(site) as url:
        card(reg, url, site, ["lenet5.ckpt", "lenet5.safetensors"], "lenet5-mnist")
        a = registry.load(CARD_ID, registry=str(reg))  # safetensors is preferred when a card has both
        b = registry.load(CARD_ID, registry=str(reg), file_format="ckpt")
        assert [row["path"] for row in url.access_log()] == ["/lenet5.safetensors", "/lenet5.ckpt"]
        weights = registry.load_weights(CARD_ID, registry=str(reg))
    listed = run_cli("--registry", str(reg), "info", CARD_ID, "--tensors", env={"REGISTRY_HOME": str(home)})
    assert listed.returncode == 0, listed.stderr
    lines = [line.split() for line in listed.stdout.splitlines()]
    assert lines.count(["conv1.weight", "6x1x5x5", "F32"]) == 2 and lines.count(["fc3.bias", "10", "F32"]) == 2
    assert ["lenet5.safetensors", "(safetensors,", "8", "entries)"] in lines
    assert listed.stdout.index("lenet5.ckpt (ckpt") < listed.stdout.index("lenet5.safetensors (safetensors")

    assert a.load_report.source.startswith("checkpoint lenet5.safetensors") and a.load_report.ok
    assert b.load_report.source.startswith("checkpoint lenet5.ckpt") and b.load_report.ok
    for name, param in b.parameters_dict().items():
        np.testing.assert_array_equal(a.parameters_dict()[name].asnumpy(), param.asnumpy())
        np.testing.assert_array_equal(weights[name].asnumpy(), param.asnumpy())
    np.testing.assert_allclose(a(ms.Tensor(X32)).asnumpy(), zoo(ms.Tensor(X32)).asnumpy(), atol=1e-6)


def test_header_is_checked_before_mindspore_parses(site, tmp_path, monkeypatch):
    ms.save_checkpoint(lenet.lenet_digits(), str(site / "digits.safetensors"), format="safetensors")
    write(
        site / "lying.safetensors", {"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4 << 40]}}, bytes(8)
    )
    reg = tmp_path / "registry"
    parsed = []
    monkeypatch.setattr(loader, "read_checkpoint", lambda *a, **k: parsed.append(a) or {})
    with nginx(site) as url:
        card(reg, url, site, ["digits.safetensors"], "lenet5-mnist")
        with pytest.raises(
            LoadError, match=r"digits\.safetensors of card .* does not fit builder lenet5-mnist: only 0 of its 8"
        ):
            registry.load(CARD_ID, registry=str(reg), strict=False)
        card(reg, url, site, ["lying.safetensors"], "lenet5-mnist")
        with pytest.raises(
            LoadError,
            match=r"lying\.safetensors of card .* has an invalid safetensors header \(entry 'w' "
            r"has data_offsets \[0, 4398046511104\] outside the 8 bytes of data\)",
        ):
            registry.load(CARD_ID, registry=str(reg))
        with pytest.raises(LoadError, match="invalid safetensors header"):
            registry.load_weights(CARD_ID, registry=str(reg))
    assert parsed == []


def test_r1x_ssd_safetensors_in_training_layout(site, tmp_path):
    """The table check runs on the header with the builder's adaptation: depthwise [C,1,3,3] fits."""
    net = ssd.ssd300_mobilenetv2()
    entries = []
    for p in net.get_parameters():
        data = p.asnumpy()
        if data.ndim == 4 and data.shape[0] == 1 and data.shape[1] > 1:
            data = data.reshape(data.shape[1], 1, 3, 3)
        entries.append({"name": "network." + p.name, "data": ms.Tensor(data)})
    entries += [
        {"name": "moments.network." + p.name, "data": ms.Tensor(np.zeros(p.shape, np.float32))}
        for p in net.trainable_params()
    ]
    ms.save_checkpoint(entries, str(site / "ssd.safetensors"), format="safetensors")
    reg = tmp_path / "registry"
    with nginx(site) as url:
        card(reg, url, site, ["ssd.safetensors"], "ssd300-mobilenetv2")
        loaded = registry.load(CARD_ID, registry=str(reg))
    report = loaded.load_report
    assert report.ok and len(report.loaded) == 409 and len(report.adapted) == 33
    name = "backbone.features_1.1.conv.0.features.0.weight"
    np.testing.assert_array_equal(loaded.parameters_dict()[name].asnumpy(), net.parameters_dict()[name].asnumpy())
