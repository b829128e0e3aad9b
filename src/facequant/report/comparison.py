"""Compare a sweep's variants: select the runs, apply the rule, write and log the report, register the pick."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from facequant import tracking
from facequant.config.running import MlflowConfig
from facequant.config.sections import ConfigError
from facequant.machine import host_isa
from facequant.report.accuracy import p_text
from facequant.report.deployment import deployment_tags, run_thresholds
from facequant.report.document import build_report
from facequant.report.exclusion import read_search
from facequant.report.rule import DROP_INTERVAL, Rule
from facequant.report.sections import confidence, row_speedup, threads_phrase
from facequant.report.table import Drop, Row, groups, variant_table
from facequant.report.targets import host_speed
from facequant.schema import (
    EXCLUDED_TXT,
    EXCLUSION_CSV,
    ROC_CSV,
    SCORES_CSV,
    SENSITIVITY_CSV,
    Metric,
    Param,
    RunRecord,
    Tag,
)

__all__ = ["Comparison", "Rule", "compare", "register_recommended"]


@dataclass(frozen=True)
class Comparison:
    """What compare produced: the report, the selection's sweep, experiment and runs, and the recommended run if
    any."""

    report: Path
    sweep: str | None
    experiment_id: str
    recommended: Row | None
    why_none: str
    runs: tuple[RunRecord, ...]
    everything: tuple[RunRecord, ...] = ()  # the selection before target= narrowed it: other targets' checks
    thresholds: dict[str, dict[float, float | None]] = field(default_factory=dict)  # run id -> FAR -> threshold
    target: str | None = None


def recommend(runs: list[RunRecord], rule: Rule) -> tuple[Row | None, str]:
    """The one recommended row of the selection, or None with the reason."""
    split = groups([run for run in runs if run.finished])
    if len(split) != 1:
        return None, f"the selection mixes {len(split)} model/dataset groups; narrow it with filter=..."
    table = variant_table(split[0])
    if table.baseline is None:
        return None, "the selection has no FP32 run, so no drop can be measured"
    best = rule.choose(table)
    return best, "" if best else "no quantized variant meets the rule: " + "; ".join(
        f"{row.label}: {', '.join(rule.breaks(row))}" for row in table.quantized
    )


def drop_evidence(drop: Drop, threshold: str) -> str:
    """A drop as a fraction with its interval and, when logged, McNemar's p at FP32's `threshold`."""
    if not drop.has_interval:
        text = f"{drop.point:.4f} (no interval logged)"
    else:
        text = f"{drop.point:.4f} [{drop.low:.4f}, {drop.high:.4f}], {DROP_INTERVAL}"
    return text if math.isnan(drop.p_value) else f"{text}; McNemar p={p_text(drop.p_value)} at FP32's {threshold}"


def evidence(row: Row, rule: Rule, sweep: str | None) -> dict[str, str]:
    """Registry tags that say why this version was chosen, with the figures behind it."""
    run = row.run
    whose = f"; {note}" if (note := host_speed(row)) else ""
    return {
        "facequant.run_id": run.run_id,
        "facequant.variant": run.name,
        "facequant.sweep": sweep or "none",
        "facequant.dataset_fingerprint": run.tag(Tag.DATASET_FINGERPRINT) or "n/a",
        "facequant.accuracy": f"{run.metric(Metric.ACCURACY):.4f} +- {run.metric(Metric.ACCURACY_STD):.4f} (10-fold)",
        "facequant.accuracy_drop": drop_evidence(row.drop_accuracy, "accuracy threshold"),
        "facequant.tar_far_1e-3_drop": drop_evidence(row.drop_tar, "FAR=1e-3 threshold"),
        "facequant.speedup": f"{row_speedup(row)} (median paired FP32/variant batch-1 latency ratio, "
        f"{threads_phrase(run.threads)}, {confidence(run)} interval{whose})",
        "facequant.compression": f"{row.compression:.2f}x",
        "facequant.rule": rule.text(row.all_pairs),
    }


def for_target(runs: list[RunRecord], target: str) -> list[RunRecord]:
    """The FP32 baselines and the variants scored for this target (auto: this machine's ISA)."""
    isa = host_isa() if target == "auto" else target
    kept = [run for run in runs if run.is_baseline or run.param(Param.TARGET_ISA) == isa]
    if not any(not run.is_baseline for run in kept):
        found = sorted({run.param(Param.TARGET_ISA) or "none logged" for run in runs if not run.is_baseline})
        raise ConfigError(
            f"target={target}: no variant in the selection was scored for {isa} (its targets: {', '.join(found)}); "
            f"sweep with target={isa}, or choose one of those"
        )
    return kept


def compare(
    cfg: MlflowConfig,
    sweeps: str | Sequence[str] | None,
    filter_string: str | None,
    out: Path | None,
    rule: Rule,
    target: str | None = None,
) -> Comparison:
    """Select the runs (the latest sweep's children by default, or of several sweeps, or all; with target, those
    scored for it), build the report from them and log it: to the sweep's parent, or to a new comparison run when
    they span several."""
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None) if out else None
    if blocking is not None:  # the report would fail to write after the runs were read
        raise ConfigError(f"out={out}: {blocking} is a file; give a folder for the report (out=<folder>) or leave out")
    everything, sweep = tracking.select_runs(cfg, sweeps, filter_string)
    runs = for_target(everything, target) if target else everything
    out = out or Path("reports") / (sweep or "comparison-" + time.strftime("%Y%m%d-%H%M%S"))
    curves, tensors, searches = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="facequant-scores-") as tmp:
        for run in [run for run in runs if run.finished]:
            artifact = ROC_CSV if run.protocol == "all" else SCORES_CSV  # 81M scores are not kept under all
            path = tracking.download_artifact(run.run_id, artifact, Path(tmp) / run.run_id)
            if path is not None:
                curves[run.run_id] = pd.read_csv(path)
            if not math.isnan(run.metric(Metric.N_EXCLUDED)):
                steps = tracking.download_artifact(run.run_id, EXCLUSION_CSV, Path(tmp) / run.run_id)
                nodes = tracking.download_artifact(run.run_id, EXCLUDED_TXT, Path(tmp) / run.run_id)
                if steps is not None:
                    searches[run.run_id] = read_search(steps, nodes)
            if math.isnan(run.metric(Metric.SQNR_MIN_DB)):
                continue  # measured no sensitivity
            path = tracking.download_artifact(run.run_id, SENSITIVITY_CSV, Path(tmp) / run.run_id)
            if path is not None:  # an empty node is the model input, not a missing value
                tensors[run.run_id] = pd.read_csv(path, keep_default_na=False)
    title = f"FaceNet INT8 quantization report: sweep {sweep}" if sweep else "FaceNet INT8 quantization report"
    files = build_report(runs, curves, rule, out, title, tensors, searches)
    tracking.log_report(files, sweep, runs[0].experiment_id)
    best, why = recommend(runs, rule)
    thresholds = {run.run_id: run_thresholds(run, curves.get(run.run_id)) for run in runs if run.finished}
    return Comparison(
        files[-1], sweep, runs[0].experiment_id, best, why, tuple(runs), tuple(everything), thresholds, target
    )


def register_recommended(result: Comparison, name: str, alias: str, rule: Rule) -> str:
    """Register the recommended variant's model under name@alias with its evidence; nothing when none passed."""
    if result.recommended is None:
        return f"nothing registered as {name}: {result.why_none}"
    best = result.recommended
    model = best.run.param(Param.MODEL_NAME)
    fp32 = next((r for r in result.runs if r.is_baseline and r.finished and r.param(Param.MODEL_NAME) == model), None)
    tags = evidence(best, rule, result.sweep) | deployment_tags(best, fp32, result.everything, result.thresholds)
    version, new = tracking.register(best.run, name, alias, tags)
    load = f"load it with mlflow.onnx.load_model('models:/{name}@{alias}')"
    if not new:
        return f"{best.label} is already {name} version {version}; alias {alias} now points at it: {load}"
    return f"registered {best.label} as {name} version {version}, alias {alias}: {load}"
