"""One job: run the stages in order as one MLflow run, logging each stage's result as it ends."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from facequant import tracking
from facequant.cache.layout import CacheLayout
from facequant.config.settings import Settings
from facequant.job.artifacts import all_artifacts, drift_artifacts, pairs_artifacts
from facequant.job.exclude import exclude_search
from facequant.job.held_out import Sensitivity, held_out
from facequant.job.stages import (
    EvalData,
    Evaluation,
    Paired,
    benchmark_model,
    compare_with_fp32,
    evaluate_model,
    export_model,
    prepare_data,
)
from facequant.job.stages_all import FAR_NOTE as ALL_FAR_NOTE
from facequant.job.stages_all import AllEvaluation, compare_all, evaluate_all
from facequant.job.stages_quant import Quantized, quantize_model
from facequant.machine import environment, git_commit, machine_info
from facequant.models.export import OPSET, model_sha256
from facequant.onnxmodel import InputSpec
from facequant.quant.saturation import saturating_nodes, saturation
from facequant.quant.sensitivity import artifacts, measure, sensitivity_metrics, summary
from facequant.runtime import sessions as runtime
from facequant.runtime.kernels import kernel_agreement, kernel_warning
from facequant.schema import (
    CONFIG_YAML,
    ENVIRONMENT_TXT,
    HALF_RANGE_TXT,
    SATURATION_CSV,
    STAGE_TIME,
    UNREADABLE_TXT,
    Metric,
    Param,
    Tag,
)

log = logging.getLogger(__name__)

FAR_NOTE = (
    "TAR@FAR is read off the pooled ROC; with n impostor pairs the smallest non-zero FAR is 1/n "
    "(3.3e-4 for LFW's 3000), so TAR@FAR=1e-4 allows zero false accepts."
)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a pipeline stage, and log and print its wall time when it ends."""
    log.info("stage %s", name)
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    tracking.log_metrics({STAGE_TIME[name]: seconds})
    log.info("stage %s took %.1f s", name, seconds)


# Under protocol=all, the figure a job's last log line shows: TAR@FAR=1e-3 unless too few impostors resolve it.
HEADLINES = (Metric.TAR_FAR_1E3, Metric.ROC_AUC)


def scheme(settings: Settings) -> str:
    """U8S8-style name of the integer kernels the variant uses (activations, weights)."""
    short = {"QUInt8": "U8", "QInt8": "S8"}
    quant = settings.quant
    if quant.mode == "static":
        return short[quant.activation_type] + short[quant.weight_type]
    if quant.mode == "dynamic":
        return "U8" + short[quant.weight_type] + " (dynamic)"
    return "fp32"


def run_job(settings: Settings, config_yaml: str) -> dict[str, float]:
    """Run one variant as one MLflow run; returns its metrics. The run never stays RUNNING."""
    tags = {
        Tag.VARIANT: settings.variant_name,
        Tag.VARIANT_KEY: settings.variant_key,
        Tag.IS_BASELINE: str(settings.is_reference).lower(),
        Tag.GIT_COMMIT: git_commit(),
        Tag.MODEL: settings.model.name,
    }
    env_params, env_text = environment()
    with tracking.job_run(settings.mlflow, settings.variant_name, tags, settings.parent_run_id):
        tracking.log_params(
            tracking.flatten(settings.as_dict())
            | machine_info()
            | env_params
            | {
                Param.ONNX_OPSET: OPSET,
                Param.QUANT_SCHEME: scheme(settings),
                Param.GRAPH_OPTIMIZATION: runtime.GRAPH_OPTIMIZATION,
                Param.RUNTIME_VERSION: runtime.name(settings.runtime),
                # runtime.open_session refuses a compiled model whose precision differs from the request
                Param.RUNTIME_INFERENCE_PRECISION: settings.runtime.precision,
            }
        )
        tracking.log_text(config_yaml, CONFIG_YAML)
        tracking.log_text(env_text, ENVIRONMENT_TXT)
        return _run(settings)


def _saturation(settings: Settings, quantized: Quantized, table: pd.DataFrame, out: Path) -> Path:
    """Log the variant's per-node saturation under the avx2 target's pair sums on the held-out faces, with the
    weights the preset halved."""
    bound = settings.target.max_saturation
    tracking.log_metrics(
        {
            Metric.SATURATION_MAX: float(table.outputs_fraction.max()) if len(table) else 0.0,
            Metric.SATURATING_NODES: len(saturating_nodes(table, bound)),
        }
    )
    if quantized.half_range:
        tracking.log_text("\n".join(quantized.half_range) + "\n", HALF_RANGE_TXT)
    path = out / SATURATION_CSV
    table.to_csv(path, index=False, float_format="%.6f")
    return path


def _sensitivity(settings: Settings, data: EvalData, quantized: Quantized, spec: InputSpec) -> Sensitivity:
    """Log every quantized tensor's SQNR against FP32 on held-out faces (sensitivity.csv, its plot, the metrics)."""
    faces = held_out(data, settings.sensitivity_faces)
    images = str(data.lfw.images_dir)
    tracking.log_sensitivity_set(faces.frame(), f"{settings.dataset.name}-sensitivity", faces.faces_id.key, images)
    measured = measure(quantized.source, quantized.path, faces.faces, spec)
    table = measured.table
    # one AVX2 emulation pass gives saturation.csv and, for an emulated avx2 target, the kernels' embeddings; the
    # sensitivity pass gives the QDQ graph's float embeddings: the kernel check computes neither again
    pairs = saturation(quantized.path, faces.faces, spec) if settings.target.saturates else None
    emulated = pairs.embeddings if pairs is not None and settings.arithmetic == "avx2" else None
    agreement = kernel_agreement(
        quantized.path, faces.faces, spec, settings.runtime, settings.arithmetic, emulated, measured.written
    )
    tracking.log_metrics(sensitivity_metrics(table) | agreement | {Metric.HALF_RANGE_NODES: len(quantized.half_range)})
    warning = kernel_warning(agreement, settings.target.isa)
    if warning:
        log.warning("%s: %s", settings.variant_name, warning)
        tracking.set_tags({Tag.KERNEL_WARNING: warning})
    with tempfile.TemporaryDirectory(prefix="facequant-sensitivity-") as tmp:
        title = f"Per-tensor SQNR - {settings.variant_name} ({len(faces.names)} held-out faces)"
        files = artifacts(table, title, Path(tmp))
        if pairs is not None:
            files.append(_saturation(settings, quantized, pairs.table, Path(tmp)))
        tracking.log_artifacts(files)
    log.info("sensitivity on %d held-out faces: %s", len(faces.names), summary(table))
    return Sensitivity(table, faces.names)


