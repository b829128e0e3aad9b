"""Table shaping: the runs of one model and dataset -> one row per distinct variant, against the FP32 run."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from facequant.schema import GroupKey, Metric, RunRecord


@dataclass(frozen=True)
class Row:
    """One variant: the latest run of its variant key, with its comparisons against the group's FP32 run.

    Drops and compression are what the job logged; the speed-up is computed here and nowhere else. All four
    are NaN when the group has no FP32 run, since nothing in the selection backs them.
    """

    run: RunRecord
    label: str  # the run name, plus a key prefix when distinct variants share that name
    accuracy_drop: float
    tar_drop: float
    compression: float
    speedup: float

    @property
    def is_baseline(self) -> bool:
        return self.run.is_baseline

    def metric(self, name: Metric) -> float:
        return self.run.metric(name)


@dataclass(frozen=True)
class Table:
    """The rows of one group, in the order of their runs, and how many older repeats they hide."""

    rows: tuple[Row, ...]
    repeats: int

    @property
    def baseline(self) -> Row | None:
        """The latest FP32 row: the reference of every drop and speed-up, None without FP32."""
        return next((row for row in reversed(self.rows) if row.is_baseline), None)

    @property
    def quantized(self) -> list[Row]:
        return [row for row in self.rows if not row.is_baseline]


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
    """One row per variant of one group; drops are read from the runs, the speed-up divides p50 latencies."""
    shown = latest_per_variant(runs)
    names = Counter(run.name for run in shown)
    labels = [run.name if names[run.name] == 1 else f"{run.name} ({run.variant_key[:8]})" for run in shown]
    base = next((run for run in reversed(shown) if run.is_baseline), None)
    rows = tuple(_row(run, label, base) for run, label in zip(shown, labels, strict=True))
    return Table(rows, len(runs) - len(shown))


def _row(run: RunRecord, label: str, base: RunRecord | None) -> Row:
    if base is None:
        return Row(run, label, math.nan, math.nan, math.nan, math.nan)
    return Row(
        run,
        label,
        run.metric(Metric.ACCURACY_DROP),
        run.metric(Metric.TAR_FAR_1E3_DROP),
        run.metric(Metric.COMPRESSION_RATIO),
        base.metric(Metric.LATENCY_P50_MS) / run.metric(Metric.LATENCY_P50_MS),
    )
