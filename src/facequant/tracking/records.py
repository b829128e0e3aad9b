"""Reading runs back as typed records: a sweep's children, the runs a report compares, their artifacts."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from facequant.config.running import MlflowConfig
from facequant.schema import REPORT_DIR, RunRecord, Tag
from facequant.tracking.dead import end_dead_runs
from facequant.tracking.store import use_store

log = logging.getLogger(__name__)


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
    end_dead_runs(experiment_id)  # runs a killed process left RUNNING are reported as FAILED, with the reason
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
