"""compare.py register=NAME target=auto on a real sweep, then a deployment's view of that version: the helper loads
it with its own threshold and input contract and decides a genuine and an impostor LFW pair as the study did."""

from __future__ import annotations

import shutil

import mlflow
import pandas as pd

from facequant.deploy import Verifier
from facequant.machine import host_isa
from helpers import LFW_ROOT, job_runs, run_compare


def _first_pairs() -> tuple[tuple[str, str], tuple[str, str]]:
    """The first genuine and the first impostor pair of pairs.txt (fold 1), as image paths."""
    lines = (LFW_ROOT / "pairs.txt").read_text().splitlines()[1:]
    images = LFW_ROOT / "lfw-deepfunneled"
    name, i, j = lines[0].split()
    first, a, second, b = lines[300].split()
    genuine = (images / name / f"{name}_{int(i):04d}.jpg", images / name / f"{name}_{int(j):04d}.jpg")
    impostor = (images / first / f"{first}_{int(a):04d}.jpg", images / second / f"{second}_{int(b):04d}.jpg")
    return genuine, impostor


def test_a_registered_version_verifies_faces_at_its_own_threshold(sweep, tmp_path, monkeypatch):
    workdir, runs = sweep
    shutil.copy(workdir / "mlflow.db", tmp_path / "mlflow.db")  # the sweep's store stays as other tests read it
    parent = runs["tags.mlflow.parentRunId"].iloc[0]  # other tests add later (failed, killed) sweeps to the store
    proc = run_compare(tmp_path, f"sweep={parent}", f"out={tmp_path / 'r'}", "register=facenet", "target=auto")
    alias = f"int8-recommended-{host_isa()}"
    assert proc.returncode == 0 and f"alias {alias}" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    tags = mlflow.MlflowClient().get_model_version_by_alias("facenet", alias).tags
    assert tags["facequant.host_isa"] == host_isa() and tags["facequant.target"] == host_isa()
    validated = tags["facequant.targets_validated"]
    assert validated.startswith(f"{host_isa()} (host: ")  # scored on this host's own kernels
    if tags["facequant.variant"].startswith("int8_static"):  # static variants check their kernels on held-out faces
        assert "kernel cosine mean 0.99" in validated
    assert tags["facequant.threshold_far_1e-3"].startswith("not resolved")  # one fold: 300 impostor pairs
    assert "160x160 RGB face" in tags["facequant.input_contract"]

    verifier = Verifier.from_registry("facenet", far=1e-2)  # 300 impostors resolve FAR=1e-2: 3 false accepts
    assert tags["facequant.threshold_far_1e-2"].startswith(f"{verifier.threshold:.6f} (FP32 ")
    genuine, impostor = _first_pairs()
    same, other = verifier.verify(*genuine), verifier.verify(*impostor)
    assert same.same and not other.same and same.threshold == other.threshold == verifier.threshold
    # the helper aligns and feeds the faces as the job did: the pair's score is the one the run logged
    run = job_runs(tmp_path).set_index("run_id").loc[tags["facequant.run_id"]]
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run.name, artifact_path="scores.csv"))
    assert abs(same.score - logged.score.iloc[0]) < 0.01 and abs(other.score - logged.score.iloc[300]) < 0.01
