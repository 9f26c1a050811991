"""Where a model is written before it appears: a hidden directory beside its final place,
renamed into place once whole, so the models list never holds half a model.

A server killed mid-write (kill -9, a power cut) leaves its staging directory behind. Each one is
named after the process that writes it (`.pull-<pid>-…`), so the next server start removes those
whose process is gone, and never one that another live server is still writing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_STAGING = re.compile(r"^\.(pull|import|copy)-(\d+)-")


def staging_dir(parent: Path, kind: str) -> Path:
    """A new, empty, hidden directory in `parent` (made if needed) for a model being written."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{kind}-{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_abandoned(models_dir: Path) -> list[Path]:
    """Delete the staging directories of processes that died writing them (in the models
    directory and its org/ subdirectories); returns what was removed."""
    if not models_dir.is_dir():
        return []
    parents = [
        models_dir,
        *(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
    ]
    removed = []
    for parent in parents:
        for entry in parent.iterdir():
            found = _STAGING.match(entry.name)
            if found and entry.is_dir() and not _alive(int(found[2])):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    for path in removed:
        log.info("removed %s, left by a server that stopped while writing it", path)
    return removed
