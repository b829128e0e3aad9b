"""Table shaping: the runs of one model and dataset -> one row per distinct variant, against the FP32 run."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from facequant.schema import GroupKey, Metric, RunRecord


@dataclass(frozen=True)
class Row:
    """One variant: the latest run of its variant key, with its comparisons against FP32.

    Drops and compression are what the job logged, NaN when the group has no FP32 run since nothing in the
    selection backs them. The speed-up is the job's own paired measurement against FP32, so it stands alone.
    """

    run: RunRecord
    label: str  # the run name, plus a key prefix when distinct variants share that name
    accuracy_drop: float
    tar_drop: float
    compression: float
    speedup: float  # at the run's first thread count; 1 for the FP32 reference
    speedup_low: float  # its confidence interval, NaN when not logged (and for the reference)
    speedup_high: float

    @property
    def is_baseline(self) -> bool:
        return self.run.is_baseline

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
        return Row(run, label, nan, nan, nan, speedup, low, high)
    accuracy_drop, tar_drop = run.metric(Metric.ACCURACY_DROP), run.metric(Metric.TAR_FAR_1E3_DROP)
    return Row(run, label, accuracy_drop, tar_drop, run.metric(Metric.COMPRESSION_RATIO), speedup, low, high)
