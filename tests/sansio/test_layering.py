"""The sans-I/O core imports no I/O: no asyncio, socket, selectors or threading.

Each check runs in a fresh interpreter. ``blazews/__init__.py`` imports the asyncio
front end, so the subprocess puts an empty stand-in for the ``blazews`` package in
``sys.modules`` (with the real ``__path__``) and imports the core's modules through it.
A ``sys.meta_path`` hook records which module pulled in a forbidden one, so that a
failure names the culprit.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import blazews.sansio

FORBIDDEN = ("asyncio", "socket", "selectors", "threading")
SRC = pathlib.Path(blazews.sansio.__file__).resolve().parents[1]  # .../blazews

_PROBE = r"""
import importlib, json, pkgutil, sys, types

package_dir, forbidden, extra = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
already = sorted(name for name in forbidden if name in sys.modules)

culprits = {}

class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in forbidden and name not in culprits:
            frame, importers = sys._getframe(1), []
            while frame is not None:
                module = frame.f_globals.get("__name__", "")
                if module.startswith("blazews") and module not in importers:
                    importers.append(module)
                frame = frame.f_back
            culprits[name] = importers
        return None

sys.meta_path.insert(0, Recorder())

stub = types.ModuleType("blazews")
stub.__path__ = [package_dir]
sys.modules["blazews"] = stub

sansio = importlib.import_module("blazews.sansio")
names = ["blazews._impl", "blazews._kernels_py", "blazews.exceptions", "blazews.sansio"]
names += [m.name for m in pkgutil.walk_packages(sansio.__path__, "blazews.sansio.")]
names += extra
for name in names:
    importlib.import_module(name)

print(json.dumps({
    "already": already,
    "imported": names,
    "blazews_modules": sorted(n for n in sys.modules if n.startswith("blazews")),
    "forbidden": sorted(n for n in forbidden if n in sys.modules),
    "culprits": culprits,
}))
"""


def _probe(*extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(SRC), ",".join(FORBIDDEN), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_core_imports_no_io_modules():
    report = _probe()
    assert report["already"] == []  # the interpreter itself starts without them
    expected = {
        "blazews._impl",
        "blazews._kernels_py",
        "blazews.exceptions",
        "blazews.sansio.protocol",
        "blazews.sansio.frames",
        "blazews.sansio.client",
        "blazews.sansio.server",
        "blazews.sansio.http11",
        "blazews.sansio.uri",
        "blazews.sansio.extensions",
    }
    assert expected <= set(report["imported"])
    # The stand-in package kept the front ends out.
    assert not any(
        n.startswith(("blazews.asyncio", "blazews.sync")) for n in report["blazews_modules"]
    )
    assert report["forbidden"] == [], report["culprits"]


def test_every_core_module_file_is_covered():
    """A new module under sansio/ is imported by the probe (walk_packages finds it)."""
    report = _probe()
    on_disk = set()
    for path in (SRC / "sansio").rglob("*.py"):
        relative = path.relative_to(SRC.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        on_disk.add(".".join(parts))
    assert on_disk <= set(report["imported"])


def test_probe_detects_a_forbidden_import():
    """The check is not vacuous: importing the asyncio front end is caught and blamed."""
    report = _probe("blazews.asyncio")
    assert "asyncio" in report["forbidden"]
    assert any(importer.startswith("blazews.asyncio") for importer in report["culprits"]["asyncio"])


def test_pure_core_runs_without_cython_installed():
    """The pure protocol core names Cython's decorators; without Cython installed
    (a plain pure-Python install) it must import and work all the same."""
    code = (
        "import sys; sys.modules['cython'] = None\n"  # makes `import cython` fail
        "from blazews.sansio import _protocol_py as p\n"
        "proto = p.Protocol(p.Side.CLIENT)\n"
        "proto.receive_data(b'\\x82\\x03abc')\n"
        "(event,) = proto.events_received()\n"
        "assert (event.type, event.data) == (2, b'abc'), event\n"
        "assert type(p.cython).__name__ == '_NoCython'\n"
    )
    env = dict(os.environ, BLAZEWS_NO_EXTENSIONS="1")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
