"""dataset=folder end to end: src/main.py on a folder of real LFW faces in every format Pillow reads, with one
truncated file."""

from pathlib import Path

import mlflow
import pytest
from PIL import Image

from facequant.schema import UNREADABLE_TXT, Metric
from helpers import job_runs, main, people_tree, share_aligned

# Whose LFW photos each identity of the tree gets.
PEOPLE = {
    "Alice": "Colin_Powell",
    "Bob": "Tony_Blair",
    "Carol": "George_W_Bush",
    "Dave": "Gerhard_Schroeder",
    "Erin": "Donald_Rumsfeld",
}


@pytest.fixture
def tree(lfw, tmp_path):
    """helpers.people_tree of real faces: each identity is one LFW person."""

    def face(identity: str, number: int) -> Image.Image:
        person = PEOPLE[identity]
        return Image.open(lfw.images_dir / person / f"{person}_{number:04d}.jpg").convert("RGB")

    return people_tree(tmp_path / "people", face)


def test_folder_run_end_to_end(tree, sweep, tmp_path):
    """Every pair of the readable images, the corrupt one skipped, counted and listed."""
    share_aligned(sweep[0], tmp_path, "onnx")  # the FP32 export; the tree's faces are new
    base = ["dataset=folder", f"dataset.root={tree}", "dataset.calibration_pool=1", "benchmark.threads=[1]"]
    proc = main(tmp_path, *base, "dataset.skip_unreadable=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = job_runs(tmp_path).iloc[0]
    metric = lambda name: run[f"metrics.{name}"]  # noqa: E731
    assert run["status"] == "FINISHED" and metric(Metric.N_UNREADABLE) == 1 and metric(Metric.N_IMAGES) == 11
    # one singleton calibrates; of Alice 4, Bob 4, Dave 2 and a singleton: 6 + 6 + 1 genuine pairs
    assert metric(Metric.N_GENUINE_PAIRS) == 13 and metric(Metric.N_IMPOSTOR_PAIRS) == 55 - 13
    assert metric(Metric.ROC_AUC) > 0.9  # real faces of four people, in six formats, still verify
    listed = mlflow.MlflowClient().download_artifacts(run["run_id"], UNREADABLE_TXT, str(tmp_path))
    assert Path(listed).read_text().split() == ["Dave/broken.jpg"]
