"""Sweeps on a Ray cluster logging to an MLflow server on PostgreSQL, all real and on 127.0.0.1 only.

The module starts PostgreSQL (as the postgres user when run as root), `mlflow server` on it with proxied
artifacts and MLflow's basic authentication, and a 2-CPU Ray head, and tears them down afterwards. The driver
gets the server's password inside MLFLOW_TRACKING_URI (or the override), the Ray workers in MLflow's own
variables from the environment of `ray start`, as docs/cluster.md says.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import mlflow
import pytest
import requests

from facequant.schema import Metric, Tag
from facequant.tracking.credentials import PASSWORD, USERNAME
from helpers import LFW_ROOT, REPO, main_overrides, share_aligned
from helpers.services import ADMIN, RAY_LOOPBACK, RayHead, ServiceMissing, mlflow_server, postgres, ray_head


@dataclass(frozen=True)
class Cluster:
    uri: str  # the MLflow tracking server, without credentials
    password: str  # of the server's user ADMIN
    head: RayHead
    artifacts: Path  # where the server stores artifacts; no job writes there itself

    @property
    def address(self) -> str:
        return self.head.address

    @property
    def uri_with_password(self) -> str:
        return self.uri.replace("http://", f"http://{ADMIN}:{self.password}@")


def driver_env(cluster: Cluster) -> dict[str, str]:
    """A driver's environment: the password only inside MLFLOW_TRACKING_URI, and Ray on loopback."""
    env = {k: v for k, v in os.environ.items() if k not in (USERNAME, PASSWORD)}
    return env | RAY_LOOPBACK | {"MLFLOW_TRACKING_URI": cluster.uri_with_password}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = [name for name in ("ray", "psycopg") if find_spec(name) is None]
    try:
        if missing:
            raise ServiceMissing(f"{' and '.join(missing)} not installed: pip install -e '.[ray,server]'")
        root = tmp_path_factory.mktemp("cluster")
        (root / "ray").mkdir()
        password = "pw-" + secrets.token_urlsafe(12)
        credentials = {USERNAME: ADMIN, PASSWORD: password}
        with (
            postgres() as backend,
            mlflow_server(backend, root / "artifacts", admin_password=password) as uri,
            ray_head(root / "ray", 2, env=credentials) as head,
            pytest.MonkeyPatch.context() as patch,
        ):
            for key, value in credentials.items():  # for this process's own queries
                patch.setenv(key, value)
            yield Cluster(uri, password, head, root / "artifacts")
    except ServiceMissing as exc:
        reason = f"{exc} (the README's set-up installs the extras, .ci/run installs PostgreSQL)"
        if os.environ.get("FACEQUANT_REQUIRE_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


RELATIVE = ("mlflow.tracking_uri=", "dataset.root=", "cache_dir=", "hydra.sweep.dir=")


def ray_sweep(cluster: Cluster, workdir: Path, *overrides: str) -> subprocess.Popen:
    """main.py -m through hydra/launcher=ray, in the background. The server comes from MLFLOW_TRACKING_URI and
    the paths are relative, as a user writes them: the workers run elsewhere (in the Ray head's folder)."""
    base = [o for o in main_overrides(workdir) if not o.startswith(RELATIVE)]
    base += [f"dataset.root={os.path.relpath(LFW_ROOT, workdir)}", "cache_dir=cache", "hydra.sweep.dir=multirun"]
    cmd = [sys.executable, str(REPO / "src" / "main.py"), "-m", *base, "hydra/launcher=ray"]
    cmd += [f"hydra.launcher.ray.init.address={cluster.address}", *overrides]
    env = driver_env(cluster)
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float) -> str:
    """The driver's stderr once it exits; a driver still running after timeout is killed."""
    try:
        return proc.communicate(timeout=timeout)[1]
    finally:
        if proc.poll() is None:
            proc.kill()


def runs(cluster: Cluster):
    mlflow.set_tracking_uri(cluster.uri)
    return mlflow.search_runs(experiment_names=["facequant"], order_by=["attributes.start_time ASC"])


def children(df, parent: str):
    return df[df[f"tags.{Tag.PARENT}"] == parent]


def latest_parent(df):
    return df[df[f"tags.{Tag.SWEEP}"] == "true"].iloc[-1]


@pytest.fixture(scope="module")
def ray_workdir(cluster, sweep, tmp_path_factory):
    """A 2-job sweep through the Ray launcher on the server, both jobs at once on 2 CPUs: (workdir, its parent run,
    its child runs)."""
    workdir = tmp_path_factory.mktemp("ray-sweep")
    share_aligned(sweep[0], workdir, "onnx", "scores")  # warm: the jobs test the launcher, not the quantizer
    proc = ray_sweep(cluster, workdir, "quant=fp32,static", "sensitivity=false")
    err = finish(proc, 900)
    assert proc.returncode == 0, err[-3000:]
    df = runs(cluster)
    parent = latest_parent(df)
    return workdir, parent, children(df, parent.run_id), proc.pid


