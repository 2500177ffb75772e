"""The release checks: slow, so out of the unit runs; ``make test-release`` runs them.

They build the sdist and the wheel (compiling the extensions again), drive the demo in
a real Chromium and build the docs site, each once, with the compiled build: the unit
runs of ``make test`` (compiled and pure) collect nothing here unless
``BLAZEWS_RELEASE_TESTS=1``, which ``make test-release`` sets.
"""

from __future__ import annotations

import os

if os.environ.get("BLAZEWS_RELEASE_TESTS", "") in ("", "0"):
    collect_ignore_glob = ["test_*.py"]
