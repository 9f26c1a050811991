"""The settings table: flags over the environment over defaults, one clear error per bad value,
the engine options it yields, and the README's table kept in step with it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from osaurus.config import BridgeSettings, SettingError, Settings, env_name, flag_name
from osaurus.engine.options import EngineOptions, Float32Policy, KVCacheDtype

README = Path(__file__).resolve().parents[2] / "README.md"


def test_flags_win_over_the_environment_and_the_environment_over_defaults() -> None:
    s = Settings.load({}, {"OSU_MAX_QUEUE": "3", "OSU_HTTP": "off", "OSU_KEEP_ALIVE": "2m"})
    assert (s.max_queue, s.http, s.keep_alive) == (3, False, 120.0)
    s = Settings.load({"max_queue": "5"}, {"OSU_MAX_QUEUE": "3"})
    assert s.max_queue == 5
    s = Settings.load({}, {})
    assert s.max_queue == EngineOptions.max_queue and s.float32 is Float32Policy.AUTO
    assert s.kv_cache_mb >= 1 and s.model_memory_mb >= 1  # shares of this machine's RAM


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({}, {"OSU_MAX_QUEUE": "abc"}, "OSU_MAX_QUEUE='abc': must be a whole number"),
        ({"max_queue": "-1"}, {}, "--max-queue='-1': must be at least 0"),
        ({"max_batch_size": "0"}, {}, "--max-batch-size='0': must be at least 1"),
        ({}, {"OSU_FLOAT32": "sometimes"}, "must be one of auto, always, never"),
        ({"kv_cache_dtype": "int8"}, {}, "--kv-cache-dtype='int8': must be one of float16,"),
        ({}, {"OSU_PREFIX_CACHE": "maybe"}, "OSU_PREFIX_CACHE='maybe': must be one of 1,"),
        ({"keep_alive": "soon"}, {}, "--keep-alive='soon': not a duration"),
        ({}, {"OSU_HTTP_PORT": "70000"}, "OSU_HTTP_PORT='70000': must be at most 65535"),
        ({}, {"OSU_LOG_LEVEL": "loud"}, "OSU_LOG_LEVEL='loud': must be one of debug"),
    ],
)
def test_a_bad_value_names_its_setting(flags, environ, message) -> None:
    with pytest.raises(SettingError) as info:
        Settings.load(flags, environ)
    assert message in str(info.value)


def test_engine_options_come_from_the_settings() -> None:
    s = Settings.load(
        {"kv_cache_mb": "3", "keep_alive": "-1", "float32": "never"},
        {"OSU_KV_CACHE_DTYPE": "float32"},
    )
    options = s.engine_options()
    assert options.kv_cache_bytes == 3 << 20 and options.keep_alive is None
    assert options.float32 is Float32Policy.NEVER
    assert options.kv_cache_dtype is KVCacheDtype.FLOAT32
    assert Settings.load({}, {}).engine_options().kv_cache_dtype is KVCacheDtype.FLOAT16
    assert Settings.load({}, {}).engine_options().keep_alive == EngineOptions.keep_alive


def test_the_readme_lists_every_setting_with_its_flag_and_env_var() -> None:
    rows = re.findall(
        r"^\| .+? \| `(--[a-z0-9-]+)` \| `(OSU_[A-Z0-9_]+)` \|", README.read_text(), re.M
    )
    table = {(flag_name(f), env_name(f)) for f in dataclasses.fields(Settings)}
    assert set(rows) == table


def test_the_bridge_alone_reads_its_own_table() -> None:
    s = BridgeSettings.load({"http_port": "9000"}, {"OSU_TARGET": "10.0.0.2:50051"})
    assert (s.target, s.http_port, s.host) == ("10.0.0.2:50051", 9000, "127.0.0.1")
    with pytest.raises(SettingError, match="--port='x': must be a whole number"):
        BridgeSettings.load({"http_port": "x"}, {})


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::", "myhost.example"])
def test_an_exposed_address_without_keys_refuses_to_start(host) -> None:
    with pytest.raises(SettingError) as info:
        Settings.load({"host": host}, {})
    message = str(info.value)
    assert host in message and "--api-key" in message and "--insecure-no-auth" in message


@pytest.mark.parametrize(
    ("flags", "environ"),
    [
        ({"host": "0.0.0.0", "api_keys": "k"}, {}),
        ({"host": "0.0.0.0"}, {"OSU_API_KEY": "k"}),
        ({"host": "0.0.0.0", "api_key_file": "/etc/osaurus/keys"}, {}),
        ({"host": "0.0.0.0"}, {"OSU_INSECURE_NO_AUTH": "1"}),
        ({"host": "::1"}, {}),
        ({"host": "localhost"}, {}),
    ],
)
def test_keys_or_loopback_or_an_explicit_risk_may_start(flags, environ) -> None:
    Settings.load(flags, environ)


def test_api_key_flags_repeat_and_the_env_var_takes_several() -> None:
    from osaurus.cli.main import _parser

    args = _parser().parse_args(["serve", "--api-key", "a", "--api-key", "b"])
    assert Settings.load({"api_keys": args.api_keys}, {}).api_keys == ("a", "b")
    assert Settings.load({}, {"OSU_API_KEY": "a, b,"}).api_keys == ("a", "b")
