"""Model builders: functions that construct a network (an `nn.Cell`) for a card.

A builder is a callable `fn(**kwargs) -> mindspore.nn.Cell`; keyword arguments given to
`registry.load(name, **kwargs)` pass through to it, over the card's `builder-args:` mapping.
`registry.load(name, builder=fn_or_cell_class)` uses the caller's builder and skips the rules below.

How a card chooses its builder (first rule that applies):
1. an explicit `builder: NAME` field in the card's front matter (`builder: mindcv:resnet50` picks
   a model of the mindcv library);
2. the card's facts against each builder's declaration (`BuilderSpec.matches`): `model-name` and
   `backbone-name`, compared case-insensitively with every `-`, `_` and space removed, and, where
   the builder declares them, the card's `train-dataset`, its `input-shape`, words that must not
   appear in its asset file names (another variant of the family), or its `repo-link`.
   A builder that declares nothing but model names is too broad: LeNet for 8x8 digits and the
   model-zoo LeNet5 for MNIST share `model-name: lenet` and differ by data set and input shape.
A card of a family some builder serves (its model-name starts with the builder's `family`) that
no builder matches gets a "no builder for this backbone" error.

Third-party builders are installed through the entry-point group `registry.builders`: the entry
point's name is the builder name and it points at the builder callable, which may carry the
attributes `model_names`, `backbones`, `datasets` (sequences of str) to take part in rule 2, and
`adaptation` (an `Adaptation`). An entry point that cannot be imported is skipped with a
`BuilderWarning` while other builders serve the card; a card that names it, or that no other
builder serves, gets one LoadError naming the entry point.

A builder declares how checkpoints for it are adapted (`Adaptation`): renamed name prefixes and
per-parameter transforms, applied by the loader before the parameter tables are compared.

Built-in builders are declared here by module path so that choosing one never imports MindSpore;
the module is imported only when the network is built.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import LoadError

ENTRY_POINT_GROUP = "registry.builders"


class BuilderWarning(UserWarning):
    """A third-party builder entry point could not be imported; other builders were used."""


def _norm(text: Any) -> str:
    return "".join(ch for ch in str(text).lower() if ch not in "-_ ")


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, str):
        parts = [p.strip() for p in value.strip(" []").split(",")]
        return tuple(int(p) for p in parts) if parts and all(p.isdigit() for p in parts) else None
    if isinstance(value, list) and value and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        return tuple(value)
    return None


@dataclass(frozen=True)
class CardFacts:
    """What builder matching reads from a card's front matter, normalised."""

    model_name: str = ""
    backbone_name: str = ""
    dataset: str = ""
    input_shape: tuple[int, ...] | None = None
    repo_link: str = ""
    asset_files: tuple[str, ...] = ()  # file names of the asset links, in card order
    builder: str = ""  # the explicit `builder:` field
    builder_args: Mapping[str, Any] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> CardFacts:
        from ..card import asset_items
        from ..names import asset_filename

        files = [
            asset_filename(str(item["asset-link"]), "", "") for _, item in asset_items(fields) if item.get("asset-link")
        ]
        args = fields.get("builder-args")
        return cls(
            model_name=str(fields.get("model-name") or ""),
            backbone_name=str(fields.get("backbone-name") or ""),
            dataset=str(fields.get("train-dataset") or ""),
            input_shape=_shape(fields.get("input-shape")),
            repo_link=str(fields.get("repo-link") or ""),
            asset_files=tuple(files),
            builder=str(fields.get("builder") or "").strip(),
            builder_args=dict(args) if isinstance(args, dict) else {},
            fields=fields,
        )


@dataclass(frozen=True)
class Transform:
    """A per-parameter change of a checkpoint entry, applied when its shape differs from the network's.

    `applies(file_shape, network_shape)` says whether this transform turns the one into the other;
    `apply(array, network_shape)` returns the new array (numpy)."""

    label: str  # reported in LoadReport.adapted, e.g. "depthwise Cx1x3x3 -> 1xCx3x3"
    applies: Callable[[tuple, tuple], bool]
    apply: Callable[[Any, tuple], Any]
    pattern: str = ""  # a regex the (renamed) parameter name must match; empty: any


@dataclass(frozen=True)
class Adaptation:
    """How a builder's checkpoints map onto its network: name-prefix renames, then transforms."""

    # (checkpoint name part, network name part): whole dotted parts, anywhere in the name, e.g.
    # ("down_sample_layer", "down_sample") turns layer1.0.down_sample_layer.0.weight into layer1.0.down_sample.0.weight
    renames: tuple[tuple[str, str], ...] = ()
    transforms: tuple[Transform, ...] = ()

    def rename(self, name: str) -> str:
        for old, new in self.renames:
            name = re.sub(rf"(^|\.){re.escape(old)}(?=\.|$)", lambda m, new=new: m.group(1) + new, name)
        return name

    def transform(self, name: str, file_shape: tuple, network_shape: tuple) -> Transform | None:
        for t in self.transforms:
            if (not t.pattern or re.search(t.pattern, name)) and t.applies(file_shape, network_shape):
                return t
        return None


