"""Sessions through both transports: REST session_id / X-Session-Id, and SessionService."""

from __future__ import annotations

import grpc
import openai
import pytest

from osaurus.v1 import session_pb2, session_pb2_grpc

QUESTION = {"role": "user", "content": "Name the capital of France."}
FOLLOW_UP = {"role": "user", "content": "And of Italy?"}


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="any", max_retries=0)


@pytest.fixture(scope="module")
def sessions(channel) -> session_pb2_grpc.SessionServiceStub:
    return session_pb2_grpc.SessionServiceStub(channel)


def two_turns(client, model_id, **session) -> tuple:
    first = client.chat.completions.create(
        model=model_id, messages=[QUESTION], max_tokens=12, temperature=0, **session
    )
    turn2 = [QUESTION, {"role": "assistant", "content": first.choices[0].message.content}]
    second = client.chat.completions.create(
        model=model_id, messages=[*turn2, FOLLOW_UP], max_tokens=12, temperature=0, **session
    )
    return first, second


@pytest.mark.parametrize(
    "how",
    [
        {"extra_body": {"session_id": "rest-body"}},
        {"extra_headers": {"X-Session-Id": "rest-header"}},
    ],
    ids=["body", "header"],
)
def test_the_second_turn_reports_cached_prompt_tokens(client, model_id, sessions, how) -> None:
    first, second = two_turns(client, model_id, **how)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens
    assert cached < second.usage.prompt_tokens

    session_id = next(iter(how.values())).popitem()[1]
    got = sessions.GetSession(session_pb2.GetSessionRequest(id=session_id)).session
    assert got.model == model_id and not got.in_use
    # The cache holds the second prompt and its reply.
    assert got.cached_tokens > second.usage.prompt_tokens
    assert got.size_bytes > 0 and got.update_time.seconds >= got.create_time.seconds


def test_list_and_delete_sessions(client, model_id, sessions) -> None:
    client.chat.completions.create(
        model=model_id,
        messages=[QUESTION],
        max_tokens=4,
        extra_body={"session_id": "to-delete"},
    )
    listed = sessions.ListSessions(session_pb2.ListSessionsRequest()).sessions
    assert listed[0].id == "to-delete"  # most recently used first

    sessions.DeleteSession(session_pb2.DeleteSessionRequest(id="to-delete"))
    ids = [s.id for s in sessions.ListSessions(session_pb2.ListSessionsRequest()).sessions]
    assert "to-delete" not in ids
    for rpc, request in (
        (sessions.GetSession, session_pb2.GetSessionRequest(id="to-delete")),
        (sessions.DeleteSession, session_pb2.DeleteSessionRequest(id="to-delete")),
    ):
        with pytest.raises(grpc.RpcError) as info:
            rpc(request)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "to-delete" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        sessions.GetSession(session_pb2.GetSessionRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_without_a_session_a_repeated_request_hits_the_prefix_cache(client, model_id) -> None:
    messages = [{"role": "user", "content": "Say hello in German."}]
    first = client.chat.completions.create(
        model=model_id, messages=messages, max_tokens=6, temperature=0
    )
    again = client.chat.completions.create(
        model=model_id, messages=messages, max_tokens=6, temperature=0
    )
    assert again.choices[0].message.content == first.choices[0].message.content
    assert again.usage.prompt_tokens_details.cached_tokens == first.usage.prompt_tokens - 1
