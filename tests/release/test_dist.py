"""The package as it would be published: sdist, wheel, metadata, and no compiler.

Built from a copy of the tree (the files git knows, new ones included), so that the
dev tree gains no build/ or egg-info. The sdist first; then, side by side, the
compiled wheel built from it, and a fresh venv installing it whose ``CC`` names a
compiler that does not exist: that install must fall back to pure Python and work.
Both artifacts must pass ``twine check --strict``; the cibuildwheel table must parse.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import blazews

try:
    import tomllib
except ImportError:  # Python 3.10 (cibuildwheel brings tomli)
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 900


def _run(args: list[str | Path], **kwargs: object) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=TIMEOUT, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr  # type: ignore[no-any-return]


def _finish(proc: subprocess.Popen[str], what: str) -> str:
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"{what}\n{out}\n{err}"
    return out + err


class Dist:
    """What the fixture built: the sdist, the compiled wheel, the no-compiler venv."""

    sdist: Path
    wheel: Path
    nocc_python: Path
    nocc_log: str


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    base = tmp_path_factory.mktemp("dist")
    tree = base / "tree"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = tree / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    out = base / "dist"
    # The build tools of the dev venv (no isolated environment to set up: faster).
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", out, tree])
    (sdist,) = out.glob("*.tar.gz")

    wheel_build = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(sdist),
        ],
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Meanwhile: a machine without a C compiler. pip builds the sdist in its own
    # isolated environment, as a user's pip would, and CC names no compiler.
    env_dir = base / "nocc"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The environment as it is (a proxy, pip's settings), but CC.
    env = {**os.environ, "CC": str(base / "no-such-cc")}
    env.pop("BLAZEWS_NO_EXTENSIONS", None)  # the fallback must come from the missing CC
    nocc = subprocess.Popen(
        [str(python), "-m", "pip", "install", "-v", "--no-cache-dir", str(sdist)],
        cwd=base,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = Dist()
    result.nocc_log = _finish(nocc, "installing the sdist without a compiler")
    _finish(wheel_build, "building the wheel")
    result.sdist = sdist
    (result.wheel,) = out.glob("*.whl")
    result.nocc_python = python
    return result


def test_twine_check_passes(dist: Dist) -> None:
    out = _run([sys.executable, "-m", "twine", "check", "--strict", dist.sdist, dist.wheel])
    assert out.count("PASSED") == 2, out


def test_the_sdist_carries_what_a_build_needs(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in [
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "setup.py",
        "pyproject.toml",
        "src/blazews/_native/kernel.c",
        "src/blazews/_native/kernel_avx2.c",
        "src/blazews/_native/kernel.h",
        "src/blazews/_native/_kernels.pyx",
        "src/blazews/sansio/_protocol_c.pxd",
        "src/blazews/py.typed",
        "src/blazews/_demo/index.html",
    ]:
        assert needed in names, needed


def test_the_wheel_is_compiled_and_complete(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        meta = email.message_from_bytes(
            wheel.read(f"blazews-{blazews.__version__}.dist-info/METADATA")
        )
    assert dist.wheel.name.startswith(f"blazews-{blazews.__version__}-")
    # The kernels and every one-source module of setup.py's PURE_MODULES, compiled.
    built = {name.split(".")[0].replace("/", ".") for name in names if name.endswith(".so")}
    assert built == {
        "blazews._native._kernels",
        "blazews._buffers_c",
        "blazews.asyncio._queued_c",
        "blazews.asyncio._readpath_c",
        "blazews.sansio._events_c",
        "blazews.sansio._protocol_c",
        "blazews.sansio._sending_c",
        "blazews.sync._frame_reader_c",
    }
    assert not any(name.endswith((".c", ".h", ".pyx")) for name in names)
    for needed in [
        "blazews/py.typed",
        "blazews/_demo/index.html",
        f"blazews-{blazews.__version__}.dist-info/licenses/LICENSE",
    ]:
        assert needed in names, needed
    assert meta["Version"] == blazews.__version__  # the one source of the version
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier")
    for classifier in [
        "Framework :: AsyncIO",
        "Typing :: Typed",
        "Programming Language :: Python :: 3.10",
        "Development Status :: 4 - Beta",
    ]:
        assert classifier in classifiers
    extras = meta.get_all("Provides-Extra")
    assert {"speedups", "docs", "test", "bench"} <= set(extras)
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= set(urls)
    assert meta["Requires-Python"] == ">=3.10"
    assert not [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]  # no runtime deps


def test_without_a_compiler_the_sdist_installs_pure_python(dist: Dist) -> None:
    assert "WARNING: blazews: building" in dist.nocc_log, dist.nocc_log[-3000:]
    probe = (
        "import blazews, sys\n"
        "from blazews import sync\n"
        "print(blazews.IMPLEMENTATION)\n"
        "def echo(conn):\n"
        "    for message in conn: conn.send(message)\n"
        "import threading\n"
        "with sync.serve(echo, '127.0.0.1', 0) as server:\n"
        "    threading.Thread(target=server.serve_forever, daemon=True).start()\n"
        "    with sync.connect(f'ws://127.0.0.1:{server.port}/') as conn:\n"
        "        conn.send('pure'); print(conn.recv())\n"
        "    server.shutdown()\n"
    )
    out = _run([dist.nocc_python, "-c", probe], cwd=dist.nocc_python.parent)
    assert out.split() == ["python", "pure"]
    version = _run([dist.nocc_python, "-m", "blazews", "--version"], cwd=dist.nocc_python.parent)
    assert version.startswith(f"blazews {blazews.__version__} (pure Python: no compiled")


def test_bench_runs_from_the_installed_package(dist: Dist, tmp_path: Path) -> None:
    # `python -m blazews bench` from the sdist installed in a venv of its own, in a
    # folder that is not a checkout: the harness ships in the package, its children
    # import from it, the peers not installed there are reported as such.
    out = _run(
        [
            *(dist.nocc_python, "-m", "blazews", "bench", "--quick", "--scenario", "echo"),
            *("--loop", "asyncio", "--libs", "blazews,blazews-listener,websockets"),
        ],
        cwd=tmp_path,
    )
    assert "echo (scenario 1/1, repeat 1/1)" in out  # the progress lines
    assert "blazews-listener" in out and "msg/s" in out
    report = (tmp_path / "blazews-bench-results" / "e2e.md").read_text()
    assert "websockets not installed" in report
    lines = [line for line in report.splitlines() if line.startswith("| blazews: Listener")]
    assert lines and all("not run" not in line and "ERROR" not in line for line in lines)


def test_cibuildwheel_configuration() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    assert config["build"] == ["cp310-*", "cp311-*", "cp312-*", "cp313-*"]
    for platform, first in [
        ("linux", "cp310-manylinux_x86_64"),
        ("macos", "cp310-macosx"),
        ("windows", "cp310-win_amd64"),
    ]:
        out = _run(
            [
                sys.executable,
                "-m",
                "cibuildwheel",
                "--print-build-identifiers",
                "--platform",
                platform,
            ],
            cwd=ROOT,
        )
        identifiers = out.split()
        assert identifiers and identifiers[0].startswith(first), out
        assert all(i.startswith(("cp310", "cp311", "cp312", "cp313")) for i in identifiers)
        assert not any("win32" in i or "i686" in i for i in identifiers)
