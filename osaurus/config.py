"""The server's settings: one table, from which the `osaurus serve` flags, the OSU_* environment
variables, `Settings` and the engine's options all come.

Each field of `Settings` is one row: its default, its help, its env var and flag (derived from
the name unless given), how to read it from text and its bounds. A value is read from the flag,
else from the environment, else the default; a bad one, from either, is a `SettingError` that
names the setting, which the CLI prints as one line before exiting with code 1.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from osaurus.durations import parse_duration
from osaurus.engine.options import EngineOptions, Float32Policy, KVCacheDtype

ENV_PREFIX = "OSU_"


class SettingError(Exception):
    """A setting's value is unusable; the message names the setting and the value."""


@dataclass(frozen=True)
class Row:
    help: str
    parse: Callable[[str], Any] = str
    env: str | None = None  # default: OSU_ + the name in upper case
    flag: str | None = None  # default: --the-name; a boolean that defaults on gets --no-the-name
    default_text: str | None = None  # for help, when the default is computed
    choices: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    repeatable: bool = False  # the flag may be given several times: its values join with ","


def setting(default: Any, help: str, **row: Any) -> Any:
    """A Settings field and its row of the table; `default` may be a function (called when the
    settings are read, e.g. a share of RAM)."""
    key = "default_factory" if callable(default) else "default"
    return dataclasses.field(**{key: default}, metadata={"row": Row(help, **row)})


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be one of 1, true, yes, on, 0, false, no, off")


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], or *)")
    return origins


def _keys(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _optional_path(text: str) -> Path | None:
    return Path(text).expanduser() if text.strip() else None


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "osaurus"


def _ram_mb(share: float, cap_mb: int | None = None) -> Callable[[], int]:
    def default() -> int:
        import psutil

        mb = int(psutil.virtual_memory().total * share) >> 20
        return min(mb, cap_mb) if cap_mb else mb

    return default


_ENGINE = EngineOptions()


# Rows both `osaurus serve` and `osaurus bridge` have (a field belongs to one class: made twice).
def _log_level_setting() -> Any:
    return setting("info", "log level", choices=_LOG_LEVELS)


def _log_format_setting() -> Any:
    return setting(
        "text",
        "log lines as text, or as JSON objects (with the request id) for log collectors",
        choices=("text", "json"),
    )


def _cors_setting() -> Any:
    return setting(
        (),
        "origins a browser may call the REST API from, comma-separated (* for any)",
        parse=_origins,
        default_text="none: same origin only",
    )


def _max_request_setting() -> Any:
    return setting(
        64,
        "the largest REST request body, MiB (past it: 413)",
        parse=int,
        minimum=1,
        maximum=1024,
    )


def _tls_cert_setting() -> Any:
    return setting(
        None,
        "TLS certificate (PEM, with its chain) to serve with: gRPC over TLS, and HTTPS",
        parse=_optional_path,
    )


def _tls_key_setting() -> Any:
    return setting(None, "the TLS certificate's private key (PEM)", parse=_optional_path)


def check_tls(cert: Path | None, key: Path | None, ca: Path | None) -> None:
    if (cert is None) != (key is None):
        raise SettingError("--tls-cert and --tls-key go together: give both, or neither")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca)):
        if path is not None and not path.is_file():
            raise SettingError(f"{flag}={str(path)!r}: no such file")


def _field_default(table: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(table) if f.name == name)


