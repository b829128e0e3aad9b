"""The one goal a quantized variant must hold against FP32: the same bounds and the same test serve the exclusion
search, the report's recommendation and the release gate."""

from __future__ import annotations

import math
from dataclasses import dataclass


class GoalError(ValueError):
    """A bound of the goal is out of range."""


def pt(fraction: float) -> str:
    """A fraction as points, '0.30 pt'."""
    return f"{100 * fraction:.2f} pt"


@dataclass(frozen=True)
class Goal:
    """The drops allowed against FP32, as fractions: 10-fold accuracy, and TAR at the goal's FAR. A drop breaks the
    goal when the upper end of its interval exceeds the bound, so a variant holds only when the data rule out a
    larger loss; a drop logged without an interval is judged by its point value."""

    max_drop: float = 0.005
    max_tar_drop: float = 0.01
    far: float = 1e-5  # under dataset.protocol=all the one bounded TAR drop is at this FAR; 6000 pairs bound 1e-3

    def __post_init__(self) -> None:
        for name in ("max_drop", "max_tar_drop"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise GoalError(f"{name}={value} must be a fraction in [0, 1), e.g. 0.005 for 0.5 pt")
        if not 0 < self.far < 1:
            raise GoalError(f"far={self.far} must be a false accept rate in (0, 1), e.g. 1e-3")

    @staticmethod
    def breach(name: str, point: float, high: float, bound: float) -> str | None:
        """Why this drop breaks its bound at the upper end of its interval (high is NaN without an interval), or
        None when it holds. A drop that was not measured (NaN point) is the caller's to judge."""
        if point > bound:
            return f"{name} {pt(point)} > {pt(bound)}"
        if not math.isnan(high) and high > bound:
            return f"{name} {pt(point)} passes but its 95% interval reaches {pt(high)} > {pt(bound)}"
        return None
