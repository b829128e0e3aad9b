"""The report file: a header, then one section per comparable group of runs, with its figures beside it."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facequant.plots import plot_calibration_grid, plot_histograms, plot_pareto, plot_roc_points, plot_rocs
from facequant.report.accuracy import distribution_lines, drift_lines, flips_lines
from facequant.report.exclusion import Searched, exclusion_lines
from facequant.report.rule import Rule
from facequant.report.sections import (
    HEADLINE,
    comparison_lines,
    dataset_label,
    params,
    recommendation_lines,
    summary_lines,
    tags,
)
from facequant.report.sensitivity import sensitivity_lines
from facequant.report.table import Drop, Row, Table, groups, variant_table
from facequant.report.targets import target_lines
from facequant.report.technical import technical_lines
from facequant.schema import Metric, Param, RunRecord, Tag

REPORT_MD = "report.md"


def calibration_grid(table: Table) -> pd.DataFrame | None:
    """Accuracy drop (pt) by calibration method x num_samples, when the static variants vary them.

    None when static variants that differ in other settings would share a cell: one number cannot show both.
    """
    if table.baseline is None:
        return None
    cells: dict[tuple[str, int], list[float]] = {}
    for row in table.rows:
        method, samples = row.run.param(Param.CALIBRATION_METHOD), row.run.param(Param.CALIBRATION_NUM_SAMPLES)
        if row.run.param(Param.QUANT_MODE) == "static" and method is not None and samples is not None:
            cells.setdefault((method, int(samples)), []).append(100 * row.accuracy_drop)
    methods, counts = {method for method, _ in cells}, {samples for _, samples in cells}
    if (len(methods) < 2 and len(counts) < 2) or any(len(drops) > 1 for drops in cells.values()):
        return None
    frame = pd.DataFrame([(m, n, drops[0]) for (m, n), drops in cells.items()], columns=["method", "samples", "drop"])
    return frame.pivot(index="method", columns="samples", values="drop")


def _drop_err(drop: Drop) -> tuple[float, float]:
    """The drop's interval as distances below and above the variant's value (a larger drop is a lower value)."""
    return (drop.high - drop.point, drop.point - drop.low) if drop.has_interval else (0.0, 0.0)


def _speed_err(row: Row) -> tuple[float, float]:
    """The paired speed-up's interval mapped onto the variant's latency (latency ~ FP32's / speed-up)."""
    latency, (low, high) = row.metric(Metric.LATENCY_P50_MS), row.interval
    if math.isnan(latency) or not low > 0:
        return 0.0, 0.0
    return latency - latency * row.speedup / high, latency * row.speedup / low - latency


def group_section(
    runs: Sequence[RunRecord],
    curves: Mapping[str, pd.DataFrame],
    rule: Rule,
    out: Path,
    prefix: str,
    tensors: Mapping[str, pd.DataFrame],
    searches: Mapping[str, Searched],
) -> tuple[list[str], list[Path]]:
    """Summary, table, distributions, flips, drift, recommendation, sensitivity, plots and details of one group;
    lines and PNGs."""
    table = variant_table(runs)
    rows = table.rows
    plots = [
        plot_pareto(
            [r.label for r in rows],
            [r.metric(HEADLINE[r.all_pairs]) for r in rows],
            [r.metric(Metric.LATENCY_P50_MS) for r in rows],
            [r.metric(Metric.SIZE_MIB) for r in rows],
            out / f"{prefix}pareto.png",
            "TAR@FAR=1e-3 (every pair)" if any(r.all_pairs for r in rows) else "10-fold accuracy",
            np.array([_drop_err(r.drop_tar if r.all_pairs else r.drop_accuracy) for r in rows]).T,
            np.array([_speed_err(r) for r in rows]).T,
        )
    ]
    scored = {r.label: curves[r.run.run_id] for r in rows if r.run.run_id in curves}
    if scored and any(r.all_pairs for r in rows):  # roc.csv points: one log-FAR ROC down to the resolution
        points = {name: (c.far.to_numpy(), c.tar.to_numpy()) for name, c in scored.items()}
        resolution = min(r.metric(Metric.FAR_RESOLUTION) for r in rows)
        plots.insert(0, plot_roc_points(points, resolution, "ROC of every variant", out / f"{prefix}roc.png"))
    elif scored:
        thresholds = {r.label: r.metric(Metric.THRESHOLD) for r in rows}
        plots[:0] = [
            plot_rocs(scored, out / f"{prefix}roc.png"),
            plot_histograms(scored, thresholds, out / f"{prefix}histograms.png"),
        ]
    grid = calibration_grid(table)
    if grid is not None:
        plots.append(plot_calibration_grid(grid, out / f"{prefix}calibration_grid.png"))
    lines = ["### Executive summary", "", *summary_lines(table), "", "### Detailed comparison", ""]
    lines += [*comparison_lines(table), ""]
    if table.repeats:
        lines += [f"({table.repeats} repeated run(s) of the same variant: the latest of each is shown.)", ""]
    lines += ["### Similarity distributions", "", *distribution_lines(table), ""]
    lines += ["### Decision flips", "", *flips_lines(table), ""]
    lines += ["### Embedding drift", "", *drift_lines(table), ""]
    lines += ["### Recommendations", "", *recommendation_lines(table, rule), ""]
    lines += ["### Validity per target", "", *target_lines(table), ""] if table.quantized else []
    lines += ["### Per-tensor sensitivity", "", *sensitivity_lines(table, tensors), ""]
    searched = exclusion_lines(table, searches)
    lines += ["### Accuracy-aware exclusion", "", *searched, ""] if searched else []
    lines += ["### Plots", "", *(f"![{p.stem}]({p.name})" for p in plots), ""]
    lines += ["### Technical details", "", *technical_lines(runs, table), ""]
    return lines, plots


def _protocol(runs: Sequence[RunRecord]) -> str:
    flip = "; embeddings fused with the mirror image's" if runs[0].group.flip else ""
    if runs[0].protocol == "all":
        return "every image against every other" + flip
    pairs = "View 2's pairs" if dataset_label(runs) == "LFW" else params(runs, Param.DATASET_PAIRS)
    return f"{params(runs, Param.DATASET_FOLDS)} folds of {pairs}{flip}"


def build_report(
    runs: Sequence[RunRecord],
    curves: Mapping[str, pd.DataFrame],
    rule: Rule,
    out: Path,
    title: str,
    tensors: Mapping[str, pd.DataFrame] | None = None,
    searches: Mapping[str, Searched] | None = None,
) -> list[Path]:
    """Write out/report.md and its PNGs from the selected runs (curves: run id -> scores.csv rows; tensors: run id
    -> sensitivity.csv rows, searches: run id -> its exclusion search, for the runs that logged one).

    Returns the files written, report.md last, so that exactly these are logged.
    """
    out.mkdir(parents=True, exist_ok=True)
    finished = [run for run in runs if run.finished]
    failed = [run for run in runs if not run.finished]
    lines = [
        f"# {title}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(runs)} MLflow run(s); git commit(s) "
        f"{tags(runs, Tag.GIT_COMMIT)}.",
        f"Machine: {params(runs, Param.CPU_MODEL)}; ISA {params(runs, Param.CPU_ISA)}.",
        "",
    ]
    if failed:
        lines += [
            "Runs that did not finish (left out): "
            + ", ".join(f"{run.name} ({run.status}: {run.error or 'no error recorded'})" for run in failed),
            "",
        ]
    if not finished:
        lines += ["No finished runs to compare."]
    split = groups(finished)
    if len(split) > 1:
        lines += [
            f"**These runs mix {len(split)} model/dataset combinations; each is compared only with runs of "
            "the same model weights, dataset fingerprint and folds.**",
            "",
        ]
    files = []
    for i, group in enumerate(split):
        lines += [
            f"## {params(group, Param.MODEL_NAME)} on {dataset_label(group)} ({_protocol(group)}, dataset "
            f"{tags(group, Tag.DATASET_FINGERPRINT)})",
            "",
        ]
        prefix = f"g{i}_" if len(split) > 1 else ""
        section, plots = group_section(group, curves, rule, out, prefix, tensors or {}, searches or {})
        lines += section
        files += plots
    path = out / REPORT_MD
    path.write_text("\n".join(lines) + "\n")
    return [*files, path]