_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class Settings:
    host: str = setting("127.0.0.1", "address to bind the gRPC and HTTP ports to")
    grpc_port: int = setting(
        50051, "gRPC port (0: any free one)", parse=int, minimum=0, maximum=65535
    )
    http_port: int = setting(8080, "REST port", parse=int, minimum=0, maximum=65535)
    models_dir: Path = setting(
        Path("~/MLXModels").expanduser(),
        "models directory",
        parse=_path,
        default_text="~/MLXModels",
    )
    cache_dir: Path = setting(
        _cache_dir,
        "downloads cache (the default model's GGUF)",
        parse=_path,
        default_text="$XDG_CACHE_HOME/osaurus",
    )
    http: bool = setting(True, "serve the REST bridge beside gRPC", parse=parse_bool)
    default_model: bool = setting(
        True,
        "fetch SmolLM2-135M (chat) and all-MiniLM-L6-v2 (embeddings) into an empty models "
        "directory",
        parse=parse_bool,
    )
    use_openblas: bool = setting(
        True,
        "load OpenBLAS under MLX's CPU backend when the machine has it (Linux)",
        parse=parse_bool,
        env="OSU_OPENBLAS",
        flag="--no-openblas",
    )
    default_max_tokens: int = setting(
        _ENGINE.default_max_tokens,
        "generation length when a request sets none (capped by the context length)",
        parse=int,
        minimum=1,
    )
    float32: Float32Policy = setting(
        _ENGINE.float32,
        "CPU: dequantize models to float32, MLX's fastest CPU path, when they fit in memory",
        parse=Float32Policy,
        choices=tuple(Float32Policy),
    )
    kv_cache_dtype: KVCacheDtype = setting(
        _ENGINE.kv_cache_dtype,
        "CPU: what the KV cache of llama-family quantized models holds; float16 is half the "
        "memory of float32 at the same speed",
        parse=KVCacheDtype,
        choices=tuple(KVCacheDtype),
    )
    max_batch_size: int = setting(
        _ENGINE.max_batch_size, "sequences decoding together per model", parse=int, minimum=1
    )
    max_queue: int = setting(
        _ENGINE.max_queue,
        "requests waiting beyond the batch before new ones get 429 / RESOURCE_EXHAUSTED",
        parse=int,
        minimum=0,
    )
    kv_cache_mb: int = setting(
        _ram_mb(1 / 8, cap_mb=8192),
        "memory for KV caches kept between requests, MiB",
        parse=int,
        minimum=1,
        default_text="1/8 of RAM, at most 8192",
    )
    prefix_cache: bool = setting(
        _ENGINE.prefix_cache,
        "reuse KV caches across requests without a session id",
        parse=parse_bool,
    )
    speculative: bool = setting(
        _ENGINE.speculative,
        "prompt-lookup speculative decoding for greedy requests decoding alone "
        "(a request may still ask for it)",
        parse=parse_bool,
    )
    keep_alive: float = setting(
        _ENGINE.keep_alive,
        "idle time before a model unloads: seconds, or 90s, 5m, 1h; negative: never",
        parse=parse_duration,
        default_text="5m",
    )
    model_memory_mb: int = setting(
        _ram_mb(3 / 4),
        "memory for loaded models; loading past it unloads the least recently used, MiB",
        parse=int,
        minimum=1,
        default_text="3/4 of RAM",
    )
    max_loaded_models: int = setting(
        _ENGINE.max_loaded_models,
        "models loaded at once, 0 for no limit, 1 for one at a time",
        parse=int,
        minimum=0,
    )
    log_level: str = _log_level_setting()
    log_format: str = _log_format_setting()
    cors_origins: tuple[str, ...] = _cors_setting()
    max_request_mb: int = _max_request_setting()
    tls_cert: Path | None = _tls_cert_setting()
    tls_key: Path | None = _tls_key_setting()
    tls_ca: Path | None = setting(
        None,
        "the authority the bridge checks the gRPC server's certificate against (PEM); "
        "default: the certificate itself (self-signed)",
        parse=_optional_path,
    )
    drain_timeout: float = setting(
        30.0,
        "on SIGTERM or SIGINT, how long requests in flight may run before the server exits "
        "(seconds, or 90s, 5m); a second signal exits at once",
        parse=parse_duration,
        default_text="30s",
        minimum=0,
    )
    api_keys: tuple[str, ...] = setting(
        (),
        "an API key clients must send (Authorization: Bearer KEY, or x-api-key); repeatable, "
        "or comma-separated in the env var",
        parse=_keys,
        env="OSU_API_KEY",
        flag="--api-key",
        repeatable=True,
        default_text="none: no authentication",
    )
    read_only_api_keys: tuple[str, ...] = setting(
        (),
        "an API key that may generate and read but not pull, import, copy, delete, load or "
        "unload models (those get 403 / PERMISSION_DENIED); repeatable, or comma-separated",
        parse=_keys,
        env="OSU_READ_ONLY_API_KEY",
        flag="--read-only-api-key",
        repeatable=True,
        default_text="none",
    )
    api_key_file: Path | None = setting(
        None,
        'a file of API keys, one a line: "KEY" (admin) or "KEY read-only" (# comments); read '
        "again on SIGHUP",
        parse=_optional_path,
    )
    rate_limit: int = setting(
        0,
        "generation, embedding and token-count requests a minute per API key (without keys: "
        "for all clients together), past which 429 / RESOURCE_EXHAUSTED; 0: no limit",
        parse=int,
        minimum=0,
    )
    insecure_no_auth: bool = setting(
        False,
        "allow binding to a non-loopback address without API keys (anyone who can reach the "
        "ports can then generate, pull and delete models)",
        parse=parse_bool,
    )

    @classmethod
    def load(
        cls, flags: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        settings = load(cls, flags, environ)
        settings.check_exposure()
        check_tls(settings.tls_cert, settings.tls_key, settings.tls_ca)
        return settings

    @property
    def has_keys(self) -> bool:
        return bool(self.api_keys or self.read_only_api_keys or self.api_key_file)

    def check_exposure(self) -> None:
        """Refuse to serve every address's clients without keys, unless told to."""
        if is_loopback(self.host) or self.has_keys or self.insecure_no_auth:
            return
        raise SettingError(
            f"--host {self.host} lets other machines reach osaurus, and no API key is set: "
            "anyone who can reach the ports could generate, pull and delete models. Set a key "
            "(--api-key KEY, OSU_API_KEY or --api-key-file FILE), or pass --insecure-no-auth "
            "to accept the risk"
        )

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            default_max_tokens=self.default_max_tokens,
            float32=self.float32,
            kv_cache_dtype=self.kv_cache_dtype,
            max_batch_size=self.max_batch_size,
            max_queue=self.max_queue,
            kv_cache_bytes=self.kv_cache_mb << 20,
            prefix_cache=self.prefix_cache,
            keep_alive=None if self.keep_alive < 0 else self.keep_alive,
            model_memory_bytes=self.model_memory_mb << 20,
            max_loaded_models=self.max_loaded_models,
            speculative=self.speculative,
        )


