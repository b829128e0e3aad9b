"""Real services on 127.0.0.1 for the tests: PostgreSQL from Debian, an MLflow server (with MLflow's basic
authentication if asked), a Ray head.

Each is a context manager that starts the service in its own process group, waits until it answers, and stops
that group only, never a process it did not start. While a service runs, its group is recorded as a file
`<pgid>` (holding the signal that stops it) in the folder FACEQUANT_SERVICE_GROUPS names, so that `.ci/run`
can stop what a killed test run left behind, and nothing else.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@contextmanager
def _recorded(pgid: int, stop_signal: str) -> Iterator[None]:
    """Record the process group pgid for .ci/run while the block runs (FACEQUANT_SERVICE_GROUPS, if set)."""
    folder = os.environ.get("FACEQUANT_SERVICE_GROUPS")
    record = Path(folder) / str(pgid) if folder else None
    if record is not None:
        record.write_text(stop_signal)
    try:
        yield
    finally:
        if record is not None:
            record.unlink(missing_ok=True)


def _stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the process group proc leads, SIGKILL to whatever of it is left after grace seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reaps the leader, so that only live members keep the group
            os.killpg(proc.pid, 0)
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is gone
        pass
    proc.wait(timeout=30)


@contextmanager
def background(
    cmd: list[str], stop_signal: str = "TERM", grace: float = 10, **popen: object
) -> Iterator[subprocess.Popen]:
    """cmd in its own process group, recorded with stop_signal for the block's duration; whatever of the group
    still runs then is stopped (_stop_group, after grace seconds)."""
    proc = subprocess.Popen(cmd, start_new_session=True, **popen)
    try:
        with _recorded(proc.pid, stop_signal):
            yield proc
    finally:
        _stop_group(proc, grace)


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
    postmaster = int((data / "postmaster.pid").read_text().split()[0])  # pg_ctl starts it in a session of its own
    try:
        with _recorded(postmaster, "QUIT"):  # SIGQUIT: PostgreSQL's immediate shutdown
            subprocess.run(
                _as_postgres([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"]),
                **run,
            )
            yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(
            _as_postgres([str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(home, ignore_errors=True)


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float, ready: tuple[int, ...] = (200,)) -> None:
    """Until url answers with a status in ready; the server must not exit meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=10).status_code in ready:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


ADMIN = "admin"  # the account MLflow's basic-auth app creates on first start


@contextmanager
def mlflow_server(
    backend: str, artifacts: Path, admin_password: str | None = None, allowed_hosts: str | None = None
) -> Iterator[str]:
    """`mlflow server` on backend, serving artifacts from a folder only it writes; yields its http:// URI (without
    credentials). With admin_password, MLflow's basic authentication (`--app-name basic-auth`): user `admin` with that
    password, its user store beside artifacts. allowed_hosts is passed as `--allowed-hosts`."""
    port = free_port()
    home = artifacts.parent
    log = home / "mlflow-server.log"
    cmd = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", backend, "--artifacts-destination"]
    cmd += [str(artifacts), "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = dict(os.environ)
    if admin_password is not None:
        auth = home / "basic_auth.ini"
        auth.write_text(
            f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{home / 'basic_auth.db'}\n"
            f"admin_username = {ADMIN}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "auth_cache_ttl_seconds = 60\n"  # else every request hashes the password again: seconds on a busy machine
        )
        cmd += ["--app-name", "basic-auth"]
        env |= {
            "MLFLOW_AUTH_CONFIG_PATH": str(auth),
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),  # the auth app's CSRF protection needs one
        }
    if allowed_hosts is not None:
        cmd += ["--allowed-hosts", allowed_hosts]
    uri = f"http://127.0.0.1:{port}"
    with open(log, "w") as out, background(cmd, "TERM", 60, stdout=out, stderr=subprocess.STDOUT, env=env) as proc:
        # the API, not /health, which answers before the API does; 401 is an answer too (authentication on)
        _wait(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", proc, log, timeout=180, ready=(200, 401))
        yield uri


# Ray takes 127.0.0.1 for "this machine" and registers the node at the external interface's address instead, even
# under --node-ip-address=127.0.0.1; with this, the head, its workers and every driver stay on loopback.
RAY_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass(frozen=True)
class RayHead:
    address: str  # 127.0.0.1:PORT
    temp_dir: Path  # Ray's session files and its `ray_current_cluster` file, removed with the head


@contextmanager
def ray_head(workdir: Path, cpus: int, env: dict[str, str] | None = None) -> Iterator[RayHead]:
    """`ray start --head --block` with cpus CPUs on 127.0.0.1, started in workdir (a worker's working directory) with
    env added to the environment its workers inherit, in its own process group and its own temporary folder (so
    `ray_current_cluster` is not left where `address=auto` looks); yields it once `ray status` counts the node's
    CPUs. Stops that group only, never another cluster on the machine (as `ray stop` would)."""
    port = free_port()
    temp_dir = Path(tempfile.mkdtemp(prefix="fq-ray-"))  # short: Ray's socket paths must fit in 107 bytes
    env = os.environ | RAY_LOOPBACK | {"RAY_USAGE_STATS_ENABLED": "0"} | (env or {})
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--num-cpus={cpus}", f"--port={port}"]
    cmd += ["--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats"]
    cmd += [f"--temp-dir={temp_dir}"]
    log = workdir / "ray-head.log"
    address = f"127.0.0.1:{port}"
    try:  # KILL, grace 10: a throwaway cluster, nothing to save
        with (
            open(log, "w") as out,
            background(cmd, "KILL", 10, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT) as proc,
        ):
            deadline = time.monotonic() + 180
            status = [str(VENV_BIN / "ray"), "status", f"--address={address}"]
            while (
                f"/{cpus}.0 CPU"
                not in subprocess.run(status, env=env, capture_output=True, text=True, timeout=60).stdout
            ):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray head did not start:\n{log.read_text()[-3000:]}")
                time.sleep(1)
            yield RayHead(address, temp_dir)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
