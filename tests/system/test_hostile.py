"""Hostile or unlucky input through src/main.py: a model that returns NaN, an ONNX file whose external weights are
edited after a run, and a sweep killed with SIGKILL. Each ends in a clear state, on a small folder of real LFW faces."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from facequant.schema import Metric, Tag
from helpers import REPO, all_runs, colour_model, job_runs, main, main_overrides, run_compare

# Folder identity -> the LFW person whose first three photos it holds; Eve's are washed out to near white, Zed is a
# singleton that dataset.calibration_pool=1 reserves.
PEOPLE = {"Ann": "Colin_Powell", "Ben": "Tony_Blair", "Cy": "George_W_Bush", "Dee": "Gerhard_Schroeder"}
BRIGHT, SINGLE = ("Eve", "Donald_Rumsfeld"), ("Zed", "Ariel_Sharon")
FOLDER = ["dataset=folder", "dataset.calibration_pool=1", "quant=fp32", "benchmark.threads=[1]"]
COLOUR = ["model=onnx", "model.preprocess=fixed", "model.channel_order=RGB"]  # how colour_model is fed


@pytest.fixture(scope="module")
def faces(lfw, tmp_path_factory) -> Path:
    """Five identities of three real faces each (one washed out) and a singleton, with a pairs CSV of 15 genuine
    and 15 impostor pairs that uses every image but the singleton's."""
    root = tmp_path_factory.mktemp("faces") / "people"
    for name, person in [*PEOPLE.items(), BRIGHT, SINGLE]:
        (root / name).mkdir(parents=True)
        for i in range(1, 2 if name == SINGLE[0] else 4):
            img = Image.open(lfw.images_dir / person / f"{person}_{i:04d}.jpg").convert("RGB")
            (ImageEnhance.Brightness(img).enhance(4.0) if name == BRIGHT[0] else img).save(root / name / f"{i}.jpg")
    names = [*PEOPLE, BRIGHT[0]]
    rows = [f"{n}/{a}.jpg,{n}/{b}.jpg,1" for n in names for a, b in ((1, 2), (1, 3), (2, 3))]
    rows += [f"{n}/{i}.jpg,{names[(k + 1) % 5]}/{i}.jpg,0" for k, n in enumerate(names) for i in (1, 2, 3)]
    (root / "pairs.csv").write_text("left,right,label\n" + "\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("protocol", ["all", "pairs"])
def test_a_model_that_returns_nan_fails_the_job_naming_the_model_and_the_face(faces, tmp_path, protocol):
    model = colour_model(tmp_path / "nan.onnx", 160, nan_above=0.5)  # NaN for Eve's washed-out faces only
    data = [f"dataset.root={faces}", f"dataset.protocol={protocol}"]
    data += ["dataset.pairs=pairs.csv"] if protocol == "pairs" else []
    proc = main(tmp_path, *FOLDER, *data, *COLOUR, f"model.path={model}")
    assert proc.returncode != 0
    (run,) = [r for _, r in job_runs(tmp_path).iterrows()] or [proc.stderr[-3000:]]
    assert run.status == "FAILED"
    expected = f"NonFiniteEmbeddings: {model} returned non-finite embeddings (NaN or inf) for 3 of 15 faces, the first "
    assert run[f"tags.{Tag.ERROR}"].startswith(expected + "Eve/1.jpg")
    assert "Input contains NaN" not in proc.stderr
    # nothing logged before the evaluation is lost
    assert run[f"metrics.{Metric.N_IMAGES}"] == 15 and run["metrics.time_align_s"] > 0
    assert run["params.model.name"] == "onnx" and run[f"tags.{Tag.DATASET_FINGERPRINT}"]


def test_editing_an_external_data_file_is_another_model(faces, tmp_path):
    model = colour_model(tmp_path / "ext.onnx", 160, weights="ext.weights")
    keys = [f"dataset.root={faces}", "dataset.protocol=all", *COLOUR, f"model.path={model}"]
    first = main(tmp_path, *FOLDER, *keys)
    assert first.returncode == 0, first.stderr[-3000:]
    other = (np.arange(12, dtype=np.float32)[::-1].reshape(3, 4) / 10 - 0.5).astype("<f4")
    (tmp_path / "ext.weights").write_bytes(other.tobytes() + (tmp_path / "ext.weights").read_bytes()[other.nbytes :])
    second = main(tmp_path, *FOLDER, *keys)
    assert second.returncode == 0, second.stderr[-3000:]
    runs = job_runs(tmp_path)
    assert list(runs.status) == ["FINISHED", "FINISHED"]
    assert list(runs[f"metrics.{Metric.EVAL_CACHED}"]) == [0, 0]  # the edited weights are not scored from the cache
    assert runs["params.model_info.weights_sha256"].nunique() == 2
    assert runs[f"metrics.{Metric.GENUINE_MEAN}"].nunique() == 2


def test_a_sweep_killed_with_sigkill_is_ended_failed_by_the_next_compare(lfw_root, tmp_path):
    """The sweep dies aligning LFW's first fold, its parent and job runs RUNNING; compare.py ends them."""
    model = colour_model(tmp_path / "colour.onnx", 160)
    cmd = [sys.executable, str(REPO / "src" / "main.py"), "-m", *main_overrides(tmp_path), *COLOUR]
    sweep = subprocess.Popen(
        [*cmd, f"model.path={model}", "quant=fp32"], cwd=tmp_path, start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and sweep.poll() is None:
            time.sleep(0.5)
            if (tmp_path / "mlflow.db").exists() and _running(tmp_path) == 2:  # the parent and its job
                break
        assert sweep.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    assert sweep.returncode == -signal.SIGKILL
    proc = run_compare(tmp_path, f"out={tmp_path / 'report'}")
    runs = all_runs(tmp_path)
    assert list(runs.status) == ["FAILED", "FAILED"], proc.stderr[-3000:]
    assert all(
        error.startswith(f"process died: its process ({socket.gethostname()}, pid {sweep.pid})")
        for error in runs[f"tags.{Tag.ERROR}"]
    )
    report = (tmp_path / "report" / "report.md").read_text()
    assert "fp32 (FAILED: process died" in report and "no error recorded" not in report


def _running(workdir: Path) -> int:
    """How many runs of workdir/mlflow.db are RUNNING, read with sqlite3: an MLflow client would migrate the schema
    the sweep is still creating."""
    try:
        with sqlite3.connect(workdir / "mlflow.db") as db:
            return db.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0]
    except sqlite3.OperationalError:  # no tables yet
        return 0
