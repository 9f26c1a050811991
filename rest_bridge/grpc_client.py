"""The bridge's one gRPC channel to the osaurus server and its service stubs."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from fastapi import Request

from osaurus.v1 import inference_pb2_grpc, model_pb2_grpc, system_pb2_grpc

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


@dataclass
class GrpcClients:
    target: str
    channel: grpc.aio.Channel
    inference: inference_pb2_grpc.InferenceServiceStub
    models: model_pb2_grpc.ModelServiceStub
    system: system_pb2_grpc.SystemServiceStub

    @classmethod
    def connect(cls, target: str) -> GrpcClients:
        channel = grpc.aio.insecure_channel(target, options=_OPTIONS)
        return cls(
            target=target,
            channel=channel,
            inference=inference_pb2_grpc.InferenceServiceStub(channel),
            models=model_pb2_grpc.ModelServiceStub(channel),
            system=system_pb2_grpc.SystemServiceStub(channel),
        )

    async def close(self) -> None:
        await self.channel.close()


def clients(request: Request) -> GrpcClients:
    return request.app.state.clients
