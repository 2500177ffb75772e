"""Starting, talking to and stopping the benchmark's subprocesses, from the orchestrator."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from types import TracebackType
from typing import Any

__all__ = ["Child", "ChildError", "cpu_plan", "rss_kib"]


class ChildError(RuntimeError):
    """A subprocess died, refused, or said nothing in time."""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The children are modules of this package: they import as it did, installed or
    # editable, from any working directory.
    env = dict(os.environ)
    env.update(extra or {})
    return env


class Child:
    """One subprocess running ``python -m module args...`` and printing ``TAG {json}`` lines.

    Use as a context manager: leaving the block stops the process (terminate, then kill).
    ``env`` adds variables to the inherited environment.
    """

    def __init__(
        self, name: str, module: str, args: list[str], env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self._stderr = tempfile.TemporaryFile(  # noqa: SIM115 (kept open as long as the child)
            mode="w+", encoding="utf-8", errors="replace"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 2) -> str:
        """The last lines the process wrote to stderr (a traceback's exception), joined."""
        self._stderr.flush()
        self._stderr.seek(0)
        text = self._stderr.read()[-4096:]
        kept = [line.strip() for line in text.splitlines() if line.strip(" ^~\t")]
        return " / ".join(kept[-lines:])

    def expect(self, tag: str, timeout: float, watch: tuple[Child, ...] = ()) -> dict[str, Any]:
        """Wait for the next ``tag`` line and return its data.

        Args:
            tag: The line tag wanted (other tags are skipped).
            timeout: Seconds to wait.
            watch: Other processes of the same measurement: if one of them exits
                before the line comes (after a second of grace for a line already
                on its way), the measurement failed.

        Raises:
            ChildError: The process or a watched one exited, or the time ran out.
        """
        deadline = time.monotonic() + timeout
        grace: float | None = None
        while True:
            now = time.monotonic()
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                for other in watch:
                    if other.proc.poll() is not None and grace is None:
                        grace = now + 1.0
                if grace is not None and now > grace:
                    dead = next(o for o in watch if o.proc.poll() is not None)
                    raise ChildError(
                        f"{dead.name} exited ({dead.proc.returncode}) before {self.name} "
                        f"reported: {dead.tail() or 'no output'}; "
                        f"{self.name}: {self.tail() or 'no output'}"
                    ) from None
                if now > deadline:
                    raise ChildError(
                        f"{self.name}: no {tag} within {timeout:.0f} s: {self.tail() or '-'}"
                    ) from None
                continue
            if line is None:
                self.proc.wait()
                raise ChildError(
                    f"{self.name} exited ({self.proc.returncode}): {self.tail() or 'no output'}"
                )
            got, _, payload = line.strip().partition(" ")
            if got == tag:
                data: dict[str, Any] = json.loads(payload)
                return data

    def send(self, line: str) -> None:
        """Write one line to the process's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to exit by itself; its return code, or ``None``."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Stop the process: close its stdin, terminate it, kill it if it lingers."""
        proc = self.proc
        if proc.poll() is None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from ``/proc/<pid>/status`` (KiB)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ChildError(f"no VmRSS for process {pid}")


def cpu_plan(pin: bool) -> tuple[int | None, int | None]:
    """Choose the CPU for servers and the CPU for load generators (and this process).

    With two CPUs or more available, the server under test gets one to itself and
    everything else shares another; otherwise nothing is pinned.
    """
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]
