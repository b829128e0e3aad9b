"""model=onnx end to end: an NHWC BGR model through quantization, evaluation and benchmark in src/main.py."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import job_runs, logged_scores, main, share_aligned


def test_an_nhwc_bgr_model_goes_through_quantization_evaluation_and_benchmark(sweep, onnx_exports, tmp_path):
    workdir, runs = sweep
    share_aligned(workdir, tmp_path)
    keys = ["model=onnx", f"model.path={onnx_exports[1]}", "model.preprocess=per_image", "model.channel_order=BGR"]
    proc = main(tmp_path, *keys, "quant=fp32,static", "benchmark.threads=[1]", "sensitivity=false", multirun=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fp32, static = (job_runs(tmp_path).iloc[i] for i in range(2))
    assert [fp32.status, static.status] == ["FINISHED", "FINISHED"]
    for run in (fp32, static):  # inferred from the shapes, and the crops follow the input size
        inferred = (run["params.model.layout"], run["params.model.input_name"], run["params.align.image_size"])
        assert inferred == ("NHWC", "image_bgr", "160")
        assert run["params.model_info.preprocess"] == "per_image NHWC BGR" and run["metrics.speedup"] > 0
    # fed NHWC BGR, the wrapped graph scores every pair as msceleb128 does
    np.testing.assert_allclose(
        logged_scores(tmp_path, fp32.run_id), logged_scores(workdir, runs.iloc[0].run_id), atol=1e-6
    )
    # calibrated on the same faces fed as it takes them, its INT8 variant drifts as msceleb128's does
    reference = runs.iloc[2]
    assert static["tags.mlflow.runName"] == reference["tags.mlflow.runName"] == "int8_static_qdq_minmax_100"
    assert abs(static["metrics.accuracy"] - reference["metrics.accuracy"]) <= 0.005 and static["metrics.size_mib"] < 25
    assert static["metrics.embedding_cosine_mean"] == pytest.approx(
        reference["metrics.embedding_cosine_mean"], abs=1e-3
    )
