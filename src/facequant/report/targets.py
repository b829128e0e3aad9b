"""Validity per target: for each variant, the CPU its figures hold for, how its integer arithmetic was computed
there (the host's kernels, or emulated), the kernel check the rule reads, and whether its speed was measured."""

from __future__ import annotations

import math

from facequant.evaluation.goal import pt
from facequant.report.accuracy import fmt, markdown_table
from facequant.report.rule import kernel_breaks, target_isa
from facequant.report.table import Row, Table
from facequant.schema import Metric, Param

ARITHMETIC = {
    "host": "the host's kernels",
    "exact": "emulated: QDQ graph in float (exact int32 accumulation)",
    "avx2": "emulated: saturating int16 pair sums",
}


def host_speed(row: Row) -> str:
    """Empty when the speed-up stands for the run's target; else whose it is, for every sentence that quotes it."""
    if row.run.param(Param.TARGET_SPEED_MEASURED) != "False":
        return ""
    return f"measured on the {row.run.param(Param.TARGET_HOST)} host, not on {target_isa(row)}"


def speed_text(row: Row) -> str:
    """Speed is the host's: a variant for another target says so, naming the host's ISA."""
    if host_speed(row):
        return f"not measured: host is {row.run.param(Param.TARGET_HOST)}"
    return fmt(row.speedup, ".2f") + "x" if not math.isnan(row.speedup) else "n/a"


def target_lines(table: Table) -> list[str]:
    """The variant x target table: arithmetic, kernel check, drops, and whether the speed-up stands for it."""
    rows = table.quantized
    if not rows:
        return []
    heads = ["Target", "Arithmetic", "Kernel cosine mean / min", "Saturating nodes", "Half-range nodes"]
    heads += ["Accuracy drop", "TAR@FAR=1e-3 drop", "Kernel check", "Speed-up"]

    def cells(r: Row) -> list[str]:
        arithmetic = r.run.param(Param.TARGET_ARITHMETIC)
        kernel = f"{fmt(r.metric(Metric.KERNEL_COSINE_MEAN), '.4f')} / {fmt(r.metric(Metric.KERNEL_COSINE_MIN), '.4f')}"
        broken = kernel_breaks(r)
        return [
            target_isa(r),
            ARITHMETIC.get(arithmetic or "", "the host's kernels"),
            kernel,
            fmt(r.metric(Metric.SATURATING_NODES), ".0f"),
            fmt(r.metric(Metric.HALF_RANGE_NODES), ".0f"),
            pt(r.accuracy_drop) if not math.isnan(r.accuracy_drop) else "n/a",
            pt(r.tar_drop) if not math.isnan(r.tar_drop) else "n/a",
            "fails: " + "; ".join(broken) if broken else "passes",
            speed_text(r),
        ]

    return markdown_table(heads, rows, cells)
