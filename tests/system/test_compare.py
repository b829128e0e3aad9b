"""src/compare.py on a real sweep's runs, and sweeps whose job fails or whose child is signalled."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import mlflow
import pytest

from helpers import REPO, job_runs, main, main_overrides, parents
from helpers import run_compare as compare


def test_report_from_real_runs(sweep, tmp_path):
    workdir, _ = sweep
    parent = parents(workdir).iloc[0]
    out = tmp_path / "report"
    proc = compare(workdir, f"sweep={parent.run_id}", f"out={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (out / "report.md").read_text()
    children = job_runs(workdir)
    children = children[children["tags.mlflow.parentRunId"] == parent.run_id]
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Model | Accuracy |"))
    heads = [c.strip() for c in header.strip("|").split("|")]
    for _, run in children.iterrows():
        row = next(line for line in lines if line.startswith(f"| {run['tags.mlflow.runName']} |"))
        cells = dict(zip(heads, (c.strip() for c in row.strip("|").split("|")), strict=True))
        first = run["params.benchmark.threads"].split(",")[0]
        assert cells["Accuracy"] == f"{run['metrics.accuracy']:.4f}"
        assert cells["TAR@FAR=1e-3"] == f"{run['metrics.tar_far_1e-3']:.4f}"
        assert cells["Size (MiB)"] == f"{run['metrics.size_mib']:.2f}"
        assert cells[f"p50 {first}T (ms)"] == f"{run['metrics.latency_p50_ms']:.2f}"
        if run["tags.is_baseline"] == "true":
            assert cells[f"Speed-up {first}T"] == "1.00x"
            assert cells["Acc. drop (pt)"] == "reference"
        else:
            assert cells[f"Speed-up {first}T"] == (
                f"{run['metrics.speedup']:.2f}x [{run['metrics.speedup_ci_low']:.2f}, "
                f"{run['metrics.speedup_ci_high']:.2f}]"
            )
            star = "*" if run["metrics.mcnemar_p_acc"] < 0.05 else ""
            assert cells["Acc. drop (pt)"] == (
                f"{100 * run['metrics.accuracy_drop']:.2f} pt [{100 * run['metrics.accuracy_drop_ci_low']:.2f}, "
                f"{100 * run['metrics.accuracy_drop_ci_high']:.2f}]{star}"
            )
    for section in (
        "Executive summary",
        "Detailed comparison",
        "Similarity distributions",
        "### Decision flips",
        "### Embedding drift",
        "Recommendations",
        "upper end of their 95% paired-bootstrap interval",
        "Technical details",
        "Rule: recommend the fastest variant",
        "- Latency, paired: each job timed its variant on ort f32",
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
    # past the pre-flight, which checks the calibration pool, the static job runs out of held-out faces
    proc = main(workdir, "quant=fp32,static", "sensitivity_faces=5500", "benchmark.threads=[1]", multirun=True)
    assert proc.returncode == 2 and "error: sensitivity_faces=5500 but only 5432 held-out images" in proc.stderr
    parent = parents(workdir).iloc[-1]
    assert parent.status == "FAILED"
    kids = job_runs(workdir)
    kids = kids[kids["tags.mlflow.parentRunId"] == parent.run_id]
    assert sorted(kids.status) == ["FAILED", "FINISHED"]
    assert "only 5432 held-out images" in kids[kids.status == "FAILED"]["tags.error"].iloc[0]


def interruptible() -> None:
    """Ctrl-C's default in the child, as a terminal gives it: pytest started in the background by a
    non-interactive shell ignores SIGINT, and its children would inherit that and never see the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "reason"), [(signal.SIGINT, "KeyboardInterrupt"), (signal.SIGTERM, "Terminated")])
def test_a_signal_ends_the_running_child_and_the_parent_killed(sweep, sig, reason):
    workdir, _ = sweep
    before = len(parents(workdir))
    # warm caches make the job quick: a long benchmark keeps it RUNNING until the signal arrives
    slow = [o for o in main_overrides(workdir) if not o.startswith("benchmark.iterations")] + [
        "benchmark.iterations=100000"
    ]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "src" / "main.py"), "-m", "quant=fp32", *slow],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # wait until this sweep's job run exists, then signal the process
            sweeps, kids = parents(workdir), job_runs(workdir)
            if len(sweeps) > before and (kids["tags.mlflow.parentRunId"] == sweeps.run_id.iloc[-1]).any():
                break
            time.sleep(0.5)
        proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:  # a child left benchmarking would take a core from every later test
        proc.kill()
    assert proc.returncode != 0
    parent = parents(workdir).iloc[-1]
    assert parent.status == "KILLED" and parent["tags.error"].startswith(reason)
    child = job_runs(workdir).iloc[-1]
    assert child["tags.mlflow.parentRunId"] == parent.run_id
    assert child.status == "KILLED" and child["tags.error"].startswith(reason)
    assert child["params.quant.mode"] == "fp32"  # what was logged before the signal is kept
