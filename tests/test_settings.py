from pathlib import Path

import pytest

from registry.errors import UsageError
from registry.settings import Settings, embedded_registry, parse_mirrors, schemas_dir
from tests.conftest import ROOT, run_cli


def test_defaults_come_from_the_platform_cache_dir():
    s = Settings.from_env({})
    assert s.home.name == "registry"
    assert (s.registry_url, s.offline, s.mirrors, s.token) == (None, False, (), None)


def test_every_variable_is_read():
    s = Settings.from_env(
        {
            "REGISTRY_HOME": "/tmp/x",
            "REGISTRY_URL": "http://127.0.0.1:9/r",
            "REGISTRY_OFFLINE": "yes",
            "REGISTRY_MIRRORS": "https://a/=http://b/ file:///c/=file:///d/",
            "REGISTRY_TOKEN": "s3cr3t-token",
            "REGISTRY_TOKEN_HOST": "Example.ORG",
            "REGISTRY_CONNECT_TIMEOUT": "2.5",
            "REGISTRY_READ_TIMEOUT": "3",
            "REGISTRY_RETRIES": "0",
            "REGISTRY_JOBS": "8",
            "REGISTRY_PROGRESS": "0",
            "REGISTRY_REQUIRE_FULL_SHA256": "1",
            "REGISTRY_SPEED_LIMIT": "0",
            "REGISTRY_SPEED_TIME": "5",
            "REGISTRY_MAX_ASSET_SIZE": "1000",
            "REGISTRY_LOCK_TIMEOUT": "7.5",
        }
    )
    assert (s.speed_limit, s.speed_time, s.max_asset_size, s.lock_timeout) == (0, 5, 1000, 7.5)
    assert s.home == Path("/tmp/x") and s.registry_url == "http://127.0.0.1:9/r" and s.offline
    assert s.mirrors == (("https://a/", "http://b/"), ("file:///c/", "file:///d/"))
    assert (s.token, s.token_host) == ("s3cr3t-token", "example.org")
    assert (s.connect_timeout, s.read_timeout, s.retries, s.jobs, s.progress) == (2.5, 3.0, 0, 8, False)
    assert s.require_full_sha256 and not Settings.from_env({}).require_full_sha256
    assert "s3cr3t" not in repr(s)  # the token is never printed


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"REGISTRY_OFFLINE": "maybe"}, "REGISTRY_OFFLINE"),
        ({"REGISTRY_REQUIRE_FULL_SHA256": "strict"}, "REGISTRY_REQUIRE_FULL_SHA256"),
        ({"REGISTRY_RETRIES": "many"}, "REGISTRY_RETRIES"),
        ({"REGISTRY_READ_TIMEOUT": "-1"}, "must not be negative"),
        ({"REGISTRY_CONNECT_TIMEOUT": "nan"}, "REGISTRY_CONNECT_TIMEOUT='nan' is not a number"),
        ({"REGISTRY_READ_TIMEOUT": "inf"}, "REGISTRY_READ_TIMEOUT='inf' is not a number"),
        ({"REGISTRY_BACKOFF": "inf"}, "REGISTRY_BACKOFF"),
        ({"REGISTRY_CONNECT_TIMEOUT": "0"}, "REGISTRY_CONNECT_TIMEOUT='0' must be more than 0"),
        ({"REGISTRY_MIRRORS": "no-equals-sign"}, "FROM=TO"),
        ({"REGISTRY_SPEED_TIME": "0"}, "REGISTRY_SPEED_TIME='0' must be more than 0"),
        ({"REGISTRY_MAX_ASSET_SIZE": "lots"}, "REGISTRY_MAX_ASSET_SIZE"),
        ({"REGISTRY_LOCK_TIMEOUT": "-2"}, "must not be negative"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_variable(env, fragment):
    with pytest.raises(UsageError, match=fragment) as info:
        Settings.from_env(env)
    assert info.value.exit_code == 2


def test_bad_environment_is_one_line_and_exit_2():
    proc = run_cli("pull", "x", env={"REGISTRY_OFFLINE": "maybe"})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "REGISTRY_OFFLINE" in proc.stderr


def test_mirror_pairs_keep_order():
    assert parse_mirrors("a=b c=d") == (("a", "b"), ("c", "d"))


def test_data_directories_are_found_in_a_checkout():
    assert embedded_registry() == ROOT / "manifests"
    assert schemas_dir() == ROOT / "schemas"
