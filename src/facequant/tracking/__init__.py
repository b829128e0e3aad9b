"""Every MLflow call of the project: job and sweep runs that always end, logging, and reading runs back as records.

`inputs` logs the evaluation and calibration sets as MLflow datasets; `registry` registers a recommended model.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
import requests
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from facequant.cache.files import exclusive
from facequant.config.sections import MlflowConfig
from facequant.schema import MODEL_ARTIFACT, REPORT_DIR, Param, RunRecord, Tag
from facequant.tracking.inputs import (
    log_calibration_set,
    log_evaluation_set,
    log_sensitivity_set,
    log_sweep_inputs,
    log_validation_set,
)
from facequant.tracking.registry import RegistryError, register

# re-exported submodule API
__all__ = [
    "log_calibration_set",
    "log_evaluation_set",
    "log_sensitivity_set",
    "log_validation_set",
    "register",
    "RegistryError",
]

log = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
PROBE_TIMEOUT_S = 5
PROBE_TRIES = 3


class TrackingError(RuntimeError):
    """The tracking server does not answer, or refuses the request."""


class Terminated(BaseException):
    """SIGTERM arrived; a BaseException, so that Hydra's job runner does not swallow it and runs end KILLED."""


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(f"SIGTERM (signal {signum}): the process was asked to stop")


def handle_sigterm() -> None:
    """Turn SIGTERM (kill, docker stop, Slurm pre-emption) into an exception, as Ctrl-C already is."""
    signal.signal(signal.SIGTERM, _raise_terminated)


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


def probe(uri: str) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer or refuses requests."""
    if not uri.startswith(("http://", "https://")):
        return
    error: Exception | None = None
    for attempt in range(PROBE_TRIES):
        try:
            response = requests.get(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S)
        except requests.RequestException as exc:
            error = exc
            time.sleep(attempt + 1)
            continue
        if response.ok:
            return
        raise TrackingError(
            f"the MLflow tracking server at {uri} refuses the request (HTTP {response.status_code} on /health); "
            "check its address, credentials (MLFLOW_TRACKING_USERNAME/PASSWORD or TOKEN) and proxy"
        )
    raise TrackingError(
        f"the MLflow tracking server at {uri} does not answer ({type(error).__name__}); start it "
        "(`mlflow server --host 127.0.0.1 --port 5000 ...`) or set mlflow.tracking_uri to a reachable server"
    )


def use_store(uri: str) -> None:
    """Point MLflow at uri; a new SQLite file gets its tables under a file lock, so concurrent sweeps don't race."""
    probe(uri)
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        with exclusive(db):  # makes its folder
            mlflow.MlflowClient().search_experiments(max_results=1)  # creates or migrates the schema


def _experiment_id(client: mlflow.MlflowClient, name: str) -> str:
    """The experiment's id, created if needed, tagged as model development so the UI opens on its runs."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:  # created meanwhile by a concurrent sweep
            experiment = client.get_experiment_by_name(name)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def ui_link(uri: str, experiment_id: str) -> str:
    """The MLflow UI page of the experiment's runs in model-training mode (the UI defaults to GenAI mode)."""
    page = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"http://127.0.0.1:5000/{page} (after `mlflow ui --backend-store-uri {uri}`)"


def _end_status(exc: BaseException) -> str:
    return "KILLED" if isinstance(exc, KeyboardInterrupt | Terminated) else "FAILED"


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:5000] if str(exc) else type(exc).__name__


@contextmanager
def job_run(
    cfg: MlflowConfig, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None
) -> Iterator[str]:
    """One run per job, a child of parent_run_id in a sweep; it ends FINISHED, FAILED (an error) or KILLED
    (Ctrl-C, SIGTERM) with the reason in tag `error`, and never stays RUNNING."""
    use_store(cfg.tracking_uri)
    outer = parent_run_id or os.environ.get("MLFLOW_RUN_ID")
    client = mlflow.MlflowClient()
    if outer:
        mlflow.set_experiment(experiment_id=client.get_run(outer).info.experiment_id)
    else:
        mlflow.set_experiment(experiment_id=_experiment_id(client, cfg.experiment))
    where = {Tag.HOST: socket.gethostname(), Tag.PID: str(os.getpid())}
    run = mlflow.start_run(
        run_name=run_name, tags=dict(tags) | where, parent_run_id=parent_run_id, log_system_metrics=cfg.system_metrics
    )
    try:
        yield run.info.run_id
    except BaseException as exc:
        status = _end_status(exc)
        try:
            mlflow.set_tag(Tag.ERROR, _error_text(exc))
        finally:
            mlflow.end_run(status=status)
        log.error("run %s (%s) %s: %s", run.info.run_id, run_name, status, _error_text(exc))
        raise
    mlflow.end_run(status="FINISHED")


