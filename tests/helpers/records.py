"""Run records built by hand, shaped like a job's: what the report, the release gate and the exclusion search read.

`record` builds one with chosen accuracy and speed-up; `paired` gives the paired statistics a quantized job logs.
"""

from __future__ import annotations

import itertools

from facequant.schema import Metric, Param, RunRecord, Tag, at_threads

# The metric names the README documents and other tools rely on.
DOCUMENTED_METRICS = [
    Metric.ACCURACY,
    Metric.ACCURACY_STD,
    Metric.TAR_FAR_1E3,
    Metric.TAR_FAR_1E4,
    Metric.ROC_AUC,
    Metric.EER,
    Metric.THRESHOLD,
    Metric.GENUINE_MEAN,
    Metric.GENUINE_STD,
    Metric.IMPOSTOR_MEAN,
    Metric.IMPOSTOR_STD,
    Metric.SIZE_MIB,
    Metric.LATENCY_P50_MS,
    Metric.LATENCY_P95_MS,
    Metric.THROUGHPUT_IPS,
    Metric.SPEEDUP,
    Metric.ACCURACY_DROP,
    Metric.TAR_FAR_1E3_DROP,
    Metric.COMPRESSION_RATIO,
]


def paired(accuracy_drop: float, tar_drop: float, ci: float) -> dict[str, float]:
    """The paired statistics of a job against FP32: drop intervals of +-ci, flips that McNemar finds within
    chance (4 fixed vs 6 broken: p=0.75; 2 vs 2: p=1) and a little embedding drift."""
    return {
        Metric.ACCURACY_DROP_CI_LOW: accuracy_drop - ci,
        Metric.ACCURACY_DROP_CI_HIGH: accuracy_drop + ci,
        Metric.TAR_FAR_1E3_DROP_CI_LOW: tar_drop - ci,
        Metric.TAR_FAR_1E3_DROP_CI_HIGH: tar_drop + ci,
        Metric.FLIPS_ACC: 10,
        Metric.FLIPS_ACC_FIXED: 4,
        Metric.FLIPS_ACC_BROKEN: 6,
        Metric.MCNEMAR_P_ACC: 0.75390625,
        Metric.FLIPS_FAR_1E3: 4,
        Metric.FLIPS_FAR_1E3_FIXED: 2,
        Metric.FLIPS_FAR_1E3_BROKEN: 2,
        Metric.MCNEMAR_P_FAR_1E3: 1.0,
        Metric.EMBEDDING_COSINE_MEAN: 0.9981,
        Metric.EMBEDDING_COSINE_P01: 0.9902,
        Metric.EMBEDDING_COSINE_MIN: 0.9514,
    }


# The FP32 numbers every variant's job compared itself against.
FP32_ACCURACY, FP32_TAR, FP32_SIZE, FP32_LATENCY = 0.9927, 0.9787, 86.98, 16.0

ARCHITECTURE = "facenet-pytorch InceptionResnetV1"
INPUT = "float32 NCHW RGB 160x160 after preprocessing; output L2-normalised embedding"


def timing(speedup: float | None, ci: float | None, threads: tuple[int, ...]) -> dict[str, float]:
    """The benchmark's metrics of a paired job: at each thread count N the speed-up is speedup / N (so the
    columns differ), with an interval of +-ci around it (none when ci is None); the unsuffixed ones repeat the
    first count, the only ones without thread counts. speedup=None logs latency and throughput only, as jobs
    from before paired timing did."""
    metrics: dict[str, float] = {}
    for i, n in enumerate(threads or (1,)):
        point = 1.0 if speedup is None else speedup / n
        at = {
            Metric.LATENCY_P50_MS: FP32_LATENCY / n / point,
            Metric.THROUGHPUT_IPS: 1000 * n * point / FP32_LATENCY,
        }
        if speedup is not None:
            at[Metric.SPEEDUP] = point
            if ci is not None:
                at |= {Metric.SPEEDUP_CI_LOW: point - ci, Metric.SPEEDUP_CI_HIGH: point + ci}
        if threads:
            metrics |= {at_threads(metric, n): value for metric, value in at.items()}
        if i == 0:
            metrics |= at
    return metrics


