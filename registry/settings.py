"""Every environment variable the tool reads, in one place.

REGISTRY_HOME            cache root (default: the platform's user cache dir + /registry); `set_hub_dir(path)`
                         (mindspore_hub's name) replaces it for the rest of the process, `get_hub_dir()` tells it
REGISTRY_URL             registry location: a directory or an http(s) base URL
                         (default: the registry embedded in the package)
REGISTRY_OFFLINE         1/true/yes: never touch the network, serve from the cache only
REGISTRY_MIRRORS         whitespace-separated FROM=TO link-prefix rewrites
REGISTRY_TOKEN           bearer token for authenticated downloads ...
REGISTRY_TOKEN_HOST      ... sent only to this host (required for the token to be used)
REGISTRY_CONNECT_TIMEOUT seconds (default 10)
REGISTRY_READ_TIMEOUT    seconds without a byte before a read fails (default 60)
REGISTRY_RETRIES         attempts after the first for retryable failures (default 5)
REGISTRY_BACKOFF         first retry delay in seconds, doubled each retry, with jitter (default 0.5)
REGISTRY_JOBS            assets pulled in parallel (default 4)
REGISTRY_PROGRESS        1 force / 0 disable progress bars (default: only on a terminal)
REGISTRY_REQUIRE_FULL_SHA256  1: refuse assets whose card gives only a sha256 prefix (8 to 63 hex
                         digits, as mindspore-lab cards do); default 0: pull checks the prefix and warns
                         that it guards against corruption, not against a hostile server
REGISTRY_SPEED_LIMIT     bytes per second ...
REGISTRY_SPEED_TIME      ... a transfer must average over any window of this many seconds, else it fails as
                         too slow (like curl --speed-limit/--speed-time; defaults 1000 and 30; a limit of 0 disables)
REGISTRY_MAX_ASSET_SIZE  largest body accepted for an asset whose size neither the card (asset-size) nor the
                         server (Content-Length) declares, in bytes (default 34359738368, 32 GiB)
REGISTRY_LOCK_TIMEOUT    seconds to wait for another process's lock on a blob or model (default 3600)
REGISTRY_LOCKS           auto (default): lock files, except on a file system whose locks cannot be trusted
                         (NFS, Lustre, CIFS/SMB, 9p, BeeGFS, detected by statfs) or that refuses them (ENOLCK,
                         ENOSYS); file: always lock files; none: no locks, each process downloads into its own
                         partial file and the first verified rename wins (cache.py, Cache.locking)
REGISTRY_CONNECTIONS     parallel HTTP range requests for one asset of at least REGISTRY_RANGE_THRESHOLD bytes
                         on a server that supports ranges with a strong validator (default 4; 1: one stream)
REGISTRY_RANGE_THRESHOLD bytes from which an asset is fetched as ranges (default 67108864, 64 MiB)
REGISTRY_RANGE_CHUNK     bytes per range request, the unit of resuming (default 16777216, 16 MiB)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import UsageError

PACKAGE_DIR = Path(__file__).resolve().parent


def embedded_registry() -> Path:
    """The registry shipped with the package (`manifests/`), in a checkout or an installed wheel."""
    installed = PACKAGE_DIR / "_data" / "manifests"
    if installed.is_dir():
        return installed
    return PACKAGE_DIR.parent / "manifests"


def schemas_dir() -> Path:
    """The directory of the JSON Schemas: the installed copy, else the checkout's `schemas/`."""
    installed = PACKAGE_DIR / "_data" / "schemas"
    if installed.is_dir():
        return installed
    return PACKAGE_DIR.parent / "schemas"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool | None) -> bool | None:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"environment variable {name}={raw!r} is not a boolean: use 1 or 0", exit_code=2)


