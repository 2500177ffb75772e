"""blazews.uvicorn needs uvicorn; without it, importing it says so."""

from __future__ import annotations

import subprocess
import sys


def test_import_without_uvicorn_names_it() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"  # as if uvicorn were not installed
        "try:\n"
        "    import blazews.uvicorn\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
        "import blazews; print(blazews.__version__)\n"  # the package itself does not need it
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "needs uvicorn" in out[0] and "pip install uvicorn" in out[0]
    assert out[1] == __import__("blazews").__version__
