"""What the hub tests share: a real redis-server on a free port, stopped and started
again on the same port for the outage tests, and the node process of the cross-process
tests (``python -m tests.hub_node PORT REDIS_URL``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.compliance.test_autobahn import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


class RedisServer:
    """A redis-server process of our own: no persistence, loopback only."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (.ci/run installs it)"
        self.exe = exe
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--protected-mode", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(10)


def start_node(redis_url: str) -> tuple[subprocess.Popen[str], int]:
    """A process serving blazews with a RedisHub (see tests/hub_node.py)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hub_node", str(port), redis_url],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_port(port, proc)  # type: ignore[arg-type]
    return proc, port
