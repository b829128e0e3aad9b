"""Paired, interleaved timing: each speed-up is a per-round ratio against the FP32 reference timed beside it.

Both models take turns in every round, so drift and background load between rounds hit both sides of each
ratio alike. The interval is distribution-free: order statistics of the per-round ratios around their median.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from facequant.config.running import BenchmarkConfig
from facequant.evaluation.stats import Interval, median_interval
from facequant.schema import Metric, at_threads

Model = Callable[[np.ndarray], object]  # one inference call
Clock = Callable[[], float]


@dataclass(frozen=True)
class Rounds:
    """One model's timings, seconds per call: latency (rounds x iterations) and batch calls (rounds x calls)."""

    latency: np.ndarray
    batch: np.ndarray | None

    @property
    def round_latency(self) -> np.ndarray:
        """Each round's median batch-1 latency."""
        return np.median(self.latency, axis=1)


def _timed(model: Model, inputs: np.ndarray, warmup: int, calls: int, clock: Clock) -> np.ndarray:
    for _ in range(warmup):
        model(inputs)
    times = np.empty(calls)
    for i in range(calls):
        start = clock()
        model(inputs)
        times[i] = clock() - start
    return times


def interleaved(
    models: Sequence[Model],
    single: np.ndarray,
    batch: np.ndarray,
    cfg: BenchmarkConfig,
    clock: Clock = time.perf_counter,
) -> list[Rounds]:
    """Round-robin timing; the order of the models flips every round so neither always runs first.

    Only the first model (the variant) is timed at the throughput batch: no ratio needs the reference's.
    """
    latency = [np.empty((cfg.rounds, cfg.iterations)) for _ in models]
    batches = np.empty((cfg.rounds, cfg.throughput_iterations))
    for r in range(cfg.rounds):
        order = range(len(models)) if r % 2 == 0 else reversed(range(len(models)))
        for m in order:
            latency[m][r] = _timed(models[m], single, cfg.warmup, cfg.iterations, clock)
            if m == 0:
                batches[r] = _timed(models[m], batch, 0, cfg.throughput_iterations, clock)
    return [Rounds(lat, batches if m == 0 else None) for m, lat in enumerate(latency)]


def speedup(reference: Rounds, variant: Rounds, confidence: float) -> Interval:
    """The median of the per-round reference/variant latency ratios, with its interval."""
    return median_interval(reference.round_latency / variant.round_latency, confidence)


def measure(
    open_variant: Callable[[int], Model],
    open_reference: Callable[[int], Model] | None,
    inputs: np.ndarray,
    cfg: BenchmarkConfig,
    clock: Clock = time.perf_counter,
) -> dict[str, float]:
    """Per thread count: p50 latency, throughput and speed-up over the reference (1, no interval, without one).

    The unsuffixed latency, throughput and speed-up metrics repeat the first listed thread count.
    """
    need = max(cfg.latency_batch, cfg.throughput_batch)
    if len(inputs) < need:
        inputs = np.concatenate([inputs] * (need // len(inputs) + 1))
    single, batch = inputs[: cfg.latency_batch], inputs[: cfg.throughput_batch]
    metrics: dict[str, float] = {}
    for i, threads in enumerate(cfg.threads):
        models = [open_variant(threads)] + ([open_reference(threads)] if open_reference else [])
        timed = interleaved(models, single, batch, cfg, clock)
        variant = timed[0]
        found: dict[Metric, float] = {
            Metric.LATENCY_P50_MS: 1000 * float(np.median(variant.round_latency)),
            Metric.THROUGHPUT_IPS: cfg.throughput_batch / float(np.median(variant.batch)),
            Metric.SPEEDUP: 1.0,
        }
        if open_reference is not None:
            ratio = speedup(timed[1], variant, cfg.confidence)
            found |= {
                Metric.SPEEDUP: ratio.estimate,
                Metric.SPEEDUP_CI_LOW: ratio.low,
                Metric.SPEEDUP_CI_HIGH: ratio.high,
            }
        metrics |= {at_threads(name, threads): value for name, value in found.items()}
        if i == 0:
            ms = 1000 * variant.latency
            found |= {Metric.LATENCY_P95_MS: float(np.percentile(ms, 95)), Metric.LATENCY_MEAN_MS: float(ms.mean())}
            metrics |= found
    return metrics
