"""The docs site builds in strict mode: no broken link, include or reference.

``make docs`` builds it into build/site; here into a temporary directory. The
snippets of its pages run in tests/test_readme.py, the examples it includes in
tests/test_examples.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PAGES = [
    "index.html",
    "quickstart/index.html",
    "guide/asyncio/index.html",
    "guide/blocking/index.html",
    "guide/listener/index.html",
    "guide/asgi/index.html",
    "guide/compression/index.html",
    "guide/limits/index.html",
    "guide/deployment/index.html",
    "guide/broadcast/index.html",
    "guide/client/index.html",
    "examples/index.html",
    "performance/index.html",
    "conformance/index.html",
    "migrating/index.html",
    "faq/index.html",
    "reference/index.html",
    "changelog/index.html",
    "benchmarks/e2e/index.html",
]


def test_the_docs_build_in_strict_mode(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in PAGES:
        assert (site / page).is_file(), page
    reference = (site / "reference/index.html").read_text(encoding="utf-8")
    for name in [
        "blazews.connect",
        "blazews.serve",
        "blazews.Listener",
        "blazews.sync.connect",
        "blazews.ServerOptions",
        "blazews.broadcast",
        "blazews.exceptions.ConnectionClosed",
    ]:
        assert f'id="{name}"' in reference, name
    assert ":class:" not in reference  # the docstrings' Sphinx roles, shown as code
    # The examples are included from their files, not copied.
    examples = (site / "examples/index.html").read_text(encoding="utf-8")
    assert "--8&lt;--" not in examples
    assert "unpack_from" in examples and "serve_forever" in examples
    assert "## [Unreleased]" not in (site / "changelog/index.html").read_text(encoding="utf-8")
    assert (site / "benchmarks/e2e_echo.png").is_file()  # the plots of the performance page
