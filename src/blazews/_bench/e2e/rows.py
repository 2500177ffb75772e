"""The rows each scenario reports, and whether each can run here."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFLATE_INFLIGHTS",
    "DEFLATE_MEMORY_SIZE",
    "DEFLATE_ROWS",
    "DEFLATE_SIZE",
    "ECHO_ROWS",
    "GORILLA_GOPATH",
    "GORILLA_SOURCE",
    "INFLIGHTS",
    "INGEST_ROWS",
    "INGEST_SIZES",
    "MEMORY_ROWS",
    "PEERS",
    "SCENARIOS",
    "UVICORN_ROWS",
    "Row",
    "availability",
    "size_label",
]

SCENARIOS = ("ingest", "echo", "memory", "deflate")
INGEST_SIZES = (64, 1024, 16384, 1 << 20)
INFLIGHTS = (1, 64)
DEFLATE_SIZE = 16384  # the JSON message of the compressed echo
DEFLATE_MEMORY_SIZE = 4096  # the JSON message each idle compressed connection exchanged
DEFLATE_INFLIGHTS = (1, 16)
PEERS = ("websockets", "aiohttp", "picows")

# The Go reference row of the ingest scenario: gorilla/websocket, built offline from
# Debian's golang-go and golang-github-gorilla-websocket-dev (see gorilla/main.go).
GORILLA_SOURCE = Path(__file__).with_name("gorilla") / "main.go"
GORILLA_GOPATH = "/usr/share/gocode"


@dataclass(frozen=True)
class Row:
    """One line of a scenario's table.

    Attributes:
        key: Stable identifier, used in the JSON and by ``--libs``.
        lib: The library (``server.py --lib``), or ``"raw"``/``"floor"``.
        label: What the report prints.
        per_loop: Whether it runs once per event loop (the raw socket server does not).
        env: Environment variables of its processes (server and client).
    """

    key: str
    lib: str
    label: str
    per_loop: bool = True
    env: tuple[tuple[str, str], ...] = ()


# A Starlette endpoint under uvicorn (httptools) with each WebSocket protocol class:
# rows of the ingest, echo and memory scenarios, with uvloop only (as uvicorn runs in
# production), beside the libraries' own servers.
UVICORN_ROWS = (
    Row("uvicorn-blazews", "uvicorn-blazews", "uvicorn --ws blazews.uvicorn (Starlette)"),
    Row("uvicorn-sansio", "uvicorn-sansio", "uvicorn --ws websockets-sansio (Starlette)"),
    Row("uvicorn-wsproto", "uvicorn-wsproto", "uvicorn --ws wsproto (Starlette)"),
)

INGEST_ROWS = (
    Row("blazews", "blazews", "blazews: read_message_into (asyncio API)"),
    Row("blazews-iter", "blazews-iter", "blazews: async for (asyncio API)"),
    Row("blazews-listener", "blazews-listener", "blazews: Listener callbacks"),
    Row("websockets", "websockets", "websockets: recv()"),
    Row("aiohttp", "aiohttp", "aiohttp: receive()"),
    Row("picows", "picows", "picows: on_ws_frame"),
    *UVICORN_ROWS,
    Row("gorilla", "gorilla", "Go gorilla/websocket: NextReader (1 thread)", per_loop=False),
    Row("raw", "raw", "raw socket: recv_into (ceiling)", per_loop=False),
)

ECHO_ROWS = (
    Row("blazews", "blazews", "blazews: read_message + send"),
    Row("blazews-iter", "blazews-iter", "blazews: async for + send"),
    Row("blazews-listener", "blazews-listener", "blazews: Listener on_message + send"),
    Row("websockets", "websockets", "websockets: recv + send"),
    Row("aiohttp", "aiohttp", "aiohttp: receive + send_bytes"),
    Row("picows", "picows", "picows: on_ws_frame + send"),
    *UVICORN_ROWS,
    # Driven by the Listener client (as the uvicorn rows are).
    Row("floor", "floor", "bare asyncio.Protocol echo (floor)"),
)

MEMORY_ROWS = (
    Row("blazews", "blazews", "blazews: serve (coroutine handler)"),
    Row("blazews-listener", "blazews-listener", "blazews: Listener callbacks"),
    Row("websockets", "websockets", "websockets: serve"),
    Row("aiohttp", "aiohttp", "aiohttp: web.WebSocketResponse"),
    Row("picows", "picows", "picows: ws_create_server"),
    *UVICORN_ROWS,
    Row("floor", "floor", "bare asyncio.Protocol (floor)"),
    # The libraries' defaults: keepalive on (a ping every 20 s for all three).
    Row(
        "blazews-keepalive",
        "blazews",
        "blazews: serve, default keepalive",
        env=(("BENCH_KEEPALIVE", "default"),),
    ),
    Row(
        "blazews-listener-keepalive",
        "blazews-listener",
        "blazews: Listener, default keepalive",
        env=(("BENCH_KEEPALIVE", "default"),),
    ),
    Row(
        "websockets-keepalive",
        "websockets",
        "websockets: serve, default keepalive",
        env=(("BENCH_KEEPALIVE", "default"),),
    ),
    *(
        Row(f"{row.key}-keepalive", row.lib, f"{row.label}, default keepalive", env=row_env)
        for row in UVICORN_ROWS
        for row_env in [(("BENCH_KEEPALIVE", "default"),)]
    ),
)

# Compression on, client and server: the throughput and the idle-connection rows.
DEFLATE_ROWS = (
    Row(
        "blazews",
        "blazews",
        "blazews: auto backend",
        env=(("BLAZEWS_DEFLATE_BACKEND", "auto"),),
    ),
    Row(
        "blazews-zlib",
        "blazews",
        "blazews: BLAZEWS_DEFLATE_BACKEND=zlib",
        env=(("BLAZEWS_DEFLATE_BACKEND", "zlib"),),
    ),
    Row("websockets", "websockets", 'websockets: compression="deflate"'),
    Row(
        "websockets-same",
        "websockets",
        "websockets: blazews' settings (level 1, server_no_context_takeover)",
        env=(("BENCH_DEFLATE_SETTINGS", "blazews"),),
    ),
    Row("aiohttp", "aiohttp", "aiohttp: compress=True / compress=15"),
)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def availability(lib: str, loop: str | None) -> str | None:
    """Return why a row cannot run here, or ``None`` if it can."""
    if loop == "uvloop" and not _installed("uvloop"):
        return "uvloop not installed"
    if lib == "blazews-listener":
        import blazews

        if not hasattr(blazews, "serve_listener"):
            return "not available yet"
    if lib == "gorilla":
        if shutil.which("go") is None:
            return "no Go toolchain (Debian: golang-go)"
        if not (Path(GORILLA_GOPATH) / "src/github.com/gorilla/websocket").is_dir():
            return "gorilla/websocket not installed (Debian: golang-github-gorilla-websocket-dev)"
        if not GORILLA_SOURCE.is_file():
            return f"{GORILLA_SOURCE.name} not shipped with this install"
    if lib in PEERS and not _installed(lib):
        return f"{lib} not installed"
    if lib.startswith("uvicorn-"):
        if loop != "uvloop":
            return "uvloop only (as uvicorn runs in production)"
        needs = ["uvicorn", "starlette", "httptools"]
        needs += ["wsproto"] if lib == "uvicorn-wsproto" else ["websockets"]
        missing = [module for module in needs if not _installed(module)]
        if missing:
            return f"{', '.join(missing)} not installed"
    return None


def size_label(size: int) -> str:
    """``64 B``, ``1 KiB``, ``16 KiB``, ``1 MiB``."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"
