"""MLflow runs always end: FINISHED on success, FAILED with the error on any exception, Ctrl-C included."""

import mlflow
import pytest

from facequant.config import MlflowConfig
from facequant.tracking import flatten, job_run, log_metrics, log_params


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts go to ./mlruns
    return MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t")


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


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "1,2", "d": "None"}
