"""`osaurus serve` (gRPC server and REST bridge in one process) and `osaurus bridge` (alone).

The serve flags come from the settings table (osaurus.config): each takes its text as given and
the table reads it, so a bad value from a flag or from the environment is the same one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Any

from osaurus import __version__
from osaurus.config import BridgeSettings, SettingError, Settings, env_name, flag_name, row_of
from osaurus.errors import OsaurusError

log = logging.getLogger("osaurus")


def _add_setting_flags(parser: argparse.ArgumentParser, table: type) -> None:
    for f in dataclasses.fields(table):
        row, flag, env = row_of(f), flag_name(f), env_name(f)
        if flag.startswith("--no-"):
            # A switch: given, it turns the setting off, as OSU_...=0 does.
            parser.add_argument(
                flag,
                dest=f.name,
                action="store_const",
                const="0",
                help=f"turn off: {row.help} (env {env}=0)",
            )
            continue
        default = row.default_text or f.default
        choices = f"{', '.join(row.choices)}; " if row.choices else ""
        parser.add_argument(
            flag,
            dest=f.name,
            metavar=(f.name.split("_")[-1]).upper().rstrip("S"),
            action=_JoinValues if row.repeatable else "store",
            help=f"{row.help} (env {env}; {choices}default {default})",
        )


class _JoinValues(argparse.Action):
    """A repeatable flag: its values, joined with "," as the table reads them."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        given = getattr(namespace, self.dest)
        setattr(namespace, self.dest, f"{given},{values}" if given else values)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osaurus", description="Local LLM server on MLX.")
    parser.add_argument("--version", action="version", version=f"osaurus {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server and the OpenAI REST bridge")
    _add_setting_flags(serve, Settings)

    bridge = sub.add_parser("bridge", help="run the REST bridge alone, pointed at a gRPC server")
    _add_setting_flags(bridge, BridgeSettings)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        table = Settings if args.command == "serve" else BridgeSettings
        settings = table.load({f.name: getattr(args, f.name) for f in dataclasses.fields(table)})
        _configure_logging(settings.log_level, settings.log_format)
        from osaurus import launcher

        if isinstance(settings, Settings):
            launcher.serve(settings)
            _exit_now(0)
        else:
            launcher.bridge(settings)
    except KeyboardInterrupt:
        if args.command == "serve":
            _exit_now(130)
    except (OSError, OsaurusError, SettingError) as exc:
        print(f"osaurus: {exc}", file=sys.stderr)
        sys.exit(1)


def _exit_now(code: int) -> None:
    """Leave once the server has shut down, without the interpreter's teardown: MLX's C++
    statics, destroyed at exit, race with state the engine thread left (measured: a model
    loaded on a worker thread aborts 1 exit in 2 with SIGABRT, "terminate called without an
    active exception"; never on the main thread alone). Everything is stopped and flushed here,
    so there is nothing left for that teardown to do."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _configure_logging(level: str, log_format: str) -> None:
    from osaurus.request_id import configure_logging

    configure_logging(level, log_format)


if __name__ == "__main__":
    main()
