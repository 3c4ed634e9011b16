"""registry: a model registry and asset manager for MindSpore.

    import registry
    net = registry.load("mindspore/ascend/0.7/ssd_v1_coco2017")

The public functions are imported on first use so that `import registry` stays light
(MindSpore is imported only when a network is built).
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["resolve", "pull", "load", "load_weights", "get_desired_input_shape", "hub_list", "get_hub_dir",
           "set_hub_dir", "__version__"]

_LAZY = {
    "resolve": ("catalog", "resolve"),
    "pull": ("transfer", "pull"),
    "load": ("loader", "load"),
    "load_weights": ("loader", "load_weights"),
    "get_desired_input_shape": ("loader", "get_desired_input_shape"),
    # the rest of mindspore_hub's API, so that `import registry as mshub` runs its snippets
    "hub_list": ("index", "hub_list"),
    "get_hub_dir": ("settings", "get_hub_dir"),
    "set_hub_dir": ("settings", "set_hub_dir"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