@dataclass(frozen=True)
class BuilderSpec:
    name: str
    target: str  # "package.module:function"
    model_names: tuple[str, ...] = ()
    backbones: tuple[str, ...] = ()  # empty: any backbone
    datasets: tuple[str, ...] = ()  # empty: any train-dataset
    input_shapes: tuple[tuple[int, ...], ...] = ()  # empty: any; a card without input-shape passes
    excludes: tuple[str, ...] = ()  # words in an asset file name that mean another variant of the family
    repo_links: tuple[str, ...] = ()  # repo-link substrings that select this builder on their own
    family: str = ""  # a model-name prefix: cards of the family with no builder get the backbone error
    summary: str = ""
    per_card: bool = False  # target is a factory `fn(facts, model=None) -> builder` (a library of models)

    def matches(self, facts: CardFacts) -> bool:
        if self.repo_links and any(link in facts.repo_link for link in self.repo_links):
            return True
        if _norm(facts.model_name) not in {_norm(n) for n in self.model_names}:
            return False
        if self.backbones and _norm(facts.backbone_name) not in {_norm(b) for b in self.backbones}:
            return False
        if self.datasets and _norm(facts.dataset) not in {_norm(d) for d in self.datasets}:
            return False
        if self.input_shapes and facts.input_shape is not None and facts.input_shape not in self.input_shapes:
            return False
        return not self.excluded_by(facts)

    def excluded_by(self, facts: CardFacts) -> str:
        """The asset file name that names another variant of the family, or ''."""
        for name in facts.asset_files:
            if any(word in _norm(name) for word in self.excludes):
                return name
        return ""

    def in_family(self, facts: CardFacts) -> bool:
        return bool(self.family) and _norm(facts.model_name).startswith(_norm(self.family))

    def load(self, facts: CardFacts | None = None, model: str | None = None) -> Callable[..., Any]:
        module_name, _, attr = self.target.partition(":")
        fn = getattr(importlib.import_module(module_name), attr)
        return fn(facts or CardFacts(), model) if self.per_card else fn


BUILTIN: tuple[BuilderSpec, ...] = (
    BuilderSpec(
        "ssd300-mobilenetv2",
        "registry.builders.ssd:ssd300_mobilenetv2",
        model_names=("ssd", "ssd300"),
        # `ssd` is what the r1.x model-zoo cards write for SSD300-MobileNetV2; the same zoo directory
        # also published ResNet50-FPN, VGG16 and MobileNetV1-FPN variants under that backbone-name,
        # told apart only by their asset file names.
        backbones=("mobilenetv2", "ssd"),
        excludes=("resnet", "vgg", "mobilenetv1", "fpn", "ghost", "inception"),
        family="ssd",
        summary="SSD300 detector with a MobileNetV2 backbone (MindSpore model zoo layout)",
    ),
    BuilderSpec(
        "lenet-digits",
        "registry.builders.lenet:lenet_digits",
        model_names=("lenet", "lenet5"),
        datasets=("digits",),
        input_shapes=((8, 8, 1), (1, 8, 8)),
        summary="LeNet-style CNN for 8x8 handwritten digits",
    ),
    BuilderSpec(
        "lenet5-mnist",
        "registry.builders.lenet:lenet5",
        model_names=("lenet", "lenet5"),
        datasets=("mnist",),
        input_shapes=((32, 32, 1), (1, 32, 32)),
        summary="LeNet5 of the MindSpore model zoo: 1x32x32 input, 10 classes",
    ),
    BuilderSpec(
        "mindcv",
        "registry.builders.mindcv:builder_for",
        repo_links=("github.com/mindspore-lab/mindcv",),
        per_card=True,
        summary="a model of the mindcv library (pip install 'registry[mindcv]'), weights from the card",
    ),
)


@dataclass
class _EntryPoint:
    spec: BuilderSpec
    entry: Any  # importlib.metadata.EntryPoint
    fn: Callable[..., Any] | None = None
    error: str = ""

    def resolve(self) -> Callable[..., Any] | None:
        if self.fn is None and not self.error:
            try:
                self.fn = self.entry.load()
            except Exception as exc:  # any import-time failure of someone else's package
                self.error = f"{type(exc).__name__}: {exc}"
        return self.fn

    def problem(self) -> str:
        return (
            f"builder entry point {self.entry.name} = {self.entry.value} (group {ENTRY_POINT_GROUP}) cannot be "
            f"imported ({self.error}): reinstall or uninstall the package that provides it"
        )


