"""What the client tests share: an echo server in a child process (to kill and
restart), a server in a loop thread for the blocking client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.compliance.test_autobahn import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]

# Backoff fast enough for tests, timeouts generous enough for a loaded machine.
QUICK = {
    "reconnect_initial_delay": 0.05,
    "reconnect_max_delay": 0.2,
    "open_timeout": 20.0,
    "close_timeout": 5.0,
}

__all__ = ["QUICK", "ROOT", "EchoProcess", "free_port", "wait_for_port"]


class EchoProcess:
    """``python -m blazews echo`` on a port, which the test can kill and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> None:
        args = [sys.executable, "-m", "blazews", "echo", "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*args, "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
