"""Autobahn TestSuite (kosoku fuzzingclient) against a Starlette echo endpoint under
uvicorn with blazews' class (``--ws tests.asgi.apps:CompressEverything``, see below;
httptools, uvloop, ``--ws-max-size`` 16 MiB as section 9 needs).

Named so that the Autobahn lanes of ``make test`` (``-k test_server``/``-k
test_client``) leave it out: ``make test-uvicorn`` runs a representative subset
(framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing, and the
permessage-deflate basics: 125 cases, about 10 s); ``make autobahn`` (``BLAZEWS_AUTOBAHN_FULL=1``)
every case. The verdicts are those of the native servers: every case OK, NON-STRICT
or INFORMATIONAL, every permessage-deflate case OK.

The class is blazews' with the compression policy of the native Autobahn echo servers
(``tests.asgi.apps:CompressEverything``: every message compressed, small and
incompressible ones too). With the default policy, which sends messages under 128 B
and incompressible ones uncompressed, as RFC 7692 allows, kosoku 0.1.0 fails 36 of the
compression cases (ERROR, "Strings must be encoded before hashing"): 12.N.1-2,
13.N.1-2, 12.2.3, 12.5.3-14.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .test_autobahn import FULL, GOOD, KOSOKU, ROOT, free_port, wait_for_port

pytestmark = pytest.mark.autobahn

# The subset of make test: the cases included, and how many of them are in section 12.
SUBSET = (
    ["1.*", "2.*", "3.*", "4.*", "5.*", "6.1.*", "6.3.*", "6.4.*", "6.12.*", "7.*", "12.1.*"],
    18,
)


def test_uvicorn_starlette_echo(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "tests.asgi.apps:autobahn_app",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
        "--ws", "tests.asgi.apps:CompressEverything", "--http", "httptools",
        "--loop", "uvloop", "--ws-max-size", str(16 * 1024 * 1024),
        "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        args = [KOSOKU, "-m", "fuzzingclient", "-p", "2", "-o", str(tmp_path)]
        if not FULL:
            for pattern in SUBSET[0]:
                args += ["-i", pattern]
        run = subprocess.run(
            [*args, f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=1800
        )
        assert server.poll() is None, "uvicorn died during the run"
    finally:
        server.terminate()
        server.wait(10)
    check(tmp_path, 517 if FULL else 0)
    assert run.returncode == 0, run.stdout + run.stderr


def check(outdir: Path, total: int) -> None:
    """Every case that ran passed (``total`` of them, 0: the subset), every 12.* and
    13.* case OK."""
    (cases,) = json.loads((outdir / "index.json").read_text()).values()
    if total:
        assert len(cases) == total, f"{len(cases)} cases ran, not {total}"
    else:
        assert len(cases) > 100, f"only {len(cases)} cases ran"
        deflate = [case for case in cases if case.startswith("12.")]
        assert len(deflate) == SUBSET[1], f"{len(deflate)} permessage-deflate cases ran"
    bad = {
        case: f"{r['behavior']}/{r['behaviorClose']}"
        for case, r in cases.items()
        if r["behavior"] not in GOOD or r["behaviorClose"] not in GOOD
    }
    assert not bad, f"cases not passed: {bad}"
    deflate = [case for case in cases if case.startswith(("12.", "13."))]
    assert all(cases[case]["behavior"] == "OK" for case in deflate)
