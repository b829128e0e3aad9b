"""A password in the tracking URI reaches MLflow's credentials and nothing else: after real sweeps and a report against
a real `mlflow server` with MLflow's basic authentication, neither the server's databases, its artifacts, the sweep
folders nor anything printed holds it. The probe names the fix when the server refuses the host name."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from facequant.schema import Tag
from facequant.tracking import TrackingError, probe
from facequant.tracking.credentials import PASSWORD, USERNAME
from helpers import REPO, main_overrides, share_aligned
from helpers.services import ADMIN, mlflow_server

SECRET = "pw-" + secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(its folder: databases, artifacts and log, its URI) of a basic-auth server that allows the host 127.0.0.1."""
    root = tmp_path_factory.mktemp("server")
    backend = f"sqlite:///{root / 'mlflow.db'}"
    with mlflow_server(backend, root / "artifacts", admin_password=SECRET, allowed_hosts="127.0.0.1:*") as uri:
        yield root, uri


def with_password(uri: str, password: str = SECRET) -> str:
    return uri.replace("http://", f"http://{ADMIN}:{password}@")


def entrypoint(script: str, workdir: Path, *overrides: str, uri_env: str | None = None) -> subprocess.CompletedProcess:
    """src/<script> in workdir, with no credential variables: the password comes only in the URI."""
    env = {k: v for k, v in os.environ.items() if k not in (USERNAME, PASSWORD, "MLFLOW_TRACKING_URI")}
    if uri_env is not None:
        env["MLFLOW_TRACKING_URI"] = uri_env
    cmd = [sys.executable, str(REPO / "src" / script), *overrides]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1200)


def files_holding(text: str, *roots: Path) -> list[Path]:
    """Every file under roots whose bytes contain text."""
    needle = text.encode()
    return [p for root in roots for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_password_in_the_uri_is_stored_and_printed_nowhere(server, sweep, tmp_path, monkeypatch):
    root, uri = server
    share_aligned(sweep[0], tmp_path, "onnx", "scores")  # warm: the jobs test tracking, not the quantizer
    base = [o for o in main_overrides(tmp_path) if not o.startswith(("mlflow.tracking_uri=", "hydra.sweep.dir="))]
    by_env = entrypoint(
        "main.py",
        tmp_path,
        "-m",
        *base,
        "quant=fp32",
        f"hydra.sweep.dir={tmp_path / 'env'}",
        uri_env=with_password(uri),
    )
    assert by_env.returncode == 0, by_env.stderr[-3000:]
    by_override = entrypoint(
        "main.py",
        tmp_path,
        "-m",
        *base,
        "quant=fp32,dynamic",
        f"mlflow.tracking_uri={with_password(uri)}",
        f"hydra.sweep.dir={tmp_path / 'override'}",
    )
    assert by_override.returncode == 0, by_override.stderr[-3000:]
    report = entrypoint("compare.py", tmp_path, f"mlflow.tracking_uri={with_password(uri)}")  # the latest sweep
    assert report.returncode == 0, report.stderr[-3000:]

    monkeypatch.setenv(USERNAME, ADMIN)
    monkeypatch.setenv(PASSWORD, SECRET)
    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_names=["facequant"])
    sweeps = df[df[f"tags.{Tag.SWEEP}"] == "true"]
    jobs = df[df[f"tags.{Tag.PARENT}"].isin(sweeps.run_id)]
    assert len(sweeps) == 2 and len(jobs) == 3 and (df.status == "FINISHED").all()
    assert set(jobs["params.mlflow.tracking_uri"]) == {uri}  # what the jobs were handed, without the password
    assert any(f"mlflow.tracking_uri={uri}" in tag for tag in sweeps[f"tags.{Tag.SWEEP_OVERRIDES}"])
    assert f"MLflow runs of this sweep: {uri}/#/experiments/" in by_override.stdout

    printed = [p.stdout + p.stderr for p in (by_override, by_env, report)]
    assert not [text for text in printed if SECRET in text]
    assert list((root / "artifacts").rglob("config.yaml")) and list(tmp_path.rglob(".hydra/overrides.yaml"))
    assert files_holding(SECRET, root, tmp_path) == []  # databases, artifacts, sweep folders, reports, cache


def test_refusals_name_the_fix_and_not_the_password(server, tmp_path):
    _, uri = server
    dead = entrypoint("main.py", tmp_path, "quant=fp32", f"mlflow.tracking_uri={with_password('http://127.0.0.1:9')}")
    wrong = entrypoint("main.py", tmp_path, "quant=fp32", f"mlflow.tracking_uri={with_password(uri, 'pw-' + SECRET)}")
    assert dead.returncode != 0 and "MLflow tracking server at http://127.0.0.1:9 does not answer" in dead.stderr
    assert wrong.returncode != 0 and f"MLflow tracking server at {uri} asks for credentials (HTTP 401" in wrong.stderr
    assert not [p for p in (dead, wrong) if SECRET in p.stdout + p.stderr]
    assert files_holding(SECRET, tmp_path) == []


def test_a_host_name_the_server_does_not_allow_is_named_with_the_fix(server, monkeypatch):
    """MLflow 3 answers /health for any host name, but its API refuses one not in --allowed-hosts."""
    _, uri = server
    monkeypatch.setenv(USERNAME, ADMIN)
    monkeypatch.setenv(PASSWORD, SECRET)
    probe(uri)
    refused = uri.replace("127.0.0.1", "localhost")
    with pytest.raises(TrackingError, match="refuses the host name localhost:[0-9]+ .*Invalid Host header") as error:
        probe(refused)
    assert "--allowed-hosts" in str(error.value)
