"""A local server speaking the part of the Hugging Face Hub's HTTP API that huggingface_hub uses to
search, describe and download model repos (the real hub is unreachable from tests).

Routes: `GET /api/models` (search), `GET /api/models/{repo}[/revision/{rev}]` (info with file
sizes), `HEAD`/`GET /{repo}/resolve/{rev}/{path}` (ETag, X-Repo-Commit, Content-Length, Range).
A repo can be made gated (401 / GatedRepo), and downloads can be throttled or cut after N bytes
to test progress, cancel and resume.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Repo:
    repo_id: str
    files: dict[str, bytes]
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=lambda: ["mlx", "safetensors"])
    gated: bool = False

    def tree(self) -> list[dict]:
        return [_tree_entry(name, data) for name, data in sorted(self.files.items())]

    def info(self, with_sizes: bool) -> dict:
        siblings = [
            {"rfilename": name, **({"size": len(data)} if with_sizes else {})}
            for name, data in sorted(self.files.items())
        ]
        return {
            "id": self.repo_id,
            "modelId": self.repo_id,
            "sha": COMMIT,
            "downloads": self.downloads,
            "likes": self.likes,
            "tags": self.tags,
            "lastModified": "2026-11-01T00:00:00.000Z",
            "private": False,
            "gated": "manual" if self.gated else False,
            "siblings": siblings,
        }


def _tree_entry(name: str, data: bytes) -> dict:
    oid = hashlib.sha1(data).hexdigest()
    return {"type": "file", "path": name, "size": len(data), "oid": oid}


def repo_from_directory(repo_id: str, directory: Path, **options) -> Repo:
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    return Repo(repo_id, files, **options)


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.bytes_per_second: float | None = None  # throttle downloads
        self.cut_after: int | None = None  # drop one download after this many body bytes
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo: Repo) -> None:
        self.repos[repo.repo_id] = repo

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _json(self, status: int, payload, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str, message: str) -> None:
                self._json(
                    status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}
                )

            def _repo(self, repo_id: str) -> Repo | None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                return repo

            def do_GET(self) -> None:
                self._serve(head=False)

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def _serve(self, head: bool) -> None:
                url = urlparse(self.path)
                path = unquote(url.path)
                hub.requests.append((self.command, path, self.headers.get("Range")))
                if path == "/api/models":
                    return self._search(parse_qs(url.query))
                if path.startswith("/api/models/") and "/tree/" in path:
                    repo = self._repo(path.removeprefix("/api/models/").split("/tree/")[0])
                    if repo is not None:
                        self._json(200, repo.tree())
                    return None
                if path.startswith("/api/models/"):
                    rest = path.removeprefix("/api/models/")
                    repo_id = rest.split("/revision/")[0]
                    repo = self._repo(repo_id)
                    if repo is not None:
                        self._json(200, repo.info(with_sizes=True))
                    return None
                if "/resolve/" in path:
                    repo_id, _, tail = path.lstrip("/").partition("/resolve/")
                    _, _, filename = tail.partition("/")
                    return self._file(repo_id, filename, head)
                return self._error(404, "EntryNotFound", f"no route {path}")

            def _search(self, query: dict) -> None:
                text = (query.get("search") or [""])[0].lower()
                author = (query.get("author") or [""])[0]
                found = [
                    r
                    for r in hub.repos.values()
                    if text in r.repo_id.lower()
                    and (not author or r.repo_id.startswith(author + "/"))
                ]
                key = (query.get("sort") or ["downloads"])[0]
                found.sort(key=lambda r: getattr(r, key, 0), reverse=True)
                limit = int((query.get("limit") or ["50"])[0])
                self._json(200, [r.info(with_sizes=False) for r in found[:limit]])

            def _file(self, repo_id: str, filename: str, head: bool) -> None:
                repo = self._repo(repo_id)
                if repo is None:
                    return
                if repo.gated and not self.headers.get("Authorization"):
                    return self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted")
                data = repo.files.get(filename)
                if data is None:
                    return self._error(404, "EntryNotFound", f"{filename} not in {repo_id}")
                etag = hashlib.sha256(data).hexdigest()
                start = 0
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes="):
                    start = int(ranged.removeprefix("bytes=").split("-")[0])
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if head:
                    return
                sent = 0
                chunk = 64 * 1024
                while sent < len(body):
                    if hub.cut_after is not None and sent >= hub.cut_after:
                        hub.cut_after = None  # once: the retry gets the rest
                        self.close_connection = True
                        return
                    piece = body[sent : sent + chunk]
                    try:
                        self.wfile.write(piece)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += len(piece)
                    if hub.bytes_per_second:
                        time.sleep(len(piece) / hub.bytes_per_second)

        return Handler
