"""Runs whose process died: kill -9, an out-of-memory kill or a crash leaves a run RUNNING for good, since its
process never ends it; a later process on the same host sees the pid is gone and ends the run FAILED."""

from __future__ import annotations

import logging
import socket

import mlflow
import psutil

from facequant.schema import Tag

log = logging.getLogger(__name__)


def _alive(pid: str, started_ms: int) -> bool:
    """Whether the process that started a run at started_ms still runs: the pid exists, is no zombie, and was not
    reused by a process started after the run."""
    try:
        process = psutil.Process(int(pid))
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= started_ms / 1000 + 1
    except psutil.AccessDenied:
        return True  # another user's process: it exists
    except (psutil.NoSuchProcess, ValueError):
        return False


def end_dead_runs(experiment_id: str) -> list[str]:
    """End FAILED the experiment's runs still RUNNING whose process was on this host and is gone (kill -9, an
    out-of-memory kill, a crash): nothing else would ever end them. Returns their ids."""
    client = mlflow.MlflowClient()
    here = socket.gethostname()
    running = client.search_runs(
        [experiment_id], f"attributes.status = 'RUNNING' and tags.`{Tag.HOST}` = '{here}'", max_results=10_000
    )
    alive = {run.info.run_id for run in running if _alive(run.data.tags.get(Tag.PID, ""), run.info.start_time or 0)}
    # a live sweep ends its own lost jobs at its end, naming the launcher's retry (tracking.runs.end_lost_runs)
    dead = [run for run in running if run.info.run_id not in alive and run.data.tags.get(Tag.PARENT) not in alive]
    for run in dead:
        reason = (
            f"process died: its process ({here}, pid {run.data.tags.get(Tag.PID)}) is gone and never ended the run "
            "(kill -9, an out-of-memory kill or a crash); a later run, sweep or compare on this host ended it"
        )
        client.set_tag(run.info.run_id, Tag.ERROR, reason)
        client.set_terminated(run.info.run_id, "FAILED")
        log.warning("run %s (%s) ended FAILED: %s", run.info.run_id, run.info.run_name, reason)
    return [run.info.run_id for run in dead]