def _number(env: Mapping[str, str], name: str, default: float, kind=float, positive: bool = False):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # nan or inf would reach requests and time.sleep as a crash or a hang
        raise UsageError(f"environment variable {name}={raw!r} is not a number: set it to e.g. {default}")
    if value < 0:
        raise UsageError(f"environment variable {name}={raw!r} must not be negative")
    if positive and value == 0:  # a zero timeout fails every request
        raise UsageError(f"environment variable {name}={raw!r} must be more than 0: set it to e.g. {default}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    value = (raw or choices[0]).strip().lower() or choices[0]
    if value not in choices:
        raise UsageError(
            f"environment variable {name}={raw!r} is not one of {', '.join(choices)}: set it to e.g. {choices[0]}"
        )
    return value


def parse_mirrors(text: str, source: str = "REGISTRY_MIRRORS") -> tuple[tuple[str, str], ...]:
    """The (FROM, TO) pairs of whitespace-separated `FROM=TO` items; raises UsageError naming `source` for a bad item."""
    pairs = []
    for item in text.split():
        src, sep, dst = item.partition("=")
        if not sep or not src or not dst:
            raise UsageError(
                f"{source}: mirror {item!r} is not FROM=TO: write e.g. https://download.example.org/=http://127.0.0.1:8080/"
            )
        pairs.append((src, dst))
    return tuple(pairs)


_HOME_OVERRIDE: Path | None = None  # set_hub_dir's: the only setting not read from the environment


def set_hub_dir(dir_path: str | os.PathLike | None) -> None:
    """mindspore_hub's `set_hub_dir`: use `dir_path` as the cache root (REGISTRY_HOME) for every later
    call in this process, whatever the environment says; None goes back to REGISTRY_HOME."""
    global _HOME_OVERRIDE
    if dir_path is None:
        _HOME_OVERRIDE = None
        return
    if not isinstance(dir_path, (str, os.PathLike)) or not os.fspath(dir_path).strip():
        raise UsageError(f"set_hub_dir({dir_path!r}): give the directory to keep the cache in, e.g. '~/.mscache'")
    _HOME_OVERRIDE = Path(os.fspath(dir_path)).expanduser().absolute()


def get_hub_dir() -> str:
    """mindspore_hub's `get_hub_dir`: the absolute path of the cache root in use."""
    return str(current().home.absolute())


def default_home() -> Path:
    """The platform's user cache directory for registry (the cache root without REGISTRY_HOME)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("registry", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path
    registry_url: str | None = None
    offline: bool = False
    mirrors: tuple[tuple[str, str], ...] = ()
    token: str | None = field(default=None, repr=False)
    token_host: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 5
    backoff: float = 0.5
    jobs: int = 4
    progress: bool | None = None
    require_full_sha256: bool = False
    speed_limit: float = 1000.0
    speed_time: float = 30.0
    max_asset_size: int = 32 << 30
    lock_timeout: float = 3600.0
    no_color: bool = False  # NO_COLOR (no-color.org): plain terminal output
    locks: str = "auto"
    connections: int = 4
    range_threshold: int = 64 << 20
    range_chunk: int = 16 << 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = env.get("REGISTRY_HOME")
        return cls(
            home=_HOME_OVERRIDE or (Path(home).expanduser() if home else default_home()),
            registry_url=env.get("REGISTRY_URL") or None,
            offline=bool(_flag(env, "REGISTRY_OFFLINE", False)),
            mirrors=parse_mirrors(env.get("REGISTRY_MIRRORS", "")),
            token=env.get("REGISTRY_TOKEN") or None,
            token_host=(env.get("REGISTRY_TOKEN_HOST") or "").lower() or None,
            connect_timeout=_number(env, "REGISTRY_CONNECT_TIMEOUT", 10.0, positive=True),
            read_timeout=_number(env, "REGISTRY_READ_TIMEOUT", 60.0, positive=True),
            retries=int(_number(env, "REGISTRY_RETRIES", 5, int)),
            backoff=_number(env, "REGISTRY_BACKOFF", 0.5),
            jobs=max(1, int(_number(env, "REGISTRY_JOBS", 4, int))),
            progress=_flag(env, "REGISTRY_PROGRESS", None),
            require_full_sha256=bool(_flag(env, "REGISTRY_REQUIRE_FULL_SHA256", False)),
            speed_limit=_number(env, "REGISTRY_SPEED_LIMIT", 1000.0),
            speed_time=_number(env, "REGISTRY_SPEED_TIME", 30.0, positive=True),
            max_asset_size=int(_number(env, "REGISTRY_MAX_ASSET_SIZE", 32 << 30, int)),
            lock_timeout=_number(env, "REGISTRY_LOCK_TIMEOUT", 3600.0),
            no_color=bool(env.get("NO_COLOR")),
            locks=_choice(env, "REGISTRY_LOCKS", ("auto", "file", "none")),
            connections=max(1, int(_number(env, "REGISTRY_CONNECTIONS", 4, int))),
            range_threshold=int(_number(env, "REGISTRY_RANGE_THRESHOLD", 64 << 20, int)),
            range_chunk=int(_number(env, "REGISTRY_RANGE_CHUNK", 16 << 20, int, positive=True)),
        )

    def with_(self, **changes) -> Settings:
        """A copy with some fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def current(**overrides) -> Settings:
    """Settings from the environment, read at call time, with explicit overrides applied."""
    return Settings.from_env().with_(**overrides)
