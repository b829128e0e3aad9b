"""MLflow runs always end: FINISHED on success, FAILED with the error, KILLED on Ctrl-C or SIGTERM; sweep parents
likewise."""

import os
import shutil
import signal
import time

import mlflow
import pytest
from hydra import compose, initialize_config_dir

from facequant.config.running import MlflowConfig
from facequant.config.settings import load_settings
from facequant.job.sweep import parent_override
from facequant.schema import Param, Tag
from facequant.tracking import Terminated, flatten, handle_sigterm, job_run, log_metrics, log_params, sweep_run
from helpers import CALIBRATION_DIGEST, EVALUATION_DIGEST, REPO, log_data_sets


@pytest.fixture
def cfg(store_uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts go to ./mlruns
    return MlflowConfig(tracking_uri=store_uri, experiment="t")


def only_run(cfg):
    mlflow.set_tracking_uri(cfg.tracking_uri)
    (run,) = mlflow.search_runs(experiment_names=[cfg.experiment], output_format="list")
    return run


def test_finished_run_keeps_what_was_logged(cfg):
    with job_run(cfg, "fp32", {"is_baseline": "true"}):
        log_params({"quant.mode": "fp32"})
        log_metrics({"accuracy": 0.99})
    run = only_run(cfg)
    assert run.info.status == "FINISHED" and run.info.run_name == "fp32"
    assert run.data.metrics["accuracy"] == 0.99 and run.data.params["quant.mode"] == "fp32"
    assert run.data.tags["is_baseline"] == "true"


@pytest.mark.parametrize(
    ("error", "status"), [(RuntimeError("LFW not found"), "FAILED"), (KeyboardInterrupt(), "KILLED")]
)
def test_failure_ends_the_run_failed_with_the_reason(cfg, error, status):
    with pytest.raises(type(error)), job_run(cfg, "int8", {}):
        log_metrics({"n_pairs": 600})
        raise error
    run = only_run(cfg)
    assert run.info.status == status
    assert run.data.tags["error"].startswith(type(error).__name__)
    assert run.data.metrics["n_pairs"] == 600  # nothing already logged is lost
    assert mlflow.active_run() is None


def test_a_job_run_leaves_no_active_experiment_behind(cfg, empty_store, tmp_path):
    """A caller that then opens a run on another store must land in that store's default experiment, not in an id
    that only the job's store has (MLflow's set_experiment would also export MLFLOW_EXPERIMENT_ID to children)."""
    with job_run(cfg, "fp32", {}):
        pass
    assert "MLFLOW_EXPERIMENT_ID" not in os.environ
    other = tmp_path / "other"
    other.mkdir()
    shutil.copyfile(empty_store, other / "mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{other / 'mlflow.db'}")
    with mlflow.start_run() as run:
        assert run.info.experiment_id == "0"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "1,2", "d": "None"}


def child(parent, status, key):
    """A job run of the sweep; key is its variant key (a retried job's runs share it)."""
    client = mlflow.MlflowClient()
    tags = {Tag.PARENT: parent, Tag.VARIANT_KEY: key, Tag.HOST: "worker-1", Tag.PID: "4242"}
    run = client.create_run(client.get_run(parent).info.experiment_id, tags=tags)
    if status != "RUNNING":  # RUNNING: its process died before it could end the run
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


@pytest.mark.parametrize(
    ("children", "status"),
    [
        ([("FINISHED", "a"), ("FINISHED", "b")], "FINISHED"),
        ([("FINISHED", "a"), ("FAILED", "b")], "FAILED"),
        ([("FINISHED", "a")], "FAILED"),
        ([("FINISHED", "a"), ("FINISHED", "a")], "FAILED"),  # two runs of one job do not make two jobs
    ],
)
def test_sweep_parent_finishes_only_when_every_job_ran_and_finished(cfg, children, status):
    with sweep_run(cfg, "quant=fp32,static", "multirun/x", jobs=2, dropped=1) as parent:
        for child_status, key in children:  # one child short: a job failed before its run existed
            child(parent, child_status, key)
    run = mlflow.MlflowClient().get_run(parent)
    assert run.info.status == status
    assert run.data.tags[Tag.SWEEP] == "true" and run.data.tags[Tag.SWEEP_OVERRIDES] == "quant=fp32,static"
    assert (run.data.tags[Tag.SWEEP_JOBS], run.data.tags[Tag.SWEEP_DROPPED]) == ("2", "1")
    assert run.data.params[Param.SWEEP_DIR] == "multirun/x"
    assert Tag.SWEEP_LOST not in run.data.tags


@pytest.mark.parametrize(("retried", "status"), [(True, "FINISHED"), (False, "FAILED")])
def test_a_run_whose_worker_died_ends_failed_and_the_parent_counts_it(cfg, retried, status):
    with sweep_run(cfg, "quant=fp32,static", "multirun/x", jobs=2, dropped=0) as parent:
        child(parent, "FINISHED", "a")
        lost = child(parent, "RUNNING", "b")
        retry = child(parent, "FINISHED", "b") if retried else None
    client = mlflow.MlflowClient()
    run = client.get_run(parent)
    assert run.info.status == status and run.data.tags[Tag.SWEEP_LOST] == "1"
    dead = client.get_run(lost)
    assert dead.info.status == "FAILED"
    assert "worker-1, pid 4242" in dead.data.tags[Tag.ERROR]
    expected = f"retried the job as run {retry}" if retried else "no run of this job finished"
    assert expected in dead.data.tags[Tag.ERROR]


