"""The comparison report from runs stored in MLflow, through the compare entrypoint; no LFW or model needed."""

from __future__ import annotations

import re

import mlflow

from facequant.schema import Tag
from helpers import ARCHITECTURE, INPUT, fake_run, run_compare


def test_recommendation_refuses_a_lossy_variant_and_never_overstates_size(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "fp32", "fp32", 0.9927, 0.97, 86.98, 18.0)
    fake_run(client, experiment, parent, "int8_dynamic", "dynamic", 0.9925, 0.97, 86.35, 17.0)
    # the lossy variant is from before the paired statistics: judged by its point drops, n/a in their tables
    fake_run(client, experiment, parent, "int8_static_qdq_minmax_500", "static", 0.9427, 0.90, 22.57, 6.2, paired=False)
    proc = run_compare(tmp_path, f"out={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert (
        "int8_static_qdq_minmax_500: not recommended: accuracy drop 5.00 pt > 0.50 pt (no interval logged, so the "
        "point drop is compared); TAR@FAR=1e-3 drop 7.00 pt > 1.00 pt (no interval logged"
    ) in text
    assert (
        "**Recommended: int8_dynamic**: accuracy 0.9925, accuracy drop 0.02 pt [-0.08, 0.12]; TAR@FAR=1e-3 drop "
        "0.00 pt [-0.10, 0.10];"
    ) in text
    assert "| int8_dynamic | 0.9925 | 0.0040 | 0.02 pt [-0.08, 0.12] | 0.9700 | 0.00 pt [-0.10, 0.10] |" in text
    assert "| int8_dynamic | 10 | 4 | 6 | 0.75 | 4 | 2 | 2 | 1 |" in text  # the decision flips
    assert "| int8_static_qdq_minmax_500 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" in text
    assert (
        "| int8_dynamic | 0.9981 | 0.9902 | 0.9514 |" in text
        and "| int8_static_qdq_minmax_500 | n/a | n/a | n/a |" in text
    )
    dynamic_claims = [line for line in text.splitlines() if "int8_dynamic" in line and "smaller" in line]
    assert dynamic_claims and all("0.7% smaller (no meaningful size cut)" in line for line in dynamic_claims)
    assert not re.search(r"\d\s*-\s*\d+x", text)  # no "3-4x" style claim anywhere
    assert f"- Architecture: {ARCHITECTURE} (128-d embedding); input: {INPUT};" in text
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert logged == {"report/report.md", "report/pareto.png"}


