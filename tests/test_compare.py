"""Sweeps as parent runs, the comparison report built from real runs, and its recommendation rule."""

from __future__ import annotations

import re
import subprocess
import sys

import mlflow
import pandas as pd
import pytest

from conftest import REPO, all_runs, job_runs, main, main_overrides

pytestmark = pytest.mark.integration


def compare(workdir, *overrides):
    cmd = [
        sys.executable,
        str(REPO / "src" / "compare.py"),
        f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}",
        *overrides,
    ]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)


def parents(workdir):
    df = all_runs(workdir)
    return df[df.get("tags.facequant_sweep", pd.Series(dtype=str)) == "true"].reset_index(drop=True)


def test_sweep_is_a_finished_parent_with_three_children(sweep):
    workdir, children = sweep
    (parent,) = [r for _, r in parents(workdir).iterrows()][:1]
    assert parent.status == "FINISHED"
    assert "quant=fp32,dynamic,static" in parent["tags.sweep.overrides"]
    assert parent["tags.git_commit"]
    first = children[children["tags.mlflow.parentRunId"] == parent.run_id]
    assert first["tags.mlflow.runName"].tolist()[:3] == ["fp32", "int8_dynamic", "int8_static_qdq_minmax_100"]


def test_report_from_real_runs(sweep, tmp_path):
    workdir, _ = sweep
    parent = parents(workdir).iloc[0]
    out = tmp_path / "report"
    proc = compare(workdir, f"sweep={parent.run_id}", f"out={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (out / "report.md").read_text()
    children = job_runs(workdir)
    children = children[children["tags.mlflow.parentRunId"] == parent.run_id]
    for _, run in children.iterrows():
        row = next(line for line in text.splitlines() if line.startswith(f"| {run['tags.mlflow.runName']} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == f"{run['metrics.accuracy']:.4f}"
        assert cells[3] == f"{run['metrics.tar_far_1e-3']:.4f}"
        assert cells[7] == f"{run['metrics.size_mib']:.2f}"
        assert cells[9] == f"{run['metrics.latency_p50_ms']:.2f}"
    for section in (
        "Executive summary",
        "Detailed comparison",
        "Similarity distributions",
        "Recommendations",
        "Technical details",
        "Rule: recommend the fastest variant",
    ):
        assert section in text
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} >= {"roc.png", "histograms.png", "pareto.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(f"({p.name})" in text for p in pngs)
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.run_id, "report")}
    assert "report/report.md" in logged and "report/roc.png" in logged


def test_default_selection_is_the_latest_sweep(sweep, tmp_path):
    workdir, _ = sweep
    proc = compare(workdir, f"out={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert parents(workdir).iloc[-1].run_id in (tmp_path / "report.md").read_text()


def test_failing_job_fails_the_parent(sweep):
    workdir, _ = sweep  # warm caches: the fp32 job is quick
    proc = main(workdir, "quant=fp32,static", "calibration.num_samples=6000", multirun=True)
    assert proc.returncode != 0
    parent = parents(workdir).iloc[-1]
    assert parent.status == "FAILED"
    kids = job_runs(workdir)
    kids = kids[kids["tags.mlflow.parentRunId"] == parent.run_id]
    assert sorted(kids.status) == ["FAILED", "FINISHED"]
    assert "only 5532 LFW images" in kids[kids.status == "FAILED"]["tags.error"].iloc[0]


def fake_run(client, experiment, parent, name, mode, accuracy, tar, size, latency, model="msceleb128"):
    """A finished run shaped like a job's, with chosen numbers."""
    run = client.create_run(
        experiment,
        run_name=name,
        tags={
            "mlflow.parentRunId": parent,
            "is_baseline": str(mode == "fp32").lower(),
            "dataset_fingerprint": "fp-6",
            "git_commit": "abc",
        },
    )
    rid = run.info.run_id
    for key, value in {
        "quant.mode": mode,
        "model.name": model,
        "model_info.weights_sha256": model * 4,
        "dataset.folds": "10",
        "calibration.method": "minmax",
        "calibration.num_samples": "500",
    }.items():
        client.log_param(rid, key, value)
    metrics = {
        "accuracy": accuracy,
        "accuracy_std": 0.004,
        "tar_far_1e-3": tar,
        "tar_far_1e-4": tar - 0.01,
        "roc_auc": 0.99,
        "eer": 0.01,
        "size_mib": size,
        "latency_p50_ms": latency,
        "latency_p95_ms": latency,
        "throughput_ips": 1000 / latency,
        "genuine_mean": 0.7,
        "genuine_std": 0.1,
        "impostor_mean": 0.0,
        "impostor_std": 0.1,
        "threshold": 0.4,
        "far_resolution": 1 / 3000,
        "n_pairs": 6000,
    }
    for key, value in metrics.items():
        client.log_metric(rid, key, value)
    client.set_terminated(rid, "FINISHED")


@pytest.fixture
def fake_sweep(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("facequant", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment, run_name="sweep", tags={"facequant_sweep": "true"}).info.run_id
    client.set_terminated(parent, "FINISHED")
    return client, experiment, parent


def test_recommendation_refuses_a_lossy_variant_and_never_overstates_size(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "fp32", "fp32", 0.9927, 0.97, 86.98, 18.0)
    fake_run(client, experiment, parent, "int8_dynamic", "dynamic", 0.9925, 0.97, 86.35, 17.0)
    fake_run(client, experiment, parent, "int8_static_qdq_minmax_500", "static", 0.9427, 0.90, 22.57, 6.2)
    proc = compare(tmp_path, f"out={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "int8_static_qdq_minmax_500: not recommended: accuracy drop 5.00 pt > 0.50 pt" in text
    assert "**Recommended: int8_dynamic**" in text
    dynamic_claims = [line for line in text.splitlines() if "int8_dynamic" in line and "smaller" in line]
    assert dynamic_claims and all("0.7% smaller (no meaningful size cut)" in line for line in dynamic_claims)
    assert not re.search(r"\d\s*-\s*\d+x", text)  # no "3-4x" style claim anywhere


def test_without_fp32_drops_are_na(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "int8_static_qdq_minmax_500", "static", 0.99, 0.97, 22.57, 6.2)
    proc = compare(tmp_path, f"out={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "drops, compression and speed-up are n/a (no baseline" in text
    assert "No recommendation: this selection has no FP32 run" in text


def test_mixed_models_are_compared_apart(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "fp32", "fp32", 0.99, 0.97, 86.98, 18.0)
    fake_run(client, experiment, parent, "fp32", "fp32", 0.97, 0.80, 89.6, 18.0, model="vggface2")
    proc = compare(tmp_path, f"out={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "These runs mix 2 model/dataset combinations" in text
    assert "## msceleb128 on LFW" in text and "## vggface2 on LFW" in text


def test_no_matching_runs_is_a_clear_error(fake_sweep, tmp_path):
    proc = compare(tmp_path, "filter=\"params.model.name = 'nothing'\"")
    assert proc.returncode != 0
    assert "no runs in sweep" in proc.stderr and "nothing" in proc.stderr


def test_ctrl_c_fails_the_running_child_and_the_parent(sweep):
    import signal
    import time

    workdir, _ = sweep
    before = len(parents(workdir))
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "src" / "main.py"), "-m", "quant=fp32", *main_overrides(workdir)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the job's run exists, then interrupt it
        kids = job_runs(workdir)
        if len(parents(workdir)) > before and (kids.status == "RUNNING").any():
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    parent = parents(workdir).iloc[-1]
    assert parent.status == "FAILED"
    child = job_runs(workdir).iloc[-1]
    assert child["tags.mlflow.parentRunId"] == parent.run_id
    assert child.status == "FAILED" and child["tags.error"].startswith("KeyboardInterrupt")
