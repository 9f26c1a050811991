"""Staging directories: named after their writer, and removed at start once it has died."""

from __future__ import annotations

import os
import subprocess
import sys

from osaurus.models.staging import remove_abandoned, staging_dir


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_the_dead_writers_staging_goes(tmp_path) -> None:
    dead = _dead_pid()
    model = tmp_path / "org" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    abandoned = [tmp_path / f".pull-{dead}-x", tmp_path / "org" / f".copy-{dead}-y"]
    for path in abandoned:
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"half")
    live = staging_dir(tmp_path, "import")  # ours: this process is alive
    assert live.name.startswith(f".import-{os.getpid()}-")
    other = tmp_path / ".hidden-thing"
    other.mkdir()
    assert sorted(remove_abandoned(tmp_path)) == sorted(abandoned)
    assert live.exists() and other.exists() and (model / "config.json").exists()
    assert not any(p.exists() for p in abandoned)