def test_the_ray_node_is_on_loopback_and_its_address_file_in_its_own_folder(cluster):
    """The node address Ray reports is 127.0.0.1, and `address=auto` elsewhere on the machine never finds this
    head: its `ray_current_cluster` file is in the head's temporary folder, removed with it."""
    script = "import json, ray; ray.init(address=%r); print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes()]))"
    cmd = [sys.executable, "-c", script % cluster.address]
    proc = subprocess.run(cmd, env=driver_env(cluster), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == ["127.0.0.1"]
    assert (cluster.head.temp_dir / "ray_current_cluster").read_text().strip() == cluster.address
    default = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"  # where address=auto looks
    assert not default.is_file() or default.read_text().strip() != cluster.address


def test_the_server_asks_for_credentials(cluster):
    response = requests.get(f"{cluster.uri}/api/2.0/mlflow/experiments/search", timeout=10)
    assert response.status_code == 401


def test_every_job_is_a_finished_child_of_one_finished_parent(ray_workdir):
    workdir, parent, kids, driver = ray_workdir
    assert parent.status == "FINISHED" and parent[f"tags.{Tag.SWEEP_JOBS}"] == "2"
    assert sorted(kids["tags.mlflow.runName"]) == ["fp32", "int8_static_qdq_minmax_100"]
    assert (kids.status == "FINISHED").all()
    assert kids["params.cpu.job_cpus"].eq("1").all()  # num_cpus=1 per job, and the job's threads followed it
    assert str(driver) not in set(kids[f"tags.{Tag.PID}"])  # the jobs ran in Ray's worker processes
    spans = sorted(zip(kids.start_time, kids.end_time, strict=True))
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))  # two at once


def test_metrics_and_artifacts_are_on_the_server(cluster, ray_workdir):
    workdir, _, kids, _ = ray_workdir
    for metric in (Metric.ACCURACY, Metric.TAR_FAR_1E3, Metric.SIZE_MIB, Metric.LATENCY_P50_MS):
        assert kids[f"metrics.{metric}"].notna().all(), metric
    client = mlflow.MlflowClient(cluster.uri)
    for run_id in kids.run_id:
        assert {"config.yaml", "scores.csv", "roc.png"} <= {a.path for a in client.list_artifacts(run_id)}
        assert (cluster.artifacts / kids.experiment_id.iloc[0] / run_id / "artifacts" / "scores.csv").is_file()
    assert not (workdir / "mlruns").exists() and not (workdir / "mlflow.db").exists()  # nothing written locally
    # relative paths meant the driver's folder, not the workers' (the Ray head's): data, cache and job outputs
    assert set(kids["params.dataset.root"]) == {str(LFW_ROOT)} and set(kids["params.cache_dir"]) == {
        str(workdir / "cache")
    }
    assert len(list((workdir / "multirun").glob("*/.hydra/config.yaml"))) == 2


def test_compare_builds_the_report_from_the_server(cluster, ray_workdir):
    workdir, parent, _, _ = ray_workdir
    cmd = [sys.executable, str(REPO / "src" / "compare.py"), f"mlflow.tracking_uri={cluster.uri_with_password}"]
    proc = subprocess.run(cmd, cwd=workdir, env=driver_env(cluster), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (workdir / "reports" / parent.run_id / "report.md").read_text()
    assert "| int8_static_qdq_minmax_100 |" in report and "| fp32 |" in report
    logged = mlflow.MlflowClient(cluster.uri).list_artifacts(parent.run_id, "report")
    assert "report/report.md" in {a.path for a in logged}


def test_a_killed_worker_ends_its_run_failed_and_the_retry_finishes(cluster, ray_workdir, tmp_path):
    share_aligned(ray_workdir[0], tmp_path, "onnx", "scores")
    before = set(runs(cluster).run_id)
    proc = ray_sweep(cluster, tmp_path, "quant=dynamic")
    victim, deadline = None, time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        df = runs(cluster)
        jobs = df[f"tags.{Tag.PARENT}"].notna()  # the sweep's parent carries the driver's pid: spare it
        new = df[~df.run_id.isin(before) & jobs & df[f"tags.{Tag.PID}"].notna() & (df.status == "RUNNING")]
        if len(new):
            victim = new.iloc[0]
            os.kill(int(victim[f"tags.{Tag.PID}"]), signal.SIGKILL)  # the Ray worker running the job
        time.sleep(0.2)
    err = finish(proc, 600)
    assert proc.returncode == 0, err[-3000:]  # Ray ran the task again (max_retries=1), and it finished
    assert victim is not None, "the job finished before it could be killed"
    df = runs(cluster)
    parent = latest_parent(df)
    kids = children(df, parent.run_id).set_index("run_id")
    assert parent.status == "FINISHED" and parent[f"tags.{Tag.SWEEP_LOST}"] == "1"
    dead = kids.loc[victim.run_id]
    (retry,) = kids.index[kids.status == "FINISHED"]
    assert dead.status == "FAILED"
    assert f"pid {victim[f'tags.{Tag.PID}']}" in dead[f"tags.{Tag.ERROR}"]
    assert f"retried the job as run {retry}" in dead[f"tags.{Tag.ERROR}"]
    assert kids.loc[retry, f"tags.{Tag.VARIANT_KEY}"] == dead[f"tags.{Tag.VARIANT_KEY}"]
