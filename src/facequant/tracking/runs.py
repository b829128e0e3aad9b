"""Job and sweep runs that always end: FINISHED, FAILED with the error, or KILLED on a signal."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import mlflow

from facequant.config.running import MlflowConfig
from facequant.machine import git_commit
from facequant.schema import Param, RunRecord, Tag
from facequant.tracking.dead import end_dead_runs
from facequant.tracking.inputs import log_sweep_inputs
from facequant.tracking.records import child_runs
from facequant.tracking.store import _experiment_id, ui_link, use_store

log = logging.getLogger(__name__)


class Terminated(BaseException):
    """SIGTERM arrived; a BaseException, so that Hydra's job runner does not swallow it and runs end KILLED."""


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(f"SIGTERM (signal {signum}): the process was asked to stop")


def handle_sigterm() -> None:
    """Turn SIGTERM (kill, docker stop, Slurm pre-emption) into an exception, as Ctrl-C already is."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def _end_status(exc: BaseException) -> str:
    return "KILLED" if isinstance(exc, KeyboardInterrupt | Terminated) else "FAILED"


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:5000] if str(exc) else type(exc).__name__


def _where() -> dict[str, str]:
    """The host and process of a run, so that a later process on this host can tell whether it still runs."""
    return {Tag.HOST: socket.gethostname(), Tag.PID: str(os.getpid())}


@contextmanager
def job_run(
    cfg: MlflowConfig, run_name: str, tags: Mapping[str, str], parent_run_id: str | None = None
) -> Iterator[str]:
    """One run per job, a child of parent_run_id in a sweep; it ends FINISHED, FAILED (an error) or KILLED
    (Ctrl-C, SIGTERM) with the reason in tag `error`, and never stays RUNNING."""
    use_store(cfg.tracking_uri)
    outer = parent_run_id or os.environ.get("MLFLOW_RUN_ID")
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(outer).info.experiment_id if outer else _experiment_id(client, cfg.experiment)
    end_dead_runs(experiment_id)
    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags=dict(tags) | _where(),
        parent_run_id=parent_run_id,
        log_system_metrics=cfg.system_metrics,
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
        run = client.get_run(parent)
        experiment_id = run.info.experiment_id
        end_dead_runs(experiment_id)
        for key, value in (tags | {k: v for k, v in _where().items() if k not in run.data.tags}).items():
            client.set_tag(parent, key, value)
    else:
        name = "sweep " + time.strftime("%Y-%m-%d %H:%M:%S")
        experiment_id = _experiment_id(client, cfg.experiment)
        end_dead_runs(experiment_id)
        parent = client.create_run(experiment_id, run_name=name, tags=tags | _where()).info.run_id
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
