"""`mlflow run . --env-manager local`: the run MLflow creates becomes the sweep parent, never a job's run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from helpers import LFW_ROOT, QUICK_BENCHMARK, REPO, WEIGHTS_DIR, share_aligned


def test_mlflow_run_nests_jobs_under_its_own_run(sweep, tmp_path):
    share_aligned(sweep[0], tmp_path, "onnx", "scores")  # its warm caches, in a cache of its own
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient().create_experiment("facequant", artifact_location=str(tmp_path / "artifacts"))
    overrides = " ".join(
        [
            f"dataset.root={LFW_ROOT}",
            "dataset.folds=1",
            f"model.weights_dir={WEIGHTS_DIR}",
            f"cache_dir={tmp_path / 'cache'}",
            *QUICK_BENCHMARK,
            "benchmark.threads=[1]",
            "sensitivity=false",  # this test is about the run nesting
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ]
    )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(REPO),
        "-e",
        "main",
        "--env-manager",
        "local",
        "--experiment-name",
        "facequant",
        "-P",
        "quant=fp32,static",
        "-P",
        "model=msceleb128",
        "-P",
        "num_samples=100",
        "-P",
        f"overrides={overrides}",
    ]
    env = os.environ | {"MLFLOW_TRACKING_URI": uri, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_EXPERIMENT_ID", None)  # set by in-process runs of other tests; mlflow run takes one of the two
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["facequant"], order_by=["attributes.start_time ASC"])
    parent = runs[runs["tags.facequant_sweep"] == "true"]
    assert len(parent) == 1 and parent.status.iloc[0] == "FINISHED"
    parent = parent.iloc[0]
    assert parent["params.quant"] == "fp32,static"  # the mlflow run parameters stay on the parent ...
    assert pd.isna(parent["metrics.accuracy"])  # ... and no job overwrote it with its own metrics
    children = runs[runs["tags.mlflow.parentRunId"] == parent.run_id]
    assert children["tags.mlflow.runName"].tolist() == ["fp32", "int8_static_qdq_minmax_100"]
    assert (children.status == "FINISHED").all() and children["metrics.accuracy"].notna().all()


def test_conda_pip_part_resolves_to_the_installed_lock():
    """What conda runs for conda.yaml's pip part (a requirements file written beside conda.yaml), dry: pip takes the
    hash-checked lock and has nothing to install in the set-up's environment."""
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    lines = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    requirements = REPO / f"condaenv.{os.getpid()}.requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "-r", str(requirements)],
            capture_output=True,
            text=True,
        )
    finally:
        requirements.unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Would install" not in proc.stdout, proc.stdout[-2000:]
