"""The one recommendation rule of the report, stated in words and applied to table rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from facequant.report.table import Row, Table


@dataclass(frozen=True)
class Rule:
    """Recommend the fastest variant whose drops against FP32 stay within these bounds (fractions).

    Speed-ups whose intervals overlap the fastest's are not told apart by the measurement, so they count as
    equally fast and the smallest accuracy drop wins among them.
    """

    max_drop: float = 0.005
    max_tar_drop: float = 0.01

    def text(self) -> str:
        return (
            "the fastest variant (highest paired speed-up over ONNX Runtime FP32 at batch 1, first benchmarked "
            f"thread count) whose 10-fold accuracy drop is <= {100 * self.max_drop:.2f} pt and whose TAR@FAR=1e-3 "
            f"drop is <= {100 * self.max_tar_drop:.2f} pt, both against the FP32 run of the same model and data; "
            "variants whose speed-up intervals overlap the fastest's count as equally fast (their difference is "
            "within the measurement noise), and among those the smallest accuracy drop wins"
        )

    def equally_fast(self, passing: Sequence[Row]) -> list[Row]:
        """The rows the measurement cannot tell from the fastest: their speed-up intervals overlap its interval."""
        fastest = max(passing, key=lambda row: row.speedup)
        return [row for row in passing if row.overlaps(fastest)]

    def pick(self, passing: Sequence[Row]) -> Row:
        """The recommended row among rows that break nothing (so each has a speed-up and drops)."""
        return min(self.equally_fast(passing), key=lambda row: (row.accuracy_drop, -row.speedup))

    def passing(self, table: Table) -> list[Row]:
        """The quantized rows that break nothing; none without an FP32 run, since no drop is then backed."""
        return [row for row in table.quantized if not self.breaks(row)] if table.baseline is not None else []

    def choose(self, table: Table) -> Row | None:
        """The recommended row of one group; None without an FP32 run or when no quantized variant passes."""
        passing = self.passing(table)
        return self.pick(passing) if passing else None

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
        if math.isnan(row.speedup):
            reasons.append("no paired speed-up logged")
        return reasons
