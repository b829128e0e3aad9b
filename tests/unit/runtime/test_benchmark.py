"""The paired timing protocol, on fake models whose latency is known and a clock they advance.

A fake call costs `cost x drift(t) x noise`: drift is slow machine-wide slowdown (other load, clock changes), the
noise per call is log-normal with median 1, so the true median FP32/variant ratio is the ratio of the costs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from facequant.config.running import BenchmarkConfig
from facequant.config.sections import ConfigError
from facequant.evaluation.stats import median_interval, min_rounds
from facequant.runtime.benchmark import interleaved, measure, speedup
from facequant.schema import Metric, at_threads


class FakeCPU:
    def __init__(self, seed: int = 0, drift: float = 0.0, noise: float = 0.05, period: float = 300.0):
        self.t, self.rng, self.drift, self.noise, self.period = 0.0, np.random.default_rng(seed), drift, noise, period

    def clock(self) -> float:
        return self.t

    def model(self, cost: float):
        def call(x: np.ndarray) -> None:
            slowdown = 1 + self.drift * (0.5 + 0.5 * math.sin(self.t / self.period))
            self.t += cost * len(x) * slowdown * self.rng.lognormal(0, self.noise)

        return call


INPUTS = np.zeros((32, 3, 4, 4), np.float32)


def paired_ratio(cpu: FakeCPU, reference: float, variant: float, rounds: int = 9):
    cfg = BenchmarkConfig(threads=(1,), rounds=rounds)
    var, ref = interleaved([cpu.model(variant), cpu.model(reference)], INPUTS[:1], INPUTS, cfg, cpu.clock)
    return speedup(ref, var, cfg.confidence), var


def test_recovers_a_known_ratio_and_its_interval_contains_it():
    ratio, _ = paired_ratio(FakeCPU(seed=1), reference=3.0, variant=1.0)
    assert ratio.estimate == pytest.approx(3.0, rel=0.03)
    assert ratio.low <= 3.0 <= ratio.high
    assert ratio.high - ratio.low < 0.5


def test_the_interval_shrinks_with_rounds():
    widths = []
    for rounds in (9, 41):
        ratio, _ = paired_ratio(FakeCPU(seed=2, noise=0.15), 3.0, 1.0, rounds)
        widths.append(ratio.high - ratio.low)
    assert widths[1] < 0.6 * widths[0]


@pytest.mark.parametrize("seed", range(5))
def test_a_variant_equal_to_fp32_gets_an_interval_containing_one(seed):
    ratio, _ = paired_ratio(FakeCPU(seed=seed, noise=0.1), 2.0, 2.0)
    assert ratio.low <= 1.0 <= ratio.high


def test_pairing_cancels_drift_that_biases_back_to_back_timing():
    """The machine slows down up to 3x during the run: timing FP32, then the variant, as two jobs would, is
    biased; taking turns within each round is not."""
    cfg = BenchmarkConfig(threads=(1,), rounds=9)
    cpu = FakeCPU(seed=3, drift=2.0, period=500.0)
    (alone_fp32,) = interleaved([cpu.model(3.0)], INPUTS[:1], INPUTS, cfg, cpu.clock)
    (alone_variant,) = interleaved([cpu.model(1.0)], INPUTS[:1], INPUTS, cfg, cpu.clock)
    back_to_back = np.median(alone_fp32.round_latency) / np.median(alone_variant.round_latency)
    ratio, variant = paired_ratio(FakeCPU(seed=3, drift=2.0, period=500.0), 3.0, 1.0)
    assert variant.round_latency.max() / variant.round_latency.min() > 1.5
    assert abs(back_to_back / 3.0 - 1) > 0.2
    assert ratio.low <= 3.0 <= ratio.high and abs(ratio.estimate / 3.0 - 1) < 0.05


def test_median_interval_is_the_order_statistic_interval():
    values = np.arange(1.0, 10.0)  # 9 rounds: the 95% interval is (2nd, 8th) smallest
    interval = median_interval(values, 0.95)
    assert (interval.estimate, interval.low, interval.high) == (5.0, 2.0, 8.0)


def test_measure_logs_every_thread_count_and_the_first_unsuffixed():
    cpu = FakeCPU(seed=4)
    costs = {1: (4.0, 1.0), 2: (2.0, 1.0)}  # FP32 scales with threads, the variant does not
    cfg = BenchmarkConfig(threads=(1, 2), rounds=7)
    metrics = measure(lambda n: cpu.model(costs[n][1]), lambda n: cpu.model(costs[n][0]), INPUTS, cfg, clock=cpu.clock)
    assert metrics[at_threads(Metric.SPEEDUP, 1)] == pytest.approx(4.0, rel=0.05)
    assert metrics[at_threads(Metric.SPEEDUP, 2)] == pytest.approx(2.0, rel=0.05)
    assert metrics[at_threads(Metric.SPEEDUP_CI_LOW, 2)] <= metrics["speedup_t2"] <= metrics["speedup_t2_ci_high"]
    assert metrics[Metric.SPEEDUP] == metrics["speedup_t1"]
    assert metrics[Metric.LATENCY_P50_MS] == metrics["latency_p50_ms_t1"] == pytest.approx(1000, rel=0.05)
    assert metrics[Metric.THROUGHPUT_IPS] == pytest.approx(1 / 1.0, rel=0.05)  # 32 images at 1 s each
    assert metrics[Metric.LATENCY_P95_MS] >= metrics[Metric.LATENCY_P50_MS]


def test_the_reference_itself_has_speedup_one_and_no_interval():
    cpu = FakeCPU(seed=5)
    metrics = measure(lambda n: cpu.model(1.0), None, INPUTS, BenchmarkConfig(threads=(2,), rounds=6), cpu.clock)
    assert metrics[Metric.SPEEDUP] == metrics["speedup_t2"] == 1.0
    assert not any("_ci_" in name for name in metrics)


def test_too_few_rounds_for_the_confidence_fail_with_the_minimum():
    assert min_rounds(0.95) == 6 and min_rounds(0.99) == 8
    with pytest.raises(ConfigError, match=r"benchmark.rounds=5 cannot give a 95% interval.*rounds>=6"):
        BenchmarkConfig(rounds=5)


def test_thread_counts_are_validated_and_deduplicated():
    assert BenchmarkConfig(threads=(2, 2, 1)).threads == (2, 1)
    with pytest.raises(ConfigError, match=r"benchmark.threads=\[0\] must be a list of thread counts >= 1"):
        BenchmarkConfig(threads=(0,))
