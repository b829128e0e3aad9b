"""The report and the rule on protocol=all runs built by hand: the gate is the TAR drop at far, read at the upper
end of its identity-bootstrap interval."""

from __future__ import annotations

from dataclasses import replace

from facequant.report import Rule
from facequant.report.accuracy import flips_lines
from facequant.report.sections import comparison_lines, recommendation_lines
from facequant.report.table import variant_table
from facequant.schema import Metric, Param, RunRecord
from helpers import cells, fp32, record

RESOLUTION = 1 / 80_000_000


def all_pairs(run: RunRecord, drop_1e5: tuple[float, float, float] | None, p_1e5: float = 0.5) -> RunRecord:
    """The run as protocol=all logs it: no accuracy, TAR down to 1e-6, and (drop, low, high) at FAR=1e-5."""
    metrics = {k: v for k, v in run.metrics.items() if not k.startswith(("accuracy", "flips_acc", "mcnemar_p_acc"))}
    metrics |= {Metric.TAR_FAR_1E5: 0.90, Metric.TAR_FAR_1E6: 0.85, Metric.FAR_RESOLUTION: RESOLUTION}
    if drop_1e5 is not None:
        point, low, high = drop_1e5
        metrics |= {
            Metric.TAR_FAR_1E5_DROP: point,
            Metric.TAR_FAR_1E5_DROP_CI_LOW: low,
            Metric.TAR_FAR_1E5_DROP_CI_HIGH: high,
            Metric.FLIPS_FAR_1E5: 120,
            Metric.FLIPS_FAR_1E5_FIXED: 40,
            Metric.FLIPS_FAR_1E5_BROKEN: 80,
            Metric.MCNEMAR_P_FAR_1E5: p_1e5,
        }
    return replace(run, params=run.params | {Param.DATASET_PROTOCOL: "all"}, metrics=metrics)


def test_the_gate_is_the_tar_drop_at_far_read_at_its_upper_end():
    base = all_pairs(fp32(), None)
    careful = all_pairs(record("int8_static_a", "dynamic", 0.99, 2.0, key="a"), (0.004, -0.002, 0.008), p_1e5=0.01)
    risky = all_pairs(record("int8_static_b", "dynamic", 0.99, 3.0, key="b"), (0.006, -0.003, 0.015))
    table = variant_table([base, careful, risky])
    text = "\n".join(recommendation_lines(table, Rule(far=1e-5)))
    assert "whose TAR@FAR=1e-5 drop is <= 1.00 pt" in text and "1000 resamples of the identities" in text
    assert "10-fold accuracy drop" not in text  # the pairs protocol's bound does not apply
    assert "**Recommended: int8_static_a**" in text
    refused = "int8_static_b: not recommended: TAR@FAR=1e-5 drop 0.60 pt passes but its 95% interval reaches 1.50 pt"
    assert refused in text
    detail = cells(comparison_lines(table), "int8_static_a", "| Model | TAR@FAR=1e-3 |")
    assert detail["TAR@1e-5 drop (pt)"] == "0.40 pt [-0.20, 0.80]*"  # McNemar p=0.01 at FP32's 1e-5 threshold
    assert detail["TAR@FAR=1e-6"] == "0.8500"
    flips = cells(flips_lines(table), "int8_static_a", "| Model | Flips (FAR=1e-3)")
    at_1e5 = (flips["Fixed (FAR=1e-5)"], flips["Broken (FAR=1e-5)"], flips["McNemar p (FAR=1e-5)"])
    assert at_1e5 == ("40", "80", "0.01")


def test_a_far_the_data_cannot_resolve_refuses_with_the_reason():
    base = all_pairs(fp32(), None)
    coarse = all_pairs(record("int8_dynamic", "dynamic", 0.99, 2.0), None)
    table = variant_table([replace(r, metrics=r.metrics | {Metric.FAR_RESOLUTION: 1e-4}) for r in (base, coarse)])
    text = "\n".join(recommendation_lines(table, Rule(far=1e-5)))
    reason = "no TAR@FAR=1e-5 drop: these impostor pairs resolve FAR >= 1.0e-04 only"
    assert f"int8_dynamic: not recommended: {reason}" in text
    assert "**Keep FP32**" in text
