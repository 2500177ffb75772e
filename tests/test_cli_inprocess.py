"""The command line run in this process (``blazews.cli.main``), for the paths the
subprocess tests of ``test_cli.py`` cover but coverage cannot see."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import blazews
from blazews import cli, sync


@pytest.fixture
def echo_url() -> Iterator[str]:
    def echo(conn: Any) -> None:
        for message in conn:
            conn.send(message)

    with sync.serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.port}/"
        server.shutdown()
        thread.join(5)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"blazews {blazews.__version__} (")
    assert ("SIMD" in out) == (blazews.IMPLEMENTATION != "python")


def test_connect_sends_each_line_and_prints_each_echo(
    echo_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("first\nsecond\n"))
    assert cli.main(["connect", echo_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"connected to {echo_url} (")
    assert lines[1:] == ["< first", "< second"]


@pytest.mark.parametrize(
    ("url", "words"),
    [("http://127.0.0.1/", "invalid url"), ("ws://127.0.0.1:{port}/", "connection refused")],
)
def test_connect_errors_are_one_line(
    url: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert cli.main(["connect", url.format(port=port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blazews: error: ") and words in err[0]


@pytest.mark.parametrize("extra", [[], ["--sync"], ["--listener"]])
def test_echo_on_a_taken_port_is_one_line(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["echo", "--port", str(port), *extra]) == 1
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err
