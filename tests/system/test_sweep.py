"""src/main.py runs that are not the shared sweep: a single run refused by its pre-flight, and a lone
quant.exclude=auto variant."""

from __future__ import annotations

from pathlib import Path

import mlflow
import onnx
import pandas as pd

from facequant.quant.exclusion import node_ranking
from helpers import job_runs, logged_model, main, share_aligned


def test_a_single_run_checks_before_its_run_exists(tmp_path):
    proc = main(tmp_path, f"dataset.root={tmp_path / 'no_lfw_here'}")
    assert proc.returncode == 2
    assert "error: LFW not found" in proc.stderr and "Set dataset.root" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists() or job_runs(tmp_path).empty


def test_a_lone_exclude_auto_variant_searches_on_validation_pairs(sweep, tmp_path):
    """quant.exclude=auto with a 0-pt goal and one step, alone in a fresh store: the search logs each step on
    validation pairs, renames the run after its result, and the logged model is the variant it chose. A 0-pt goal
    holds only when no resample shows a loss; when the plain variant fails it, one node is kept in float,
    re-quantized from the cached ranges, and that step holds or the budget is spent (which depends on the CPU's
    integer kernels)."""
    share_aligned(sweep[0], tmp_path, "onnx", "scores")  # models, ranges and the FP32 baseline: the search is new
    goal = ["genuine=100", "impostor=1000", "max_steps=1", "max_drop=0", "max_tar_drop=0"]
    proc = main(
        tmp_path, "quant=static", "quant.exclude=auto", *(f"exclusion.{g}" for g in goal), "benchmark.threads=[1]"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = job_runs(tmp_path).iloc[-1]
    assert job_runs(tmp_path).status.tolist() == ["FINISHED"]  # a single run has no sweep parent
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    steps = pd.read_csv(client.download_artifacts(run.run_id, "exclusion_steps.csv", str(tmp_path)))
    history = client.get_metric_history(run.run_id, "validation_excluded")
    assert sorted((m.step, m.value) for m in history) == list(enumerate(steps.excluded.astype(float)))
    assert (steps.latency_p50_ms > 0).all() and run["metrics.n_validation_pairs"] == 1100
    nodes = Path(client.download_artifacts(run.run_id, "excluded_nodes.txt", str(tmp_path))).read_text()
    chosen = [line for line in nodes.splitlines() if not line.startswith("#")]
    assert abs(run["metrics.accuracy_drop"]) < 0.01 and run["metrics.compression_ratio"] > 1.0
    if steps.gate_holds.iloc[0]:  # no resample showed a loss: nothing to keep in float
        assert steps.excluded.tolist() == [0] and chosen == [] and run["metrics.exclusion_gate_met"] == 1
        assert run["tags.mlflow.runName"] == "int8_static_qdq_minmax_100"
        return
    assert steps.excluded.tolist() == [0, 1] and not steps.gate_holds.iloc[0]
    held = bool(steps.gate_holds.iloc[1])
    unmet = "the goal does not hold on the validation pairs with 1 node(s) in float"
    assert (unmet in proc.stdout + proc.stderr) != held
    assert run["tags.mlflow.runName"] == run["tags.variant"] == "int8_static_qdq_minmax_100_excl1"
    assert run["metrics.n_excluded"] == 1 and run["metrics.exclusion_gate_met"] == float(held)
    table = pd.read_csv(client.download_artifacts(run.run_id, "sensitivity.csv", str(tmp_path)), keep_default_na=False)
    (pre,) = (tmp_path / "cache" / "onnx").glob("*/fp32.pre-*.onnx")  # the graph the variant was quantized from
    assert chosen == node_ranking(onnx.load(str(pre), load_external_data=False).graph, table)[:1]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert chosen[0] in {n.name for n in logged_model(run).graph.node}
    inputs = {i.dataset.name for i in mlflow.get_run(run.run_id).inputs.dataset_inputs}
    assert {"lfw-pairs", "lfw-calibration", "lfw-sensitivity", "lfw-validation"} <= inputs
