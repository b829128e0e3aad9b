"""Table shaping: the runs of one model and dataset -> one row per distinct variant, against the FP32 run."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from facequant.schema import FLIPS_AT_FAR, TAR_DROP_AT_FAR, GroupKey, Metric, RunRecord

SIGNIFICANCE = 0.05  # a McNemar p-value below this marks a drop as significant


@dataclass(frozen=True)
class Drop:
    """FP32 minus the variant (a fraction, positive = worse), its 95% paired-bootstrap interval and McNemar's p at
    the matching FP32 threshold; each NaN when not logged (runs from before the paired statistics)."""

    point: float
    low: float
    high: float
    p_value: float

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def significant(self) -> bool:
        """Whether the decision flips behind the drop are beyond chance; False when no test was logged."""
        return self.p_value < SIGNIFICANCE


NO_DROP = Drop(math.nan, math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class Row:
    """One variant: the latest run of its variant key, with its comparisons against FP32.

    Drops (with their paired statistics) and compression are what the job logged, NaN when the group has no FP32
    run since nothing in the selection backs them. The speed-up is the job's own paired measurement against FP32,
    so it stands alone.
    """

    run: RunRecord
    label: str  # the run name, plus a key prefix when distinct variants share that name
    drop_accuracy: Drop  # with McNemar at FP32's accuracy threshold
    compression: float
    speedup: float  # at the run's first thread count; 1 for the FP32 reference
    speedup_low: float  # its confidence interval, NaN when not logged (and for the reference)
    speedup_high: float
    tar_drops: dict[float, Drop]  # at each FAR of TAR_DROP_AT_FAR (1e-5 and 1e-6 under protocol=all only)

    @property
    def drop_tar(self) -> Drop:
        """TAR@FAR=1e-3, with McNemar at FP32's FAR=1e-3 threshold: the TAR drop both protocols log."""
        return self.tar_drops[1e-3]

    @property
    def all_pairs(self) -> bool:
        return self.run.protocol == "all"

    @property
    def is_baseline(self) -> bool:
        return self.run.is_baseline

    @property
    def accuracy_drop(self) -> float:
        return self.drop_accuracy.point

    @property
    def tar_drop(self) -> float:
        return self.drop_tar.point

    def metric(self, name: str) -> float:
        return self.run.metric(name)

    @property
    def interval(self) -> tuple[float, float]:
        """The speed-up interval; the point estimate alone when none was logged, so it still compares."""
        if math.isnan(self.speedup_low) or math.isnan(self.speedup_high):
            return self.speedup, self.speedup
        return self.speedup_low, self.speedup_high

    def overlaps(self, other: Row) -> bool:
        """Whether the two speed-ups are indistinguishable at the logged confidence."""
        (low, high), (other_low, other_high) = self.interval, other.interval
        return low <= other_high and other_low <= high


@dataclass(frozen=True)
class Table:
    """The rows of one group, in the order of their runs, and how many older repeats they hide."""

    rows: tuple[Row, ...]
    repeats: int

    @property
    def baseline(self) -> Row | None:
        """The latest FP32 reference row: what the drops are against, None without FP32."""
        return next((row for row in reversed(self.rows) if row.is_baseline), None)

    @property
    def quantized(self) -> list[Row]:
        return [row for row in self.rows if not row.is_baseline]

    @property
    def threads(self) -> tuple[int, ...]:
        """The group's benchmarked thread counts: the FP32 run's, else the first run's; () for older runs."""
        reference = self.baseline or (self.rows[0] if self.rows else None)
        return reference.run.threads if reference else ()


def groups(runs: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """Runs split by weights, dataset, folds and model, in order of first appearance: only runs of one compare."""
    split: dict[GroupKey, list[RunRecord]] = {}
    for run in runs:
        split.setdefault(run.group, []).append(run)
    return list(split.values())


def latest_per_variant(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """The latest run of each variant key, ordered by start time: repeats collapse, distinct settings never merge."""
    ordered = sorted(runs, key=lambda run: run.start_time)  # stable: ties keep the selection's order
    latest = {run.variant_key: i for i, run in enumerate(ordered)}
    return [ordered[i] for i in sorted(latest.values())]


def variant_table(runs: Sequence[RunRecord]) -> Table:
    """One row per variant of one group; drops, compression and speed-ups are read from the runs."""
    shown = latest_per_variant(runs)
    names = Counter(run.name for run in shown)
    labels = [run.name if names[run.name] == 1 else f"{run.name} ({run.variant_key[:8]})" for run in shown]
    has_baseline = any(run.is_baseline for run in shown)
    rows = tuple(_row(run, label, has_baseline) for run, label in zip(shown, labels, strict=True))
    return Table(rows, len(runs) - len(shown))


def _row(run: RunRecord, label: str, has_baseline: bool) -> Row:
    nan = math.nan
    if run.is_baseline:  # the reference of every paired speed-up
        speedup, low, high = 1.0, nan, nan
    else:
        speedup, low, high = (run.metric(m) for m in (Metric.SPEEDUP, Metric.SPEEDUP_CI_LOW, Metric.SPEEDUP_CI_HIGH))
    if not has_baseline:
        return Row(run, label, NO_DROP, nan, speedup, low, high, dict.fromkeys(TAR_DROP_AT_FAR, NO_DROP))
    drop_accuracy = _drop(
        run, Metric.ACCURACY_DROP, Metric.ACCURACY_DROP_CI_LOW, Metric.ACCURACY_DROP_CI_HIGH, Metric.MCNEMAR_P_ACC
    )
    tar = {far: _drop(run, *names, FLIPS_AT_FAR[far][3]) for far, names in TAR_DROP_AT_FAR.items()}
    compression = run.metric(Metric.COMPRESSION_RATIO)
    return Row(run, label, drop_accuracy, compression, speedup, low, high, tar)


def _drop(run: RunRecord, point: Metric, low: Metric, high: Metric, p_value: Metric) -> Drop:
    return Drop(run.metric(point), run.metric(low), run.metric(high), run.metric(p_value))
