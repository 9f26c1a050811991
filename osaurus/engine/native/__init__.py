"""osaurus' native CPU kernels for quantized weights (C++, an MLX extension).

MLX's CPU kernel for quantized matmul is a scalar loop on one thread that reads every weight
again for each row of x, so on the CPU a 4-bit model decodes slower than its float32 copy and
batching gains nothing. `_kernels` (kernels.h, built by `make setup` through build.py) computes
the same product with SIMD on all cores, reading each weight once per call. It also has RMS
norm and RoPE as one primitive each (fast_ops.h), where MLX's CPU path builds a dozen small ops.

A C++ extension binds to the MLX version it was compiled against, so it loads only when the
installed mlx is that version; otherwise (or when it was never built) the server runs on MLX's
own kernels and `status()` says why.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

_VERSION_FILE = Path(__file__).with_name("_kernels.mlx-version")


@dataclass(frozen=True)
class KernelStatus:
    available: bool
    detail: str  # "avx2, 2 threads" or why the kernels are not used

    def describe(self) -> str:
        prefix = "osaurus native" if self.available else "MLX built-in (osaurus native unavailable:"
        return f"{prefix} ({self.detail})" if self.available else f"{prefix} {self.detail})"


@functools.cache
def _load() -> tuple[ModuleType | None, str]:
    import mlx.core  # noqa: F401  (first: the extension takes and returns its arrays)

    try:
        built_for = _VERSION_FILE.read_text().strip()
    except OSError:
        return None, "not built; run `make setup` or `python -m osaurus.engine.native.build`"
    if built_for != mlx_version():
        return None, f"built for mlx {built_for}, running mlx {mlx_version()}; rebuild it"
    try:
        module = importlib.import_module("osaurus.engine.native._kernels")
    except ImportError as exc:
        return None, f"cannot import the extension: {exc}"
    return module, f"{module.simd()}, {module.num_threads()} threads"


def kernels() -> ModuleType | None:
    """The extension module, or None when it cannot be used here."""
    return _load()[0]


def loaded_kernels() -> Any:
    """The extension module, for code that runs only where it loads (typed Any: a compiled
    module has no type stubs)."""
    module = _load()[0]
    if module is None:
        raise RuntimeError(f"osaurus' native kernels are not available: {_load()[1]}")
    return module


def mlx_version() -> str:
    """The installed MLX's version: the extension binds to one."""
    return importlib.metadata.version("mlx")


@functools.cache
def status() -> KernelStatus:
    module, detail = _load()
    if module is None:
        log.warning("quantized matmul on the CPU: MLX's built-in kernel (slow): %s", detail)
    return KernelStatus(module is not None, detail)
