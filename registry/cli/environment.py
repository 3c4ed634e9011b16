"""`registry env`: versions, paths and the settings in force (what a bug report needs)."""

from __future__ import annotations

from .output import Output, add_output_options, add_registry_option, example, settings_from


def register(sub) -> None:
    p = sub.add_parser(
        "env",
        help="show versions, paths and the settings in force (the token masked)",
        description="Show the versions of registry, Python and MindSpore, the paths used, and every "
        "setting in force after the environment and the options; the token is masked.",
        epilog=example("registry env", "registry env --json"),
    )
    add_output_options(p)
    add_registry_option(p)
    p.set_defaults(func=cmd_env)


def environment(settings) -> dict:
    """The document `registry env` shows. `locks`: REGISTRY_LOCKS as set, the mode in force for the cache
    directory (file or none) and why (Cache.lock_mode)."""
    import dataclasses
    import platform

    from .. import __version__
    from ..cache import Cache
    from ..settings import embedded_registry, schemas_dir
    from ..text import mask_passwords
    from ..versions import installed_mindspore

    values = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "token":
            value = None if value is None else "***"
        elif f.name == "mirrors":
            value = [f"{src}={dst}" for src, dst in value]
        elif isinstance(value, str):
            value = mask_passwords(value)
        elif value is not None and not isinstance(value, (bool, int, float)):
            value = str(value)
        values[f.name] = value
    return {
        "versions": {"registry": __version__, "python": platform.python_version(), "mindspore": installed_mindspore()},
        "paths": {
            "cache": str(settings.home),
            "embedded_registry": str(embedded_registry()),
            "schemas": str(schemas_dir()),
            "registry": mask_passwords(str(settings.registry_url or embedded_registry())),
        },
        "settings": values,
        "locks": dict(
            zip(("setting", "in_force", "reason"), (settings.locks, *Cache.from_settings(settings).lock_mode()))
        ),
    }


def cmd_env(args, out: Output) -> int:
    data = environment(settings_from(args))
    if out.as_json:
        out.json(data)
        return 0
    for section in ("versions", "paths", "settings"):
        out.line(f"{section}:")
        for key, value in data[section].items():
            if section == "settings" and key == "locks":  # the setting, then the mode it gives this cache
                value = f"{value} (in force: {data['locks']['in_force']}: {data['locks']['reason']})"
            out.line(f"  {key}: {'(none)' if value is None else value}")
    return 0
