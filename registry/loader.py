"""`registry.load`: a card's name -> a constructed MindSpore network with its weights loaded.

No code is downloaded or executed from the network: the network is built by a builder installed
in this package or through the `registry.builders` entry points (see `registry.builders`), and the
weights come from the card's asset, pulled into the cache and verified by sha256 before any byte is
parsed.

Which asset: the first `safetensors` asset of the card, else the first `ckpt`, else the first
`mindir`; `file_format=` picks another format, `asset=` an asset by index or file name. safetensors
comes first because its parameter table is read from the header and checked against the network
before any tensor byte is parsed, and MindSpore reads it faster (benchmarks/bench_load.py). A
`mindir` asset loads as a graph (`nn.GraphCell`) with no builder.

How checkpoint entries meet the network's parameters:
- a name equal to a parameter's name loads into it;
- else leading `network.` prefixes (a training wrapper's) are removed and the rest is matched;
- else optimizer state and training counters (`moments.*`, `moment1.*`, `accum.*`, ...,
  `learning_rate`, `momentum`, `global_step`, ...) are ignored;
- the builder's declared adaptation (`registry.builders.Adaptation`) renames name parts the network
  calls otherwise and transforms entries whose layout differs (e.g. SSD depthwise kernels), each
  listed in the report's `adapted`;
- anything else is unexpected; parameters nothing matched are missing; entries whose shape differs
  from the parameter's are mismatched.
The tables are compared before any weight is set. Strict loading (the default) raises `LoadError`
naming the card's checkpoint, the builder and the first differences. `strict=False` loads what fits,
for a changed head; when under half of the network's parameters would load it is a different
network, and that is a LoadError too. Either way the returned network carries the outcome as
`net.load_report` (a `LoadReport`).

The builder: the card's (see `registry.builders`), or the caller's `builder=` (a function or an
`nn.Cell` class). Arguments to it: the card's `builder-args:` mapping, overridden by the caller's.

The predecessor's API (mindspore_hub 2.0) is kept, so `import registry as mshub` runs its snippets:
`load(name, *args, source="gitee", pretrained=True, force_reload=False, **kwargs)`,
`load_weights(name, source="gitee", force_reload=False)` (the weights as a name -> Parameter dict),
`load_weights(network, name)` and the 2020 `load_weights(network, handle=name)` (loads into a network
you built), `get_desired_input_shape(name)`; `hub_list`, `get_hub_dir` and `set_hub_dir` live in
index.py and settings.py. `source` says how to read the name (catalog.resolve) and never reaches the
builder. `mindspore_version=` picks among the cards of a short name (versions.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import CardError, LoadError, PrefixWarning, RegistryError, UsageError

WRAPPER_PREFIX = "network."
_OPTIMIZER_PREFIXES = (
    "moments.",
    "moment.",
    "moment1.",
    "moment2.",
    "accum.",
    "accum_update.",
    "adam_m.",
    "adam_v.",
    "lamb_m.",
    "lamb_v.",
    "exp_avg.",
    "exp_avg_sq.",
    "mean_grad.",
    "mean_square.",
    "linear.",
    "vhat.",
    "prev.",
    "stat.",
    "step_size.",
    "ax_.",
    "accu_grads.",
)
_TRAINING_COUNTERS = frozenset(
    {
        "learning_rate",
        "momentum",
        "global_step",
        "beta1_power",
        "beta2_power",
        "weight_decay",
        "scale_sense",
        "loss_scale",
        "current_iterator_step",
        "last_overflow_iterator_step",
        "epoch_num",
        "step_num",
    }
)
LOADABLE_FORMATS = ("safetensors", "ckpt", "mindir")
WEIGHT_FORMATS = ("safetensors", "ckpt")  # formats whose entries load into a built network
_log = logging.getLogger("registry")
SHOWN = 8  # names listed per kind in an error message before "and K more"


class VersionWarning(UserWarning):
    """The card was made with a MindSpore version whose checkpoints may behave differently."""


def is_optimizer_state(name: str) -> bool:
    """Whether a checkpoint entry is training state (optimizer moments, step counters), not a weight."""
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
    adapted: list[tuple[str, str]] = field(default_factory=list)  # (file entry, what the builder's adaptation did)
    network: str = "the network"  # which network the file was fitted to, e.g. "builder lenet5-mnist"

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


def fit_parameters(
    net,
    params: dict,
    *,
    strict: bool = True,
    source: str = "checkpoint",
    adaptation=None,
    network: str = "the network",
    dry_run: bool = False,
) -> LoadReport:
    """Match a checkpoint's entries to `net`'s parameters (rules in the module doc) and load them.

    Nothing is loaded unless the tables fit: with `strict`, everything; without, at least half of
    the network's parameters. The LoadError lists the differences. `dry_run` checks only: `params`
    may then be a table of `tensors.TableEntry` (shapes, no data).
    """
    expected = net.parameters_dict()
    report = LoadReport(source, network=network)
    matched: dict[str, Any] = {}
    for key, value in params.items():
        target = key
        while target not in expected and target.startswith(WRAPPER_PREFIX):
            target = target[len(WRAPPER_PREFIX) :]
        if adaptation is not None and target not in expected:
            renamed = adaptation.rename(target)
            if renamed != target and renamed in expected:
                report.adapted.append((key, f"renamed to {renamed}"))
                target = renamed
        if target in expected and target not in matched and hasattr(value, "shape"):
            want = tuple(expected[target].shape)
            if tuple(value.shape) != want and adaptation is not None:
                value = _transformed(adaptation, target, key, value, want, report)
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
    fitting = sum(value is not None for value in matched.values())
    another_network = bool(expected) and fitting * 2 < len(expected)
    if strict and not report.ok and not another_network:
        raise LoadError(
            f"{source} does not fit {network}: {report.problems()}; pass strict=False to load the parameters that fit"
        )
    if another_network:
        raise LoadError(
            f"{source} does not fit {network}: only {fitting} of its {len(expected)} parameters would "
            f"load ({report.problems()}); strict=False is for a changed head, not for another network: "
            "check that the card names the right builder"
        )
    if dry_run:
        return report
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


def _transformed(adaptation, target: str, key: str, value, want: tuple, report: LoadReport):
    transform = adaptation.transform(target, tuple(value.shape), want)
    if transform is None:
        return value
    report.adapted.append((key, transform.label))
    if not hasattr(value, "asnumpy"):  # a table entry: the shape the transform makes is all there is
        return replace(value, shape=want)
    from mindspore import Tensor

    return Tensor(transform.apply(value.asnumpy(), want))


def read_checkpoint(
    path: str | os.PathLike, source: str, *, keep_optimizer: bool = False, file_format: str = "ckpt"
) -> dict:
    """A checkpoint file's entries (ckpt or safetensors); optimizer state is skipped while parsing unless asked for."""
    import mindspore

    choice = None if keep_optimizer else (lambda name: not is_optimizer_state(name))
    try:
        return mindspore.load_checkpoint(os.fspath(path), choice_func=choice, format=file_format.lower())
    except (ValueError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(
            f"{source} is not a readable MindSpore checkpoint ({first}): check the card's asset-link"
        ) from None


@dataclass(frozen=True)
class AssetTable:
    """The parameter table of one cached checkpoint asset of a card."""

    filename: str
    file_format: str
    tensors: list  # tensors.TableEntry, in file order


@dataclass
class TablesReport:
    """What `registry info NAME --tensors` shows: the tables of the cached assets, and those not cached."""

    tables: list = field(default_factory=list)  # AssetTable
    not_cached: list = field(default_factory=list)  # file names of ckpt/safetensors assets not in the cache


def cached_tables(entry, settings=None) -> TablesReport:
    """The parameter tables of the card's ckpt/safetensors assets that are in the cache (nothing is downloaded).
    Raises LoadError or IntegrityError for a cached file that cannot be read."""
    from .cache import Cache, verified_copy
    from .errors import IntegrityError

    cache = Cache.from_settings(settings)
    report = TablesReport()
    for asset in entry.assets:
        fmt = asset.file_format.lower()
        if fmt not in ("ckpt", "safetensors"):
            continue
        # A card's sha256 prefix names no blob: the model's view records the full digest pull computed.
        digest = cache.view_digest(entry.id, asset.sha256, asset.url) if asset.is_prefix else asset.sha256
        blob = cache.trusted(digest) if digest else None
        if blob is None:
            report.not_cached.append(asset.filename)
            continue
        source = f"checkpoint {asset.filename} of card {entry.id}"
        # The bytes read are the bytes verified, in a copy whose extension MindSpore accepts.
        with verified_copy(blob, digest, f"asset.{fmt}") as path:
            if path is None:
                raise IntegrityError(
                    f"the cached {asset.filename} of card {entry.id} ({blob}) no longer matches its "
                    f"sha256 (bit rot or tampering): run `registry pull --force {entry.id}`"
                )
            table = checkpoint_table(path, asset.file_format, source)
        report.tables.append(AssetTable(asset.filename, asset.file_format, list(table.values())))
    return report


def checkpoint_table(path: str | os.PathLike, file_format: str, source: str) -> dict:
    """The (name, shape, dtype) table (`tensors.TableEntry` by name) of a safetensors file, from its
    header, or of a ckpt file, which MindSpore parses whole (ckpt has no header); every entry included."""
    from .tensors import TableEntry, safetensors_table

    if file_format.lower() == "safetensors":
        return safetensors_table(path, source)
    params = read_checkpoint(path, source, keep_optimizer=True, file_format=file_format)
    return {
        name: TableEntry(name, tuple(value.shape), _DTYPE_NAMES.get(str(value.dtype).lower(), str(value.dtype)))
        for name, value in params.items()
        if hasattr(value, "shape")
    }


# MindSpore's dtype names -> the safetensors names, so both formats' tables read alike.
_DTYPE_NAMES = {
    "float16": "F16",
    "float32": "F32",
    "float64": "F64",
    "bfloat16": "BF16",
    "int8": "I8",
    "int16": "I16",
    "int32": "I32",
    "int64": "I64",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "bool": "BOOL",
}


def check_version(card_version: Any, label: str, installed: str | None = None) -> str | None:
    """A warning text when the card's mindspore-version differs from the installed one in a way that matters:
    another major version, or a newer release than the installed one. None otherwise."""
    from packaging.version import InvalidVersion, Version

    if card_version in (None, ""):
        return None
    if installed is None:
        from .versions import installed_mindspore

        installed = installed_mindspore()
        if installed is None:
            return None
    try:
        card, have = Version(str(card_version)), Version(installed)
    except InvalidVersion:
        return None
    if card.major != have.major or card.release[:2] > have.release[:2]:
        return (
            f"{label} was made with MindSpore {card_version}, but MindSpore {installed} is installed: "
            "the weights load by name, yet numerics and operators may differ; check the outputs"
        )
    return None


def _warn_version(entry) -> None:
    message = check_version(entry.fields.get("mindspore-version"), f"card {entry.id}")
    if message:
        warnings.warn(message, VersionWarning, stacklevel=3)


def choose_asset(entry, file_format: str | None = None, asset: int | str | None = None, formats=LOADABLE_FORMATS):
    """The asset to load: by index or file name, else the first of `file_format`, else the first of
    `formats` in that order of preference (safetensors, ckpt, mindir)."""
    assets = entry.assets
    have = ", ".join(f"{i}: {a.filename} ({a.file_format})" for i, a in enumerate(assets)) or "none"
    if asset is not None:
        for i, a in enumerate(assets):
            if asset == i or asset == a.filename:
                return _loadable(entry, a)
        raise UsageError(f"card {entry.id} has no asset {asset!r}; its assets are {have}")
    wanted = [file_format.lower().lstrip(".")] if file_format else list(formats)
    for fmt in wanted:
        for a in assets:
            if a.file_format.lower() == fmt:
                return _loadable(entry, a)
    raise LoadError(
        f"card {entry.id} has no {' or '.join(wanted)} asset to load (assets: {have}); "
        f"the loader reads {', '.join(LOADABLE_FORMATS)} files"
    )


def _loadable(entry, asset):
    if asset.file_format.lower() not in LOADABLE_FORMATS:
        raise LoadError(
            f"asset {asset.filename} of card {entry.id} is in {asset.file_format} format, which "
            f"MindSpore cannot load into a network here; the loader reads {', '.join(LOADABLE_FORMATS)} assets"
        )
    return asset


@contextlib.contextmanager
def _fetch(entry, asset, *, force: bool, settings=None):
    """A path to the bytes of one asset of the card, hashed and found to match its sha256 in this call:
    pulled if not cached, then copied privately while hashed (cache.verified_copy), so what MindSpore parses
    is what was checked. A cached blob that no longer matches (bit rot, tampering) is removed and pulled
    again, once."""
    from . import transfer
    from .cache import Cache, verified_copy
    from .errors import IntegrityError, RegistryError

    for attempt in (1, 2):
        with warnings.catch_warnings():
            if attempt == 2:  # the pull again after bit rot: its prefix warning was given the first time
                warnings.simplefilter("ignore", PrefixWarning)
            (item,) = transfer.pull(entry, assets=[asset], force=force, settings=settings)  # only the chosen asset
        # item.sha256 is the full digest: a card may give only a prefix of it
        with verified_copy(item.blob, item.sha256, f"asset.{asset.file_format.lower()}") as path:
            if path is not None:
                yield os.fspath(path)
                return
        what = f"the cached {asset.filename} of card {entry.id} ({item.blob})"
        try:
            cache = Cache.from_settings(settings)
            with cache.lock(item.sha256):
                cache.verify_blob(item.sha256)  # removes it: its bytes are not the card's any more
        except (RegistryError, OSError):
            raise IntegrityError(
                f"{what} no longer matches its sha256 (bit rot or tampering), and this cache cannot "
                "be repaired by you: ask its owner to run `registry cache verify`"
            ) from None
        if attempt == 2:
            raise IntegrityError(
                f"{what} did not match its sha256 even after a fresh download: the disk or "
                "memory may be failing; run `registry cache verify`"
            )
        _log.warning(f"{what} no longer matches its sha256 (bit rot or tampering): removed, pulling it again")


def _resolve(name, registry, source: str = "gitee", mindspore_version: str | None = None, settings=None):
    from . import catalog

    entry = catalog.resolve(
        name, registry=registry, source=source, mindspore_version=mindspore_version, settings=settings
    )
    entry.require_sound()
    return entry


def load(
    name: str,
    *args,
    source: str = "gitee",
    pretrained: bool = True,
    force_reload: bool = False,
    strict: bool = True,
    file_format: str | None = None,
    asset: int | str | None = None,
    registry=None,
    mindspore_version: str | None = None,
    builder=None,
    settings=None,
    **kwargs,
):
    """The network a card describes, built here and loaded with the card's weights, in eval mode.

    `name` is a full id, a short name, a card file path or a card URL. `args` and `kwargs` pass to
    the builder (e.g. `num_classes=21`), over the card's `builder-args`. `builder=` a function or
    `nn.Cell` class builds the network instead of the card's builder. `source`: "gitee"/"github"
    (the configured registry) or "local" (`name` is a card file path). `pretrained=False` builds
    without weights; `force_reload=True` downloads the asset again. `strict=False` loads what fits
    (at least half of the network); `net.load_report` tells what was loaded, missing, unexpected,
    mismatched, adapted and ignored. `registry` is a registry location (default: REGISTRY_URL, else
    the embedded one); `mindspore_version` picks among the cards of a short name ("1.8", ">=2";
    default: the newest for the installed MindSpore); `settings` (settings.Settings, default: read now)
    reach the registry, the transfer and the cache.
    Raises NotFoundError, CardError, LoadError (no builder, weights that do not fit), IntegrityError,
    TransferError, OfflineError, UsageError.
    """
    entry = _resolve(name, registry, source, mindspore_version, settings)
    chosen = choose_asset(entry, file_format, asset) if pretrained or file_format or asset is not None else None
    if chosen is not None and chosen.file_format.lower() == "mindir":
        if args or kwargs or builder is not None:
            given = [*map(repr, args), *kwargs, *(["builder="] if builder is not None else [])]
            raise UsageError(
                f"card {entry.id}: a mindir asset is a finished graph; builder arguments "
                f"({', '.join(given)}) do not apply to it"
            )
        if not pretrained:
            raise UsageError(
                f"card {entry.id}: a mindir asset holds its weights; pretrained=False needs a ckpt or safetensors asset"
            )
        return _load_graph(entry, chosen, force=force_reload, settings=settings)

    from .builders import CardFacts, find_builder

    facts = CardFacts.of(entry.fields)
    if builder is None:
        spec, builder = find_builder(facts, f"card {entry.id}")
        label = f"builder {getattr(builder, 'builder_name', spec.name)}"
    else:
        label = f"builder {getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', repr(builder))}"
    _warn_version(entry)
    kwargs = {**facts.builder_args, **kwargs}
    _check_arguments(entry, label, builder, args, kwargs)
    try:
        net = builder(*args, **kwargs)
    except RegistryError:
        raise
    except Exception as exc:  # a builder (ours, mindcv's, a plugin's) that cannot build from these arguments
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise LoadError(
            f"card {entry.id}: {label} could not build the network ({type(exc).__name__}"
            f"{': ' + first if first else ''}); check the card's builder-args and the arguments given"
        ) from None
    net.set_train(False)
    net.load_report = None
    if pretrained:
        net.load_report = _load_into(
            net,
            entry,
            chosen,
            strict=strict,
            force=force_reload,
            settings=settings,
            adaptation=getattr(builder, "adaptation", None),
            network=label,
        )
    return net


def _load_into(
    net, entry, chosen, *, strict: bool, force: bool, adaptation=None, network: str = "the network", settings=None
):
    """Fetch, table-check and load one weights asset into `net`; its LoadReport."""
    source = f"checkpoint {chosen.filename} of card {entry.id}"
    fmt = chosen.file_format.lower()
    options = {"strict": strict, "source": source, "adaptation": adaptation, "network": network}
    with _fetch(entry, chosen, force=force, settings=settings) as path:
        if fmt == "safetensors":  # the header's table first: nothing of a file that does not fit is parsed
            from .tensors import safetensors_table

            fit_parameters(net, safetensors_table(path, source), dry_run=True, **options)
        params = read_checkpoint(path, source, file_format=fmt)
    return fit_parameters(net, params, **options)


def _check_arguments(entry, label: str, builder, args, kwargs) -> None:
    import inspect

    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # no introspectable signature: let the call decide
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        takes = ", ".join(str(p).split(":")[0].split("=")[0].strip() for p in signature.parameters.values())
        raise UsageError(f"card {entry.id}: {label} takes ({takes}): {exc}") from None


def _load_graph(entry, asset, *, force: bool, settings=None):
    import mindspore
    from mindspore import nn

    _warn_version(entry)
    try:
        with _fetch(entry, asset, force=force, settings=settings) as path:
            graph = mindspore.load(path)
    except (ValueError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(f"mindir {asset.filename} of card {entry.id} cannot be loaded ({first})") from None
    net = nn.GraphCell(graph)
    net.load_report = None
    return net


def load_weights(
    network_or_name,
    name: str | None = None,
    *,
    source: str = "gitee",
    force_reload: bool = False,
    strict: bool = True,
    file_format: str | None = None,
    asset: int | str | None = None,
    registry=None,
    mindspore_version: str | None = None,
    handle: str | None = None,
    settings=None,
):
    """The card's checkpoint weights.

    `load_weights(name, source="gitee")`: the weights as a dict of name -> Parameter, with optimizer
    state dropped and a training wrapper's `network.` prefix removed when every entry has it
    (mindspore_hub 2.0's form; its positional `load_weights(name, "local")` works too).
    `load_weights(network, name)` or `load_weights(network, handle=name)`: load them into a network
    you built (mindspore_hub's 2020 form); returns the LoadReport. Other arguments as for `load`.
    """
    if handle is not None:
        if name is not None:
            raise UsageError("load_weights(network, name, handle=...): give the model name once, as name or as handle")
        name = handle
    from .catalog import SOURCES

    if isinstance(network_or_name, (str, os.PathLike)):
        if name in SOURCES:  # mindspore_hub 2.0: load_weights(name, source)
            network, name, source = None, network_or_name, name
        elif name is not None:
            raise UsageError(
                "load_weights(name) takes one model name; to load into a network call load_weights(network, name)"
            )
        else:
            network, name = None, network_or_name
    else:
        network = network_or_name
        if name is None:
            raise UsageError("load_weights(network, name): give the model name whose weights to load")
    entry = _resolve(name, registry, source, mindspore_version, settings)
    chosen = choose_asset(entry, file_format, asset, formats=WEIGHT_FORMATS)
    fmt = chosen.file_format.lower()
    if fmt not in WEIGHT_FORMATS:
        raise LoadError(
            f"card {entry.id}: load_weights reads {' and '.join(WEIGHT_FORMATS)} assets; "
            f"{chosen.filename} is {chosen.file_format}"
        )
    _warn_version(entry)
    if network is not None:
        return _load_into(network, entry, chosen, strict=strict, force=force_reload, settings=settings)
    source = f"checkpoint {chosen.filename} of card {entry.id}"
    with _fetch(entry, chosen, force=force_reload, settings=settings) as path:
        if fmt == "safetensors":  # refuse a lying header before MindSpore parses the file
            from .tensors import safetensors_table

            safetensors_table(path, source)
        params = read_checkpoint(path, source, file_format=fmt)
    weights = {k: v for k, v in params.items() if hasattr(v, "shape")}
    if weights and all(k.startswith(WRAPPER_PREFIX) for k in weights):
        weights = {k[len(WRAPPER_PREFIX) :]: v for k, v in weights.items()}
    return weights


def _shape_from_text(text: str) -> list[int] | None:
    """`[300, 300, 3]` or `300,300,3` written as text -> [300, 300, 3]; None otherwise. String operations,
    not a pattern: the text is the card's and may be long."""
    parts = text.strip().removeprefix("[").removesuffix("]").split(",")
    if not all(p.strip().isascii() and p.strip().isdigit() and len(p.strip()) <= 18 for p in parts):
        return None
    return [int(p) for p in parts]


def get_desired_input_shape(
    name: str, registry=None, *, source: str = "gitee", mindspore_version: str | None = None, settings=None
) -> list[int]:
    """The card's input-shape, e.g. [300, 300, 3] (the layout the card documents)."""
    from . import catalog

    entry = catalog.resolve(
        name, registry=registry, source=source, mindspore_version=mindspore_version, settings=settings
    )
    shape = entry.fields.get("input-shape")
    if isinstance(shape, str):
        shape = _shape_from_text(shape) or shape
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in shape)
    ):
        line, col = entry.card.pos(("input-shape",))
        raise CardError(
            f"{entry.card.path}:{line}:{col}: card {entry.id} has no usable input-shape "
            f"(got {shape!r}): write it as a list of integers, e.g. [300, 300, 3]"
        )
    return shape
