"""Hugging Face Hub: search for MLX models and pull them into the models directory.

huggingface_hub does the talking (it honours HF_ENDPOINT, HF_TOKEN and the user's cache). Pulls
go through the user's Hugging Face cache, so files already there are not downloaded again and a
dropped connection resumes from its partial file (HTTP Range; huggingface_hub keeps that file to
its own process, so after a crash the file starts over). Only the files a model needs are fetched
(mlx-lm's own list of patterns). The model appears in the models directory only when it is
complete: it is copied into a hidden staging directory (models/staging.py), then renamed into
place.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import shutil
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS

from osaurus.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    OsaurusError,
    PermissionDenied,
    Unavailable,
)
from osaurus.models.staging import staging_dir

HubSort = Literal["downloads", "likes", "last_modified"]
# What an MLX model needs: mlx-lm's own list of file patterns.
NEEDED_FILES = DEFAULT_ALLOW_PATTERNS
DEFAULT_AUTHOR = "mlx-community"
# Popular 4-bit MLX models, with the size of their files (an estimate: repos change), for
# when the hub cannot be asked.
CURATED_SIZES = {
    "mlx-community/Llama-3.2-3B-Instruct-4bit": 1_820_000_000,
    "mlx-community/Qwen3-4B-4bit": 2_260_000_000,
    "mlx-community/gemma-3-4b-it-4bit": 3_030_000_000,
    "mlx-community/Mistral-7B-Instruct-v0.3-4bit": 4_080_000_000,
    "mlx-community/Phi-4-mini-instruct-4bit": 2_160_000_000,
    "mlx-community/DeepSeek-R1-Distill-Qwen-1.5B-4bit": 1_000_000_000,
    "mlx-community/SmolLM2-1.7B-Instruct-4bit": 960_000_000,
}
SUGGESTED = list(CURATED_SIZES)


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    local_id: str
    size_bytes: int  # the files a model needs
    mlx_compatible: bool
    downloaded: bool
    downloads: int
    likes: int
    last_modified: float  # epoch seconds; 0 when unknown


@dataclass(frozen=True)
class PullProgress:
    bytes_done: int
    bytes_total: int
    current_file: str  # huggingface_hub aggregates files: "2 of 4 files done"
    bytes_per_second: float
    eta_seconds: float


@dataclass(frozen=True)
class Pulled:
    path: Path
    already_present: bool


class Cancelled(Exception):
    """Raised inside huggingface_hub's progress callback to stop a pull."""


def local_id(repo_id: str) -> str:
    return repo_id.strip().lower()


def needed(filename: str) -> bool:
    return any(fnmatch.fnmatch(filename, pattern) for pattern in NEEDED_FILES)


def hub_error(exc: Exception, repo_id: str) -> OsaurusError:
    """huggingface_hub's exceptions as ours, with a sentence a person can act on."""
    from huggingface_hub import errors

    if isinstance(exc, errors.LocalEntryNotFoundError):  # no network and nothing cached
        return Unavailable(f"cannot reach Hugging Face for {repo_id}: {exc}")
    if isinstance(exc, errors.GatedRepoError):
        return PermissionDenied(
            f"{repo_id} is gated on Hugging Face: accept its terms on the hub and set HF_TOKEN",
            field="repo_id",
        )
    if isinstance(exc, errors.RepositoryNotFoundError | errors.RevisionNotFoundError):
        return NotFound(f"no model {repo_id!r} on Hugging Face", field="repo_id")
    if isinstance(exc, errors.EntryNotFoundError):
        return NotFound(f"{repo_id}: a file is missing on the hub: {exc}", field="repo_id")
    if isinstance(exc, errors.HfHubHTTPError):
        return Unavailable(f"Hugging Face answered an error for {repo_id}: {exc}")
    return Unavailable(f"cannot reach Hugging Face for {repo_id}: {type(exc).__name__}: {exc}")


def _network_errors() -> tuple[type[Exception], ...]:
    """What huggingface_hub raises for the hub's answers and for the network (it moved from
    httpx to httpx2 in 2.x; both are caught)."""
    import importlib

    from huggingface_hub import errors

    found: list[type[Exception]] = [
        errors.HfHubHTTPError,
        errors.LocalEntryNotFoundError,
        OSError,
    ]
    for name in ("httpx", "httpx2"):
        with contextlib.suppress(ImportError, AttributeError):
            found.append(importlib.import_module(name).HTTPError)
    return tuple(found)


