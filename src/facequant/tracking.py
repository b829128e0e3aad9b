"""Every MLflow call of the project: runs that always end, params, metrics, artifacts and the ONNX model."""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
import pandas as pd
from hydra.experimental.callback import Callback
from mlflow.models import infer_signature
from omegaconf import DictConfig, OmegaConf

from facequant.config import MlflowConfig

log = logging.getLogger(__name__)

# Set by SweepCallback for the jobs of a Hydra multirun: the parent run they nest under.
PARENT_ENV = "FACEQUANT_PARENT_RUN_ID"
SWEEP_TAG = "facequant_sweep"
COMPARISON_TAG = "facequant_comparison"


def git_commit() -> str:
    """HEAD of the checkout this code runs from, with '-dirty' if it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists and tuples become comma-separated strings."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        elif isinstance(value, list | tuple):
            flat[name] = ",".join(map(str, value))
        else:
            flat[name] = str(value)
    return flat


def configure(cfg: MlflowConfig) -> None:
    """Tracking URI and experiment; inside a sweep or `mlflow run`, the experiment of that outer run."""
    mlflow.set_tracking_uri(cfg.tracking_uri)
    outer = os.environ.get(PARENT_ENV) or os.environ.get("MLFLOW_RUN_ID")
    if outer:
        mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(outer).info.experiment_id)
    else:
        mlflow.set_experiment(cfg.experiment)


@contextmanager
def job_run(cfg: MlflowConfig, run_name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """One run per job; an exception (or Ctrl-C) ends it FAILED with the error, never leaving it RUNNING.

    In a sweep the run is a child of the sweep's parent run.
    """
    configure(cfg)
    parent = os.environ.get(PARENT_ENV)
    run = mlflow.start_run(run_name=run_name, tags=dict(tags), parent_run_id=parent)
    try:
        yield run.info.run_id
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        try:
            mlflow.set_tag("error", message[:5000])
        finally:
            mlflow.end_run(status="FAILED")
        log.error("run %s (%s) FAILED: %s", run.info.run_id, run_name, message)
        raise
    mlflow.end_run(status="FINISHED")


def log_params(params: Mapping[str, Any]) -> None:
    mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float]) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


def set_tags(tags: Mapping[str, str]) -> None:
    mlflow.set_tags(dict(tags))


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)


def log_artifacts(paths: list[Path], artifact_path: str | None = None) -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path)


def log_onnx_model(path: Path, example_in: np.ndarray, example_out: np.ndarray) -> None:
    """Log the ONNX file as the run's model 'model', with its tensor signature, in one file."""
    mlflow.onnx.log_model(
        onnx.load(str(path)),
        name="model",
        signature=infer_signature(example_in, example_out),
        save_as_external_data=False,
    )


class SweepCallback(Callback):
    """Hydra callback: a multirun is one parent MLflow run, its jobs are child runs.

    The parent ends FINISHED when every child did and FAILED otherwise, also on Ctrl-C or a failing job
    (Hydra then skips on_multirun_end, so an atexit hook closes it). Under `mlflow run`, MLFLOW_RUN_ID names
    the run MLflow made: it becomes the parent, and is removed from the environment so that the first child
    does not resume (overwrite) it.
    """

    def __init__(self) -> None:
        self.parent: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        cfg = MlflowConfig(**OmegaConf.to_container(config.mlflow, resolve=True))
        mlflow.set_tracking_uri(cfg.tracking_uri)
        client = mlflow.MlflowClient()
        overrides = " ".join(config.hydra.overrides.task)
        tags = {SWEEP_TAG: "true", "git_commit": git_commit(), "sweep.overrides": overrides[:5000]}
        outer = os.environ.pop("MLFLOW_RUN_ID", None)
        if outer:
            self.parent = outer
            for key, value in tags.items():
                client.set_tag(outer, key, value)
        else:
            experiment = client.get_experiment_by_name(cfg.experiment)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.experiment)
            name = "sweep " + time.strftime("%Y-%m-%d %H:%M:%S")
            self.parent = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        client.log_param(self.parent, "sweep.dir", str(config.hydra.sweep.dir))
        os.environ[PARENT_ENV] = self.parent
        atexit.register(self._close, interrupted=True)
        log.info("sweep parent run %s", self.parent)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close(interrupted=False)

    def _close(self, interrupted: bool) -> None:
        if self.parent is None:
            return
        parent, self.parent = self.parent, None
        os.environ.pop(PARENT_ENV, None)
        statuses = [run.info.status for run in child_runs(parent)]
        ok = not interrupted and statuses and all(status == "FINISHED" for status in statuses)
        mlflow.MlflowClient().set_terminated(parent, "FINISHED" if ok else "FAILED")
        log.info("sweep parent run %s ended %s", parent, "FINISHED" if ok else "FAILED")


def child_runs(parent: str) -> list:
    client = mlflow.MlflowClient()
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


class SelectionError(LookupError):
    """No runs match what compare was asked to report on."""


def select_runs(cfg: MlflowConfig, sweep: str | None, filter_string: str | None) -> tuple[pd.DataFrame, str | None]:
    """Runs to compare, oldest first: the children of `sweep`, else of the latest sweep, else every job run of
    the experiment; `filter_string` (MLflow search syntax) narrows them. Returns the runs and the sweep id."""
    mlflow.set_tracking_uri(cfg.tracking_uri)
    client = mlflow.MlflowClient()
    if sweep is not None:
        experiment_id = client.get_run(sweep).info.experiment_id
    else:
        experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            raise SelectionError(f"no experiment {cfg.experiment!r} at {cfg.tracking_uri}; set mlflow.experiment")
        experiment_id = experiment.experiment_id
        latest = client.search_runs(
            [experiment_id], f"tags.{SWEEP_TAG} = 'true'", order_by=["attributes.start_time DESC"], max_results=1
        )
        sweep = latest[0].info.run_id if latest else None
    filters = [f"tags.mlflow.parentRunId = '{sweep}'"] if sweep else []
    filters += [filter_string] if filter_string else []
    runs = mlflow.search_runs(
        [experiment_id], " and ".join(filters), order_by=["attributes.start_time ASC"], max_results=5000
    )
    for tag in (SWEEP_TAG, COMPARISON_TAG):
        if f"tags.{tag}" in runs:
            runs = runs[runs[f"tags.{tag}"].isna()]
    if runs.empty:
        where = f"sweep {sweep}" if sweep else f"experiment {cfg.experiment!r}"
        raise SelectionError(f"no runs in {where}" + (f" match {filter_string!r}" if filter_string else ""))
    return runs.reset_index(drop=True), sweep


def download_artifact(run_id: str, path: str, dst: Path) -> Path | None:
    """A run's artifact, or None if the run has none by that name."""
    client = mlflow.MlflowClient()
    if path not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    return Path(client.download_artifacts(run_id, path, str(dst)))


def log_report(files: list[Path], sweep: str | None, experiment_id: str) -> str:
    """Log the report to the sweep's parent run, or to a new comparison run when there is none; its run id."""
    client = mlflow.MlflowClient()
    run_id = (
        sweep
        or client.create_run(
            experiment_id, run_name="comparison " + time.strftime("%Y-%m-%d %H:%M:%S"), tags={COMPARISON_TAG: "true"}
        ).info.run_id
    )
    for path in files:
        client.log_artifact(run_id, str(path), "report")
    if sweep is None:
        client.set_terminated(run_id, "FINISHED")
    return run_id
