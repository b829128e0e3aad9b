"""The runs of a real sweep (fp32, dynamic, static) on the first LFW fold: metrics, artifacts, models and inputs."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pytest

from helpers import DOCUMENTED_METRICS, logged_model, logged_model_uri


def test_three_finished_runs_with_every_metric(sweep):
    _, df = sweep
    assert df["tags.mlflow.runName"].tolist() == ["fp32", "int8_dynamic", "int8_static_qdq_minmax_100"]
    assert (df.status == "FINISHED").all()
    for name in DOCUMENTED_METRICS:
        assert df[f"metrics.{name}"].notna().all(), name
    assert df["tags.is_baseline"].tolist() == ["true", "false", "false"]
    assert df["tags.dataset_fingerprint"].str.endswith("-13233").all()
    assert (df["metrics.n_pairs"] == 600).all()
    assert (df["params.quant.scheme"] == ["fp32", "U8S8 (dynamic)", "U8S8"]).all()
    # calibration belongs to the static variant alone
    assert df["params.calibration.method"].isna().tolist() == [True, True, False]
    assert df["tags.variant_key"].nunique() == 3
    # the first job aligned every image into the cold cache, the next ones none (test_openvino: a later run too)
    assert df["metrics.align_computed"].tolist() == [df["metrics.n_images"].iloc[0], 0, 0]
    assert df["metrics.n_images"].iloc[0] > 700
    assert df["params.cpu.isa"].notna().all() and df["params.version.onnxruntime"].notna().all()


def test_accuracy_and_size(sweep):
    _, df = sweep
    fp32, dynamic, static = (df.iloc[i] for i in range(3))
    assert fp32["metrics.accuracy"] >= 0.95
    assert abs(fp32["metrics.accuracy"] - static["metrics.accuracy"]) <= 0.01
    assert static["metrics.size_mib"] < 25 < dynamic["metrics.size_mib"]
    assert fp32["metrics.accuracy_drop"] == 0
    assert static["metrics.accuracy_drop"] == pytest.approx(fp32["metrics.accuracy"] - static["metrics.accuracy"])
    assert static["metrics.compression_ratio"] > 3.5
    for row in (dynamic, static):  # the TAR drop is at the FAR its name gives, not at another operating point
        assert row["metrics.tar_far_1e-3_drop"] == pytest.approx(
            fp32["metrics.tar_far_1e-3"] - row["metrics.tar_far_1e-3"]
        )


def test_artifacts_and_onnx_model(sweep):
    workdir, df = sweep
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    for _, run in df.iterrows():
        names = {a.path for a in client.list_artifacts(run.run_id)}
        assert {"scores.csv", "roc.png", "score_histogram.png", "config.yaml"} <= names
        for png in ("roc.png", "score_histogram.png"):
            png_path = Path(client.download_artifacts(run.run_id, png, str(workdir)))
            assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with open(client.download_artifacts(run.run_id, "scores.csv", str(workdir))) as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 600 and list(rows[0]) == ["fold", "label", "score"]
        assert [r["label"] for r in rows[:300]] == ["1"] * 300 and rows[300]["label"] == "0"  # pairs.txt order
        models = mlflow.search_logged_models(
            filter_string=f"source_run_id = '{run.run_id}'", output_format="list", experiment_ids=[run.experiment_id]
        )
        assert [m.name for m in models] == ["model"]
        proto = mlflow.onnx.load_model(models[0].model_uri)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["facequant.preprocess"] == "per_image" and meta["facequant.embedding_size"] == "128"


def test_the_logged_requirements_are_what_mlflow_infers_by_loading_the_model(sweep, store_uri):
    """facequant names them instead of letting MLflow load each model in a subprocess to find them."""
    workdir, df = sweep
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    named, proto = mlflow.pyfunc.get_model_dependencies(logged_model_uri(df.iloc[0])), logged_model(df.iloc[0])
    mlflow.set_tracking_uri(store_uri)
    with mlflow.start_run():
        inferred = mlflow.onnx.log_model(proto, name="inferred", save_as_external_data=False)
    assert Path(named).read_text() == Path(mlflow.pyfunc.get_model_dependencies(inferred.model_uri)).read_text()


def test_static_model_is_per_channel_qdq(sweep):

    workdir, df = sweep
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    model = logged_model(df.iloc[2])
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    inits = {i.name: i for i in model.graph.initializer}
    conv_weight_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and inits.get(n.input[0]) is not None
        and inits[n.input[0]].data_type == onnx.TensorProto.INT8
    ]
    assert conv_weight_dq and all(np.prod(inits[n.input[1]].dims) > 1 for n in conv_weight_dq[:10])


def test_evaluation_and_calibration_sets_are_dataset_inputs(sweep):
    workdir, df = sweep
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    for _, row in df.iterrows():
        inputs = mlflow.get_run(row.run_id).inputs.dataset_inputs
        by_context = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in inputs}
        evaluation = by_context["evaluation"]
        assert evaluation.name == "lfw-pairs" and evaluation.digest == row["tags.dataset_fingerprint"] + "-f1"
        assert json.loads(evaluation.source)["uri"].endswith("pairs.txt")
        if row["params.quant.mode"] == "static":
            assert by_context["calibration"].name == "lfw-calibration" and len(by_context["calibration"].digest) == 16
        else:
            assert "calibration" not in by_context


def test_speedups_are_paired_with_intervals_per_thread_count(sweep):
    _, df = sweep
    fp32, dynamic, static = (df.iloc[i] for i in range(3))
    threads = [int(t) for t in fp32["params.benchmark.threads"].split(",")]
    assert threads == list(dict.fromkeys([1, os.cpu_count()]))
    for n in threads:
        assert fp32[f"metrics.speedup_t{n}"] == 1.0 and f"metrics.speedup_t{n}_ci_low" not in fp32.dropna()
        for row in (dynamic, static):
            low, mid, high = (row[f"metrics.speedup_t{n}{s}"] for s in ("_ci_low", "", "_ci_high"))
            assert 0 < low <= mid <= high
            assert row[f"metrics.latency_p50_ms_t{n}"] > 0 and row[f"metrics.throughput_ips_t{n}"] > 0
    first = threads[0]
    for row in (fp32, static):
        assert row["metrics.latency_p50_ms"] == row[f"metrics.latency_p50_ms_t{first}"]
        assert row["metrics.speedup"] == row[f"metrics.speedup_t{first}"]
    assert (df["params.runtime.name"] == "ort").all() and df["params.runtime.version"].str.startswith(
        "onnxruntime"
    ).all()


def test_variants_carry_paired_statistics_and_embedding_drift(sweep):
    workdir, df = sweep
    fp32, dynamic, static = (df.iloc[i] for i in range(3))
    assert "metrics.flips_acc" not in fp32.dropna() and "metrics.embedding_cosine_mean" not in fp32.dropna()
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    for row in (dynamic, static):
        m = {k.removeprefix("metrics."): v for k, v in row.items() if k.startswith("metrics.")}
        assert m["accuracy_drop_ci_low"] <= m["accuracy_drop"] <= m["accuracy_drop_ci_high"]
        assert m["tar_far_1e-3_drop_ci_low"] <= m["tar_far_1e-3_drop"] <= m["tar_far_1e-3_drop_ci_high"]
        for at in ("acc", "far_1e-3"):  # a changed decision is either fixed or broken
            assert m[f"flips_{at}"] == m[f"flips_{at}_fixed"] + m[f"flips_{at}_broken"]
            assert 0 < m[f"mcnemar_p_{at}"] <= 1
        assert 0.5 < m["embedding_cosine_min"] <= m["embedding_cosine_p01"] <= m["embedding_cosine_mean"] < 1
        with open(client.download_artifacts(row.run_id, "embedding_cosine.csv", str(workdir))) as fh:
            cosines = list(csv.DictReader(fh))
        assert len(cosines) == m["n_images"] and min(float(c["cosine"]) for c in cosines) == pytest.approx(
            m["embedding_cosine_min"], abs=1e-7
        )
        png = Path(client.download_artifacts(row.run_id, "drift_faces.png", str(workdir)))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # dynamic INT8 quantizes only the final Gemm; static quantizes every convolution, so it turns embeddings more
    assert static["metrics.embedding_cosine_mean"] < dynamic["metrics.embedding_cosine_mean"]
