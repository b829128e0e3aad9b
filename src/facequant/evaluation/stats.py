"""Statistics with no facequant imports: a point estimate with its interval, the median interval from order
statistics, and the rounds a confidence needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval."""

    estimate: float
    low: float
    high: float


def median_interval(values: np.ndarray, confidence: float) -> Interval:
    """The median and its exact, distribution-free interval from order statistics (scipy.stats.quantile_test)."""
    median = float(np.median(values))
    ci = stats.quantile_test(values, q=median, p=0.5).confidence_interval(confidence)
    return Interval(median, float(ci.low), float(ci.high))


def min_rounds(confidence: float) -> int:
    """The fewest rounds whose order statistics (min, max) cover the median with this confidence: 1 - 2^(1-n)."""
    n = 1
    while 1 - 2.0 ** (1 - n) < confidence:
        n += 1
    return n
