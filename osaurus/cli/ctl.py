"""`osaurus-ctl`: manage a running osaurus server over gRPC.

Every command takes --target (default 127.0.0.1:50051), --api-key (for a server with keys),
--tls / --tls-ca (for a server over TLS) and --json (machine-readable output).
A server that is not running, or an error it returns, is one clear line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from grpc_status import rpc_status
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from osaurus.client import Stubs, Tls, open_channel
from osaurus.config import DEFAULT_TARGET
from osaurus.durations import parse_duration
from osaurus.v1 import inference_pb2, model_pb2, session_pb2, system_pb2

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # Piped or redirected, rich would cut tables to 80 columns ("smollm2-135m-…"); a table is
    # only as wide as its cells need, so give it room for whole ones.
    console.width = 240


class UsageError(Exception):
    """A bad argument, caught before calling the server: one line, exit code 1."""


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def _dict(message: Message) -> dict[str, Any]:
    data = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _with_numbers(message, data)


def _with_numbers(message: Message, data: dict[str, Any]) -> dict[str, Any]:
    """proto3's JSON writes 64-bit integers as strings (for JavaScript's doubles); a script
    reading --json wants numbers, so they are turned back, nested messages included."""
    for field in message.DESCRIPTOR.fields:
        if field.name not in data:
            continue
        value, held = data[field.name], getattr(message, field.name)
        if field.type in _INT64_TYPES:
            data[field.name] = [int(v) for v in value] if field.is_repeated else int(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            kind = field.message_type
            # Well-known types (Timestamp...) are JSON text, and maps hold no 64-bit values here.
            if kind is None or kind.full_name.startswith("google.") or kind.GetOptions().map_entry:
                continue
            if field.is_repeated:
                for item, item_data in zip(held, value, strict=True):
                    _with_numbers(item, item_data)
            else:
                _with_numbers(held, value)
    return data


def _table(*columns: str) -> Table:
    """A table: boxed on a terminal; aligned plain text when piped (for grep, cut, awk)."""
    plain = not console.is_terminal
    table = Table(box=None if plain else box.HEAVY_HEAD, show_edge=not plain, pad_edge=not plain)
    for column in columns:
        table.add_column(column, no_wrap=column in ("ID", "REPO"))
    return table


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class Ctl:
    def __init__(
        self, target: str, as_json: bool, api_key: str | None = None, tls: Tls | None = None
    ):
        self.target = target
        self.as_json = as_json
        stubs = Stubs.over(target, open_channel(target, api_key, tls))
        self.models = stubs.models
        self.inference = stubs.inference
        self.system = stubs.system
        self.sessions = stubs.sessions

    def _models_table(self, models: list[model_pb2.Model]) -> Table:
        table = _table("ID", "SIZE", "ARCH", "QUANTIZATION", "CONTEXT", "LOADED AS")
        for m in models:
            table.add_row(
                m.id,
                _size(m.size_bytes),
                m.architecture,
                m.quantization,
                str(m.context_length),
                m.precision if m.loaded else "",
            )
        return table

    def status(self, args: argparse.Namespace) -> None:
        s = self.system.GetStatus(system_pb2.GetStatusRequest())
        if self.as_json:
            return _print_json(_dict(s))
        console.print(f"osaurus {s.version} at {self.target}, up {s.uptime_seconds:.0f}s")
        console.print(f"device: {s.device} (MLX {s.mlx_version}), BLAS: {s.blas or 'n/a'}")
        if s.cpu_kernel:
            console.print(f"quantized matmul: {s.cpu_kernel}")
        console.print(f"models dir: {s.models_dir}")
        console.print(f"loaded: {', '.join(s.loaded_models) or 'none'}")
        console.print(f"requests: {s.active_requests} running or waiting (limit {s.request_limit})")
        console.print(
            f"KV caches kept: {_size(s.kv_cache_bytes)} of {_size(s.kv_cache_budget_bytes)}"
        )

    def sessions_list(self, args: argparse.Namespace) -> None:
        response = self.sessions.ListSessions(session_pb2.ListSessionsRequest())
        if self.as_json:
            return _print_json([_dict(x) for x in response.sessions])
        if not response.sessions:
            console.print("no sessions (a request with a session_id starts one)")
            return
        table = _table("ID", "MODEL", "TOKENS", "SIZE", "IN USE", "LAST USED")
        for x in response.sessions:
            table.add_row(
                x.id,
                x.model,
                str(x.cached_tokens),
                _size(x.size_bytes),
                "yes" if x.in_use else "",
                x.update_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC"),
            )
        console.print(table)

    def sessions_show(self, args: argparse.Namespace) -> None:
        x = self.sessions.GetSession(session_pb2.GetSessionRequest(id=args.id)).session
        if self.as_json:
            return _print_json(_dict(x))
        for key, value in _dict(x).items():
            console.print(f"{key}: {value}")

    def sessions_rm(self, args: argparse.Namespace) -> None:
        self.sessions.DeleteSession(session_pb2.DeleteSessionRequest(id=args.id))
        if self.as_json:
            return _print_json({})
        console.print(f"deleted session {args.id}")

    def models_search(self, args: argparse.Namespace) -> None:
        """The hub's answer; when the hub can't be reached, says so and lists the curated
        models (sizes estimated) from the server, which needs no hub for that."""
        request = model_pb2.SearchModelsRequest(query=args.query or "", limit=args.limit)
        unreachable = ""
        try:
            found = self.models.SearchModels(request)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or not _from_server(exc):
                raise
            unreachable = exc.details() or "the hub is unreachable"
            found = self.models.SearchModels(model_pb2.SearchModelsRequest(curated_only=True))
        if self.as_json:
            return _print_json({**_dict(found), "hub_error": unreachable})
        if unreachable:
            errors.print(
                f"osaurus-ctl: Hugging Face is unreachable ({unreachable}); the curated list, "
                "sizes estimated:",
                highlight=False,
                markup=False,
            )
        table = _table("REPO", "SIZE", "DOWNLOADS", "MLX", "HERE")
        for m in found.models:
            table.add_row(
                m.repo_id,
                ("~" if unreachable else "") + _size(m.size_bytes),
                str(m.downloads) if not unreachable else "",
                "yes" if m.mlx_compatible else "no",
                "yes" if m.downloaded else "",
            )
        console.print(table)
        if not unreachable:
            console.print("suggested: " + ", ".join(found.suggestions), highlight=False)

    def pull(self, args: argparse.Namespace) -> None:
        """Download with a live progress bar; Ctrl-C cancels the pull on the server too."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        call = self.models.PullModel(model_pb2.PullModelRequest(repo_id=args.repo))
        columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        done = None
        try:
            with Progress(*columns, console=errors, disable=self.as_json) as bar:
                task = bar.add_task(args.repo, total=None)
                for event in call:
                    if event.HasField("progress"):
                        p = event.progress
                        bar.update(task, completed=p.bytes_done, total=p.bytes_total)
                    else:
                        done = event.done
        except KeyboardInterrupt:
            call.cancel()
            errors.print(f"osaurus-ctl: pull of {args.repo} cancelled", highlight=False)
            sys.exit(130)
        assert done is not None  # the stream ends with `done`, or with an error status
        if self.as_json:
            return _print_json(_dict(done))
        if done.already_present:
            console.print(f"{done.model.id} is already here ({done.model.path})")
        else:
            console.print(f"pulled {done.model.id} ({_size(done.model.size_bytes)})")

    def ps(self, args: argparse.Namespace) -> None:
        """Loaded models: what they compute in, their memory, and when they unload."""
        loaded = [
            m for m in self.models.ListModels(model_pb2.ListModelsRequest()).models if m.loaded
        ]
        if self.as_json:
            return _print_json([_dict(m) for m in loaded])
        if not loaded:
            console.print("no model loaded")
            return
        table = _table("ID", "PRECISION", "MEMORY", "UNLOADS")
        now = time.time()
        for m in loaded:
            if m.HasField("expire_time"):
                left = max(0, m.expire_time.ToNanoseconds() / 1e9 - now)
                unloads = f"in {left / 60:.0f} min" if left >= 90 else f"in {left:.0f} s"
            else:
                unloads = "when unloaded (or busy)"
            table.add_row(m.id, m.precision, _size(m.memory_bytes), unloads)
        console.print(table)

    def models_list(self, args: argparse.Namespace) -> None:
        response = self.models.ListModels(model_pb2.ListModelsRequest())
        if self.as_json:
            return _print_json([_dict(m) for m in response.models])
        if not response.models:
            console.print("no models (import one with `osaurus-ctl models import FILE.gguf`)")
            return
        console.print(self._models_table(list(response.models)))

    def models_show(self, args: argparse.Namespace) -> None:
        m = self.models.GetModel(model_pb2.GetModelRequest(id=args.id)).model
        if self.as_json:
            return _print_json(_dict(m))
        for key, value in _dict(m).items():
            console.print(f"{key}: {value}")

    def models_load(self, args: argparse.Namespace) -> None:
        request = model_pb2.LoadModelRequest(id=args.id)
        if args.keep_alive is not None:
            request.keep_alive_seconds = _duration(args.keep_alive)
        r = self.models.LoadModel(request)
        if self.as_json:
            return _print_json(_dict(r))
        console.print(f"loaded {r.model.id} in {r.load_seconds:.1f}s")

    def models_unload(self, args: argparse.Namespace) -> None:
        r = self.models.UnloadModel(model_pb2.UnloadModelRequest(id=args.id))
        if self.as_json:
            return _print_json(_dict(r))
        console.print(f"unloaded {args.id}" if r.was_loaded else f"{args.id} was not loaded")

    def models_rm(self, args: argparse.Namespace) -> None:
        r = self.models.DeleteModel(model_pb2.DeleteModelRequest(id=args.id))
        if self.as_json:
            return _print_json(_dict(r))
        console.print(f"deleted {args.id} ({_size(r.freed_bytes)} freed)")

    def models_import(self, args: argparse.Namespace) -> None:
        path = str(Path(args.file).expanduser().resolve())
        with (
            console.status(f"importing {path}", spinner="dots")
            if not self.as_json
            else contextlib.nullcontext()
        ):
            r = self.models.ImportModel(
                model_pb2.ImportModelRequest(gguf_path=path, name=args.name or "")
            )
        if self.as_json:
            return _print_json(_dict(r.model))
        console.print(f"imported {r.model.id} ({_size(r.model.size_bytes)}) into {r.model.path}")

    def chat(self, args: argparse.Namespace) -> None:
        messages = []
        if args.system:
            messages.append(
                inference_pb2.ChatMessage(role=inference_pb2.ROLE_SYSTEM, content=args.system)
            )
        messages.append(
            inference_pb2.ChatMessage(role=inference_pb2.ROLE_USER, content=args.prompt)
        )
        request = inference_pb2.GenerateRequest(
            model=args.model,
            chat=inference_pb2.Chat(messages=messages),
            session_id=args.session or "",
        )
        if args.max_tokens is not None:
            request.max_tokens = args.max_tokens
        if args.temperature is not None:
            request.sampling.temperature = args.temperature
        text: list[str] = []
        call = self.inference.Generate(request)
        try:
            for event in call:
                if event.HasField("delta"):
                    text.append(event.delta.text)
                    if not self.as_json:
                        print(event.delta.text, end="", flush=True)
                elif not event.HasField("done"):
                    continue  # `started`: nothing to show
                elif self.as_json:
                    _print_json({"text": "".join(text), **_dict(event.done)})
                else:
                    d = event.done
                    print()
                    errors.print(
                        f"[dim]{d.usage.completion_tokens} tokens, "
                        f"{d.timings.generation_tokens_per_second:.1f} tok/s, "
                        f"TTFT {d.timings.time_to_first_token_seconds:.2f}s[/dim]"
                    )
        except KeyboardInterrupt:
            call.cancel()
            print()

    def system_stats(self, args: argparse.Namespace) -> None:
        request = system_pb2.WatchSystemStatsRequest(interval_seconds=args.interval)
        stream = self.system.WatchSystemStats(request)
        try:
            if self.as_json or not console.is_terminal:  # piped: a line per sample
                for i, s in enumerate(stream, 1):
                    print(json.dumps(_dict(s)) if self.as_json else _stats_line(s), flush=True)
                    if args.count and i >= args.count:
                        break
                return
            with Live(console=console, auto_refresh=False) as live:
                for i, s in enumerate(stream, 1):
                    table = _table("CPU", "RAM", "SERVER RSS", "REQUESTS", "TOKENS/S")
                    table.add_row(
                        f"{s.cpu_percent:.0f}%",
                        f"{_size(s.memory_used_bytes)} / {_size(s.memory_total_bytes)}",
                        _size(s.process_rss_bytes),
                        f"{s.running_requests} running, {s.queued_requests} queued",
                        f"{s.tokens_per_second:.1f}",
                    )
                    live.update(table, refresh=True)
                    if args.count and i >= args.count:
                        break
        except KeyboardInterrupt:
            pass
        finally:
            stream.cancel()


