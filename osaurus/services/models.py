"""ModelService: the models directory and what the engine has loaded."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from osaurus.engine.engine import Engine
from osaurus.errors import InvalidArgument, Unavailable
from osaurus.models import details, hub
from osaurus.models.registry import ModelInfo
from osaurus.services.grpc_errors import maps_errors
from osaurus.services.inference import keep_alive_from_proto
from osaurus.services.timestamps import to_timestamp
from osaurus.v1 import model_pb2 as pb
from osaurus.v1 import model_pb2_grpc


def _require_id(model_id: str) -> str:
    if not model_id:
        raise InvalidArgument("id is required", field="id")
    return model_id


_CAPABILITIES = {
    details.COMPLETION: pb.MODEL_CAPABILITY_COMPLETION,
    details.TOOLS: pb.MODEL_CAPABILITY_TOOLS,
    details.THINKING: pb.MODEL_CAPABILITY_THINKING,
    details.EMBEDDING: pb.MODEL_CAPABILITY_EMBEDDING,
}
# How long a search waits for the hub's first answer before saying it is unreachable.
HUB_ANSWER_SECONDS = 5.0
# The search's first request runs here, not in asyncio's default executor: a search still
# retrying an unreachable hub must not hold up the server's exit, which waits for that one.
_HUB_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="osaurus-hub-search")
_SORTS = {
    pb.SEARCH_SORT_DOWNLOADS: "downloads",
    pb.SEARCH_SORT_LIKES: "likes",
    pb.SEARCH_SORT_RECENT: "last_modified",
}


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    def _to_proto(self, info: ModelInfo) -> pb.Model:
        loaded = self.engine.loaded(info.id)
        residency = self.engine.residency(info.id)
        return pb.Model(
            id=info.id,
            path=str(info.path),
            size_bytes=info.size_bytes,
            architecture=info.architecture,
            quantization=info.quantization,
            context_length=info.context_length,
            loaded=loaded is not None,
            modified_time=to_timestamp(info.modified_time),
            precision=loaded.precision.describe() if loaded else "",
            memory_bytes=residency[0] if residency else 0,
            expire_time=to_timestamp(residency[1]) if residency and residency[1] else None,
            parameter_count=info.parameter_count,
            capabilities=[_CAPABILITIES[c] for c in info.capabilities],
        )

    @maps_errors
    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext):
        return pb.ListModelsResponse(
            models=[self._to_proto(m) for m in self.engine.registry.list()]
        )

    @maps_errors
    async def GetModel(self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext):
        info = self.engine.registry.get(_require_id(request.id))
        model = self._to_proto(info)
        model.chat_template = details.chat_template(info.path)
        model.config_json = (info.path / "config.json").read_text()
        return pb.GetModelResponse(model=model)

    @maps_errors
    async def SearchModels(
        self, request: pb.SearchModelsRequest, context: grpc.aio.ServicerContext
    ):
        models_dir = self.engine.registry.models_dir
        if request.curated_only:
            found = hub.curated(models_dir)
        else:
            search = asyncio.get_running_loop().run_in_executor(
                _HUB_THREADS,
                hub.find,
                request.query,
                request.author or hub.DEFAULT_AUTHOR,
                _SORTS.get(request.sort, "downloads"),
                request.limit or 20,
            )
            try:  # an unreachable hub may take its client half a minute of retries to admit
                repo_ids = await asyncio.wait_for(search, HUB_ANSWER_SECONDS)
            except TimeoutError:
                raise Unavailable(
                    f"cannot reach Hugging Face: no answer within {HUB_ANSWER_SECONDS:g} s"
                ) from None
            found = await asyncio.to_thread(hub.describe, repo_ids, models_dir)
        return pb.SearchModelsResponse(
            models=[
                pb.HubModel(
                    repo_id=m.repo_id,
                    local_id=m.local_id,
                    size_bytes=m.size_bytes,
                    mlx_compatible=m.mlx_compatible,
                    downloaded=m.downloaded,
                    downloads=m.downloads,
                    likes=m.likes,
                    last_modified_time=to_timestamp(m.last_modified) if m.last_modified else None,
                )
                for m in found
            ],
            suggestions=hub.SUGGESTED,
        )

    @maps_errors
    async def PullModel(self, request: pb.PullModelRequest, context: grpc.aio.ServicerContext):
        if not request.repo_id:
            raise InvalidArgument("repo_id is required", field="repo_id")
        models_dir = self.engine.registry.models_dir
        events = hub.pull_events(request.repo_id, models_dir, request.revision or None)
        try:
            async for event in events:
                if isinstance(event, hub.PullProgress):
                    yield pb.PullModelResponse(
                        progress=pb.PullProgress(
                            bytes_done=event.bytes_done,
                            bytes_total=event.bytes_total,
                            current_file=event.current_file,
                            bytes_per_second=event.bytes_per_second,
                            eta_seconds=event.eta_seconds,
                        )
                    )
                else:
                    info = self.engine.registry.get(hub.local_id(request.repo_id))
                    done = pb.PullDone(
                        model=self._to_proto(info), already_present=event.already_present
                    )
                    yield pb.PullModelResponse(done=done)
        finally:
            await events.aclose()  # a cancelled RPC stops the download

    @maps_errors
    async def LoadModel(self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext):
        lm = await self.engine.load(_require_id(request.id), keep_alive_from_proto(request))
        return pb.LoadModelResponse(model=self._to_proto(lm.info), load_seconds=lm.load_seconds)

    @maps_errors
    async def UnloadModel(self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext):
        return pb.UnloadModelResponse(was_loaded=await self.engine.unload(_require_id(request.id)))

    @maps_errors
    async def DeleteModel(self, request: pb.DeleteModelRequest, context: grpc.aio.ServicerContext):
        return pb.DeleteModelResponse(freed_bytes=await self.engine.delete(_require_id(request.id)))

    @maps_errors
    async def CopyModel(self, request: pb.CopyModelRequest, context: grpc.aio.ServicerContext):
        for name in ("source_id", "destination_id"):
            if not getattr(request, name):
                raise InvalidArgument(f"{name} is required", field=name)
        # Copying gigabytes blocks: a worker thread, not the event loop.
        registry = self.engine.registry
        info = await asyncio.to_thread(registry.copy, request.source_id, request.destination_id)
        return pb.CopyModelResponse(model=self._to_proto(info))

    @maps_errors
    async def ImportModel(self, request: pb.ImportModelRequest, context: grpc.aio.ServicerContext):
        if not request.gguf_path:
            raise InvalidArgument("gguf_path is required", field="gguf_path")
        info = await self.engine.import_gguf(Path(request.gguf_path), request.name or None)
        return pb.ImportModelResponse(model=self._to_proto(info))
