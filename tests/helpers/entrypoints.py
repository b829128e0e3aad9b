"""The entrypoints as a user runs them: src/main.py on the first LFW fold and src/compare.py, in subprocesses, and
the runs they leave in workdir/mlflow.db."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np

from facequant.schema import Tag

from .paths import LFW_ROOT, REPO, WEIGHTS_DIR

# The paired protocol at its smallest: still every thread count, and an interval (6 rounds give 97%).
QUICK_BENCHMARK = ["benchmark.rounds=6", "benchmark.warmup=1", "benchmark.iterations=3", "benchmark.throughput_batch=8"]


def main_overrides(workdir: Path) -> list[str]:
    """The overrides of a quick run on the first LFW fold, with caches and runs under workdir."""
    return [
        "model=msceleb128",
        f"model.weights_dir={WEIGHTS_DIR}",
        f"dataset.root={LFW_ROOT}",
        "dataset.folds=1",
        f"cache_dir={workdir / 'cache'}",
        f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}",
        *QUICK_BENCHMARK,
        "calibration.num_samples=100",
        "sensitivity_faces=24",  # names the same 5 worst tensors as 200 faces, at a quarter of the cost
        f"hydra.run.dir={workdir / 'outputs'}",
        f"hydra.sweep.dir={workdir / 'multirun'}",
    ]


def share_aligned(sweep_workdir: Path, workdir: Path, *entries: str) -> None:
    """Reuse the sweep's aligned faces (and other cache entries) in a new cache: aligning a fold costs ~40 s.

    Hard links, not a symlink: the cache refuses paths that resolve outside it, and its writes replace files.
    Temporary files of a writer in another pytest-xdist worker are left out: they are never entries.
    """
    for entry in ("aligned", *entries):
        src, dst = sweep_workdir / "cache" / entry, workdir / "cache" / entry
        shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns(".*.tmp", "*.lock"))


def main(workdir: Path, *overrides: str, multirun: bool = False, **kwargs) -> subprocess.CompletedProcess:
    flags = ["-m"] if multirun else []
    return subprocess.run(
        [sys.executable, str(REPO / "src" / "main.py"), *flags, *main_overrides(workdir), *overrides],
        cwd=workdir,
        capture_output=True,
        text=True,
        **kwargs,
    )


def run_compare(workdir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """src/compare.py on the runs of workdir/mlflow.db."""
    cmd = [sys.executable, str(REPO / "src" / "compare.py"), f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}"]
    return subprocess.run([*cmd, *overrides], cwd=workdir, capture_output=True, text=True)


def parents(workdir: Path):
    """The sweep parent runs of workdir/mlflow.db, oldest first."""
    df = all_runs(workdir)
    column = f"tags.{Tag.SWEEP}"
    return df[df[column] == "true"].reset_index(drop=True) if column in df else df.iloc[0:0]


def all_runs(workdir: Path):
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["facequant"], order_by=["attributes.start_time ASC"])


def job_runs(workdir: Path):
    """The runs of jobs, oldest first, without sweep parents or comparison runs."""
    df = all_runs(workdir)
    for tag in (Tag.SWEEP, Tag.COMPARISON):
        if f"tags.{tag}" in df:
            df = df[df[f"tags.{tag}"].isna()]
    return df.reset_index(drop=True)


def logged_model_uri(run) -> str:
    """The models:/ URI of the ONNX model a job run logged (a row of job_runs)."""
    models = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run.run_id}'", output_format="list", experiment_ids=[run.experiment_id]
    )
    return models[0].model_uri


def logged_model(run):
    """The ONNX model a job run logged (a row of job_runs)."""
    return mlflow.onnx.load_model(logged_model_uri(run))


def logged_scores(workdir: Path, run_id: str) -> np.ndarray:
    """The scores.csv a job run of workdir/mlflow.db logged: one score per pair."""
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    csv = mlflow.MlflowClient().download_artifacts(run_id, "scores.csv", str(workdir))
    return np.loadtxt(csv, delimiter=",", skiprows=1, usecols=2)