def record(
    name: str,
    mode: str,
    accuracy: float,
    speedup: float | None,
    *,
    ci: float | None = 0.05,
    drop_ci: float | None = 0.001,
    threads: tuple[int, ...] = (1, 2),
    size: float = 22.57,
    tar: float = FP32_TAR,
    start: int = 0,
    key: str | None = None,
    model: str = "msceleb128",
    logged: dict[Metric, float] | None = None,
    extra: dict[str, str] | None = None,
    status: str = "FINISHED",
) -> RunRecord:
    """A run shaped like a job's: its drops are against the FP32 numbers above unless `logged` overrides them,
    with the paired statistics of `paired` around them (drop_ci=None: none, as jobs before them, and the FP32
    reference, logged), and its speed-up is its own paired measurement (see `timing`); threads=() logs no thread
    counts."""
    params = {
        Param.QUANT_MODE: mode,
        Param.MODEL_NAME: model,
        Param.MODEL_WEIGHTS_SHA256: model * 4,
        Param.DATASET_FOLDS: "10",
        Param.ONNX_OPSET: "17",
        Param.QUANT_WEIGHT_TYPE: "QInt8",
    }
    if threads:
        params[Param.BENCHMARK_THREADS] = ",".join(map(str, threads))
    if speedup is not None:  # the paired protocol's settings
        params |= {
            Param.BENCHMARK_ROUNDS: "9",
            Param.BENCHMARK_WARMUP: "3",
            Param.BENCHMARK_ITERATIONS: "10",
            Param.BENCHMARK_LATENCY_BATCH: "1",
            Param.BENCHMARK_THROUGHPUT_BATCH: "32",
            Param.BENCHMARK_CONFIDENCE: "0.95",
        }
    if mode == "static":  # only static variants log calibration
        method, samples = name.split("_")[-2:]
        params |= {Param.CALIBRATION_METHOD: method, Param.CALIBRATION_NUM_SAMPLES: samples}
    metrics = {
        Metric.ACCURACY: accuracy,
        Metric.ACCURACY_STD: 0.004,
        Metric.TAR_FAR_1E3: tar,
        Metric.TAR_FAR_1E4: tar - 0.04,
        Metric.ROC_AUC: 0.9993,
        Metric.EER: 0.0077,
        Metric.SIZE_MIB: size,
        Metric.GENUINE_MEAN: 0.7,
        Metric.GENUINE_STD: 0.1,
        Metric.IMPOSTOR_MEAN: 0.0,
        Metric.IMPOSTOR_STD: 0.1,
        Metric.THRESHOLD: 0.4,
        Metric.FAR_RESOLUTION: 1 / 3000,
        Metric.N_PAIRS: 6000,
        Metric.ACCURACY_DROP: FP32_ACCURACY - accuracy,
        Metric.TAR_FAR_1E3_DROP: FP32_TAR - tar,
        Metric.COMPRESSION_RATIO: FP32_SIZE / size,
    }
    metrics |= timing(speedup, ci, threads) | (logged or {})
    if mode != "fp32" and drop_ci is not None:
        drops = paired(metrics[Metric.ACCURACY_DROP], metrics[Metric.TAR_FAR_1E3_DROP], drop_ci)
        metrics |= drops | (logged or {})
    tags = {
        Tag.IS_BASELINE: str(mode == "fp32").lower(),
        Tag.DATASET_FINGERPRINT: "fp-6000",
        Tag.VARIANT_KEY: key or f"key-{name}",
        Tag.GIT_COMMIT: "abc",
    }
    return RunRecord(
        run_id=f"{name}-{key}-{start}-{model}",
        experiment_id="1",
        name=name,
        status=status,
        start_time=start,
        tags=tags,
        params=params | (extra or {}),
        metrics=metrics,
    )


def fp32(**kwargs) -> RunRecord:
    """The reference job: speed-up 1 against itself, with no interval."""
    return record("fp32", "fp32", FP32_ACCURACY, 1.0, ci=None, size=FP32_SIZE, **kwargs)


def static(method: str, samples: int, accuracy: float, speedup: float | None, **kwargs) -> RunRecord:
    return record(f"int8_static_qdq_{method}_{samples}", "static", accuracy, speedup, **kwargs)


def cells(lines: list[str], label: str, table: str = "| Model | Accuracy |") -> dict[str, str]:
    """One variant's row of a table, by column header; the table is the first whose header starts as given (by
    default the detailed table: the other tables have other headers)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(table))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    heads = [cell.strip() for cell in rows[0].strip("|").split("|")]
    (row,) = [line for line in rows[2:] if line.startswith(f"| {label} |")]
    return dict(zip(heads, (cell.strip() for cell in row.strip("|").split("|")), strict=True))
