"""The one recommendation rule of the report, stated in words and applied to table rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from facequant.evaluation.goal import Goal, pt
from facequant.report.table import NO_DROP, Drop, Row, Table
from facequant.schema import Metric, Param, far_text

# How every drop interval was computed (facequant.paired): the report and the registry quote it.
# Every variant is judged on its target's integer arithmetic too (report/targets.py shows the check).
KERNEL_CLAUSE = (
    "; a variant whose integer kernels on its target disagree with its QDQ graph (mean embedding cosine below "
    "target.kernel_cosine_floor) or saturate their 16-bit pair sums beyond target.max_saturation is refused"
)
DROP_INTERVAL = "95% paired-bootstrap interval (1000 resamples of the pairs, stratified genuine/impostor)"
DROP_INTERVAL_ALL = "95% paired-bootstrap interval (1000 resamples of the identities, since pairs share them)"
FALLBACK = "no interval logged, so the point drop is compared"


KERNEL_FLOOR = 0.999  # for runs that logged no target.kernel_cosine_floor


def target_isa(row: Row) -> str:
    """The target a run's figures hold for; runs from before targets hold for the host that ran them."""
    return row.run.param(Param.TARGET_ISA) or "host"


def kernel_breaks(row: Row) -> list[str]:
    """Why the variant's integer kernels cannot be trusted on its target: they disagree with its QDQ graph, or
    their 16-bit pair sums saturate beyond the stated bound. Runs that did not measure them pass (n/a)."""
    isa, reasons = target_isa(row), []
    cosine = row.metric(Metric.KERNEL_COSINE_MEAN)
    floor = float(row.run.param(Param.TARGET_KERNEL_FLOOR) or KERNEL_FLOOR)
    if not math.isnan(cosine) and cosine < floor:
        reasons.append(f"its {isa} kernels disagree with its QDQ graph: mean embedding cosine {cosine:.4f} < {floor}")
    saturating = row.metric(Metric.SATURATING_NODES)
    if saturating > 0:
        bound = float(row.run.param(Param.TARGET_MAX_SATURATION) or "nan")
        reasons.append(
            f"{saturating:.0f} node(s) saturate their {isa} int16 pair sums on more than {bound:g} of their outputs"
        )
    return reasons


@dataclass(frozen=True)
class Rule(Goal):
    """Recommend the fastest variant that holds the goal: its drops against FP32 stay within these bounds.

    A drop counts at the upper end of its 95% interval, so a variant passes only when the data rule out a drop
    beyond the bound. Speed-ups whose intervals overlap the fastest's are not told apart by the measurement, so
    they count as equally fast and the smallest accuracy drop wins among them. Under protocol=all there is no
    10-fold accuracy: the one bound is the TAR drop at FAR=far, and the smallest such drop wins among equals.
    """

    def text(self, all_pairs: bool = False) -> str:
        if all_pairs:
            return (
                "the fastest variant (highest paired speed-up over ONNX Runtime FP32 at batch 1, first benchmarked "
                f"thread count) whose TAR@FAR={far_text(self.far)} drop is <= {pt(self.max_tar_drop)} against the "
                f"FP32 run of the same model and images, read at the upper end of its {DROP_INTERVAL_ALL}; "
                "variants whose speed-up intervals overlap the fastest's count as equally fast (their difference is "
                f"within the measurement noise), and among those the smallest TAR@FAR={far_text(self.far)} drop wins"
            )
        return (
            "the fastest variant (highest paired speed-up over ONNX Runtime FP32 at batch 1, first benchmarked "
            f"thread count) whose 10-fold accuracy drop is <= {pt(self.max_drop)} and whose TAR@FAR=1e-3 drop is "
            f"<= {pt(self.max_tar_drop)}, both against the FP32 run of the same model and data and both read at the "
            f"upper end of their {DROP_INTERVAL}, or at the point drop for runs that logged no interval; variants "
            "whose speed-up intervals overlap the fastest's count as equally fast (their difference is within the "
            "measurement noise), and among those the smallest accuracy drop wins"
        ) + KERNEL_CLAUSE

    def equally_fast(self, passing: Sequence[Row]) -> list[Row]:
        """The rows the measurement cannot tell from the fastest: their speed-up intervals overlap its interval."""
        fastest = max(passing, key=lambda row: row.speedup)
        return [row for row in passing if row.overlaps(fastest)]

    def pick(self, passing: Sequence[Row]) -> Row:
        """The recommended row among rows that break nothing (so each has a speed-up and drops)."""
        return min(self.equally_fast(passing), key=lambda row: (self.primary(row)[1].point, -row.speedup))

    def primary(self, row: Row) -> tuple[str, Drop]:
        """The drop that decides among equally fast variants: accuracy, or the gate's TAR drop under protocol=all."""
        if row.all_pairs:
            return f"TAR@FAR={far_text(self.far)} drop", row.tar_drops.get(self.far, NO_DROP)
        return "accuracy drop", row.drop_accuracy

    def passing(self, table: Table) -> list[Row]:
        """The quantized rows that break nothing; none without an FP32 run, since no drop is then backed."""
        return [row for row in table.quantized if not self.breaks(row)] if table.baseline is not None else []

    def choose(self, table: Table) -> Row | None:
        """The recommended row of one group; None without an FP32 run or when no quantized variant passes."""
        passing = self.passing(table)
        return self.pick(passing) if passing else None

    def bounded(self, row: Row) -> tuple[tuple[str, Drop, float], ...]:
        """Each drop the rule bounds: its name, the row's drop and the bound."""
        if row.all_pairs:
            return ((*self.primary(row), self.max_tar_drop),)
        accuracy = ("accuracy drop", row.drop_accuracy, self.max_drop)
        return accuracy, ("TAR@FAR=1e-3 drop", row.drop_tar, self.max_tar_drop)

    def fallbacks(self, row: Row) -> list[str]:
        """The names of the row's drops judged by their point value, since the run logged no interval for them."""
        return [name for name, drop, _ in self.bounded(row) if not math.isnan(drop.point) and not drop.has_interval]

    def breaks(self, row: Row) -> list[str]:
        """Why the row cannot be recommended; a value the run did not log cannot pass."""
        reasons = []
        for name, drop, bound in self.bounded(row):
            if math.isnan(drop.point) and row.all_pairs and row.metric(Metric.FAR_RESOLUTION) > self.far:
                reasons.append(
                    f"no {name}: these impostor pairs resolve FAR >= {row.metric(Metric.FAR_RESOLUTION):.1e} only; "
                    "evaluate more identities or gate at a larger far"
                )
            elif math.isnan(drop.point):
                reasons.append(f"no {name} logged")
            elif breach := self.breach(name, drop.point, drop.high if drop.has_interval else math.nan, bound):
                reasons.append(breach + ("" if drop.has_interval else f" ({FALLBACK})"))
        if math.isnan(row.speedup):
            reasons.append("no paired speed-up logged")
        return reasons + kernel_breaks(row)
