"""SessionService: the KV caches kept for client sessions (see osaurus.engine.kv_store)."""

from __future__ import annotations

import grpc

from osaurus.engine.engine import Engine
from osaurus.engine.kv_store import Session
from osaurus.errors import InvalidArgument
from osaurus.services.grpc_errors import maps_errors
from osaurus.services.timestamps import to_timestamp
from osaurus.v1 import session_pb2 as pb
from osaurus.v1 import session_pb2_grpc


def _to_proto(session: Session) -> pb.Session:
    return pb.Session(
        id=session.session_id,
        model=session.model,
        cached_tokens=len(session.tokens),
        size_bytes=session.nbytes,
        in_use=session.in_use,
        create_time=to_timestamp(session.created),
        update_time=to_timestamp(session.last_used),
    )


def _require_id(session_id: str) -> str:
    if not session_id:
        raise InvalidArgument("id is required", field="id")
    return session_id


class SessionServicer(session_pb2_grpc.SessionServiceServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @maps_errors
    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: grpc.aio.ServicerContext
    ):
        sessions = await self.engine.sessions()
        return pb.ListSessionsResponse(sessions=[_to_proto(s) for s in sessions])

    @maps_errors
    async def GetSession(self, request: pb.GetSessionRequest, context: grpc.aio.ServicerContext):
        session = await self.engine.session(_require_id(request.id))
        return pb.GetSessionResponse(session=_to_proto(session))

    @maps_errors
    async def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: grpc.aio.ServicerContext
    ):
        await self.engine.delete_session(_require_id(request.id))
        return pb.DeleteSessionResponse()
