"""What runs, compiled or pure, is reported truthfully, module by module.

Each case copies the installed package's Python files to a fresh directory with only
some of its extension modules, as a build that made only those would leave it, and
imports it there in a child process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import blazews
from blazews._native import _kernels

PACKAGE = Path(blazews.__file__).resolve().parent
EXTENSION_SUFFIXES = (".so", ".pyd")

PROBE = """
import json, blazews
from blazews.sansio.protocol import Protocol, Side
proto = Protocol(Side.SERVER)
proto.receive_data(bytes([0x81, 0x82, 0, 0, 0, 0]) + b"hi")
events = proto.events_received()
print(json.dumps({
    "file": blazews.__file__,
    "implementation": blazews.IMPLEMENTATION,
    "report": blazews.implementation_report(),
    "parse": type(Protocol.receive_data).__name__,
    "message": events[0].data.decode(),
}))
"""


def _copy_package(dest: Path, keep: tuple[str, ...]) -> Path:
    """Copy the package's source files, and of its extension modules only ``keep``."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [
            name
            for name in names
            if name == "__pycache__"
            or (name.endswith(EXTENSION_SUFFIXES) and not name.startswith(keep))
        ]

    shutil.copytree(PACKAGE, dest / "blazews", ignore=ignore)
    return dest


def _probe(root: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "BLAZEWS_NO_EXTENSIONS"}
    env["PYTHONPATH"] = str(root)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout)
    assert str(found["file"]).startswith(str(root))  # the copy ran, not the install
    return found


def test_kernels_without_the_codec_say_so_and_run_the_pure_core(tmp_path: Path) -> None:
    if not _kernels.__file__ or not _kernels.__file__.endswith(EXTENSION_SUFFIXES):
        pytest.skip("this installation has no compiled kernels to copy")
    found = _probe(_copy_package(tmp_path, keep=("_kernels.",)))
    report = found["report"]
    assert isinstance(report, dict)
    assert report.pop("_native._kernels") == "compiled"
    assert set(report.values()) == {"python"}
    assert set(report) >= {"sansio._protocol", "sansio._events", "asyncio._readpath"}
    assert found["implementation"] == "partial"
    assert found["parse"] == "function"  # the pure core parses
    assert found["message"] == "hi"


def test_a_python_file_under_a_compiled_name_is_not_taken_for_compiled(tmp_path: Path) -> None:
    # What the symlinks _x_c.py -> _x_py.py once made every pure install report.
    root = _copy_package(tmp_path, keep=())
    sansio = root / "blazews" / "sansio"
    shutil.copy(sansio / "_protocol_py.py", sansio / "_protocol_c.py")
    found = _probe(root)
    assert found["implementation"] == "python"
    assert found["report"] == dict.fromkeys(found["report"], "python")  # type: ignore[union-attr]
    assert found["message"] == "hi"


def test_the_default_build_reports_what_it_runs() -> None:
    report = blazews.implementation_report()
    assert set(report) == {
        "_native._kernels",
        "_buffers",
        "asyncio._queued",
        "asyncio._readpath",
        "sansio._events",
        "sansio._protocol",
        "sansio._sending",
        "sync._frame_reader",
    }
    pure = os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0")
    assert set(report.values()) == {"python" if pure else "compiled"}
    assert ("python" if pure else "compiled") == blazews.IMPLEMENTATION


def test_no_symlink_in_the_repository() -> None:
    # (checkouts without symlink support, Windows' among them, get the same tree)
    links = [path for path in PACKAGE.rglob("*") if path.is_symlink()]
    assert links == []
    root = PACKAGE.parents[1]
    if (root / ".git").exists():
        tracked = subprocess.run(
            ["git", "ls-files", "-s"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert [line for line in tracked if line.startswith("120000")] == []