def test_without_fp32_drops_are_na(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "int8_static_qdq_minmax_500", "static", 0.99, 0.97, 22.57, 6.2)
    proc = run_compare(tmp_path, f"out={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "drops and compression are n/a (no baseline" in text
    assert "| int8_static_qdq_minmax_500 | 0.9900 |" in text and "| n/a | 6.20 | 2.90x [2.85, 2.95] | 161.3 |" in text
    assert "No recommendation: this selection has no FP32 run" in text


def test_repeats_collapse_and_distinct_settings_stay_apart(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "fp32", "fp32", 0.9927, 0.97, 86.98, 18.0)
    fake_run(client, experiment, parent, "fp32", "fp32", 0.9927, 0.97, 86.98, 16.0)
    for key, accuracy in (("aaaaaaaa1", 0.9920), ("bbbbbbbb2", 0.9910)):
        fake_run(client, experiment, parent, "int8_static_qdq_minmax_500", "static", accuracy, 0.97, 22.57, 5, key=key)
    proc = run_compare(tmp_path, f"out={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "(1 repeated run(s) of the same variant: the latest of each is shown.)" in text
    assert "| fp32 | 0.9927 | 0.0040 |" in text and "| 1.00x | 16.00 | 1.00x | 62.5 | 8.00 | 1.00x | 125.0 |" in text
    assert "| int8_static_qdq_minmax_500 (aaaaaaaa) | 0.9920 |" in text
    assert "| int8_static_qdq_minmax_500 (bbbbbbbb) | 0.9910 |" in text


def test_mixed_models_are_compared_apart(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "fp32", "fp32", 0.99, 0.97, 86.98, 18.0)
    fake_run(client, experiment, parent, "fp32", "fp32", 0.97, 0.80, 89.6, 18.0, model="vggface2")
    proc = run_compare(tmp_path, f"out={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "These runs mix 2 model/dataset combinations" in text
    assert "## msceleb128 on LFW" in text and "## vggface2 on LFW" in text


def test_several_sweeps_or_all_runs_compare_in_one_report(fake_sweep, tmp_path):
    """A 6000-pair sweep and a later one: sweep=[a,b] and sweep=all report both (the default, only the latest, is
    test_compare's)."""
    client, experiment, first = fake_sweep
    fake_run(client, experiment, first, "fp32", "fp32", 0.9927, 0.97, 86.98, 18.0)
    second = client.create_run(experiment, run_name="sweep 2", tags={Tag.SWEEP: "true"}).info.run_id
    client.set_terminated(second, "FINISHED")
    fake_run(client, experiment, second, "int8_dynamic", "dynamic", 0.9925, 0.97, 86.97, 17.0)
    for selection in (f"sweep=[{first},{second}]", "sweep=all"):
        proc = run_compare(tmp_path, selection, f"out={tmp_path / 'r'}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        text = (tmp_path / "r" / "report.md").read_text()
        assert "| fp32 | 0.9927 |" in text and "| int8_dynamic | 0.9925 |" in text
    comparisons = client.search_runs([experiment], f"tags.{Tag.COMPARISON} = 'true'")
    assert len(comparisons) == 2  # the reports spanning sweeps went to comparison runs, not to either sweep


def test_no_matching_runs_is_a_clear_error(fake_sweep, tmp_path):
    proc = run_compare(tmp_path, "filter=\"params.model.name = 'nothing'\"")
    assert proc.returncode != 0
    assert "no runs in sweep" in proc.stderr and "nothing" in proc.stderr


def log_tiny_onnx(run_id: str, tmp_path) -> None:
    """A real ONNX embedding model (NCHW faces -> L2-normalised 4-d vectors) logged as the run's model."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from facequant import tracking

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(3 * 8 * 8, 4)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 3 * 8 * 8], np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["input", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["raw"]),
        helper.make_node("LpNormalization", ["raw"], ["embedding"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 4])],
        [weight, shape],
    )
    path = tmp_path / f"{run_id}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    example = np.zeros((1, 3, 8, 8), np.float32)
    with mlflow.start_run(run_id=run_id):
        tracking.log_onnx_model(path, example, np.zeros((1, 4), np.float32))
    mlflow.MlflowClient().set_terminated(run_id, "FINISHED")


def test_register_puts_the_alias_and_the_evidence_on_the_recommended_version(fake_sweep, tmp_path):
    import numpy as np
    import onnxruntime as ort

    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "fp32", "fp32", 0.9927, 0.97, 86.98, 18.0)
    static = fake_run(client, experiment, parent, "int8_static_qdq_minmax_500", "static", 0.9925, 0.97, 22.57, 6.0)
    log_tiny_onnx(static, tmp_path)
    proc = run_compare(tmp_path, f"out={tmp_path / 'r'}", "register=facenet-test")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "registered int8_static_qdq_minmax_500 as facenet-test version 1, alias int8-recommended" in proc.stdout
    assert "#/experiments/" in proc.stdout and "workflowType=machine_learning" in proc.stdout
    version = client.get_model_version_by_alias("facenet-test", "int8-recommended")
    assert version.run_id == static and str(version.version) == "1"
    bootstrap = "95% paired-bootstrap interval (1000 resamples of the pairs, stratified genuine/impostor)"
    assert version.tags["facequant.accuracy_drop"] == (
        f"0.0002 [-0.0008, 0.0012], {bootstrap}; McNemar p=0.75 at FP32's accuracy threshold"
    )
    assert version.tags["facequant.tar_far_1e-3_drop"] == (
        f"0.0000 [-0.0010, 0.0010], {bootstrap}; McNemar p=1 at FP32's FAR=1e-3 threshold"
    )
    assert version.tags["facequant.sweep"] == parent and version.tags["facequant.dataset_fingerprint"] == "fp-6"
    assert version.tags["facequant.rule"].startswith("the fastest variant")
    assert "intervals overlap" in version.tags["facequant.rule"]
    assert "upper end of their 95% paired-bootstrap interval" in version.tags["facequant.rule"]
    assert version.tags["facequant.speedup"] == (
        "3.00x [2.95, 3.05] (median paired FP32/variant batch-1 latency ratio, 1 thread, 95% interval)"
    )
    model = mlflow.onnx.load_model("models:/facenet-test@int8-recommended")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    face = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    (embedding,) = session.run(None, {"input": face})[0]
    assert embedding.shape == (4,) and abs(np.linalg.norm(embedding) - 1) < 1e-5


def test_registering_a_sweep_again_reuses_its_version_and_moves_the_alias_back(fake_sweep, tmp_path):
    client, experiment, first = fake_sweep
    second = client.create_run(experiment, run_name="sweep", tags={Tag.SWEEP: "true"}).info.run_id
    client.set_terminated(second, "FINISHED")
    picked = {}
    for parent, latency in ((first, 6.0), (second, 5.0)):
        fake_run(client, experiment, parent, "fp32", "fp32", 0.9927, 0.97, 86.98, 18.0)
        picked[parent] = fake_run(client, experiment, parent, "static", "static", 0.9925, 0.97, 22.57, latency)
        log_tiny_onnx(picked[parent], tmp_path)
    outs = []
    for parent in (first, second, first):
        proc = run_compare(tmp_path, f"sweep={parent}", f"out={tmp_path / parent}", "register=facenet-test")
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(proc.stdout)
    assert "registered static as facenet-test version 1" in outs[0] and "version 2" in outs[1]
    assert "static is already facenet-test version 1; alias int8-recommended now points at it" in outs[2]
    versions = client.search_model_versions("name = 'facenet-test'")
    assert sorted((str(v.version), v.run_id) for v in versions) == [("1", picked[first]), ("2", picked[second])]
    assert str(client.get_model_version_by_alias("facenet-test", "int8-recommended").version) == "1"


def test_nothing_is_registered_when_the_rule_refuses_every_variant(fake_sweep, tmp_path):
    client, experiment, parent = fake_sweep
    fake_run(client, experiment, parent, "fp32", "fp32", 0.9927, 0.97, 86.98, 18.0)
    lossy = fake_run(client, experiment, parent, "int8_static_qdq_minmax_500", "static", 0.9427, 0.90, 22.57, 6.0)
    log_tiny_onnx(lossy, tmp_path)
    proc = run_compare(tmp_path, f"out={tmp_path / 'r'}", "register=facenet-test")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nothing registered as facenet-test: no quantized variant meets the rule" in proc.stdout
    assert "accuracy drop 5.00 pt > 0.50 pt" in proc.stdout
    assert client.search_registered_models() == []
