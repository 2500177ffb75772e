"""Every Python snippet of the README and of the docs site (docs/) runs as written.

A snippet with ``serve_forever()`` is a server; any other is a client, run against
the demo server of ``make run`` (``python -m blazews serve``, which echoes
WebSocket messages at ``ws://127.0.0.1:8765/``) and against every server
snippet. The only change made to a snippet is its port (8765, the demo's), swapped
for a free one. A snippet that names no port (it serves on port 0 and talks to
itself, e.g. to show a server that most clients could not pass) runs once, alone.
A client must exit 0 within its timeout, and every ``print(...)`` line that ends in a
comment must print that comment's text, in order: the README shows what comes out.
A server must log no failure while the clients talk to it. A snippet found twice (a
README section and its docs page) runs once; a docs block that only includes a file
(``--8<-- "examples/..."``) is left to tests/test_examples.py, which runs the examples.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compliance.test_autobahn import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted(
        path
        for path in (ROOT / "docs").rglob("*.md")
        if "benchmarks" not in path.relative_to(ROOT / "docs").parts  # the reports, linked in
    ),
]
DEMO_PORT = "8765"
TIMEOUT = 30.0


def snippets(path: Path) -> list[str]:
    """The fenced ``python`` blocks of a Markdown file."""
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(encoding="utf-8"), re.M | re.S)


def expected_output(code: str) -> list[str]:
    """The lines a snippet says it prints: ``print(...)  # text`` gives ``text``."""
    return [m.group(1).strip() for m in re.finditer(r"^\s*print\(.*\)\s+# (.*)$", code, re.M)]


INCLUDE = re.compile(r'\A(--8<-- "[^"]+"\n)+\Z')
ALL = list(
    dict.fromkeys(code for doc in DOCS for code in snippets(doc) if not INCLUDE.match(code))
)
SELF_CONTAINED = [code for code in ALL if DEMO_PORT not in code and '", 0' in code]
SERVERS = [code for code in ALL if "serve_forever()" in code]
CLIENTS = [code for code in ALL if "serve_forever()" not in code and code not in SELF_CONTAINED]


def _name(code: str) -> str:
    """A readable test id: the snippet's first call of the library."""
    found = re.search(r"(sync\.\w+|blazews\.\w+)\(", code)
    return found.group(1) if found else code.splitlines()[0]


def test_the_readme_has_snippets_of_each_kind() -> None:
    # A lost fence would silently test nothing.
    assert len(SERVERS) >= 3 and len(CLIENTS) >= 3
    assert all(DEMO_PORT in code for code in SERVERS + CLIENTS)
    assert all("serve_forever()" not in code for code in SELF_CONTAINED)


def _start(args: list[str], port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
    except BaseException:
        proc.kill()
        print(proc.communicate()[1], file=sys.stderr)
        raise
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop a server; return what it wrote to stderr."""
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def _run_client(code: str, port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code.replace(DEMO_PORT, str(port))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    printed = [line.strip() for line in result.stdout.splitlines()]
    pos = 0
    for want in expected_output(code):
        assert want in printed[pos:], (want, result.stdout)
        pos = printed.index(want, pos) + 1


@pytest.mark.parametrize("server", ["make run", *SERVERS], ids=lambda c: _name(c))
def test_clients_against_server(server: str) -> None:
    port = free_port()
    if server == "make run":
        args = [sys.executable, "-m", "blazews", "serve", "--host", "127.0.0.1"]
        args += ["--port", str(port)]
    else:
        args = [sys.executable, "-c", server.replace(DEMO_PORT, str(port))]
    proc = _start(args, port)
    try:
        for code in CLIENTS:
            _run_client(code, port)
    finally:
        err = _stop(proc)
    assert "Traceback" not in err and "failed" not in err, err


@pytest.mark.parametrize("code", SELF_CONTAINED, ids=lambda c: _name(c))
def test_self_contained_snippets(code: str) -> None:
    _run_client(code, 0)
