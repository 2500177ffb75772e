"""Smoke test of the fuzz targets: each runs briefly in a subprocess, from its seed
corpus, with atheris when it is installed and with the plain random driver always.
Known findings (``fuzzing/corpus/<target>/crash-*``) are replayed as expected failures
until the code is fixed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZING = ROOT / "fuzzing"
TARGETS = ["frames", "utf8", "http", "frame_reader", "inflate"]


def _run(target: str, args: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, str(FUZZING / f"fuzz_{target}.py"), *args],
        cwd=ROOT,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, output
    return output


def _corpus(target: str, tmp_path: Path) -> Path:
    """Copy the seeds (and fixed findings kept as regressions) to a scratch corpus,
    so a run neither writes into the repository nor stops on a known crash."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in (FUZZING / "corpus" / target).iterdir():
        if path.name.startswith(("seed-", "regression-")):
            shutil.copy(path, corpus / path.name)
    return corpus


@pytest.mark.parametrize("target", TARGETS)
def test_target_runs(target: str, tmp_path: Path) -> None:
    corpus = _corpus(target, tmp_path)
    _run(target, [str(corpus), "-runs=2000", f"-artifact_prefix={tmp_path}/crash-"])


@pytest.mark.parametrize("target", TARGETS)
def test_target_runs_with_random_driver(target: str, tmp_path: Path) -> None:
    corpus = _corpus(target, tmp_path)
    output = _run(
        target,
        [str(corpus), "-runs=500", "-seed=1", f"-artifact_prefix={tmp_path}/crash-"],
        {"BLAZEWS_FUZZ_DRIVER": "random"},
    )
    assert "done: 500 runs, no crash" in output


KNOWN = sorted((FUZZING / "corpus").glob("*/regression-*"))


@pytest.mark.parametrize("path", KNOWN, ids=[f"{p.parent.name}/{p.name}" for p in KNOWN])
def test_fixed_finding_stays_fixed(path: Path) -> None:
    """Replays an input a fuzzer once failed on (``corpus/<target>/regression-*``)."""
    proc = subprocess.run(
        [sys.executable, str(FUZZING / f"fuzz_{path.parent.name}.py"), str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_there_are_regressions_to_replay() -> None:
    assert KNOWN, "the corpus lost its regression inputs"
