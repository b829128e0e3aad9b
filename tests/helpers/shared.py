"""The fold-1 sweep most integration and system tests read, built once per session.

Under pytest-xdist it lives in the session's folder, which every worker sees. A background process starts building
it as soon as the session's first test starts, so that tests which do not need it run meanwhile; the `sweep`
fixture waits for it behind a file lock, and builds it itself if no builder ran.
`python -m helpers.shared <workdir>` is that background builder: it prints `locked` once it holds the lock, or
`busy` and ends if a worker already holds it (that worker builds the sweep itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from .entrypoints import main
from .paths import REPO
from .services import background

SWEEP = ("quant=fp32,dynamic,static",)


class SharedSweep:
    """The sweep's workdir, its lock, and the marker its builder leaves: sweep.done, or sweep.failed with stderr."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.lock = workdir, FileLock(f"{workdir}.lock")
        self.done, self.failed = workdir / "sweep.done", workdir / "sweep.failed"

    @classmethod
    def of_session(cls, tmp_path_factory: pytest.TempPathFactory) -> SharedSweep:
        """The session's sweep: in the folder above the xdist workers' own, else in this process's basetemp."""
        base = tmp_path_factory.getbasetemp()
        return cls((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "sweep")

    def build_locked(self) -> None:
        """Run the sweep unless a builder already ended, and record how it ended; the caller holds the lock."""
        if self.done.is_file() or self.failed.is_file():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        proc = main(self.workdir, *SWEEP, multirun=True)
        (self.done if proc.returncode == 0 else self.failed).write_text(proc.stderr[-3000:])

    def result(self) -> Path:
        """The built workdir, waiting for a builder that holds the lock; a failed build fails every test asking."""
        with self.lock:
            self.build_locked()
        if self.failed.is_file():
            pytest.fail(f"the shared sweep failed:\n{self.failed.read_text()}")
        return self.workdir

    @contextmanager
    def building(self) -> Iterator[None]:
        """Build in a background process for the block's duration, unless another worker of this session does."""
        try:
            with open(f"{self.workdir}.started", "x"):  # exclusive: one builder a session
                pass
        except FileExistsError:
            yield
            return
        cmd = [sys.executable, "-m", "helpers.shared", str(self.workdir)]
        env = os.environ | {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))
        }
        with background(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() in ("locked", "busy")
            yield


if __name__ == "__main__":
    sweep = SharedSweep(Path(sys.argv[1]))
    try:
        sweep.lock.acquire(timeout=0)
    except Timeout:  # a worker asked first and builds it itself
        print("busy", flush=True)
        sys.exit(0)
    print("locked", flush=True)
    try:
        sweep.build_locked()
    finally:
        sweep.lock.release()
