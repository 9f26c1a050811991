"""Build the native kernels from source: `python -m osaurus.engine.native.build` (make setup).

CMake compiles the extension against the installed mlx wheel (its headers, libmlx and CMake
config) and nanobind; the module is then placed beside this file, replacing any older build
only once the new one is complete. A C++ extension binds to one MLX version, so the version it
was built for is written beside it and checked at import (see __init__.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from osaurus.engine.native import mlx_version

HERE = Path(__file__).resolve().parent
BUILD_DIR = HERE / "build"
VERSION_FILE = HERE / "_kernels.mlx-version"


def module_name() -> str:
    return "_kernels" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def build(portable: bool = False) -> Path:
    cmake = shutil.which("cmake", path=str(Path(sys.executable).parent)) or "cmake"
    configure = [
        cmake, "-S", str(HERE), "-B", str(BUILD_DIR),
        f"-DPython_EXECUTABLE={sys.executable}",
        f"-DOSU_PORTABLE={'ON' if portable else 'OFF'}",
    ]  # fmt: skip
    if shutil.which("ninja", path=str(Path(sys.executable).parent)) or shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    subprocess.run(configure, check=True)
    subprocess.run([cmake, "--build", str(BUILD_DIR), "--parallel"], check=True)
    built = next(BUILD_DIR.glob("_kernels*.so"), None)
    if built is None:
        raise SystemExit(f"osaurus: the build left no _kernels module in {BUILD_DIR}")
    target = HERE / module_name()
    staging = target.with_suffix(".so.tmp")
    shutil.copy2(built, staging)
    os.replace(staging, target)  # a running server keeps the old file's inode
    VERSION_FILE.write_text(mlx_version() + "\n")
    return target


def main() -> None:
    portable = "--portable" in sys.argv
    if BUILD_DIR.exists() and "--clean" in sys.argv:
        shutil.rmtree(BUILD_DIR)
    print(f"osaurus: built {build(portable)} for mlx {mlx_version()}")


if __name__ == "__main__":
    main()
