"""One streamed request, timed from the client: over OpenAI's REST API or osaurus's gRPC.

Time to first token is taken at the first non-empty content delta, as a user would see it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import grpc
import openai

from osaurus.client import open_aio_channel
from osaurus.v1 import inference_pb2 as ipb
from osaurus.v1 import inference_pb2_grpc


@dataclass
class RequestResult:
    target: str
    mode: str
    index: int
    ok: bool
    ttft: float = 0.0  # seconds to the first non-empty content
    total: float = 0.0
    chars: int = 0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    error: str = ""
    text: str = ""

    @property
    def decode_tps(self) -> float:
        """Tokens per second after the first one (the stream's own pace)."""
        span = self.total - self.ttft
        return (self.completion_tokens - 1) / span if self.completion_tokens > 1 and span else 0.0

    @property
    def chars_per_second(self) -> float:
        return self.chars / self.total if self.total else 0.0

    def row(self) -> dict:
        row = asdict(self)
        row.pop("text")
        return {**row, "decode_tps": self.decode_tps, "chars_per_second": self.chars_per_second}


class RestClient:
    """The official openai client, streaming with usage, as an OpenAI user would call it."""

    def __init__(self, name: str, base_url: str, model: str):
        self.name = name
        self.model = model
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key="bench", max_retries=0, timeout=600
        )

    async def chat(
        self,
        messages: list[dict],
        max_tokens: int,
        mode: str,
        index: int,
        session: str = "",
        ignore_eos: bool = False,
        speculative: bool | None = None,
    ) -> RequestResult:
        result = RequestResult(self.name, mode, index, ok=False)
        extra: dict = {"session_id": session} if session else {}
        if ignore_eos:  # vLLM's and llama.cpp's extension, which osaurus speaks too
            extra["ignore_eos"] = True
        if speculative is not None:  # osaurus' extension: prompt lookup on or off
            extra["speculative"] = speculative
        start = time.perf_counter()
        try:
            stream = await self._create(
                model=self.model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=0.0,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=extra or None,
            )
            parts = []
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if not parts:
                        result.ttft = time.perf_counter() - start
                    parts.append(chunk.choices[0].delta.content)
                if chunk.usage:
                    result.completion_tokens = chunk.usage.completion_tokens
                    result.prompt_tokens = chunk.usage.prompt_tokens
                    details = chunk.usage.prompt_tokens_details
                    result.cached_tokens = (details.cached_tokens or 0) if details else 0
            result.total = time.perf_counter() - start
            result.text = "".join(parts)
            result.chars = len(result.text)
            result.ok = bool(parts)
            result.error = "" if parts else "empty reply"
            if not result.completion_tokens:  # no usage in the stream (llama-cpp-python):
                result.completion_tokens = len(parts)  # it sends one token per chunk
        except Exception as exc:  # a failed request is a result, not a crash of the bench
            result.total = time.perf_counter() - start
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        return result

    async def _create(self, **request):
        """The request, sent again once if its pooled connection turns out to be closed.

        llama-server (cpp-httplib) closes a keep-alive connection after a few requests, and the
        next request on it fails at once with a connection error, before anything was
        generated; the openai SDK's default retries cover that for its users. Other failures
        (429, 5xx) are not retried: they count as failed requests.
        """
        try:
            return await self.client.chat.completions.create(**request)
        except openai.APIConnectionError:
            return await self.client.chat.completions.create(**request)

    async def close(self) -> None:
        await self.client.close()


class GrpcClient:
    """osaurus's own API: InferenceService.Generate over grpc.aio."""

    def __init__(self, name: str, target: str, model: str):
        self.name = name
        self.model = model
        self.channel = open_aio_channel(target)
        self.stub = inference_pb2_grpc.InferenceServiceStub(self.channel)

    async def chat(
        self,
        messages: list[dict],
        max_tokens: int,
        mode: str,
        index: int,
        session: str = "",
        ignore_eos: bool = False,
    ) -> RequestResult:
        roles = {"user": ipb.ROLE_USER, "assistant": ipb.ROLE_ASSISTANT, "system": ipb.ROLE_SYSTEM}
        request = ipb.GenerateRequest(
            model=self.model,
            chat=ipb.Chat(
                messages=[
                    ipb.ChatMessage(role=roles[m["role"]], content=m["content"]) for m in messages
                ]
            ),
            max_tokens=max_tokens,
            sampling=ipb.SamplingParams(temperature=0.0),
            session_id=session,
            ignore_eos=ignore_eos,
        )
        result = RequestResult(self.name, mode, index, ok=False)
        start = time.perf_counter()
        parts = []
        try:
            async for event in self.stub.Generate(request, timeout=600):
                if event.HasField("delta") and event.delta.text:
                    if not parts:
                        result.ttft = time.perf_counter() - start
                    parts.append(event.delta.text)
                elif event.HasField("done"):
                    usage = event.done.usage
                    result.completion_tokens = usage.completion_tokens
                    result.prompt_tokens = usage.prompt_tokens
                    result.cached_tokens = usage.cached_tokens
            result.total = time.perf_counter() - start
            result.text = "".join(parts)
            result.chars = len(result.text)
            result.ok = bool(parts)
        except grpc.aio.AioRpcError as exc:
            result.total = time.perf_counter() - start
            result.error = f"{exc.code().name}: {exc.details()}"
        return result

    async def close(self) -> None:
        await self.channel.close()
