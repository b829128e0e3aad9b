"""Faults and bad input, tried as a new user would: each fails clearly, and no run is lost or left RUNNING.

The jobs here fail at once: those that should run fail at their first stage on an image that cannot be decoded (the
pre-flight checks the files are there, not every pixel), the others in the pre-flight (no LFW at dataset.root); so
these tests need neither the real data nor the weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import mlflow
import pytest

from helpers import REPO, all_runs, job_runs, make_lfw, parents, photo, run_compare, truncated_jpeg

NO_LFW = "dataset.root=/nonexistent/lfw"
UNDECODABLE = "cannot be decoded"


def failing_lfw(workdir: Path) -> list[str]:
    """Overrides of jobs that pass the pre-flight and fail at their start: a tiny LFW with 26 images outside its
    pairs (calibration.num_samples<=26 fits) whose pair image A_0001.jpg cannot be decoded, and a model=file path
    that is never loaded."""
    root = make_lfw(workdir / "lfw", per_identity=10)
    (root / "lfw" / "A" / "A_0001.jpg").write_bytes(truncated_jpeg(photo("A", 1)))
    (workdir / "never_loaded.pt").write_bytes(b"")
    return [f"dataset.root={root}", "dataset.folds=1", "model=file", f"model.path={workdir / 'never_loaded.pt'}"]


def quick(workdir: Path, *overrides: str, multirun: bool = True, uri: str | None = None) -> subprocess.Popen:
    """main.py with jobs that fail at once (in the pre-flight: no LFW), started in the background."""
    uri = uri or f"sqlite:///{workdir / 'mlflow.db'}"
    cmd = [sys.executable, str(REPO / "src" / "main.py"), *(["-m"] if multirun else [])]
    cmd += ["model=msceleb128", NO_LFW, f"mlflow.tracking_uri={uri}", f"hydra.sweep.dir={workdir / 'multirun'}"]
    cmd += [f"hydra.run.dir={workdir / 'outputs'}", f"cache_dir={workdir / 'cache'}", *overrides]
    return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_calibration_sweep_runs_each_distinct_job_once(tmp_path):
    proc = quick(
        tmp_path,
        *failing_lfw(tmp_path),
        "quant=fp32,dynamic,static",
        "calibration=minmax,entropy,percentile",
        "calibration.num_samples=10,20",
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and UNDECODABLE in err  # every job failed, and the multirun says so, once
    assert "Traceback" not in err and len([line for line in err.splitlines() if line.startswith("error: ")]) == 1
    (parent,) = [r for _, r in parents(tmp_path).iterrows()]
    experiment = mlflow.MlflowClient().get_experiment(parent.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on runs
    link = f"http://127.0.0.1:5000/#/experiments/{parent.experiment_id}/runs?workflowType=machine_learning"
    assert f"MLflow runs of this sweep: {link}" in out
    assert parent.status == "FAILED"
    assert (parent["tags.sweep.jobs"], parent["tags.sweep.dropped_repeats"]) == ("8", "10")
    kids = job_runs(tmp_path)
    assert len(kids) == 8 and kids["tags.variant_key"].nunique() == 8
    assert (kids["tags.mlflow.parentRunId"] == parent.run_id).all() and (kids.status == "FAILED").all()
    assert kids["tags.error"].str.contains(UNDECODABLE).all()
    static = kids["params.quant.mode"] == "static"
    assert kids.loc[~static, "params.calibration.method"].isna().all()
    assert kids.loc[static, "params.calibration.method"].notna().all()


def test_a_job_that_fails_after_the_pre_flight_leaves_a_failed_run_with_the_reason(tmp_path):
    proc = quick(tmp_path, *failing_lfw(tmp_path), "quant=fp32", multirun=False)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and f"error: 1 image(s) under {tmp_path / 'lfw' / 'lfw'} {UNDECODABLE}" in err
    assert "Traceback" not in err
    (run,) = [r for _, r in job_runs(tmp_path).iterrows()]
    assert run.status == "FAILED" and UNDECODABLE in run["tags.error"]
    assert "dataset.skip_unreadable=true" in run["tags.error"]


def test_a_bad_value_in_any_job_fails_the_sweep_before_it_starts(tmp_path):
    proc = quick(tmp_path, "quant=fp32,static", "calibration.num_samples=100,0")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "error: calibration.num_samples=0 is out of range" in err
    assert not (tmp_path / "mlflow.db").exists() or all_runs(tmp_path).empty


def test_two_sweeps_on_a_new_sqlite_file_record_every_run(tmp_path):
    overrides = failing_lfw(tmp_path)
    procs = [
        quick(tmp_path, *overrides, "quant=fp32,dynamic", f"hydra.sweep.dir={tmp_path / f'm{i}'}") for i in range(2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert not any("already exists" in e for e in errs), errs
    assert len(parents(tmp_path)) == 2
    kids = job_runs(tmp_path)
    assert len(kids) == 4 and set(kids["tags.mlflow.parentRunId"]) == set(parents(tmp_path).run_id)


@pytest.mark.parametrize("multirun", [False, True])
def test_a_tracking_server_that_does_not_answer_fails_fast(tmp_path, multirun):
    start = time.monotonic()
    proc = quick(tmp_path, "quant=fp32", multirun=multirun, uri="http://127.0.0.1:9")
    _, err = proc.communicate(timeout=120)
    assert time.monotonic() - start < 30
    assert proc.returncode != 0
    assert "MLflow tracking server at http://127.0.0.1:9 does not answer" in err
    assert not (tmp_path / "cache").exists()  # no work started


class Refuse(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(403)
        self.end_headers()

    def log_message(self, *_) -> None:
        pass


def test_a_tracking_server_that_refuses_is_named_as_such(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        proc = quick(tmp_path, "quant=fp32", multirun=False, uri=uri)
        _, err = proc.communicate(timeout=120)
    finally:
        server.shutdown()
    assert proc.returncode != 0 and f"MLflow tracking server at {uri} refuses the request (HTTP 403" in err


def test_compare_with_an_unknown_sweep_id_says_what_to_pass(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.MlflowClient().create_experiment("facequant", artifact_location=str(tmp_path / "artifacts"))
    proc = run_compare(tmp_path, "sweep=0123456789abcdef")
    assert proc.returncode != 0
    assert "no run 0123456789abcdef at sqlite:///" in proc.stderr and "sweep=<run id of a sweep parent>" in proc.stderr
    assert "MlflowException" not in proc.stderr


def test_benchmark_paths_are_resolved_before_the_child_starts(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import sweep_time
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    monkeypatch.chdir(tmp_path)
    args = sweep_time.absolute(argparse.Namespace(lfw="../shared/data/lfw", weights="~/w", threads=2))
    assert args.lfw == str((tmp_path / "../shared/data/lfw").resolve())
    assert args.weights == str(Path.home() / "w")
    workdir = tmp_path / "work"
    workdir.mkdir()
    failing = argparse.Namespace(lfw=str(tmp_path / "nothing"), weights=str(tmp_path / "w"), threads=2, folds=1)
    with pytest.raises(sweep_time.SweepFailed, match=r"log is kept at .*sweep.log"):
        sweep_time.sweep(workdir, tmp_path / "cache", failing)
    assert "LFW not found" in (workdir / "sweep.log").read_text()


def test_a_parallel_launcher_on_sqlite_is_refused_before_any_job(tmp_path):
    proc = quick(tmp_path, "quant=fp32,dynamic", "hydra/launcher=ray")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "hydra/launcher=ray runs jobs in parallel processes, and SQLite" in err
    assert "mlflow server --backend-store-uri postgresql://" in err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "cache").exists()
