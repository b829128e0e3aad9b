"""The report's technical details: model, preprocessing, how each variant was built, data, timing and software, as
the runs logged them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from facequant.report.accuracy import fmt
from facequant.report.sections import confidence, dataset_label, distinct, params, tags
from facequant.report.table import Row, Table
from facequant.schema import Metric, Param, RunRecord, Tag


def _first(rows: Sequence[Row], name: Metric) -> float:
    return next((value for r in rows if not math.isnan(value := r.metric(name))), math.nan)


def _abbrev(value: str, length: int) -> str:
    return value if len(value) <= length else value[:length] + "..."


def quantization_detail(run: RunRecord) -> str:
    """How the variant was built, from its logged settings; only static variants log calibration."""

    def p(name: Param) -> str:
        value = run.param(name)
        return "n/a" if value is None else value

    mode = run.param(Param.QUANT_MODE)
    if mode == "dynamic":
        return (
            f"quantize_dynamic, weights {p(Param.QUANT_WEIGHT_TYPE)}, op types {p(Param.QUANT_OP_TYPES)}, "
            f"per_channel {p(Param.QUANT_PER_CHANNEL)}"
        )
    if mode == "static":
        return (
            f"quantize_static {p(Param.QUANT_FORMAT)}, {p(Param.QUANT_SCHEME)} (activations "
            f"{p(Param.QUANT_ACTIVATION_TYPE)}, weights {p(Param.QUANT_WEIGHT_TYPE)}), per_channel "
            f"{p(Param.QUANT_PER_CHANNEL)}, reduce_range {p(Param.QUANT_REDUCE_RANGE)}; calibration "
            f"{p(Param.CALIBRATION_METHOD)} on {p(Param.CALIBRATION_NUM_SAMPLES)} faces (seed "
            f"{p(Param.CALIBRATION_SEED)}, {p(Param.CALIBRATION_NUM_BINS)} bins) drawn from "
            + (
                "the reserved calibration identities"
                if run.protocol == "all"
                else "the LFW images no evaluation pair uses"
                if run.param(Param.DATASET_NAME) in (None, "lfw")
                else "the identities no evaluation pair uses"
            )
        )
    return f"FP32 ONNX export (opset {p(Param.ONNX_OPSET)})"


def _runtime(run: RunRecord) -> str | None:
    name = run.param(Param.RUNTIME_NAME)
    if name is None:
        return None
    precision, version = run.param(Param.RUNTIME_PRECISION) or "n/a", run.param(Param.RUNTIME_VERSION) or "n/a"
    return f"{name} {precision} ({version})"


def timing_line(runs: Sequence[RunRecord]) -> str:
    """The paired timing protocol as the runs logged it; older runs timed each model alone and say so."""
    if params(runs, Param.BENCHMARK_ROUNDS) == "n/a":
        return (
            f"- Latency: these runs predate paired timing (no {Param.BENCHMARK_ROUNDS} logged): each job timed its "
            f"model alone ({params(runs, Param.BENCHMARK_THREADS)} intra-op thread(s), "
            f"{params(runs, Param.BENCHMARK_WARMUP)} warm-up + {params(runs, Param.BENCHMARK_ITERATIONS)} timed "
            "runs), so no speed-up was measured."
        )
    timed = [run for run in runs if run.param(Param.BENCHMARK_CONFIDENCE) is not None]
    return (
        f"- Latency, paired: each job timed its variant on {distinct(runs, _runtime)} and the reference, ONNX Runtime "
        "FP32 of the same weights, in the same process, interleaved: per thread count "
        f"({params(runs, Param.BENCHMARK_THREADS)}; the unsuffixed metrics are at the first), "
        f"{params(runs, Param.BENCHMARK_ROUNDS)} rounds in which the two take turns (order flipped every round), each "
        f"model making {params(runs, Param.BENCHMARK_WARMUP)} warm-up + {params(runs, Param.BENCHMARK_ITERATIONS)} "
        f"timed batch-{params(runs, Param.BENCHMARK_LATENCY_BATCH)} calls per round. Speed-up = median of the "
        f"per-round FP32/variant latency ratios, with a distribution-free {distinct(timed, confidence)} interval "
        f"(order statistics of those ratios); throughput at batch {params(runs, Param.BENCHMARK_THROUGHPUT_BATCH)}; "
        f"ONNX Runtime CPU EP at {params(runs, Param.GRAPH_OPTIMIZATION)}."
    )


def _data_lines(runs: Sequence[RunRecord], table: Table) -> list[str]:
    resolution = fmt(_first(table.rows, Metric.FAR_RESOLUTION), ".1e")
    if runs[0].protocol == "all":
        return [
            f"- Dataset: {dataset_label(runs)}, fingerprint {tags(runs, Tag.DATASET_FINGERPRINT)}: every pair of "
            f"{fmt(_first(table.rows, Metric.N_IMAGES), '.0f')} images "
            f"({fmt(_first(table.rows, Metric.N_PAIRS), ',.0f')} pairs), whole identities reserved for calibration "
            "(dataset.calibration_pool "
            f"{params(runs, Param.DATASET_CALIBRATION_POOL)}, seed {params(runs, Param.DATASET_SEED)}).",
            f"- FAR resolution: {resolution} (1 / impostor pairs). TAR@FAR is exact: the share of genuine scores above "
            "FP32's (k+1)-th highest impostor score, k = floor(FAR x impostors); a FAR the impostors cannot resolve is "
            "n/a. ROC AUC and EER come from scores binned at 1e-4.",
        ]
    return [
        f"- Dataset: {dataset_label(runs)}, fingerprint {tags(runs, Tag.DATASET_FINGERPRINT)}, "
        f"{fmt(_first(table.rows, Metric.N_PAIRS), '.0f')} pairs from {params(runs, Param.DATASET_FOLDS)} fold(s) of "
        f"{params(runs, Param.DATASET_PAIRS)}; accuracy is 10-fold (threshold chosen on the other folds).",
        f"- FAR resolution: {resolution} (1 / impostor pairs): "
        "TAR@FAR=1e-4 is read at zero false accepts, and TAR@FAR=1e-3 allows floor(1e-3 x impostors) of them.",
    ]


def technical_lines(runs: Sequence[RunRecord], table: Table) -> list[str]:
    """Model, preprocessing, how each variant was built, data, benchmark and software, as the runs logged them."""
    return [
        f"- Architecture: {params(runs, Param.MODEL_ARCHITECTURE)} ({params(runs, Param.MODEL_EMBEDDING_SIZE)}-d "
        f"embedding); input: {params(runs, Param.MODEL_INPUT)}; weights: {params(runs, Param.MODEL_SOURCE)} "
        f"(sha256 {_abbrev(params(runs, Param.MODEL_WEIGHTS_SHA256), 16)}).",
        f"- Input preprocessing: `{params(runs, Param.MODEL_PREPROCESS)}` (fixed = (x-127.5)/128 unless a mean and "
        "std follow; per_image = per-image mean/std, std floored at 1/sqrt(n); then the layout and channel order when "
        "not NCHW RGB); alignment: MTCNN, margin "
        f"{params(runs, Param.ALIGN_MARGIN)}, selection `{params(runs, Param.ALIGN_SELECTION)}`.",
        "- Quantization (ONNX Runtime, after `quant_pre_process`):",
        *(f"  - {r.label}: {quantization_detail(r.run)}." for r in table.rows),
        *_data_lines(runs, table),
        timing_line(runs),
        f"- Software: onnxruntime {params(runs, Param.VERSION_ONNXRUNTIME)}, "
        f"torch {params(runs, Param.VERSION_TORCH)}, onnx {params(runs, Param.VERSION_ONNX)}, "
        f"mlflow {params(runs, Param.VERSION_MLFLOW)}.",
    ]