@contextmanager
def sweep_run(cfg: MlflowConfig, overrides: str, sweep_dir: str, jobs: int, dropped: int) -> Iterator[str]:
    """The parent run of a multirun (or the run `mlflow run` made): FINISHED only if every child finished."""
    use_store(cfg.tracking_uri)
    client = mlflow.MlflowClient()
    tags = {
        Tag.SWEEP: "true",
        Tag.GIT_COMMIT: git_commit(),
        Tag.SWEEP_OVERRIDES: overrides[:5000],
        Tag.SWEEP_JOBS: str(jobs),
        Tag.SWEEP_DROPPED: str(dropped),
    }
    parent = os.environ.pop("MLFLOW_RUN_ID", None)  # a child must not resume the run `mlflow run` made
    if parent:
        experiment_id = client.get_run(parent).info.experiment_id
        for key, value in tags.items():
            client.set_tag(parent, key, value)
    else:
        name = "sweep " + time.strftime("%Y-%m-%d %H:%M:%S")
        experiment_id = _experiment_id(client, cfg.experiment)
        parent = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    client.log_param(parent, Param.SWEEP_DIR, sweep_dir)
    log.info("sweep parent run %s: %d job(s), %d repeat(s) dropped", parent, jobs, dropped)
    status = "FAILED"
    try:
        yield parent
        children = end_lost_runs(parent)
        log_sweep_inputs(parent, [run.run_id for run in children])
        # a job that failed before its run existed leaves fewer children than jobs; a retried job has two
        done = {run.tag(Tag.VARIANT_KEY) for run in children if run.finished}
        status = "FINISHED" if len(done) == jobs else "FAILED"
    except BaseException as exc:
        status = _end_status(exc)
        client.set_tag(parent, Tag.ERROR, _error_text(exc))
        end_lost_runs(parent, stopped=exc)
        raise
    finally:
        client.set_terminated(parent, status)
        log.info("sweep parent run %s ended %s", parent, status)
        print(f"MLflow runs of this sweep: {ui_link(cfg.tracking_uri, experiment_id)}", flush=True)


def end_lost_runs(parent: str, stopped: BaseException | None = None) -> list[RunRecord]:
    """End the children still RUNNING once the sweep's jobs have returned: their process died (a lost Ray worker,
    an OOM kill) before it could end them, so FAILED. When the sweep itself stopped (stopped), its jobs still
    running are ended as the sweep was. Tags the parent with how many; returns the children."""
    client = mlflow.MlflowClient()
    children = child_runs(parent)
    lost = [run for run in children if run.status == "RUNNING"]
    for run in lost:
        if stopped is not None:
            reason, status = f"the sweep stopped ({_error_text(stopped)}) before this job ended", _end_status(stopped)
        else:
            key = run.tag(Tag.VARIANT_KEY)
            retry = next((r for r in children if r.finished and r.tag(Tag.VARIANT_KEY) == key), None)
            reason, status = (
                f"its process ({run.tag(Tag.HOST)}, pid {run.tag(Tag.PID)}) died before it could end the run: a lost "
                "worker, an out-of-memory kill or SIGKILL; "
                + (f"the launcher retried the job as run {retry.run_id}" if retry else "no run of this job finished"),
                "FAILED",
            )
        client.set_tag(run.run_id, Tag.ERROR, reason[:5000])
        client.set_terminated(run.run_id, status)
        log.warning("run %s (%s) ended %s: %s", run.run_id, run.name, status, reason)
    if lost:
        client.set_tag(parent, Tag.SWEEP_LOST, str(len(lost)))
    return child_runs(parent) if lost else children


def log_params(params: Mapping[str, Any]) -> None:
    mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def set_tags(tags: Mapping[str, str]) -> None:
    mlflow.set_tags(dict(tags))


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)


def log_artifacts(paths: list[Path], artifact_path: str | None = None) -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path)


