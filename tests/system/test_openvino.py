"""runtime=openvino compiles the same ONNX files with OpenVINO, at an explicit precision, on the first LFW fold."""

from __future__ import annotations

import pytest

from facequant.machine import has_bf16
from helpers import job_runs, main, share_aligned


def test_openvino_runs_the_static_int8_file_close_to_onnx_runtime(sweep, tmp_path):
    df = sweep[1]  # its static variant and FP32 scores are shared: only OpenVINO's work is new
    fp32, ort_static = df.iloc[0], df.iloc[2]
    workdir = tmp_path  # its own store: other tests log into the sweep's while this one runs
    share_aligned(sweep[0], workdir, "onnx", "scores")
    proc = main(workdir, "quant=static", "runtime=openvino", "sensitivity=false", "benchmark.threads=[1]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = job_runs(workdir).iloc[-1]
    assert run["tags.mlflow.runName"] == "int8_static_qdq_minmax_100@openvino" and run.status == "FINISHED"
    assert (run["params.runtime.name"], run["params.runtime.inference_precision"]) == ("openvino", "f32")
    assert run["params.runtime.version"].startswith("openvino 20") and run["tags.is_baseline"] == "false"
    assert abs(run["metrics.accuracy"] - ort_static["metrics.accuracy"]) <= 0.005
    assert run["metrics.size_mib"] == ort_static["metrics.size_mib"]  # the same file
    # drops and speed-ups are against the FP32 file on ONNX Runtime
    assert run["metrics.accuracy_drop"] == pytest.approx(fp32["metrics.accuracy"] - run["metrics.accuracy"])
    assert run["metrics.speedup_ci_low"] <= run["metrics.speedup"] <= run["metrics.speedup_ci_high"]
    assert run["metrics.eval_cached"] == 0  # OpenVINO's scores are its own, not ONNX Runtime's
    assert run["metrics.align_computed"] == 0  # a later run in the same cache aligns nothing


@pytest.mark.skipif(not has_bf16(), reason="this CPU has neither avx512_bf16 nor amx_bf16, so bf16 cannot run")
def test_bf16_runs_close_to_fp32(sweep, tmp_path):
    workdir = tmp_path
    share_aligned(sweep[0], workdir, "onnx", "scores")
    proc = main(workdir, "quant=fp32", "runtime=openvino", "runtime.precision=bf16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = job_runs(workdir).iloc[-1]
    assert run["tags.mlflow.runName"] == "fp32@openvino-bf16" and run["params.runtime.inference_precision"] == "bf16"
    assert abs(run["metrics.accuracy_drop"]) <= 0.005


@pytest.mark.skipif(has_bf16(), reason="this CPU has bf16, so the refusal cannot be shown here")
def test_bf16_without_cpu_support_fails_before_any_run(lfw_root, tmp_path):
    proc = main(tmp_path, "quant=fp32", "runtime=openvino", "runtime.precision=bf16")
    assert proc.returncode != 0
    assert "runtime.precision=bf16 needs a CPU with avx512_bf16 or amx_bf16" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists() or job_runs(tmp_path).empty
