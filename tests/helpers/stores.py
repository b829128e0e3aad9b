"""MLflow stores for tests: an empty SQLite store made once per session, runs logged as jobs log them, and the
data sets a job attaches to its run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from facequant.schema import Metric, Param, Tag, at_threads
from facequant.tracking import log_calibration_set, log_evaluation_set

from .records import ARCHITECTURE, INPUT
from .records import paired as paired_stats


def create_store(path: Path) -> Path:
    """An empty MLflow SQLite store at path with its schema in place: creating the schema takes seconds, so tests
    copy one store made once per session instead."""
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


EVALUATION_DIGEST = "ea42330c62c92989-13233-f1"
CALIBRATION_DIGEST = "f06e7523fc37d833"


def log_data_sets(static: bool) -> None:
    """Log two pairs as the active job run's evaluation set and, for a static variant, a face as its calibration set."""
    pairs = pd.DataFrame({"fold": [1, 1], "label": [1, 0], "left": ["a/1.jpg", "b/1.jpg"], "right": ["a/2.jpg", "c/1"]})
    log_evaluation_set(pairs, "lfw-pairs", EVALUATION_DIGEST, "/lfw/pairs.txt")
    if static:
        faces = pd.DataFrame({"image": ["d/1.jpg"], "sha256": ["00"]})
        log_calibration_set(faces, "lfw-calibration", CALIBRATION_DIGEST, "/lfw/images")


# (accuracy, TAR@FAR=1e-3, size, batch-1 p50 ms) of the FP32 model a quantized job compared itself with.
FP32 = (0.9927, 0.97, 86.98, 18.0)
THREADS = (1, 2)


def fake_run(
    client: mlflow.MlflowClient,
    experiment: str,
    parent: str,
    name: str,
    mode: str,
    accuracy: float,
    tar: float,
    size: float,
    latency: float,
    model: str = "msceleb128",
    key: str | None = None,
    paired: bool = True,
) -> str:
    """A finished run shaped like a job's, with chosen numbers and the drops its job would log.

    Its paired speed-up is FP32's 18 ms over its latency, +-0.05, at each thread count (the latency halves at 2
    threads); the FP32 reference logs speed-up 1 without an interval. A quantized run also logs the paired
    statistics against FP32 (drop intervals of +-0.1 pt, flips within chance, a little drift) unless paired=False,
    as jobs from before them.
    """
    baseline = (accuracy, tar, size) if mode == "fp32" else FP32
    run = client.create_run(
        experiment,
        run_name=name,
        tags={
            Tag.PARENT: parent,
            Tag.VARIANT: name,
            Tag.VARIANT_KEY: key or f"{model}-{name}",
            Tag.IS_BASELINE: str(mode == "fp32").lower(),
            Tag.MODEL: model,
            Tag.DATASET_FINGERPRINT: "fp-6",
            Tag.GIT_COMMIT: "abc",
        },
    )
    rid = run.info.run_id
    params = {
        Param.QUANT_MODE: mode,
        Param.MODEL_NAME: model,
        Param.MODEL_WEIGHTS_SHA256: model * 4,
        Param.MODEL_ARCHITECTURE: ARCHITECTURE,
        Param.MODEL_INPUT: INPUT,
        Param.MODEL_EMBEDDING_SIZE: "128",
        Param.DATASET_FOLDS: "10",
        Param.BENCHMARK_THREADS: ",".join(map(str, THREADS)),
        Param.BENCHMARK_ROUNDS: "9",
        Param.BENCHMARK_CONFIDENCE: "0.95",
    }
    if mode == "static":  # only static variants log calibration
        params |= {Param.CALIBRATION_METHOD: "minmax", Param.CALIBRATION_NUM_SAMPLES: "500"}
    for key_, value in params.items():
        client.log_param(rid, key_, value)
    metrics = {
        Metric.ACCURACY: accuracy,
        Metric.ACCURACY_STD: 0.004,
        Metric.TAR_FAR_1E3: tar,
        Metric.TAR_FAR_1E4: tar - 0.01,
        Metric.ROC_AUC: 0.99,
        Metric.EER: 0.01,
        Metric.SIZE_MIB: size,
        Metric.LATENCY_P95_MS: latency,
        Metric.GENUINE_MEAN: 0.7,
        Metric.GENUINE_STD: 0.1,
        Metric.IMPOSTOR_MEAN: 0.0,
        Metric.IMPOSTOR_STD: 0.1,
        Metric.THRESHOLD: 0.4,
        Metric.FAR_RESOLUTION: 1 / 3000,
        Metric.N_PAIRS: 6000,
        Metric.ACCURACY_DROP: baseline[0] - accuracy,
        Metric.TAR_FAR_1E3_DROP: baseline[1] - tar,
        Metric.COMPRESSION_RATIO: baseline[2] / size,
    }
    if paired and mode != "fp32":
        metrics |= paired_stats(metrics[Metric.ACCURACY_DROP], metrics[Metric.TAR_FAR_1E3_DROP], 0.001)
    for n in THREADS:
        speedup = 1.0 if mode == "fp32" else FP32[3] / latency
        at = {Metric.LATENCY_P50_MS: latency / n, Metric.THROUGHPUT_IPS: 1000 * n / latency, Metric.SPEEDUP: speedup}
        if mode != "fp32":
            at |= {Metric.SPEEDUP_CI_LOW: speedup - 0.05, Metric.SPEEDUP_CI_HIGH: speedup + 0.05}
        metrics |= {at_threads(metric, n): value for metric, value in at.items()}
        if n == THREADS[0]:
            metrics |= at
    for key_, value in metrics.items():
        client.log_metric(rid, key_, value)
    client.set_terminated(rid, "FINISHED")
    return rid
