"""Real proxies for the client tests, started on free ports: ``tinyproxy`` (HTTP
CONNECT, with or without Basic auth), ``microsocks`` (SOCKS5, with or without a user),
``danted`` (SOCKS4), OpenSSH's dynamic forwarding (``ssh -D``: SOCKS4a, whose host
names dante refuses), and, for an ``https://`` proxy, a small TLS terminator (a
thread running an asyncio loop) in front of tinyproxy."""

from __future__ import annotations

import asyncio
import atexit
import getpass
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from tests.compliance.test_autobahn import free_port, wait_for_port

__all__ = ["Dante", "Microsocks", "SSHSocks", "TLSFront", "Tinyproxy", "require"]


def require(command: str) -> str:
    """The path of a proxy's binary; it must be installed (``.ci/run`` installs it)."""
    path = shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/bin")
    assert path is not None, f"{command} is not installed: see .ci/run"
    return path


_running: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    """A proxy whose fixture never got to stop it (a setup that failed halfway)."""
    for proc in _running:
        proc.kill()


class _Process:
    proc: subprocess.Popen[bytes]
    port: int

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "proc":
            _running.add(value)
        super().__setattr__(name, value)

    def stop(self) -> None:
        _running.discard(self.proc)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
            self.proc.wait(10)


class Tinyproxy(_Process):
    """tinyproxy in the foreground, on 127.0.0.1.

    Args:
        auth: ``(user, password)`` to require Basic credentials.
        connect_ports: The only ports CONNECT may reach (any, when omitted).
    """

    def __init__(
        self, auth: tuple[str, str] | None = None, connect_ports: list[int] | None = None
    ) -> None:
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="blazews-tinyproxy-")
        conf = Path(self.dir.name) / "tinyproxy.conf"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            "MaxClients 64",
            "Allow 127.0.0.1",
            "LogLevel Warning",
            f'LogFile "{self.dir.name}/tinyproxy.log"',
        ]
        if auth is not None:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        for port in connect_ports or ():
            lines.append(f"ConnectPort {port}")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [require("tinyproxy"), "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        super().stop()
        self.dir.cleanup()


class Microsocks(_Process):
    """microsocks (SOCKS5) on 127.0.0.1, optionally with a user and password."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        args = [require("microsocks"), "-i", "127.0.0.1", "-p", str(self.port)]
        if auth is not None:
            args += ["-u", auth[0], "-P", auth[1]]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)  # type: ignore[arg-type]


class Dante(_Process):
    """dante's SOCKS server (``danted``, Debian's dante-server) on 127.0.0.1, for
    SOCKS4 (it refuses SOCKS4a's host names) and SOCKS5, without authentication."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="blazews-danted-")
        conf = Path(self.dir.name) / "danted.conf"
        conf.write_text(
            f"""logoutput: stderr
internal: 127.0.0.1 port = {self.port}
external: 127.0.0.1
socksmethod: none
clientmethod: none
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
}}
socks pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    protocol: tcp
    command: connect
}}
"""
        )
        self.proc = subprocess.Popen(
            [require("danted"), "-f", str(conf), "-N", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)  # type: ignore[arg-type]

    def stop(self) -> None:
        super().stop()
        self.dir.cleanup()


class SSHSocks:
    """A SOCKS proxy that resolves host names itself (SOCKS4a, SOCKS5h): OpenSSH's
    dynamic forwarding, ``ssh -N -D``, through an ``sshd`` of its own on 127.0.0.1
    (Debian's openssh-server and openssh-client), with keys made for the run."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="blazews-sshd-")
        root = Path(self.dir.name)
        keygen = require("ssh-keygen")
        for name in ("host", "client"):
            subprocess.run(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        (root / "authorized_keys").write_bytes((root / "client.pub").read_bytes())
        os.makedirs("/run/sshd", exist_ok=True)  # (its privilege separation directory)
        sshd_port = free_port()
        conf = root / "sshd_config"
        conf.write_text(
            f"""ListenAddress 127.0.0.1
Port {sshd_port}
HostKey {root / "host"}
PidFile {root / "sshd.pid"}
AuthorizedKeysFile {root / "authorized_keys"}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
"""
        )
        self.sshd = subprocess.Popen(
            [require("sshd"), "-D", "-e", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _running.add(self.sshd)
        wait_for_port(sshd_port, self.sshd)  # type: ignore[arg-type]
        self.port = free_port()
        self.ssh = subprocess.Popen(
            [
                require("ssh"),
                "-N",
                "-D",
                f"127.0.0.1:{self.port}",
                "-i",
                str(root / "client"),
                "-p",
                str(sshd_port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                f"{getpass.getuser()}@127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _running.add(self.ssh)
        wait_for_port(self.port, self.ssh)  # type: ignore[arg-type]

    def stop(self) -> None:
        for proc in (self.ssh, self.sshd):
            _running.discard(proc)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait(10)
        self.dir.cleanup()


class TLSFront:
    """An ``https://`` proxy: TLS on a free port, each connection forwarded to
    ``target_port`` (tinyproxy) in clear."""

    def __init__(self, context: ssl.SSLContext, target_port: int) -> None:
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(context), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    async def _start(self, context: ssl.SSLContext) -> Any:
        return await asyncio.start_server(self._forward, "127.0.0.1", 0, ssl=context)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
