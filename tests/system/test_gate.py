"""The release gate's exit codes from src/compare.py on runs stored in MLflow; no LFW or model needed."""

from __future__ import annotations

from facequant.report.release_gate import GATE_FAILED
from helpers import fake_run, run_compare

GOOD = "int8_static_qdq_minmax_500"  # 0.03 pt drop
LOSSY = "int8_static_qdq_entropy_500"  # 0.87 pt drop


def test_exit_codes_on_stored_runs(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "fp32", "fp32", 0.9927, 0.97, 86.98, 18.0)
    fake_run(client, experiment, parent, GOOD, "static", 0.9924, 0.97, 22.57, 6.0)
    fake_run(client, experiment, parent, LOSSY, "static", 0.9840, 0.97, 22.57, 5.0)
    out = f"out={tmp_path / 'r'}"
    passed = run_compare(tmp_path, out, "release_gate=true")
    assert passed.returncode == 0, passed.stderr[-3000:]
    assert f"gate passed: {GOOD} is recommended and passes the rule" in passed.stdout
    old = run_compare(tmp_path, out, "gate=true")  # the deprecated name still gates, and says so
    assert old.returncode == 0 and f"gate passed: {GOOD}" in old.stdout
    said = old.stdout + old.stderr  # Hydra logs the warning to stdout
    assert "gate= is deprecated" in said and "use release_gate=" in said
    failed = run_compare(tmp_path, out, f"release_gate.variant=[{GOOD},{LOSSY}]", "register=facenet-test")
    assert failed.returncode == GATE_FAILED, failed.stderr[-3000:]
    assert [line for line in failed.stdout.splitlines() if line.startswith("gate")] == [
        f"gate failed: {LOSSY}: accuracy drop 0.87 pt > 0.50 pt"
    ]
    assert "registered" not in failed.stdout and client.search_registered_models() == []
    assert (tmp_path / "r" / "report.md").is_file()  # the report says the rest
