"""The one recommendation rule of the report, stated in words and applied to table rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from facequant.report.table import Row, Table
from facequant.schema import Metric


@dataclass(frozen=True)
class Rule:
    """Recommend the fastest variant whose drops against FP32 stay within these bounds (fractions).

    Latencies within `latency_tolerance` of the fastest count as equally fast (run-to-run noise on a shared
    CPU is of that order); among those the smallest accuracy drop wins.
    """

    max_drop: float = 0.005
    max_tar_drop: float = 0.01
    latency_tolerance: float = 0.10

    def text(self) -> str:
        return (
            f"the fastest variant (lowest batch-1 p50 latency) whose 10-fold accuracy drop is <= "
            f"{100 * self.max_drop:.2f} pt and whose TAR@FAR=1e-3 drop is <= {100 * self.max_tar_drop:.2f} pt, "
            "both against the FP32 run of the same model and data; latencies within "
            f"{100 * self.latency_tolerance:.0f}% of the fastest count as equally fast, and among those the "
            "smallest accuracy drop wins"
        )

    def pick(self, passing: Sequence[Row]) -> Row:
        """The recommended row among rows that break nothing (so each has a latency and drops)."""
        fastest = min(row.metric(Metric.LATENCY_P50_MS) for row in passing)
        fast = [row for row in passing if row.metric(Metric.LATENCY_P50_MS) <= fastest * (1 + self.latency_tolerance)]
        return min(fast, key=lambda row: (row.accuracy_drop, row.metric(Metric.LATENCY_P50_MS)))

    def choose(self, table: Table) -> Row | None:
        """The recommended row of one group; None without an FP32 run or when no quantized variant passes."""
        passing = [row for row in table.quantized if not self.breaks(row)]
        return self.pick(passing) if table.baseline is not None and passing else None

    def breaks(self, row: Row) -> list[str]:
        """Why the row cannot be recommended; a value the run did not log cannot pass."""
        reasons = []
        if math.isnan(row.accuracy_drop):
            reasons.append("no accuracy drop logged")
        elif row.accuracy_drop > self.max_drop:
            reasons.append(f"accuracy drop {100 * row.accuracy_drop:.2f} pt > {100 * self.max_drop:.2f} pt")
        if math.isnan(row.tar_drop):
            reasons.append("no TAR@FAR=1e-3 drop logged")
        elif row.tar_drop > self.max_tar_drop:
            reasons.append(f"TAR@FAR=1e-3 drop {100 * row.tar_drop:.2f} pt > {100 * self.max_tar_drop:.2f} pt")
        if math.isnan(row.metric(Metric.LATENCY_P50_MS)):
            reasons.append("no p50 latency logged")
        return reasons
