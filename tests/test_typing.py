"""The public API's types, as a type checker sees them (mypy --strict on user code)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_CODE = """
import array
import blazews
from blazews import sync

async def coroutine_api(conn: blazews.Connection) -> None:
    await conn.send("text")
    await conn.send(b"bytes")
    await conn.send(bytearray(3))
    await conn.send(memoryview(b"view"))
    await conn.send(array.array("B", [1]))
    buf = bytearray(10)
    kind, n = await conn.read_message_into(buf)
    await conn.read_message_into(memoryview(buf))
    message: str | bytes = await conn.recv()

def blocking_api(conn: sync.ClientConnection) -> None:
    conn.send(b"bytes")
    conn.read_message_into(bytearray(3))

async def entry_points() -> None:
    options = blazews.ClientOptions(ping_interval=5.0)
    async with blazews.connect("ws://h/", options=options, max_message_size=None) as conn:
        await conn.send("x")
    server = await blazews.serve(coroutine_api, "127.0.0.1", 0, max_queue=4)
    server.close()
"""

MISTAKES = """
import blazews

async def wrong(conn: blazews.Connection) -> None:
    await conn.send(3)
    blazews.connect("ws://h/", ping_interval="soon")
"""


def _mypy(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "user.py"
    path.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


def test_correct_user_code_type_checks(tmp_path: Path) -> None:
    result = _mypy(tmp_path, USER_CODE)
    assert result.returncode == 0, result.stdout


def test_wrong_payloads_and_option_types_are_caught(tmp_path: Path) -> None:
    result = _mypy(tmp_path, MISTAKES)
    assert result.returncode == 1, result.stdout
    assert 'Argument 1 to "send" of "Connection" has incompatible type "int"' in result.stdout
    assert '"ping_interval"' in result.stdout and '"str"' in result.stdout