# Where `osaurus serve` listens by default: what the bridge alone and osaurus-ctl call.
DEFAULT_TARGET = f"{_field_default(Settings, 'host')}:{_field_default(Settings, 'grpc_port')}"


@dataclass
class BridgeSettings:
    """`osaurus bridge`: the REST bridge alone, pointed at a server."""

    target: str = setting(DEFAULT_TARGET, "the osaurus gRPC server, HOST:PORT")
    host: str = setting("127.0.0.1", "address to bind the HTTP port to")
    http_port: int = setting(8080, "REST port", parse=int, minimum=0, maximum=65535, flag="--port")
    log_level: str = _log_level_setting()
    log_format: str = _log_format_setting()
    cors_origins: tuple[str, ...] = _cors_setting()
    max_request_mb: int = _max_request_setting()
    tls_cert: Path | None = _tls_cert_setting()
    tls_key: Path | None = _tls_key_setting()
    tls_ca: Path | None = setting(
        None,
        "reach the target over TLS, checking its certificate against this authority (PEM)",
        parse=_optional_path,
    )

    @classmethod
    def load(
        cls, flags: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None
    ) -> BridgeSettings:
        settings = load(cls, flags, environ)
        check_tls(settings.tls_cert, settings.tls_key, settings.tls_ca)
        return settings


T = TypeVar("T")


def load(
    table: type[T],
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """A settings table's values: flags (by field name; None: not given) over the environment
    over the defaults."""
    environ = os.environ if environ is None else environ
    fields = dataclasses.fields(table)  # type: ignore[arg-type]  # a dataclass, by contract
    return table(**{f.name: value_of(f, flags or {}, environ) for f in fields})


def row_of(f: dataclasses.Field) -> Row:
    return f.metadata["row"]


def env_name(f: dataclasses.Field) -> str:
    return row_of(f).env or ENV_PREFIX + f.name.upper()


def flag_name(f: dataclasses.Field) -> str:
    row = row_of(f)
    if row.flag:
        return row.flag
    negated = row.parse is parse_bool and f.default is True
    return ("--no-" if negated else "--") + f.name.replace("_", "-")


def value_of(
    f: dataclasses.Field, flags: Mapping[str, str | None], environ: Mapping[str, str]
) -> Any:
    """The flag's value if given, else the environment's, else the default."""
    if flags.get(f.name) is not None:
        return read(f, flags[f.name], flag_name(f))  # type: ignore[arg-type]
    if env_name(f) in environ:
        return read(f, environ[env_name(f)], env_name(f))
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def read(f: dataclasses.Field, text: str, source: str) -> Any:
    """One value from text; `source` (the flag or env var) is named if it is bad."""
    row = row_of(f)
    try:
        value = row.parse(text)
    except ValueError as exc:
        kind = getattr(row.parse, "__name__", "")
        why = {"int": "must be a whole number", "float": "must be a number"}.get(kind, str(exc))
        if row.choices:
            why = f"must be one of {', '.join(row.choices)}"
        raise SettingError(f"{source}={text!r}: {why}") from None
    if row.choices and value not in row.choices:
        raise SettingError(f"{source}={text!r}: must be one of {', '.join(row.choices)}")
    if row.minimum is not None and value < row.minimum:
        raise SettingError(f"{source}={text!r}: must be at least {row.minimum}")
    if row.maximum is not None and value > row.maximum:
        raise SettingError(f"{source}={text!r}: must be at most {row.maximum}")
    return value


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def default_cache_dir() -> Path:
    """Where downloads are cached (tests and bench share it with the server)."""
    cache_dir = next(f for f in dataclasses.fields(Settings) if f.name == "cache_dir")
    return value_of(cache_dir, {}, os.environ)
