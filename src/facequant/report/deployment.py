"""What a deployment must know of a registered version: the CPU it was validated for, the targets whose arithmetic
it holds under, its decision thresholds beside FP32's (quantization moves them), and its input contract."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from facequant.evaluation.verification import DEPLOY_FARS, curve_threshold, far_threshold
from facequant.report.rule import target_isa
from facequant.report.table import Row
from facequant.schema import Metric, Param, RunRecord, far_text

THRESHOLD_TAG = "facequant.threshold_far_{}"  # a version tag per FAR: the variant's threshold, then FP32's


def run_thresholds(run: RunRecord, curve: pd.DataFrame | None) -> dict[float, float | None]:
    """The run's score threshold at each deployment FAR from its logged scores (pairs) or ROC (protocol=all);
    None where its impostor pairs do not resolve that FAR."""
    if curve is None:
        return dict.fromkeys(DEPLOY_FARS)
    if "score" in curve:
        scores, labels = curve.score.to_numpy(), curve.label.to_numpy()
        return {far: far_threshold(scores, labels, far) for far in DEPLOY_FARS}
    resolution = run.metric(Metric.FAR_RESOLUTION)
    far, threshold = curve.far.to_numpy(), curve.threshold.to_numpy()
    return {f: curve_threshold(far, threshold, f, resolution) for f in DEPLOY_FARS}


def _threshold_text(variant: float | None, fp32: float | None) -> str:
    if variant is None:
        return "not resolved: too few impostor pairs for this FAR"
    base = "n/a" if fp32 is None else f"{fp32:.6f}"
    return f"{variant:.6f} (FP32 {base}; accept a pair when its cosine similarity >= the threshold)"


def validated_targets(row: Row, runs: Sequence[RunRecord]) -> str:
    """Every target the same model file was scored for in the selection, with its kernel check."""
    sha = row.run.param(Param.ONNX_SHA256)
    same = [r for r in runs if r.finished and sha is not None and r.param(Param.ONNX_SHA256) == sha] or [row.run]
    parts = []
    for run in sorted(same, key=lambda r: r.param(Param.TARGET_ISA) or ""):
        mean, low = run.metric(Metric.KERNEL_COSINE_MEAN), run.metric(Metric.KERNEL_COSINE_MIN)
        check = "not measured" if math.isnan(mean) else f"kernel cosine mean {mean:.4f}, min {low:.4f}"
        parts.append(
            f"{run.param(Param.TARGET_ISA) or 'host'} ({run.param(Param.TARGET_ARITHMETIC) or 'host'}: {check})"
        )
    return "; ".join(parts)


def deployment_tags(
    row: Row, fp32: RunRecord | None, runs: Sequence[RunRecord], thresholds: Mapping[str, dict[float, float | None]]
) -> dict[str, str]:
    """Version tags: host ISA, the target, the targets validated, thresholds per FAR beside FP32's, input contract."""
    run = row.run
    tags = {
        "facequant.host_isa": run.param(Param.TARGET_HOST) or run.param(Param.CPU_ISA) or "unknown",
        "facequant.target": target_isa(row),
        "facequant.targets_validated": validated_targets(row, runs),
        "facequant.input_contract": run.param(Param.INPUT_CONTRACT) or "not logged",
        "facequant.input_spec": run.param(Param.INPUT_SPEC) or "{}",
    }
    mine, base = thresholds.get(run.run_id, {}), thresholds.get(fp32.run_id, {}) if fp32 else {}
    for far in DEPLOY_FARS:
        tags[THRESHOLD_TAG.format(far_text(far))] = _threshold_text(mine.get(far), base.get(far))
    return tags