def _run(settings: Settings) -> dict[str, float]:
    layout = CacheLayout(settings.cache_dir)
    with stage("align"):
        data = prepare_data(settings, layout)
        fingerprint, note = (data.digest, ALL_FAR_NOTE) if data.all_pairs else (data.lfw.fingerprint, FAR_NOTE)
        tracking.set_tags({Tag.DATASET_FINGERPRINT: fingerprint, Tag.FAR_NOTE: note})
        tracking.log_metrics(data.metrics())
        if data.lfw.unreadable:
            tracking.log_text("\n".join(data.lfw.unreadable) + "\n", UNREADABLE_TXT)
        name, protocol = settings.dataset.name, settings.dataset.protocol
        source = str(data.lfw.images_dir if data.all_pairs else data.lfw.pairs_path)
        tracking.log_evaluation_set(data.pairs_frame(), f"{name}-{protocol}", data.digest, source)
        if data.calibration_id is not None:
            images = str(data.lfw.images_dir)
            tracking.log_calibration_set(
                data.calibration_frame(), f"{name}-calibration", data.calibration_id.key, images
            )

    with stage("export"):
        exported = export_model(settings, layout, data)
        tracking.log_params({f"model_info.{k}": v for k, v in asdict(exported.info).items()})
        tracking.log_metrics(exported.metrics())

    variant_name = settings.variant_name  # quant.exclude=auto renames it after the nodes it keeps in float
    with stage("quantize"):  # before the evaluation faces are loaded, to bound peak memory
        quantized = quantize_model(settings, layout, data, exported)
        variant = quantized.path

    spec = exported.spec
    if settings.sensitivity:
        with stage("sensitivity"):
            found = _sensitivity(settings, data, quantized, spec)
        if settings.quant.exclude:
            with stage("exclude"):
                quantized, variant_name = exclude_search(settings, layout, data, exported, quantized.source, found)
                variant = quantized.path

    tracking.log_params(
        {
            Param.ONNX_SHA256: model_sha256(variant),
            Param.INPUT_CONTRACT: spec.contract(settings.align.image_size),
            Param.INPUT_SPEC: json.dumps(asdict(spec) | {"image_size": settings.align.image_size}),
        }
    )
    with stage("evaluate"):
        evaluation, drops, paired = _evaluate(settings, data, variant, exported.fp32, spec)
        tracking.log_metrics(evaluation.metrics() | drops | (paired.metrics if paired else {}))

    with stage("benchmark"):
        bench = benchmark_model(settings, data, variant, exported.fp32, spec)
        tracking.log_metrics(bench)

    with stage("log_artifacts"), tempfile.TemporaryDirectory(prefix="facequant-artifacts-") as tmp:
        write = all_artifacts if isinstance(evaluation, AllEvaluation) else pairs_artifacts
        artifacts = write(Path(tmp), data, evaluation, variant_name)
        if paired is not None:
            artifacts += drift_artifacts(Path(tmp), data, paired, variant_name)
        tracking.log_artifacts(artifacts)
        example = exported.sample[:1]
        tracking.log_onnx_model(variant, example, runtime.run(runtime.session(variant), example, spec.output))
    metrics = evaluation.metrics() | drops | bench
    headline = Metric.ACCURACY if not data.all_pairs else next(m for m in HEADLINES if m in metrics)
    log.info(
        "%s: %s %.4f, %.2f MiB, p50 %.2f ms, speed-up %.2fx",
        variant_name,
        headline,
        metrics[headline],
        evaluation.size_mib,
        bench[Metric.LATENCY_P50_MS],
        bench[Metric.SPEEDUP],
    )
    return metrics


def _evaluate(
    settings: Settings, data: EvalData, variant: Path, fp32: Path, spec: InputSpec
) -> tuple[Evaluation | AllEvaluation, dict[Metric, float], Paired | None]:
    """The variant's metrics, its drops and paired statistics against the FP32 file on ONNX Runtime (the baseline
    of every drop, as of every speed-up), in the configured protocol."""
    if data.all_pairs:
        baseline = evaluate_all(data, fp32, spec, runtime.ORT)
        if settings.is_reference:
            return baseline, baseline.drops_from(baseline), None
        evaluation = evaluate_all(data, variant, spec, settings.runtime, baseline, settings.arithmetic)
        return evaluation, evaluation.drops_from(baseline), compare_all(data, evaluation, baseline)
    evaluation = evaluate_model(data, variant, spec, settings.runtime, settings.arithmetic)
    if settings.is_reference:
        return evaluation, evaluation.drops_from(evaluation), None
    baseline = evaluate_model(data, fp32, spec)
    if not baseline.cached:
        log.info("no cached FP32 baseline for this model and data; computed it")
    return evaluation, evaluation.drops_from(baseline), compare_with_fp32(data, evaluation, baseline)