def _entry_points() -> list[_EntryPoint]:
    from importlib.metadata import entry_points

    return [_EntryPoint(BuilderSpec(ep.name, ep.value), ep) for ep in entry_points(group=ENTRY_POINT_GROUP)]


def all_builders() -> list[BuilderSpec]:
    """Every BuilderSpec: the built-in ones, then those of installed packages' `registry.builders` entry points."""
    return list(BUILTIN) + [ep.spec for ep in _entry_points()]


def known_builder_names() -> list[str]:
    """The names a card's `builder:` field may give, sorted."""
    return sorted(spec.name for spec in all_builders())


def _declared(ep: _EntryPoint, fn: Callable[..., Any]) -> BuilderSpec:
    return BuilderSpec(
        ep.spec.name,
        ep.spec.target,
        tuple(getattr(fn, "model_names", ())),
        tuple(getattr(fn, "backbones", ())),
        tuple(getattr(fn, "datasets", ())),
    )


def match_builtin(facts: CardFacts) -> BuilderSpec | None:
    """The built-in builder whose declaration the card matches (no import happens)."""
    if facts.builder:
        name = facts.builder.partition(":")[0]
        return next((spec for spec in BUILTIN if spec.name == name), None)
    return next((spec for spec in BUILTIN if spec.matches(facts)), None)


def _load(spec: BuilderSpec, facts: CardFacts, card_label: str, model: str | None = None) -> Callable[..., Any]:
    try:
        return spec.load(facts, model)
    except LoadError as exc:  # a library builder that cannot serve this card says why; name the card
        raise LoadError(f"{card_label}: {exc}") from None


def find_builder(
    fields: Mapping[str, Any] | CardFacts, card_label: str = "the card"
) -> tuple[BuilderSpec, Callable[..., Any]]:
    """The builder for a card, or a LoadError naming the card and the known builders."""
    facts = fields if isinstance(fields, CardFacts) else CardFacts.of(fields)
    eps = _entry_points()
    if facts.builder:
        name, _, model = facts.builder.partition(":")
        for spec in BUILTIN:
            if spec.name == name:
                return spec, _load(spec, facts, card_label, model or None)
        for ep in eps:
            if ep.spec.name == facts.builder:
                fn = ep.resolve()
                if fn is None:
                    raise LoadError(f"{card_label} names {ep.problem()}")
                return ep.spec, fn
        raise LoadError(
            f"{card_label}: builder {facts.builder!r} is not installed; known builders: "
            f"{', '.join(sorted(s.name for s in BUILTIN) + sorted(e.spec.name for e in eps))} "
            "(and mindcv:MODEL for a model of the mindcv library)"
        )
    spec = match_builtin(facts)
    if spec is not None:
        return spec, _load(spec, facts, card_label)
    broken = []
    for ep in eps:
        fn = ep.resolve()
        if fn is None:
            broken.append(ep)
            continue
        candidate = _declared(ep, fn)
        if candidate.model_names and candidate.matches(facts):
            for bad in broken:
                warnings.warn(bad.problem(), BuilderWarning, stacklevel=3)
            return candidate, fn
    if broken:
        raise LoadError(
            f"{card_label}: no builder for model-name {facts.model_name!r}, and "
            + broken[0].problem()
            + (f" ({len(broken) - 1} more entry points are broken)" if len(broken) > 1 else "")
        )
    known = ", ".join(sorted(s.name for s in BUILTIN) + sorted(e.spec.name for e in eps))
    family = next((s for s in BUILTIN if s.in_family(facts)), None)
    if family is not None:
        other = family.excluded_by(facts)
        variant = (
            f"its asset {other} is another variant"
            if other and _norm(facts.backbone_name) in map(_norm, family.backbones)
            else f"backbone-name {facts.backbone_name!r}"
        )
        raise LoadError(
            f"{card_label}: no builder for this backbone: model-name {facts.model_name!r}, {variant}; builder "
            f"{family.name} builds only {family.summary}. Add `builder: NAME` to the card, pass "
            "registry.load(name, builder=...), or install a package providing one (entry points 'registry.builders')."
        )
    raise LoadError(
        f"{card_label}: no builder for model-name {facts.model_name!r} with backbone-name "
        f"{facts.backbone_name!r}; known builders: {known}. Add `builder: NAME` to the card, pass "
        "registry.load(name, builder=...), or install a package providing one (entry points 'registry.builders')."
    )
