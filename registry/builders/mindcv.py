"""mindcv, MindSpore's model library, as a builder: `mindcv.create_model(MODEL, pretrained=False, ...)`.

Optional: `pip install 'registry[mindcv]'` (mindcv 0.3.0, measured with MindSpore 2.10 and numpy<2).
mindcv never downloads here: networks are created with `pretrained=False` and no checkpoint_path;
the card's weights come through the verified cache and the loader's table check like any other.

Which model: an explicit `builder: mindcv:MODEL`, else the asset file name's stem
(`resnet50-f369a08d-910v2.ckpt` -> `resnet50`), else the card's model-name; each looked up in
`mindcv.list_models()` exactly, then ignoring case, `-`, `_` and spaces (`vit_b32_224` ->
`vit_b_32_224`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

from ..errors import LoadError, UsageError
from . import CardFacts, _norm

INSTALL = "pip install 'registry[mindcv]'"
_MINDCV_OWNS = ("pretrained", "checkpoint_path")  # arguments that would make mindcv read or fetch weights


def import_mindcv():
    """The mindcv module; raises LoadError saying how to install it when it cannot be imported."""
    try:
        import mindcv
    except ImportError as exc:
        raise LoadError(
            f"builder mindcv needs the mindcv library, which is not importable ({exc}): {INSTALL}"
        ) from None
    return mindcv


def candidates(facts: CardFacts, model: str | None = None) -> list[str]:
    """Names to look up, best first."""
    if model:
        return [model]
    stems = [name.rsplit(".", 1)[0].split("-", 1)[0] for name in facts.asset_files]
    return [n for n in [*stems, facts.model_name] if n]


def model_name(facts: CardFacts, models: Iterable[str], model: str | None = None) -> str | None:
    """The mindcv model the card names, or None."""
    models = list(models)
    names = candidates(facts, model)
    for key in (str, str.lower, _norm):
        table = {key(m): m for m in models}
        for name in names:
            if key(name) in table:
                return table[key(name)]
    return None


def builder_for(facts: CardFacts, model: str | None = None) -> Callable[..., Any]:
    """The builder for one card: its mindcv model, created without weights."""
    mindcv = import_mindcv()
    name = model_name(facts, mindcv.list_models(), model)
    if name is None:
        tried = ", ".join(map(repr, candidates(facts, model))) or "nothing (no model-name, no asset)"
        raise LoadError(
            f"builder mindcv has no model {tried} (mindcv {getattr(mindcv, '__version__', '?')}, "
            "see mindcv.list_models()): write `builder: mindcv:MODEL` in the card"
        )

    def build(num_classes: int = 1000, in_channels: int = 3, **kwargs):
        owned = [k for k in _MINDCV_OWNS if k in kwargs]
        if owned:
            raise UsageError(
                f"builder mindcv:{name}: {', '.join(owned)} would let mindcv load weights itself; "
                "the card's checkpoint is loaded by registry.load (pretrained=False to skip it)"
            )
        return mindcv.create_model(name, num_classes=num_classes, pretrained=False, in_channels=in_channels, **kwargs)

    build.builder_name = f"mindcv:{name}"
    return build
