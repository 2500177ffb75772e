"""mkdocs hook: the benchmark reports and plots of ``benchmarks/results`` as site pages.

The performance page links to them as ``benchmarks/<report>``; they are added to the
site from where ``make bench`` writes them (no copy, and no symbolic link in the
repository: checkouts without symlink support build the same site).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file() and path.suffix in (".md", ".png", ".json"):
            uri = "benchmarks/" + path.relative_to(RESULTS).as_posix()
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
