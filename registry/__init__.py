"""registry: a model registry and asset manager for MindSpore.

    import registry
    net = registry.load("mindspore/ascend/0.7/ssd_v1_coco2017")
    registry.search("ssd coco")        # [ModelRecord(id=..., fields=..., formats=...), ...]
    registry.list_models(task="cv")
    except registry.NotFoundError: ... # every error and result type is importable from here

The public functions are imported on first use so that `import registry` stays light
(MindSpore is imported only when a network is built).
"""

from __future__ import annotations

__version__ = "0.1.0"
_ERRORS = (
    "RegistryError",
    "UsageError",
    "MissingFileError",
    "CardError",
    "NotFoundError",
    "IntegrityError",
    "TransferError",
    "OfflineError",
    "LoadError",
    "RegistryWarning",
    "CardWarning",
    "PrefixWarning",
)
_LAZY = {
    "resolve": ("catalog", "resolve"),
    "pull": ("transfer", "pull"),
    "load": ("loader", "load"),
    "load_weights": ("loader", "load_weights"),
    "get_desired_input_shape": ("loader", "get_desired_input_shape"),
    # the rest of mindspore_hub's API, so that `import registry as mshub` runs its snippets
    "hub_list": ("listing", "hub_list"),
    "list_models": ("listing", "list_models"),
    "search": ("listing", "search"),
    # public result types
    "ModelRecord": ("listing", "ModelRecord"),
    "Entry": ("catalog", "Entry"),
    "Asset": ("catalog", "Asset"),
    "Pulled": ("transfer", "Pulled"),
    "LoadReport": ("loader", "LoadReport"),
    "Settings": ("settings", "Settings"),
    "get_hub_dir": ("settings", "get_hub_dir"),
    "set_hub_dir": ("settings", "set_hub_dir"),
    **{name: ("errors", name) for name in _ERRORS},
}
__all__ = [*_LAZY, "__version__"]


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