def log_onnx_model(path: Path, example_in: np.ndarray, example_out: np.ndarray) -> None:
    """Log the ONNX file as the run's model, with its tensor signature, in one file."""
    mlflow.onnx.log_model(
        onnx.load(str(path)),
        name=MODEL_ARTIFACT,
        signature=infer_signature(example_in, example_out),
        save_as_external_data=False,
    )


def record(run: Run) -> RunRecord:
    """The only place that maps an MLflow run onto the schema's record."""
    return RunRecord(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        name=run.info.run_name or run.data.tags.get(Tag.RUN_NAME, ""),
        status=run.info.status,
        start_time=int(run.info.start_time or 0),
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


def _search(experiment_id: str, filter_string: str, order: str = "ASC", limit: int | None = None) -> list[RunRecord]:
    client = mlflow.MlflowClient()
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string,
            order_by=[f"attributes.start_time {order}"],
            max_results=limit or 1000,
            page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token or limit:
            return [record(r) for r in runs]


def _parent_filter(parent: str) -> str:
    return f"tags.`{Tag.PARENT}` = '{parent}'"


def child_runs(parent: str) -> list[RunRecord]:
    experiment = mlflow.MlflowClient().get_run(parent).info.experiment_id
    return _search(experiment, _parent_filter(parent))


class SelectionError(LookupError):
    """No runs match what compare was asked to report on."""


ALL_SWEEPS = "all"


def _sweep_experiment(client: mlflow.MlflowClient, sweep: str, uri: str) -> str:
    try:
        return client.get_run(sweep).info.experiment_id
    except MlflowException:
        raise SelectionError(
            f"no run {sweep} at {uri}: pass sweep=<run id of a sweep parent> (see the parent runs tagged "
            f"facequant_sweep=true), sweep=[id1,id2] for several, sweep={ALL_SWEEPS} for every job run of the "
            "experiment, or leave sweep unset for the latest sweep"
        ) from None


def select_runs(
    cfg: MlflowConfig, sweep: str | Sequence[str] | None, filter_string: str | None
) -> tuple[list[RunRecord], str | None]:
    """Runs to compare, oldest first: the children of `sweep` (one parent id or several), of the latest sweep when
    unset, or every job run of the experiment for sweep=all; `filter_string` (MLflow search syntax) narrows them.
    Returns the runs and the one sweep they came from (None when several or all)."""
    use_store(cfg.tracking_uri)
    client = mlflow.MlflowClient()
    sweeps = [sweep] if isinstance(sweep, str) else list(sweep or [])
    if sweeps and sweeps != [ALL_SWEEPS]:
        experiments = {_sweep_experiment(client, s, cfg.tracking_uri) for s in sweeps}
        if len(experiments) > 1:
            raise SelectionError(f"sweeps {', '.join(sweeps)} are in different experiments; compare them one at a time")
        experiment_id = experiments.pop()
    else:
        experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            raise SelectionError(f"no experiment {cfg.experiment!r} at {cfg.tracking_uri}; set mlflow.experiment")
        experiment_id = experiment.experiment_id
        if not sweeps:
            latest = _search(experiment_id, f"tags.{Tag.SWEEP} = 'true'", order="DESC", limit=1)
            sweeps = [latest[0].run_id] if latest else []
    parents = [] if sweeps == [ALL_SWEEPS] else sweeps
    runs = []
    try:
        for parent in parents or [None]:
            filters = ([_parent_filter(parent)] if parent else []) + ([filter_string] if filter_string else [])
            runs += _search(experiment_id, " and ".join(filters))
    except MlflowException as exc:
        raise SelectionError(f"MLflow rejected the filter {filter_string!r}: {exc.message}") from None
    runs = sorted(
        (r for r in runs if r.tag(Tag.SWEEP) is None and r.tag(Tag.COMPARISON) is None), key=lambda r: r.start_time
    )
    where = f"sweep(s) {', '.join(parents)}" if parents else f"experiment {cfg.experiment!r}"
    if not runs:
        raise SelectionError(f"no runs in {where}" + (f" match {filter_string!r}" if filter_string else ""))
    return runs, parents[0] if len(parents) == 1 else None


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
            experiment_id, run_name="comparison " + time.strftime("%Y-%m-%d %H:%M:%S"), tags={Tag.COMPARISON: "true"}
        ).info.run_id
    )
    for path in files:
        client.log_artifact(run_id, str(path), REPORT_DIR)
    if sweep is None:
        client.set_terminated(run_id, "FINISHED")
    return run_id
