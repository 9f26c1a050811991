"""The client side of the contract: how to open a channel to an osaurus server.

Everything that talks to the server over gRPC from Python (the REST bridge, osaurus-ctl, bench/,
tests) builds its channel here, so all of them send and receive messages as large as the server
does. This module imports nothing of the core but the generated code: the bridge may run alone,
on a machine without MLX.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from osaurus.v1 import (
    inference_pb2_grpc,
    model_pb2_grpc,
    session_pb2_grpc,
    system_pb2_grpc,
)

# Chats can be long: gRPC's default 4 MB receive limit is too small for a big context.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def key_metadata(api_key: str) -> tuple[str, str]:
    """How a call presents an API key to an osaurus server."""
    return ("authorization", f"Bearer {api_key}")


class _SendApiKey(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the API key to every call of a blocking channel."""

    def __init__(self, api_key: str):
        self.header = key_metadata(api_key)

    def _with_key(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), self.header])

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any):
        return continuation(self._with_key(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any):
        return continuation(self._with_key(client_call_details), request)


@dataclass(frozen=True)
class Tls:
    """How a client reaches a server that serves TLS: the certificate of the authority that
    signed the server's (or the server's own, if self-signed); None: the system's roots."""

    ca: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        roots = self.ca.read_bytes() if self.ca is not None else None
        return grpc.ssl_channel_credentials(root_certificates=roots)


def open_channel(target: str, api_key: str | None = None, tls: Tls | None = None) -> grpc.Channel:
    """A blocking channel to the server at HOST:PORT (over TLS with `tls`); its calls present
    `api_key` if given."""
    if tls is not None:
        channel = grpc.secure_channel(target, tls.credentials(), options=CHANNEL_OPTIONS)
    else:
        channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.intercept_channel(channel, _SendApiKey(api_key)) if api_key else channel


def open_aio_channel(
    target: str,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    tls: Tls | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to the server at HOST:PORT (over TLS with `tls`)."""
    chosen = list(interceptors) or None
    if tls is not None:
        return grpc.aio.secure_channel(
            target, tls.credentials(), options=CHANNEL_OPTIONS, interceptors=chosen
        )
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=chosen)


@dataclass
class Stubs:
    """One stub per osaurus service, over one channel (blocking or asyncio alike)."""

    target: str
    channel: grpc.Channel | grpc.aio.Channel
    inference: inference_pb2_grpc.InferenceServiceStub
    models: model_pb2_grpc.ModelServiceStub
    sessions: session_pb2_grpc.SessionServiceStub
    system: system_pb2_grpc.SystemServiceStub

    @classmethod
    def over(cls, target: str, chan: grpc.Channel | grpc.aio.Channel) -> Stubs:
        return cls(
            target=target,
            channel=chan,
            inference=inference_pb2_grpc.InferenceServiceStub(chan),
            models=model_pb2_grpc.ModelServiceStub(chan),
            sessions=session_pb2_grpc.SessionServiceStub(chan),
            system=system_pb2_grpc.SystemServiceStub(chan),
        )
