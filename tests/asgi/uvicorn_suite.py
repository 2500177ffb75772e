"""Run uvicorn's own WebSocket test suite against blazews' uvicorn protocol class.

``python -m tests.asgi.uvicorn_suite [pytest args]`` (``make test-uvicorn``):

1. fetches the sdist of the installed uvicorn with pip into ``build/uvicorn-sdist``
   (once: it is reused when present; nothing of it goes into git);
2. copies its ``tests/`` (``protocols/test_websocket.py`` and what it imports:
   ``conftest.py``, ``utils.py``, ``response.py``) to ``build/uvicorn-suite``;
3. patches the copy: ``blazews.uvicorn:WebSocketProtocol`` joins the ``ws_protocol_cls``
   fixture; the two tests written for websockets-sansio only take that fixture too;
   the ``isinstance`` checks of the keepalive tests accept blazews' class; and the
   README's deliberate differences (see ``DIFFERENCES``) become their assertions for
   blazews;
4. runs pytest on ``protocols/test_websocket.py``, by default on blazews' class alone
   (``-k blazews``); pass ``--all`` to run every class side by side.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "uvicorn-sdist"
SUITE = ROOT / "build" / "uvicorn-suite"

BLAZEWS_PARAM = (
    '        pytest.param("blazews.uvicorn:WebSocketProtocol", id="blazews"),\n'
)

# Where blazews differs from uvicorn's own classes on purpose (README, "FastAPI /
# Starlette / uvicorn"): (test, what uvicorn's test asserts, what blazews asserts).
DIFFERENCES = [
    # An exception after websocket.accept: blazews closes with 1011 (internal error,
    # RFC 6455 §7.4.1) where uvicorn drops the TCP connection (the client sees 1006).
    (
        "test_duplicate_handshake",
        "assert websocket.close_code == 1006",
        "assert websocket.close_code == (1011 if ws_protocol_cls is _BlazeWS else 1006)",
    ),
    # --ws-max-queue is honoured: reading pauses once that many messages (32 by
    # default) wait for the application, not after each one. The test checks that a
    # close resumes paused reading: for blazews it runs with a queue of one message.
    (
        "MockWebSocketConnection",
        'config = Config(app=app, ws=ws_protocol_cls, http=http_protocol_cls, lifespan="off")',
        "config = Config(app=app, ws=ws_protocol_cls, http=http_protocol_cls, "
        'lifespan="off", ws_max_queue=1 if ws_protocol_cls is _BlazeWS else 32)',
    ),
]


def fetch() -> Path:
    """The unpacked sdist of the installed uvicorn, downloaded once."""
    wanted = version("uvicorn")
    unpacked = CACHE / f"uvicorn-{wanted}"
    if (unpacked / "tests" / "protocols" / "test_websocket.py").exists():
        return unpacked
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"uvicorn-{wanted}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"uvicorn=={wanted}", "-d", str(CACHE)],
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return unpacked


def _in_function(text: str, name: str, old: str, new: str) -> str:
    """Replace ``old`` with ``new`` inside the function or class ``name`` only."""
    match = re.search(rf"\n( *)((async )?def {name}\(|class {name}\b)", text)
    assert match is not None, f"{name} not found"
    start = match.start()
    indent = match.group(1)
    end_match = re.compile(rf"\n{indent}(async def |def |class |@)").search(text, match.end())
    end = end_match.start() if end_match else len(text)
    body = text[start:end]
    assert old in body, f"{old!r} not found in {name}"
    return text[:start] + body.replace(old, new) + text[end:]


def patch(tests: Path) -> None:
    """Add blazews' class to the copied suite (see the module docstring)."""
    conftest = tests / "conftest.py"
    text = conftest.read_text()
    anchor = 'id="websockets-sansio"\n        ),\n'
    assert anchor in text, "the ws_protocol_cls fixture changed"
    conftest.write_text(text.replace(anchor, anchor + BLAZEWS_PARAM, 1))

    module = tests / "protocols" / "test_websocket.py"
    text = module.read_text()
    text = text.replace(
        "from uvicorn.config import Config\n",
        "from blazews.uvicorn import WebSocketProtocol as _BlazeWS\n"
        "from uvicorn.config import Config\n",
        1,
    )
    # The two tests written for websockets-sansio alone take the fixture.
    for name in (
        "test_unparseable_upgrade_closes_connection",
        "test_send_binary_data_to_server_bigger_than_default_on_websockets",
    ):
        text = _in_function(text, name, "ws=WebSocketsSansIOProtocol", "ws=ws_protocol_cls")
        text = _in_function(
            text,
            name,
            "http_protocol_cls: HTTPProtocol,",
            "ws_protocol_cls: WSProtocol, http_protocol_cls: HTTPProtocol,",
        )
    text = text.replace(
        "isinstance(protocol, (_WSProtocol, WebSocketsSansIOProtocol))",
        "isinstance(protocol, (_WSProtocol, WebSocketsSansIOProtocol, _BlazeWS))",
    )
    for name, old, new in DIFFERENCES:
        text = _in_function(text, name, old, new)
    module.write_text(text)
    # Its own pytest settings (uvicorn's pyproject wants xdist and more plugins).
    (SUITE / "pytest.ini").write_text(
        "[pytest]\nfaulthandler_timeout = 60\nxfail_strict = true\n"
        "filterwarnings =\n    ignore::DeprecationWarning\n"
    )


def main(argv: list[str]) -> int:
    source = fetch()
    if SUITE.exists():
        shutil.rmtree(SUITE)
    shutil.copytree(source / "tests", SUITE / "tests")
    patch(SUITE / "tests")
    args = list(argv)
    if "--all" in args:
        args.remove("--all")
    elif "-k" in args:
        at = args.index("-k") + 1
        args[at] = f"blazews and ({args[at]})"
    else:
        args = ["-k", "blazews", *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SUITE), str(ROOT)]))
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "--rootdir", str(SUITE), "-c", str(SUITE / "pytest.ini"),
        str(SUITE / "tests" / "protocols" / "test_websocket.py"), *args,
    ]
    return subprocess.run(command, cwd=SUITE, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