@pytest.mark.parametrize(
    ("error", "status"),
    [(RuntimeError("WorkerCrashedError: retries exhausted"), "FAILED"), (KeyboardInterrupt(), "KILLED")],
)
def test_jobs_still_running_end_as_the_sweep_did_when_it_stops(cfg, error, status):
    with pytest.raises(type(error)), sweep_run(cfg, "quant=fp32", "multirun/x", jobs=1, dropped=0) as parent:
        running = child(parent, "RUNNING", "a")  # a job on another worker, when the driver stops
        raise error
    client = mlflow.MlflowClient()
    run = client.get_run(running)
    assert run.info.status == status == client.get_run(parent).info.status
    assert run.data.tags[Tag.ERROR].startswith(f"the sweep stopped ({type(error).__name__}")


@pytest.mark.parametrize(
    ("error", "status"), [(RuntimeError("job 2 failed"), "FAILED"), (KeyboardInterrupt(), "KILLED")]
)
def test_sweep_parent_ends_with_the_reason_when_the_sweep_raises(cfg, error, status):
    with pytest.raises(type(error)), sweep_run(cfg, "quant=fp32", "multirun/x", jobs=1, dropped=0) as parent:
        raise error
    run = mlflow.MlflowClient().get_run(parent)
    assert run.info.status == status and run.data.tags[Tag.ERROR].startswith(type(error).__name__)


def test_sweep_parent_carries_each_data_set_of_its_children_once(cfg):
    with sweep_run(cfg, "quant=fp32,static,static", "multirun/x", jobs=3, dropped=0) as parent:
        for name in ("fp32", "int8_static_minmax", "int8_static_entropy"):  # the static two share their faces
            with job_run(cfg, name, {}, parent):
                log_data_sets(static=name != "fp32")
    inputs = mlflow.MlflowClient().get_run(parent).inputs.dataset_inputs
    logged = sorted((i.dataset.name, i.dataset.digest, *(t.value for t in i.tags)) for i in inputs)
    assert logged == [
        ("lfw-calibration", CALIBRATION_DIGEST, "calibration"),
        ("lfw-pairs", EVALUATION_DIGEST, "evaluation"),
    ]


def test_a_numeric_run_id_reaches_the_job_as_a_string():
    run_id = "1" * 32  # Hydra reads an unquoted all-digit value as an int
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[parent_override(run_id)])
    assert load_settings(cfg).parent_run_id == run_id


def test_a_dataset_created_by_a_parallel_job_is_logged_on_the_retry(monkeypatch):
    """A tracking server's SQL store checks, then inserts: two jobs logging one dataset at once make one fail with a
    unique violation, and the retry finds the dataset; any other error is raised at once."""
    from mlflow.exceptions import MlflowException

    from facequant.tracking import inputs

    calls = []

    def log_input(dataset, context):
        calls.append(context)
        if len(calls) == 1:
            raise MlflowException('(psycopg.errors.UniqueViolation) duplicate key value violates "dataset_pk"')

    monkeypatch.setattr(inputs.mlflow, "log_input", log_input)
    monkeypatch.setattr(inputs.time, "sleep", lambda seconds: None)
    inputs._log_input(object(), "evaluation")
    assert calls == ["evaluation", "evaluation"]
    monkeypatch.setattr(inputs.mlflow, "log_input", lambda d, context: (_ for _ in ()).throw(MlflowException("no")))
    with pytest.raises(MlflowException, match="no"):
        inputs._log_input(object(), "evaluation")


def test_sigterm_ends_the_run_killed_and_keeps_what_was_logged(cfg):
    previous = signal.getsignal(signal.SIGTERM)
    handle_sigterm()
    try:
        with pytest.raises(Terminated), job_run(cfg, "fp32", {}):
            mlflow.log_metric("n_pairs", 600)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    finally:
        signal.signal(signal.SIGTERM, previous)
    (run,) = mlflow.search_runs(experiment_names=["t"], output_format="list")
    assert run.info.status == "KILLED" and run.data.tags["error"].startswith("Terminated: SIGTERM")
    assert run.data.metrics["n_pairs"] == 600


def test_running_runs_whose_process_on_this_host_is_gone_end_failed(cfg):
    import socket
    import subprocess
    import sys

    from facequant.tracking import end_dead_runs

    mlflow.set_tracking_uri(cfg.tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("t")
    here = socket.gethostname()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)

    def running(host: str, pid: int) -> str:
        return client.create_run(experiment, tags={Tag.HOST: host, Tag.PID: str(pid)}).info.run_id

    dead, alive, remote = running(here, int(gone.stdout)), running(here, os.getpid()), running("worker-1", 1)
    reused = running(here, 0)
    # a dead job of a live sweep (alive) is the sweep's to end at its end, with the launcher's retry named
    job = client.create_run(experiment, tags={Tag.HOST: here, Tag.PID: gone.stdout.strip(), Tag.PARENT: alive})
    # the pid below belongs to a process started after the run: the run's own process is gone. psutil dates a process
    # from the boot time, which Linux gives in whole seconds, so it can read up to 1 s early; _alive allows 1 s more
    time.sleep(2.5)
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        client.set_tag(reused, Tag.PID, str(later.pid))
        assert sorted(end_dead_runs(experiment)) == sorted([dead, reused])
    finally:
        later.kill()
        later.wait()
    for run_id in (dead, reused):
        run = client.get_run(run_id)
        assert run.info.status == "FAILED" and run.data.tags[Tag.ERROR].startswith("process died: its process")
    assert {client.get_run(r).info.status for r in (alive, remote, job.info.run_id)} == {"RUNNING"}