def _call_hub(repo_id: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except _network_errors() as exc:
        raise hub_error(exc, repo_id) from exc


def _describe(info: Any, models_dir: Path) -> HubModel:
    files = [s for s in info.siblings or [] if needed(s.rfilename)]
    names = {s.rfilename for s in files}
    tags = set(info.tags or [])
    compatible = "config.json" in names and any(n.endswith(".safetensors") for n in names)
    compatible = compatible and ("mlx" in tags or info.id.startswith(DEFAULT_AUTHOR + "/"))
    modified = info.last_modified.timestamp() if info.last_modified else 0.0
    return HubModel(
        repo_id=info.id,
        local_id=local_id(info.id),
        size_bytes=sum(s.size or 0 for s in files),
        mlx_compatible=compatible,
        downloaded=(models_dir / info.id / "config.json").exists(),
        downloads=info.downloads or 0,
        likes=info.likes or 0,
        last_modified=modified,
    )


def curated(models_dir: Path) -> list[HubModel]:
    """The curated models, described without the hub (sizes are estimates)."""
    return [
        HubModel(
            repo_id=repo_id,
            local_id=local_id(repo_id),
            size_bytes=size,
            mlx_compatible=True,
            downloaded=(models_dir / repo_id / "config.json").exists(),
            downloads=0,
            likes=0,
            last_modified=0.0,
        )
        for repo_id, size in CURATED_SIZES.items()
    ]


def find(
    query: str, author: str = DEFAULT_AUTHOR, sort: str = "downloads", limit: int = 20
) -> list[str]:
    """The repo ids a search finds (one request to the hub)."""
    from huggingface_hub import HfApi

    if sort not in ("downloads", "likes", "last_modified"):
        raise InvalidArgument("sort must be downloads, likes or last_modified", field="sort")
    api = HfApi()
    found = _call_hub(
        query or author,
        lambda: list(
            api.list_models(
                search=query or None,
                author=author or None,
                sort=cast(HubSort, sort),  # checked above
                limit=limit,
            )
        ),
    )
    return [m.id for m in found]


def describe(repo_ids: list[str], models_dir: Path) -> list[HubModel]:
    """Each repo with its size: its file list, one request per repo."""
    from huggingface_hub import HfApi

    api = HfApi()
    return [
        _describe(
            _call_hub(r, functools.partial(api.model_info, r, files_metadata=True)), models_dir
        )
        for r in repo_ids
    ]


def pull(
    repo_id: str,
    models_dir: Path,
    on_progress: Callable[[PullProgress], None],
    cancelled: threading.Event,
    revision: str | None = None,
) -> tuple[Path, bool]:
    """Download `repo_id` into `models_dir/<repo_id>`; returns (path, whether it was already
    there). Raises Cancelled when `cancelled` is set."""
    from huggingface_hub import HfApi, snapshot_download

    if repo_id.count("/") != 1 or ".." in repo_id:
        raise InvalidArgument(f"repo_id must look like org/name, not {repo_id!r}", field="repo_id")
    target = models_dir / repo_id
    if (target / "config.json").exists():
        return target, True
    info = _call_hub(
        repo_id, lambda: HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    )
    model = _describe(info, models_dir)
    if not model.mlx_compatible:
        raise InvalidArgument(
            f"{repo_id} does not look like an MLX model (config.json and safetensors, "
            "from mlx-community or tagged mlx)",
            field="repo_id",
        )
    progress = _progress_class(model.size_bytes, on_progress, cancelled)
    snapshot = _call_hub(
        repo_id,
        lambda: snapshot_download(
            repo_id, revision=revision, allow_patterns=NEEDED_FILES, tqdm_class=progress
        ),
    )
    if cancelled.is_set():
        raise Cancelled
    _install(Path(snapshot), target)
    return target, False


async def pull_events(
    repo_id: str, models_dir: Path, revision: str | None = None
) -> AsyncGenerator[PullProgress | Pulled]:
    """`pull` on a worker thread, as events for the event loop: progress reports, then `Pulled`.
    Closing the iterator early (the client went away) stops the download."""
    loop = asyncio.get_running_loop()
    # Progress reports from the download thread, then the finished task itself.
    events: asyncio.Queue[PullProgress | asyncio.Future] = asyncio.Queue()
    cancelled = threading.Event()

    def report(progress: PullProgress) -> None:
        loop.call_soon_threadsafe(events.put_nowait, progress)

    task = asyncio.ensure_future(
        asyncio.to_thread(pull, repo_id, models_dir, report, cancelled, revision)
    )
    task.add_done_callback(events.put_nowait)
    try:
        while isinstance(item := await events.get(), PullProgress):
            yield item
        path, already = task.result()
        yield Pulled(path, already)
    finally:
        cancelled.set()  # a no-op when done; else it stops huggingface_hub at its next chunk
        with contextlib.suppress(BaseException):
            await task


def _install(snapshot: Path, target: Path) -> None:
    """Copy the cached snapshot into place through a staging directory: ListModels never sees a
    half-copied model."""
    staging = staging_dir(target.parent, "pull")
    try:
        for item in snapshot.iterdir():
            shutil.copy2(item.resolve(), staging / item.name)
        if target.exists():
            raise AlreadyExists(f"{target} appeared while pulling", field="repo_id")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _progress_class(
    total: int, on_progress: Callable[[PullProgress], None], cancelled: threading.Event
) -> type:
    """A silent tqdm for huggingface_hub: it counts the bytes of the download's byte bars,
    reports progress (at most 4 times a second) and stops the pull when asked."""
    from huggingface_hub.utils import tqdm

    state = {"done": 0, "last": 0.0, "files_done": 0, "files_total": 0}
    start = time.monotonic()
    lock = threading.Lock()

    class Progress(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # huggingface_hub opens one bar counting files and others counting bytes.
            self.counts_bytes = kwargs.get("unit") == "B"
            if not self.counts_bytes and kwargs.get("total"):
                state["files_total"] = kwargs["total"]
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if cancelled.is_set():
                raise Cancelled
            if self.counts_bytes and n:
                self._report(int(n))
            elif n:
                state["files_done"] += int(n)
            return super().update(n)

        def _report(self, n: int) -> None:
            with lock:
                state["done"] += n
                now = time.monotonic()
                if now - state["last"] < 0.25 and state["done"] < total:
                    return
                state["last"] = now
                done = min(state["done"], total)
            speed = done / max(now - start, 1e-6)
            eta = (total - done) / speed if speed > 0 else 0.0
            files = f"{state['files_done']} of {state['files_total']} files done"
            on_progress(PullProgress(int(done), total, files, speed, eta))

    return Progress
