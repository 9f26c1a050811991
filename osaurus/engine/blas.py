"""Use a real BLAS under MLX's CPU backend on Linux.

The mlx[cpu] wheel ships a reference BLAS: float32 matmul runs ~30x slower than OpenBLAS on the
same machine (see README, "MLX on Linux"). Loading OpenBLAS with RTLD_GLOBAL before the process
first imports mlx makes MLX bind to it, with no re-exec. This must run before `import mlx`.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)

_loaded: str | None = None


def find_openblas() -> str | None:
    return next((path for path in _CANDIDATES if os.path.exists(path)), None)


def preload_blas(enabled: bool = True) -> str | None:
    """Load OpenBLAS globally if we are on Linux, it exists, and mlx is not imported yet.

    Returns the path of the library loaded (or already loaded), else None.
    """
    global _loaded
    if _loaded or not enabled or not sys.platform.startswith("linux"):
        return _loaded
    if "mlx.core" in sys.modules:  # too late: MLX already bound its BLAS symbols
        return None
    path = find_openblas()
    if path is None:
        return None
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    _loaded = path
    return path


def blas_in_use() -> str:
    """What BLAS the CPU backend runs on, for GetStatus."""
    if not sys.platform.startswith("linux"):
        return "accelerate" if sys.platform == "darwin" else ""
    return f"openblas ({_loaded})" if _loaded else "reference (mlx[cpu] bundled)"


def install_openblas() -> None:
    """Best effort for `make setup`: install Debian/Ubuntu's OpenBLAS when we are root."""
    if not sys.platform.startswith("linux") or find_openblas():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            "osaurus: no OpenBLAS found; for ~10x faster CPU inference run "
            "`sudo apt-get install libopenblas0-pthread`"
        )
        return
    print("osaurus: installing libopenblas0-pthread (faster CPU inference)")
    subprocess.run(["apt-get", "install", "-y", "-q", "libopenblas0-pthread"], check=False)


if __name__ == "__main__":
    if "--install" in sys.argv:
        install_openblas()
    print(find_openblas() or "no OpenBLAS")
