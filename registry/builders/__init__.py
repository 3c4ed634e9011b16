"""Model builders: functions that construct a network (an `nn.Cell`) for a card.

A builder is a callable `fn(**kwargs) -> mindspore.nn.Cell`; keyword arguments given to
`registry.load(name, **kwargs)` pass through to it.

How a card chooses its builder (first rule that applies):
1. an explicit `builder: NAME` field in the card's front matter;
2. the card's `model-name` and `backbone-name`, compared case-insensitively with every `-`, `_`
   and space removed, against each builder's `model_names` / `backbones` (an empty `backbones`
   accepts any backbone);
Third-party builders are installed through the entry-point group `registry.builders`: the entry
point's name is the builder name and it points at the builder callable, which may carry the
attributes `model_names` and `backbones` (sequences of str) to take part in rule 2.

Built-in builders are declared here by module path so that choosing one never imports MindSpore;
the module is imported only when the network is built.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import LoadError

ENTRY_POINT_GROUP = "registry.builders"


def _norm(text: Any) -> str:
    return "".join(ch for ch in str(text).lower() if ch not in "-_ ")


@dataclass(frozen=True)
class BuilderSpec:
    name: str
    target: str  # "package.module:function"
    model_names: tuple[str, ...] = ()
    backbones: tuple[str, ...] = ()  # empty: any backbone
    summary: str = ""

    def matches(self, fields: Mapping[str, Any]) -> bool:
        if _norm(fields.get("model-name", "")) not in {_norm(n) for n in self.model_names}:
            return False
        if not self.backbones:
            return True
        return _norm(fields.get("backbone-name", "")) in {_norm(b) for b in self.backbones}

    def load(self) -> Callable[..., Any]:
        module_name, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)


BUILTIN: tuple[BuilderSpec, ...] = (
    BuilderSpec(
        "ssd300-mobilenetv2",
        "registry.builders.ssd:ssd300_mobilenetv2",
        model_names=("ssd", "ssd300"),
        backbones=("mobilenetv2",),
        summary="SSD300 detector with a MobileNetV2 backbone (MindSpore model zoo layout)",
    ),
    BuilderSpec(
        "lenet-digits",
        "registry.builders.lenet:lenet_digits",
        model_names=("lenet", "lenet5"),
        summary="LeNet-style CNN for 8x8 handwritten digits",
    ),
)


def _entry_point_specs() -> list[BuilderSpec]:
    from importlib.metadata import entry_points

    specs = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        specs.append(BuilderSpec(ep.name, ep.value))
    return specs


def all_builders() -> list[BuilderSpec]:
    return list(BUILTIN) + _entry_point_specs()


def known_builder_names() -> list[str]:
    return sorted(spec.name for spec in all_builders())


def find_builder(fields: Mapping[str, Any], card_label: str = "the card") -> tuple[BuilderSpec, Callable[..., Any]]:
    """The builder for a card's front-matter fields, or a LoadError naming the card and the known builders."""
    specs = all_builders()
    explicit = fields.get("builder")
    if explicit:
        for spec in specs:
            if spec.name == explicit:
                return spec, spec.load()
        raise LoadError(
            f"{card_label}: builder {explicit!r} is not installed; known builders: {', '.join(known_builder_names())}"
        )
    for spec in BUILTIN:
        if spec.matches(fields):
            return spec, spec.load()
    for spec in specs[len(BUILTIN):]:
        fn = spec.load()
        candidate = BuilderSpec(spec.name, spec.target, tuple(getattr(fn, "model_names", ())), tuple(getattr(fn, "backbones", ())))
        if candidate.model_names and candidate.matches(fields):
            return candidate, fn
    raise LoadError(
        f"{card_label}: no builder for model-name {fields.get('model-name')!r} with backbone-name "
        f"{fields.get('backbone-name')!r}; known builders: {', '.join(known_builder_names())}. "
        "Add `builder: NAME` to the card or install a package providing one (entry points 'registry.builders')."
    )
