"""`registry.load`: a card's name -> a constructed MindSpore network with its weights loaded.

No code is downloaded or executed from the network: the network is built by a builder installed
in this package or through the `registry.builders` entry points (see `registry.builders`), and the
weights come from the card's asset, pulled into the cache and verified by sha256 before any byte is
parsed.

Which asset: the first `ckpt` asset of the card (or, if it has none, the first `mindir` asset);
`file_format=` picks another format, `asset=` an asset by index or file name. A `mindir` asset
loads as a graph (`nn.GraphCell`) with no builder.

How checkpoint entries meet the network's parameters:
- a name equal to a parameter's name loads into it;
- else leading `network.` prefixes (a training wrapper's) are removed and the rest is matched;
- else optimizer state and training counters (`moments.*`, `moment1.*`, `accum.*`, ...,
  `learning_rate`, `momentum`, `global_step`, ...) are ignored;
- anything else is unexpected; parameters nothing matched are missing; entries whose shape differs
  from the parameter's are mismatched.
Strict loading (the default) raises `LoadError` listing them all. `strict=False` loads what fits.
Either way the returned network carries the outcome as `net.load_report` (a `LoadReport`).

The predecessor's API is kept: `load(name, *args, pretrained=True, force_reload=False, **kwargs)`,
`load_weights(network, name)` (loads into a network you built), `load_weights(name)` (the weights
as a name -> Parameter dict) and `get_desired_input_shape(name)`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import CardError, LoadError, UsageError

WRAPPER_PREFIX = "network."
_OPTIMIZER_PREFIXES = (
    "moments.", "moment.", "moment1.", "moment2.", "accum.", "accum_update.", "adam_m.", "adam_v.",
    "lamb_m.", "lamb_v.", "exp_avg.", "exp_avg_sq.", "mean_grad.", "mean_square.", "linear.", "vhat.",
    "prev.", "stat.", "step_size.", "ax_.", "accu_grads.",
)
_TRAINING_COUNTERS = frozenset({
    "learning_rate", "momentum", "global_step", "beta1_power", "beta2_power", "weight_decay",
    "scale_sense", "loss_scale", "current_iterator_step", "last_overflow_iterator_step",
    "epoch_num", "step_num",
})
LOADABLE_FORMATS = ("ckpt", "mindir")
_log = logging.getLogger("registry")
SHOWN = 8  # names listed per kind in an error message before "and K more"


class VersionWarning(UserWarning):
    """The card was made with a MindSpore version whose checkpoints may behave differently."""


def is_optimizer_state(name: str) -> bool:
    return name in _TRAINING_COUNTERS or name.startswith(_OPTIMIZER_PREFIXES)


@dataclass
class LoadReport:
    """What loading a checkpoint into a network did, parameter by parameter."""

    source: str
    loaded: list[str] = field(default_factory=list)  # network parameter names that received weights
    missing: list[str] = field(default_factory=list)  # network parameters nothing in the file matched
    unexpected: list[str] = field(default_factory=list)  # file entries that match no parameter
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (entry, file shape, network shape)
    ignored: list[str] = field(default_factory=list)  # optimizer state and training counters
    renamed: int = 0  # entries matched after removing a `network.` prefix

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        """The differences as one line each kind, names truncated after SHOWN."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_first(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_first(self.unexpected)})")
        if self.mismatched:
            shown = [f"{n}: file {_shape(a)} vs network {_shape(b)}" for n, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape-mismatched ({_first(shown)})")
        return "; ".join(parts)


def _shape(shape: Iterable[int]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _first(items: list[str]) -> str:
    more = f", and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def fit_parameters(net, params: dict, *, strict: bool = True, source: str = "checkpoint") -> LoadReport:
    """Match a checkpoint's entries to `net`'s parameters (rules in the module doc) and load them.

    With `strict`, nothing is loaded unless everything fits; the LoadError lists the differences.
    """
    expected = net.parameters_dict()
    report = LoadReport(source)
    matched: dict[str, Any] = {}
    for key, value in params.items():
        target = key
        while target not in expected and target.startswith(WRAPPER_PREFIX):
            target = target[len(WRAPPER_PREFIX):]
        if target in expected and target not in matched and hasattr(value, "shape"):
            want = tuple(expected[target].shape)
            if tuple(value.shape) != want:
                report.mismatched.append((key, tuple(value.shape), want))
                matched[target] = None
                continue
            matched[target] = value
            report.renamed += target != key
        elif is_optimizer_state(key) or not hasattr(value, "shape"):
            report.ignored.append(key)  # strings come from save_checkpoint's append_dict
        else:
            report.unexpected.append(key)
    report.missing = [name for name in expected if name not in matched]
    if strict and not report.ok:
        raise LoadError(f"{source} does not fit the network: {report.problems()}; "
                        "pass strict=False to load the parameters that fit")
    for name, value in matched.items():
        if value is None:
            continue
        param = expected[name]
        data = value.data if hasattr(value, "data") else value
        if data.dtype != param.dtype:
            from mindspore import Tensor

            data = Tensor(data.asnumpy(), param.dtype)
        param.set_data(data)
        report.loaded.append(name)
    return report


def read_checkpoint(path: str | os.PathLike, source: str, *, keep_optimizer: bool = False) -> dict:
    """A checkpoint file's entries; optimizer state is skipped while parsing unless asked for."""
    import mindspore

    choice = None if keep_optimizer else (lambda name: not is_optimizer_state(name))
    try:
        return mindspore.load_checkpoint(os.fspath(path), choice_func=choice)
    except (ValueError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(f"{source} is not a readable MindSpore checkpoint ({first}): check the card's asset-link") from None


def check_version(card_version: Any, label: str, installed: str | None = None) -> str | None:
    """A warning text when the card's mindspore-version differs from the installed one in a way that matters:
    another major version, or a newer release than the installed one. None otherwise."""
    from packaging.version import InvalidVersion, Version

    if card_version in (None, ""):
        return None
    if installed is None:
        import mindspore

        installed = mindspore.__version__
    try:
        card, have = Version(str(card_version)), Version(installed)
    except InvalidVersion:
        return None
    if card.major != have.major or card.release[:2] > have.release[:2]:
        return (f"{label} was made with MindSpore {card_version}, but MindSpore {installed} is installed: "
                "the weights load by name, yet numerics and operators may differ; check the outputs")
    return None


def _warn_version(entry) -> None:
    message = check_version(entry.fields.get("mindspore-version"), f"card {entry.id}")
    if message:
        warnings.warn(message, VersionWarning, stacklevel=3)


def choose_asset(entry, file_format: str | None = None, asset: int | str | None = None):
    """The asset to load: by index or file name, else the first of `file_format`, else ckpt then mindir."""
    assets = entry.assets
    have = ", ".join(f"{i}: {a.filename} ({a.file_format})" for i, a in enumerate(assets)) or "none"
    if asset is not None:
        for i, a in enumerate(assets):
            if asset == i or asset == a.filename:
                return _loadable(entry, a)
        raise UsageError(f"card {entry.id} has no asset {asset!r}; its assets are {have}")
    wanted = [file_format.lower().lstrip(".")] if file_format else list(LOADABLE_FORMATS)
    for fmt in wanted:
        for a in assets:
            if a.file_format.lower() == fmt:
                return _loadable(entry, a)
    raise LoadError(f"card {entry.id} has no {' or '.join(wanted)} asset to load (assets: {have}); "
                    f"the loader reads {' and '.join(LOADABLE_FORMATS)} files")


def _loadable(entry, asset):
    if asset.file_format.lower() not in LOADABLE_FORMATS:
        raise LoadError(f"asset {asset.filename} of card {entry.id} is in {asset.file_format} format, which "
                        f"MindSpore cannot load into a network here; the loader reads {' and '.join(LOADABLE_FORMATS)} assets")
    return asset


@contextlib.contextmanager
def _fetch(entry, asset, *, force: bool):
    """A path to the bytes of one asset of the card, hashed and found to match its sha256 in this call:
    pulled if not cached, then copied privately while hashed (cache.verified_copy), so what MindSpore parses
    is what was checked. A cached blob that no longer matches (bit rot, tampering) is removed and pulled
    again, once."""
    from . import transfer
    from .cache import Cache, verified_copy
    from .errors import IntegrityError, RegistryError

    for attempt in (1, 2):
        (item,) = transfer.pull(entry, assets=[asset], force=force)  # only the chosen asset is downloaded
        with verified_copy(item.blob, asset.sha256, f"asset.{asset.file_format.lower()}") as path:
            if path is not None:
                yield os.fspath(path)
                return
        what = f"the cached {asset.filename} of card {entry.id} ({item.blob})"
        try:
            cache = Cache.from_settings()
            with cache.lock(asset.sha256):
                cache.verify_blob(asset.sha256)  # removes it: its bytes are not the card's any more
        except (RegistryError, OSError):
            raise IntegrityError(f"{what} no longer matches its sha256 (bit rot or tampering), and this cache cannot "
                                 "be repaired by you: ask its owner to run `registry cache verify`") from None
        if attempt == 2:
            raise IntegrityError(f"{what} did not match its sha256 even after a fresh download: the disk or "
                                 "memory may be failing; run `registry cache verify`")
        _log.warning(f"{what} no longer matches its sha256 (bit rot or tampering): removed, pulling it again")


def _resolve(name, registry):
    from . import catalog

    entry = catalog.resolve(name, registry=registry)
    entry.require_sound()
    return entry


def load(name: str, *args, pretrained: bool = True, force_reload: bool = False, strict: bool = True,
         file_format: str | None = None, asset: int | str | None = None, registry=None, **kwargs):
    """The network a card describes, built here and loaded with the card's weights, in eval mode.

    `args` and `kwargs` pass to the builder (e.g. `num_classes=21`). `pretrained=False` builds
    without weights; `force_reload=True` downloads the asset again. `strict=False` loads what fits;
    `net.load_report` tells what was loaded, missing, unexpected, mismatched and ignored.
    `registry` is a registry location (default: REGISTRY_URL, else the embedded one).
    """
    entry = _resolve(name, registry)
    chosen = choose_asset(entry, file_format, asset) if pretrained or file_format or asset is not None else None
    if chosen is not None and chosen.file_format.lower() == "mindir":
        if args or kwargs:
            raise UsageError(f"card {entry.id}: a mindir asset is a finished graph; builder arguments "
                             f"({', '.join([*map(repr, args), *kwargs])}) do not apply to it")
        if not pretrained:
            raise UsageError(f"card {entry.id}: a mindir asset holds its weights; pretrained=False needs a ckpt asset")
        return _load_graph(entry, chosen, force=force_reload)

    from .builders import find_builder

    spec, builder = find_builder(entry.fields, f"card {entry.id}")
    _warn_version(entry)
    _check_arguments(entry, spec, builder, args, kwargs)
    net = builder(*args, **kwargs)
    net.set_train(False)
    net.load_report = None
    if pretrained:
        source = f"checkpoint {chosen.filename} of card {entry.id}"
        with _fetch(entry, chosen, force=force_reload) as path:
            params = read_checkpoint(path, source)
        net.load_report = fit_parameters(net, params, strict=strict, source=source)
    return net


def _check_arguments(entry, spec, builder, args, kwargs) -> None:
    import inspect

    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # no introspectable signature: let the call decide
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        takes = ", ".join(str(p).split(":")[0].split("=")[0].strip() for p in signature.parameters.values())
        raise UsageError(f"card {entry.id}: builder {spec.name} takes ({takes}): {exc}") from None


def _load_graph(entry, asset, *, force: bool):
    import mindspore
    from mindspore import nn

    _warn_version(entry)
    try:
        with _fetch(entry, asset, force=force) as path:
            graph = mindspore.load(path)
    except (ValueError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(f"mindir {asset.filename} of card {entry.id} cannot be loaded ({first})") from None
    net = nn.GraphCell(graph)
    net.load_report = None
    return net


def load_weights(network_or_name, name: str | None = None, *, force_reload: bool = False, strict: bool = True,
                 file_format: str | None = None, asset: int | str | None = None, registry=None):
    """The card's checkpoint weights.

    `load_weights(network, name)`: load them into a network you built (as mindspore_hub did);
    returns the LoadReport. `load_weights(name)`: the weights as a dict of name -> Parameter, with
    optimizer state dropped and a training wrapper's `network.` prefix removed when every entry has it.
    """
    if isinstance(network_or_name, (str, os.PathLike)):
        if name is not None:
            raise UsageError("load_weights(name) takes one model name; to load into a network call load_weights(network, name)")
        network, name = None, network_or_name
    else:
        network = network_or_name
        if name is None:
            raise UsageError("load_weights(network, name): give the model name whose weights to load")
    entry = _resolve(name, registry)
    chosen = choose_asset(entry, file_format or "ckpt", asset)
    if chosen.file_format.lower() != "ckpt":
        raise LoadError(f"card {entry.id}: load_weights reads ckpt assets; {chosen.filename} is {chosen.file_format}")
    _warn_version(entry)
    source = f"checkpoint {chosen.filename} of card {entry.id}"
    with _fetch(entry, chosen, force=force_reload) as path:
        params = read_checkpoint(path, source)
    if network is not None:
        return fit_parameters(network, params, strict=strict, source=source)
    weights = {k: v for k, v in params.items() if hasattr(v, "shape")}
    if weights and all(k.startswith(WRAPPER_PREFIX) for k in weights):
        weights = {k[len(WRAPPER_PREFIX):]: v for k, v in weights.items()}
    return weights


def _shape_from_text(text: str) -> list[int] | None:
    """`[300, 300, 3]` or `300,300,3` written as text -> [300, 300, 3]; None otherwise. String operations,
    not a pattern: the text is the card's and may be long."""
    parts = text.strip().removeprefix("[").removesuffix("]").split(",")
    if not all(p.strip().isascii() and p.strip().isdigit() and len(p.strip()) <= 18 for p in parts):
        return None
    return [int(p) for p in parts]


def get_desired_input_shape(name: str, registry=None) -> list[int]:
    """The card's input-shape, e.g. [300, 300, 3] (the layout the card documents)."""
    from . import catalog

    entry = catalog.resolve(name, registry=registry)
    shape = entry.fields.get("input-shape")
    if isinstance(shape, str):
        shape = _shape_from_text(shape) or shape
    if not isinstance(shape, list) or not shape or not all(isinstance(x, int) and not isinstance(x, bool) for x in shape):
        line, col = entry.card.pos(("input-shape",))
        raise CardError(f"{entry.card.path}:{line}:{col}: card {entry.id} has no usable input-shape "
                        f"(got {shape!r}): write it as a list of integers, e.g. [300, 300, 3]")
    return shape
