"""Real services on 127.0.0.1 for the cluster test: PostgreSQL from Debian, an MLflow server on it, a Ray head.

Each is a context manager that starts the service, waits until it answers, and tears it down.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

VENV_BIN = Path(sys.executable).parent


class ServiceMissing(RuntimeError):
    """A service's program is not installed here."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin() -> Path:
    """Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, off the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise ServiceMissing("PostgreSQL is not installed: apt-get update && apt-get install -y postgresql")
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the postgres user Debian's package creates."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster in a temporary data directory; yields the SQLAlchemy URI of database
    `mlflow`."""
    pg = _pg_bin()
    home = Path(tempfile.mkdtemp(prefix="facequant-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    data, port = home / "data", free_port()
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(_as_postgres([str(pg / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]), **run)
    options = f"-h 127.0.0.1 -p {port} -k {home}"
    subprocess.run(
        _as_postgres([str(pg / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"]),
        **run,
    )
    try:
        subprocess.run(
            _as_postgres([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"]), **run
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(
            _as_postgres([str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(home, ignore_errors=True)


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def mlflow_server(backend: str, artifacts: Path) -> Iterator[str]:
    """`mlflow server` on backend, serving artifacts from a folder only it writes; yields its http:// URI."""
    port = free_port()
    log = artifacts.parent / "mlflow-server.log"
    cmd = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", backend, "--artifacts-destination"]
    cmd += [str(artifacts), "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{uri}/health", proc, log, timeout=180)
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=60)


@contextmanager
def ray_head(workdir: Path, cpus: int) -> Iterator[str]:
    """`ray start --head --block` with cpus CPUs, started in workdir (a worker's working directory), in its own
    process group; yields its address once `ray status` counts the node's CPUs. Stops that group only, never another
    cluster on the machine (as `ray stop` would)."""
    port = free_port()
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--num-cpus={cpus}", f"--port={port}"]
    cmd += ["--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats"]
    log = workdir / "ray-head.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        status = [str(VENV_BIN / "ray"), "status", f"--address={address}"]
        while (
            f"/{cpus}.0 CPU" not in subprocess.run(status, env=env, capture_output=True, text=True, timeout=60).stdout
        ):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield address
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a throwaway cluster: nothing to save
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