def _stats_line(s: system_pb2.WatchSystemStatsResponse) -> str:
    return (
        f"cpu {s.cpu_percent:.0f}%\tram {_size(s.memory_used_bytes)} of "
        f"{_size(s.memory_total_bytes)}\tserver rss {_size(s.process_rss_bytes)}\t"
        f"{s.running_requests} running, {s.queued_requests} queued\t"
        f"{s.tokens_per_second:.1f} tok/s"
    )


def _from_server(exc: grpc.RpcError) -> bool:
    """Whether the osaurus server itself answered with this error (its statuses carry a
    google.rpc.Status), rather than the channel failing to reach it."""
    try:
        return rpc_status.from_call(exc) is not None  # type: ignore[arg-type]
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=argparse.SUPPRESS,
        help="gRPC server HOST:PORT (default 127.0.0.1:50051, env OSU_TARGET)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="the server's API key, if it has keys (env OSU_API_KEY)",
    )
    common.add_argument(
        "--tls",
        action="store_true",
        default=argparse.SUPPRESS,
        help="reach the server over TLS, trusting the system's authorities",
    )
    common.add_argument(
        "--tls-ca",
        default=argparse.SUPPRESS,
        help="reach the server over TLS, trusting this authority's certificate (PEM; for a "
        "self-signed server, its certificate; env OSU_TLS_CA)",
    )
    parser = argparse.ArgumentParser(
        prog="osaurus-ctl", parents=[common], description="Manage an osaurus server over gRPC."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(subparsers: Any, name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, parents=[common], help=help_text)
        p.set_defaults(handler=handler)
        return p

    add(sub, "status", "status", "server version, uptime, device and loaded models")
    models = sub.add_parser("models", help="list, show, load, unload, remove or import models")
    msub = models.add_subparsers(dest="models_command", required=True)
    add(msub, "list", "models_list", "list the models in the models directory")
    for name, handler, help_text in (
        ("show", "models_show", "details of one model"),
        ("load", "models_load", "load a model into memory"),
        ("unload", "models_unload", "unload a model from memory"),
        ("rm", "models_rm", "delete a model from disk"),
    ):
        add(msub, name, handler, help_text).add_argument("id")
    msub.choices["load"].add_argument(
        "--keep-alive", help="idle time before it unloads: 300, 5m, 1h; negative: never"
    )
    add(sub, "ps", "ps", "loaded models: precision, memory, when they unload")
    search = add(msub, "search", "models_search", "search Hugging Face (mlx-community)")
    search.add_argument("query", nargs="?")
    search.add_argument("--limit", type=int, default=20)
    add(sub, "pull", "pull", "download a model from Hugging Face").add_argument("repo")
    add(sub, "rm", "models_rm", "delete a model from disk").add_argument("id")
    imp = add(msub, "import", "models_import", "import a llama-architecture GGUF file")
    imp.add_argument("file")
    imp.add_argument("--name", help="model id to create (default: the file name, lower-cased)")

    sessions = sub.add_parser("sessions", help="list, show or drop the KV caches of sessions")
    ssub = sessions.add_subparsers(dest="sessions_command", required=True)
    add(ssub, "list", "sessions_list", "sessions, most recently used first")
    add(ssub, "show", "sessions_show", "details of one session").add_argument("id")
    add(ssub, "rm", "sessions_rm", "drop a session's cache").add_argument("id")

    chat = add(sub, "chat", "chat", "stream a reply to one prompt")
    chat.add_argument("model")
    chat.add_argument("prompt")
    chat.add_argument("--system", help="system message")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--session", help="session id: keep the KV cache for the next turn")

    system = add(sub, "system", "system_stats", "live CPU and memory")
    system.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    system.add_argument(
        "--count", type=int, default=0, help="stop after N samples (0: run until Ctrl-C)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    import os

    args = _parser().parse_args(argv)
    target = getattr(args, "target", None) or os.environ.get("OSU_TARGET", DEFAULT_TARGET)
    # OSU_API_KEY may hold several keys (the server's setting): the first one is ours.
    api_key = getattr(args, "api_key", None) or os.environ.get("OSU_API_KEY", "").split(",")[0]
    ca = getattr(args, "tls_ca", None) or os.environ.get("OSU_TLS_CA")
    tls = Tls(Path(ca).expanduser()) if ca else Tls() if getattr(args, "tls", False) else None
    ctl = Ctl(target, getattr(args, "json", False), api_key.strip() or None, tls)
    handler: Callable[[argparse.Namespace], None] = getattr(ctl, args.handler)
    try:
        handler(args)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.UNAVAILABLE and not _from_server(exc):
            errors.print(
                f"osaurus-ctl: cannot reach the osaurus server at {target} "
                "(is `osaurus serve` running?)",
                highlight=False,
            )
        elif code == grpc.StatusCode.UNAUTHENTICATED:
            errors.print(
                f"osaurus-ctl: the server at {target} refused: {exc.details()}. Pass its key "
                "with --api-key KEY or OSU_API_KEY",
                highlight=False,
                markup=False,
            )
        else:
            errors.print(
                f"osaurus-ctl: {exc.details()} ({code.name})", highlight=False, markup=False
            )
        sys.exit(1)
    except UsageError as exc:
        errors.print(f"osaurus-ctl: {exc}", highlight=False, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
