"""The report on run records built by hand: table shaping, the rule, the wording and the rendered file."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facequant import report, tracking
from facequant.config.running import MlflowConfig
from facequant.report import Rule
from facequant.report.accuracy import DROP_NOTE, drift_lines, flips_lines
from facequant.report.document import build_report, calibration_grid
from facequant.report.sections import (
    comparison_lines,
    recommendation_lines,
    size_phrase,
    summary_lines,
)
from facequant.report.table import variant_table
from facequant.report.technical import technical_lines
from facequant.schema import SCORES_CSV, Metric, Param, Tag, at_threads
from helpers import (
    ARCHITECTURE,
    FP32_ACCURACY,
    FP32_SIZE,
    INPUT,
    cells,
    fp32,
    record,
    static,
)


def test_overlapping_intervals_tie_and_the_smaller_drop_wins():
    # entropy's point speed-up is the highest, but minmax's interval overlaps it: minmax has the smaller drop.
    runs = [
        fp32(),
        static("entropy", 500, 0.9917, 3.00, ci=0.10, tar=0.9717),  # [2.90, 3.10], drop 0.10 pt
        static("minmax", 100, 0.9925, 2.85, ci=0.10, tar=0.9777),  # [2.75, 2.95], drop 0.02 pt
        static("percentile", 500, 0.9926, 2.50, ci=0.10, tar=0.9767),  # [2.40, 2.60]: measurably slower
    ]
    table = variant_table(runs)
    rule = Rule()
    assert len(rule.passing(table)) == 3
    assert [r.label for r in rule.equally_fast(rule.passing(table))] == [
        "int8_static_qdq_entropy_500",
        "int8_static_qdq_minmax_100",
    ]
    assert rule.choose(table).label == "int8_static_qdq_minmax_100"
    text = "\n".join(recommendation_lines(table, rule))
    assert "**Recommended: int8_static_qdq_minmax_100**" in text
    assert (
        "int8_static_qdq_minmax_100 and int8_static_qdq_entropy_500 are equally fast: their speed-up intervals "
        "overlap the fastest's, so the speed difference among them is within the measurement noise"
    ) in text
    assert (
        "- int8_static_qdq_entropy_500: within the bounds and as fast as the fastest within the measurement noise "
        "(speed-up 3.00x [2.90, 3.10]), but accuracy drop 0.10 pt against the pick's 0.02 pt;"
    ) in text
    assert "- int8_static_qdq_percentile_500: within the bounds but measurably slower than the fastest" in text


def test_disjoint_intervals_go_to_the_faster_even_with_a_larger_drop():
    runs = [
        fp32(),
        static("entropy", 500, 0.9917, 3.00, ci=0.05, tar=0.9717),  # [2.95, 3.05], drop 0.10 pt
        static("minmax", 100, 0.9925, 2.85, ci=0.05, tar=0.9777),  # [2.80, 2.90], drop 0.02 pt
    ]
    table = variant_table(runs)
    assert Rule().choose(table).label == "int8_static_qdq_entropy_500"
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "**Recommended: int8_static_qdq_entropy_500**" in text
    assert "are equally fast" not in text and "as fast as the fastest" not in text
    assert (
        "- int8_static_qdq_minmax_100: within the bounds but measurably slower than the fastest (its speed-up "
        "interval does not overlap the fastest's): speed-up 2.85x [2.80, 2.90], accuracy drop 0.02 pt;"
    ) in text


def test_a_speed_up_without_interval_counts_as_its_point():
    # No interval logged: the point alone is the interval, so 2.95 overlaps [2.90, 3.10] and 2.80 does not.
    table = variant_table(
        [
            fp32(),
            static("entropy", 500, 0.9917, 3.00, ci=0.10, tar=0.9717),
            static("minmax", 100, 0.9925, 2.95, ci=None, tar=0.9777),
            static("minmax", 500, 0.9926, 2.80, ci=None, tar=0.9777),
        ]
    )
    fast = Rule().equally_fast(Rule().passing(table))
    assert [r.label for r in fast] == ["int8_static_qdq_entropy_500", "int8_static_qdq_minmax_100"]
    assert cells(comparison_lines(table), "int8_static_qdq_minmax_100")["Speed-up 1T"] == "2.95x (no interval)"


def test_a_variant_without_a_speed_up_is_not_recommended_and_says_why():
    # The most accurate variant logged no paired speed-up (a job from before paired timing): it cannot win.
    table = variant_table([fp32(), static("minmax", 100, 0.9927, None), static("entropy", 500, 0.9917, 2.0)])
    row = table.rows[1]
    assert math.isnan(row.speedup) and Rule().breaks(row) == ["no paired speed-up logged"]
    assert Rule().choose(table).label == "int8_static_qdq_entropy_500"
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "- int8_static_qdq_minmax_100: not recommended: no paired speed-up logged." in text
    lone = variant_table([fp32(), static("minmax", 100, 0.9927, None)])
    assert "**Keep FP32** (fp32): no quantized variant meets the rule." in "\n".join(recommendation_lines(lone, Rule()))
    assert report.recommend([fp32(), static("minmax", 100, 0.9927, None)], Rule()) == (
        None,
        "no quantized variant meets the rule: int8_static_qdq_minmax_100: no paired speed-up logged",
    )


def test_the_printed_rule_states_the_drop_interval_and_the_speed_overlap():
    text = Rule(max_drop=0.004, max_tar_drop=0.02).text()
    assert text.startswith("the fastest variant (highest paired speed-up over ONNX Runtime FP32 at batch 1")
    assert "accuracy drop is <= 0.40 pt" in text and "TAR@FAR=1e-3 drop is <= 2.00 pt" in text
    assert (
        "both read at the upper end of their 95% paired-bootstrap interval (1000 resamples of the pairs, stratified "
        "genuine/impostor), or at the point drop for runs that logged no interval"
    ) in text
    assert "speed-up intervals overlap the fastest's count as equally fast" in text
    assert "among those the smallest accuracy drop wins" in text
    lines = recommendation_lines(variant_table([fp32()]), Rule())
    assert lines[0] == f"Rule: recommend {Rule().text()}."


def test_table_shows_each_thread_counts_speed_up_with_its_interval():
    table = variant_table([fp32(), static("minmax", 500, 0.9920, 2.64, ci=0.06)])
    lines = comparison_lines(table)
    heads = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert heads[-6:] == ["p50 1T (ms)", "Speed-up 1T", "img/s 1T", "p50 2T (ms)", "Speed-up 2T", "img/s 2T"]
    row = cells(lines, "int8_static_qdq_minmax_500")
    assert row["Speed-up 1T"] == "2.64x [2.58, 2.70]"  # 2.64 +- 0.06
    assert row["Speed-up 2T"] == "1.32x [1.26, 1.38]"  # 2.64 / 2 +- 0.06
    assert row["p50 1T (ms)"] == f"{16.0 / 2.64:.2f}" and row["p50 2T (ms)"] == f"{16.0 / 2 / 1.32:.2f}"
    assert row["img/s 2T"] == f"{1000 * 2 * 1.32 / 16.0:.1f}"
    base = cells(lines, "fp32")
    assert base["Speed-up 1T"] == base["Speed-up 2T"] == "1.00x" and base["p50 1T (ms)"] == "16.00"


def test_fp32_on_another_runtime_is_a_variant_with_its_own_interval():
    openvino = record("fp32@openvino", "fp32", FP32_ACCURACY, 1.4, size=FP32_SIZE, logged={Metric.ACCURACY_DROP: 0})
    openvino = replace(openvino, tags={**openvino.tags, Tag.IS_BASELINE: "false"})  # as the job tags it
    table = variant_table([fp32(), openvino])
    assert table.baseline is not None and table.baseline.label == "fp32"
    assert [r.label for r in table.quantized] == ["fp32@openvino"]
    assert cells(comparison_lines(table), "fp32@openvino")["Speed-up 1T"] == "1.40x [1.35, 1.45]"
    assert Rule().choose(table).label == "fp32@openvino"


def test_the_table_follows_the_fp32_runs_thread_counts():
    table = variant_table([static("minmax", 500, 0.9920, 2.0, threads=(4,)), fp32(threads=(1, 4))])
    assert table.threads == (1, 4)
    row = cells(comparison_lines(table), "int8_static_qdq_minmax_500")
    assert row["Speed-up 1T"] == "n/a" and row["Speed-up 4T"] == "0.50x [0.45, 0.55]"


def test_old_runs_fall_back_to_the_unsuffixed_metrics():
    # Before paired timing: no thread counts, no per-thread metrics and no speed-up.
    old = {Metric.LATENCY_P50_MS: 4.0, Metric.THROUGHPUT_IPS: 300.0}
    fp32_run = record("fp32", "fp32", FP32_ACCURACY, None, size=FP32_SIZE, threads=())
    runs = [fp32_run, static("minmax", 500, 0.9920, None, threads=(), logged=old)]
    table = variant_table(runs)
    lines = comparison_lines(table)
    assert lines[0].endswith("| Compression | p50 (ms) | Speed-up | img/s |")
    row = cells(lines, "int8_static_qdq_minmax_500")
    assert (row["p50 (ms)"], row["Speed-up"], row["img/s"]) == ("4.00", "n/a", "300.0")
    assert (cells(lines, "fp32")["p50 (ms)"], cells(lines, "fp32")["Speed-up"]) == ("16.00", "1.00x")
    assert "- Latency: these runs predate paired timing (no benchmark.rounds logged)" in "\n".join(
        technical_lines(runs, table)
    )
    paired = [fp32(), static("minmax", 500, 0.9920, 2.0)]
    assert "- Latency, paired: " in "\n".join(technical_lines(paired, variant_table(paired)))


def test_an_old_run_with_one_thread_count_fills_that_column():
    # One thread count logged, metrics unsuffixed: they are at that count, and no other.
    old = static("minmax", 500, 0.9920, None, threads=(2,))
    old = replace(old, metrics={k: v for k, v in old.metrics.items() if "_t2" not in k})
    row = cells(comparison_lines(variant_table([fp32(threads=(1, 2)), old])), "int8_static_qdq_minmax_500")
    assert (row["p50 1T (ms)"], row["p50 2T (ms)"], row["img/s 2T"]) == ("n/a", "8.00", "125.0")
    assert row["Speed-up 1T"] == row["Speed-up 2T"] == "n/a"


def test_lossy_variants_are_named_with_the_reason():
    table = variant_table([fp32(), static("minmax", 500, 0.9427, 4.0, tar=0.9087)])
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "**Keep FP32** (fp32): no quantized variant meets the rule." in text
    assert (
        "- int8_static_qdq_minmax_500: not recommended: accuracy drop 5.00 pt > 0.50 pt; "
        "TAR@FAR=1e-3 drop 7.00 pt > 1.00 pt." in text
    )


def test_a_point_drop_within_the_bound_is_refused_when_its_interval_reaches_beyond():
    # entropy is the fastest and its point drop 0.30 pt passes, but its interval reaches 0.62 pt: refused.
    wide = {Metric.ACCURACY_DROP_CI_LOW: -0.0002, Metric.ACCURACY_DROP_CI_HIGH: 0.0062}
    entropy = static("entropy", 500, 0.9897, 3.0, logged=wide)
    table = variant_table([fp32(), entropy, static("minmax", 100, 0.9917, 2.0)])
    row = table.rows[1]
    assert row.accuracy_drop == pytest.approx(0.003)
    assert (row.drop_accuracy.low, row.drop_accuracy.high) == (-0.0002, 0.0062)
    reason = "accuracy drop 0.30 pt passes but its 95% interval reaches 0.62 pt > 0.50 pt"
    assert Rule().breaks(row) == [reason]
    assert Rule().choose(table).label == "int8_static_qdq_minmax_100"
    text = "\n".join(recommendation_lines(table, Rule()))
    assert f"- int8_static_qdq_entropy_500: not recommended: {reason}." in text
    assert report.recommend([fp32(), entropy], Rule()) == (
        None,
        f"no quantized variant meets the rule: int8_static_qdq_entropy_500: {reason}",
    )
    # The same point drop with a narrow interval passes, and so does the interval's upper end at the bound.
    assert Rule().breaks(variant_table([fp32(), static("entropy", 500, 0.9897, 3.0)]).rows[1]) == []
    assert Rule(max_drop=0.0062).breaks(row) == []
    tar = static("entropy", 500, 0.9927, 3.0, tar=0.9737, logged={Metric.TAR_FAR_1E3_DROP_CI_HIGH: 0.0105})
    assert Rule().breaks(variant_table([fp32(), tar]).rows[1]) == [
        "TAR@FAR=1e-3 drop 0.50 pt passes but its 95% interval reaches 1.05 pt > 1.00 pt"
    ]


def test_significant_drops_are_starred_and_the_rest_are_called_noise():
    # entropy's accuracy flips are significant (p=0.003), minmax's are not (p=0.61) but its FAR flips are (p=0.01).
    significant = {
        Metric.ACCURACY_DROP_CI_LOW: 0.0012,
        Metric.ACCURACY_DROP_CI_HIGH: 0.0048,
        Metric.MCNEMAR_P_ACC: 0.003,
    }
    noise = {
        Metric.ACCURACY_DROP_CI_LOW: -0.0010,
        Metric.ACCURACY_DROP_CI_HIGH: 0.0023,
        Metric.MCNEMAR_P_ACC: 0.61,
        Metric.MCNEMAR_P_FAR_1E3: 0.01,
    }
    runs = [
        fp32(),
        static("entropy", 500, 0.9897, 3.0, logged=significant),
        static("minmax", 100, 0.9920, 2.0, tar=0.9737, logged=noise),
    ]
    table = variant_table(runs)
    lines = comparison_lines(table)
    entropy, minmax = cells(lines, "int8_static_qdq_entropy_500"), cells(lines, "int8_static_qdq_minmax_100")
    assert (entropy["Acc. drop (pt)"], entropy["TAR@1e-3 drop (pt)"]) == (
        "0.30 pt [0.12, 0.48]*",
        "0.00 pt [-0.10, 0.10]",
    )
    assert (minmax["Acc. drop (pt)"], minmax["TAR@1e-3 drop (pt)"]) == (
        "0.07 pt [-0.10, 0.23]",
        "0.50 pt [0.40, 0.60]*",
    )
    assert cells(lines, "fp32")["Acc. drop (pt)"] == "reference"
    assert lines[-2:] == ["", DROP_NOTE]
    assert "1000 resamples" in DROP_NOTE and "95% paired-bootstrap" in DROP_NOTE and "`*`" in DROP_NOTE
    assert "McNemar's exact test" in DROP_NOTE and "p < 0.05" in DROP_NOTE
    summary = summary_lines(table)
    (entropy_line,) = [line for line in summary if line.startswith("- int8_static_qdq_entropy_500:")]
    (minmax_line,) = [line for line in summary if line.startswith("- int8_static_qdq_minmax_100:")]
    assert "; accuracy drop 0.30 pt [0.12, 0.48], significant (McNemar p=0.003); TAR@FAR=1e-3" in entropy_line
    assert (
        "; accuracy drop 0.07 pt [-0.10, 0.23], not significant (McNemar p=0.61): inside the noise; TAR@FAR=1e-3 "
        "drop 0.50 pt [0.40, 0.60], significant (McNemar p=0.01);"
    ) in minmax_line


def test_decision_flips_show_fixed_broken_and_p_at_each_threshold():
    flipped = {
        Metric.FLIPS_ACC: 14,
        Metric.FLIPS_ACC_FIXED: 2,
        Metric.FLIPS_ACC_BROKEN: 12,
        Metric.MCNEMAR_P_ACC: 0.012939453125,
        Metric.FLIPS_FAR_1E3: 3,
        Metric.FLIPS_FAR_1E3_FIXED: 0,
        Metric.FLIPS_FAR_1E3_BROKEN: 3,
        Metric.MCNEMAR_P_FAR_1E3: 0.25,
    }
    runs = [
        fp32(),
        static("minmax", 500, 0.9910, 3.0, logged=flipped),
        static("entropy", 100, 0.9920, 3.0, drop_ci=None),
    ]
    lines = flips_lines(variant_table(runs))
    assert "its accuracy threshold (acc., 0.4000) and its FAR=1e-3 threshold" in lines[0]
    assert cells(lines, "int8_static_qdq_minmax_500", "| Model | Flips (acc.) |") == {
        "Model": "int8_static_qdq_minmax_500",
        "Flips (acc.)": "14",
        "Fixed (acc.)": "2",
        "Broken (acc.)": "12",
        "McNemar p (acc.)": "0.013",
        "Flips (FAR=1e-3)": "3",
        "Fixed (FAR=1e-3)": "0",
        "Broken (FAR=1e-3)": "3",
        "McNemar p (FAR=1e-3)": "0.25",
    }
    old = cells(lines, "int8_static_qdq_entropy_100", "| Model | Flips (acc.) |")  # from before paired statistics
    assert set(old.values()) == {"int8_static_qdq_entropy_100", "n/a"}
    assert not any(line.startswith("| fp32 |") for line in lines)  # the reference cannot flip against itself
    drift = drift_lines(variant_table(runs))
    assert cells(drift, "int8_static_qdq_minmax_500", "| Model | Mean cosine |") == {
        "Model": "int8_static_qdq_minmax_500",
        "Mean cosine": "0.9981",
        "p01 cosine": "0.9902",
        "Min cosine": "0.9514",
    }
    assert cells(drift, "int8_static_qdq_entropy_100", "| Model | Mean cosine |")["Mean cosine"] == "n/a"
    unbacked = variant_table([static("minmax", 500, 0.9910, 3.0)])
    assert (
        flips_lines(unbacked)
        == drift_lines(unbacked)
        == ["No FP32 run in this selection: n/a, as the drops (no baseline to compare against)."]
    )


def test_older_runs_without_intervals_are_judged_by_their_point_drops():
    old = {"drop_ci": None}  # jobs from before the paired statistics
    runs = [
        fp32(),
        static("entropy", 500, 0.9917, 3.0, **old),  # 0.10 pt
        static("minmax", 100, 0.9867, 4.0, **old),  # 0.60 pt: over the bound
        static("percentile", 100, 0.9925, 2.0, **old),  # within the bounds, measurably slower
    ]
    table = variant_table(runs)
    rule = Rule()
    assert rule.choose(table).label == "int8_static_qdq_entropy_500"
    assert rule.fallbacks(table.rows[1]) == ["accuracy drop", "TAR@FAR=1e-3 drop"]
    text = "\n".join(recommendation_lines(table, rule))
    assert (
        "**Recommended: int8_static_qdq_entropy_500**: accuracy 0.9917, accuracy drop 0.10 pt (no interval); "
        "TAR@FAR=1e-3 drop 0.00 pt (no interval);"
    ) in text
    assert (
        "Point drops compared for the accuracy drop and TAR@FAR=1e-3 drop: the run logged no interval (it predates "
        "the paired statistics)."
    ) in text
    assert (
        "- int8_static_qdq_minmax_100: not recommended: accuracy drop 0.60 pt > 0.50 pt (no interval logged, so the "
        "point drop is compared)."
    ) in text
    assert (
        "- int8_static_qdq_percentile_100: within the bounds but measurably slower than the fastest (its speed-up "
        "interval does not overlap the fastest's): speed-up 2.00x [1.95, 2.05], accuracy drop 0.02 pt; 3.85x smaller; "
        "point drops compared for the accuracy drop and TAR@FAR=1e-3 drop (no interval logged)."
    ) in text
    assert cells(comparison_lines(table), "int8_static_qdq_entropy_500")["Acc. drop (pt)"] == "0.10 pt (no interval)"
    assert "; accuracy drop 0.10 pt (no interval or McNemar test logged);" in "\n".join(summary_lines(table))
    # A run with intervals gets no fallback note.
    paired_run = variant_table([fp32(), static("entropy", 500, 0.9917, 3.0)])
    assert "Point drops compared" not in "\n".join(recommendation_lines(paired_run, rule))


def test_a_variant_without_logged_drops_is_never_recommended():
    table = variant_table([fp32(), static("minmax", 500, 0.9927, 4.0, logged={Metric.ACCURACY_DROP: math.nan})])
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "**Keep FP32**" in text
    assert "- int8_static_qdq_minmax_500: not recommended: no accuracy drop logged." in text


def test_recommendation_cites_the_measured_ratios():
    table = variant_table([fp32(), record("int8_dynamic", "dynamic", 0.9925, 0.94, ci=0.02, size=86.35)])
    text = "\n".join(recommendation_lines(table, Rule()))
    assert (
        "**Recommended: int8_dynamic**: accuracy 0.9925, accuracy drop 0.02 pt [-0.08, 0.12]; TAR@FAR=1e-3 drop "
        "0.00 pt [-0.10, 0.10]; 0.7% smaller (no meaningful size cut) than FP32 (86.98 -> 86.35 MiB); slower than "
        "FP32 at batch 1 on 1 thread (speed-up 0.94x [0.92, 0.96], 95% interval)."
    ) in text
    assert "It is slower than FP32 on this machine" in text
    assert "not measurably faster" not in text


def test_a_speed_up_whose_interval_holds_one_is_called_noise():
    table = variant_table([fp32(), record("int8_dynamic", "dynamic", 0.9925, 1.03, ci=0.05, size=86.35)])
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "as fast as FP32 within the noise at batch 1 on 1 thread (speed-up 1.03x [0.98, 1.08], 95% interval)" in text
    assert "Its speed-up interval holds 1: on this machine it is not measurably faster than FP32." in text
    assert "faster than FP32 at batch 1" not in text and "It is slower" not in text
    summary = "\n".join(summary_lines(table))
    assert "FP32 baseline (fp32): accuracy 0.9927 +- 0.0040, TAR@FAR=1e-3 0.9787, 86.98 MiB, 16.00 ms p50 at" in summary
    assert (
        "- int8_dynamic: accuracy 0.9925; accuracy drop 0.02 pt [-0.08, 0.12], not significant (McNemar p=0.75): "
        "inside the noise; TAR@FAR=1e-3 drop 0.00 pt [-0.10, 0.10], not significant (McNemar p=1): inside the "
        "noise; 0.7% smaller (no meaningful size cut); as fast"
    ) in summary


def test_registry_evidence_quotes_the_interval_and_the_protocol():
    row = variant_table([fp32(), static("minmax", 500, 0.9920, 2.64, ci=0.06)]).rows[1]
    tags = report.evidence(row, Rule(), "sweep-1")
    assert tags["facequant.speedup"] == (
        "2.64x [2.58, 2.70] (median paired FP32/variant batch-1 latency ratio, 1 thread, 95% interval)"
    )
    bootstrap = "95% paired-bootstrap interval (1000 resamples of the pairs, stratified genuine/impostor)"
    assert tags["facequant.accuracy_drop"] == (
        f"0.0007 [-0.0003, 0.0017], {bootstrap}; McNemar p=0.75 at FP32's accuracy threshold"
    )
    assert tags["facequant.tar_far_1e-3_drop"] == (
        f"0.0000 [-0.0010, 0.0010], {bootstrap}; McNemar p=1 at FP32's FAR=1e-3 threshold"
    )
    old = variant_table([fp32(), static("minmax", 500, 0.9920, 2.64, drop_ci=None)]).rows[1]
    assert report.evidence(old, Rule(), None)["facequant.accuracy_drop"] == "0.0007 (no interval logged)"
    run = static("minmax", 500, 0.9920, 2.64, ci=0.06, threads=(2,), extra={Param.BENCHMARK_CONFIDENCE: "0.9"})
    (row,) = variant_table([run]).rows
    assert report.evidence(row, Rule(), None)["facequant.speedup"] == (
        "1.32x [1.26, 1.38] (median paired FP32/variant batch-1 latency ratio, 2 threads, 90% interval)"
    )


def test_without_fp32_drops_are_na_and_nothing_is_recommended():
    table = variant_table([static("minmax", 500, 0.99, 4.0)])  # the job logged drops against a cached FP32
    (row,) = table.rows
    assert table.baseline is None and math.isnan(row.accuracy_drop) and math.isnan(row.compression)
    assert (row.speedup, row.speedup_low, row.speedup_high) == (4.0, 3.95, 4.05)  # paired in its job: it stands
    row_cells = cells(comparison_lines(table), "int8_static_qdq_minmax_500")
    assert row_cells["Accuracy"] == "0.9900" and row_cells["Compression"] == "n/a"
    assert row_cells["Speed-up 1T"] == "4.00x [3.95, 4.05]"
    summary = "\n".join(summary_lines(table))
    assert "drops and compression are n/a (no baseline to compare against)" in summary
    assert "- int8_static_qdq_minmax_500: accuracy 0.9900, faster than FP32 at batch 1 on 1 thread" in summary
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "No recommendation: this selection has no FP32 run" in text and "Recommended" not in text
    assert calibration_grid(table) is None


@pytest.mark.parametrize(
    ("ratio", "phrase"),
    [
        (86.98 / 86.35, "0.7% smaller (no meaningful size cut)"),
        (86.98 / 22.57, "3.85x smaller"),
        (1.0 / 1.02, "2.0% larger (no meaningful size cut)"),
    ],
)
def test_size_phrases_match_the_measured_ratio(ratio, phrase):
    assert size_phrase(ratio) == phrase


def test_distinct_settings_with_one_name_are_two_rows():
    table = variant_table(
        [
            fp32(),
            static("minmax", 500, 0.9920, 4.0, key="aaaaaaaa11"),
            static("minmax", 500, 0.9900, 1.8, key="bbbbbbbb22"),
        ]
    )
    assert len(table.rows) == 3 and table.repeats == 0
    lines = comparison_lines(table)
    assert cells(lines, "int8_static_qdq_minmax_500 (aaaaaaaa)")["Accuracy"] == "0.9920"
    assert cells(lines, "int8_static_qdq_minmax_500 (bbbbbbbb)")["Accuracy"] == "0.9900"
    assert calibration_grid(table) is None  # one method x samples cell cannot hold both


def test_repeats_of_one_variant_keep_the_latest():
    runs = [
        fp32(start=1),
        static("minmax", 500, 0.9800, 2.0, start=2),
        fp32(start=3),
        static("minmax", 500, 0.9920, 3.2, start=4),
        record("int8_dynamic", "dynamic", 0.9925, 0.94, size=86.35, start=5),
    ]
    table = variant_table(runs)
    assert [row.label for row in table.rows] == ["fp32", "int8_static_qdq_minmax_500", "int8_dynamic"]
    assert [row.run.start_time for row in table.rows] == [3, 4, 5] and table.repeats == 2
    assert cells(comparison_lines(table), "int8_static_qdq_minmax_500")["Accuracy"] == "0.9920"
    assert (table.rows[1].speedup, table.rows[1].speedup_low) == (3.2, 3.2 - 0.05)


def test_drops_and_compression_are_the_logged_ones():
    # The job's FP32 baseline (from its cache) differs from this selection's FP32 run: its numbers count.
    logged = {Metric.ACCURACY_DROP: 0.0001, Metric.TAR_FAR_1E3_DROP: 0.002, Metric.COMPRESSION_RATIO: 3.9}
    table = variant_table([fp32(), static("minmax", 500, 0.9800, 4.0, logged=logged)])
    row = table.rows[1]
    assert (row.accuracy_drop, row.tar_drop, row.compression) == (0.0001, 0.002, 3.9)
    assert cells(comparison_lines(table), row.label)["Compression"] == "3.90x"
    assert cells(comparison_lines(table), row.label)["Speed-up 1T"] == "4.00x [3.95, 4.05]"  # as the job logged it
    text = "\n".join(recommendation_lines(table, Rule()))
    assert (
        "**Recommended: int8_static_qdq_minmax_500**: accuracy 0.9800, accuracy drop 0.01 pt [-0.09, 0.11]; "
        "TAR@FAR=1e-3 drop 0.20 pt [0.10, 0.30];"
    ) in text


def test_technical_details_come_from_the_runs():
    model_info = {Param.MODEL_ARCHITECTURE: ARCHITECTURE, Param.MODEL_INPUT: INPUT, Param.MODEL_EMBEDDING_SIZE: "128"}
    protocol = {
        Param.GRAPH_OPTIMIZATION: "ORT_ENABLE_ALL",
        Param.RUNTIME_NAME: "ort",
        Param.RUNTIME_PRECISION: "f32",
        Param.RUNTIME_VERSION: "onnxruntime 1.20.1",
    }
    openvino = {Param.RUNTIME_NAME: "openvino", Param.RUNTIME_VERSION: "openvino 2026.4.1 f32"}
    runs = [
        fp32(extra=model_info | protocol),
        record("int8_dynamic", "dynamic", 0.9925, 0.94, extra=model_info | protocol),
        static("minmax", 500, 0.9920, 4.0, extra=model_info | protocol | {Param.CALIBRATION_SEED: "0"}),
        record("fp32@openvino", "fp32", 0.9927, 1.2, extra=model_info | protocol | openvino),
    ]
    runs[-1] = replace(runs[-1], tags={**runs[-1].tags, Tag.IS_BASELINE: "false"})  # only ORT f32 is the reference
    text = "\n".join(technical_lines(runs, variant_table(runs)))
    assert (
        "- Latency, paired: each job timed its variant on ort f32 (onnxruntime 1.20.1), openvino f32 (openvino "
        "2026.4.1 f32) and the reference, ONNX Runtime FP32 of the same weights, in the same process, interleaved: "
        "per thread count (1,2; the unsuffixed metrics are at the first), 9 rounds in which the two take turns (order "
        "flipped every round), each model making 3 warm-up + 10 timed batch-1 calls per round. Speed-up = median of "
        "the per-round FP32/variant latency ratios, with a distribution-free 95% interval (order statistics of those "
        "ratios); throughput at batch 32; ONNX Runtime CPU EP at ORT_ENABLE_ALL."
    ) in text
    assert f"- Architecture: {ARCHITECTURE} (128-d embedding); input: {INPUT};" in text
    assert "  - fp32: FP32 ONNX export (opset 17)." in text
    assert "  - int8_dynamic: quantize_dynamic, weights QInt8, op types n/a, per_channel n/a." in text
    assert "calibration minmax on 500 faces (seed 0, n/a bins)" in text
    bare = [fp32()]
    assert "- Architecture: n/a (n/a-d embedding); input: n/a;" in "\n".join(technical_lines(bare, variant_table(bare)))


def test_calibration_grid_of_a_sweep():
    runs = [fp32(), record("int8_dynamic", "dynamic", 0.99, 0.94)]
    runs += [static(m, n, 0.9927 - d, 4.0) for m, n, d in [("minmax", 100, 0.001), ("minmax", 500, 0.002)]]
    runs += [static("entropy", 100, 0.9907, 4.0)]
    grid = calibration_grid(variant_table(runs))
    assert grid is not None and list(grid.index) == ["entropy", "minmax"] and list(grid.columns) == [100, 500]
    assert grid.loc["minmax", 500] == pytest.approx(0.2) and grid.loc["entropy", 100] == pytest.approx(0.2)
    assert math.isnan(grid.loc["entropy", 500])


def scores(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.repeat([1, 0], 300)
    return pd.DataFrame({"fold": 1, "label": labels, "score": np.where(labels, 0.7, 0.0) + rng.normal(0, 0.1, 600)})


def test_report_file_has_every_row_and_every_plot(tmp_path):
    runs = [
        fp32(start=1),
        record("int8_dynamic", "dynamic", 0.9925, 0.94, size=86.35, start=2),
        static("minmax", 100, 0.9930, 3.72, start=3),
        static("minmax", 500, 0.9920, 3.02, start=4),
        static("entropy", 100, 0.9917, 4.10, start=5),
        static("entropy", 100, 0.9910, 4.10, start=6),  # a repeat
        record("int8_static_qdq_percentile_500", "static", 0.5, 4.0, start=7, status="FAILED"),
    ]
    curves = {run.run_id: scores(i) for i, run in enumerate(runs)}
    files = build_report(runs, curves, Rule(), tmp_path, "title")
    text = (tmp_path / "report.md").read_text()
    assert files[-1] == tmp_path / "report.md"
    lines = text.splitlines()
    for run in [*runs[:4], runs[5]]:  # the latest of each variant
        row = cells(lines, run.name)
        assert row["Accuracy"] == f"{run.metric(Metric.ACCURACY):.4f}"
        assert row["p50 1T (ms)"] == f"{run.metric(Metric.LATENCY_P50_MS):.2f}"
        assert row["p50 2T (ms)"] == f"{run.metric(at_threads(Metric.LATENCY_P50_MS, 2)):.2f}"
    assert "(1 repeated run(s) of the same variant: the latest of each is shown.)" in text
    assert "Runs that did not finish (left out): int8_static_qdq_percentile_500 (FAILED: no error recorded)" in text
    assert "**Recommended: int8_static_qdq_entropy_100**" in text
    heads = [line for line in lines if line.startswith("### ")]
    assert heads[:6] == [
        "### Executive summary",
        "### Detailed comparison",
        "### Similarity distributions",
        "### Decision flips",
        "### Embedding drift",
        "### Recommendations",
    ]
    start = lines.index("### Detailed comparison") + 2
    end = start + len(list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:])))
    assert end - start == 2 + 5 and lines[end : end + 2] == ["", DROP_NOTE]  # under the table, its footnote
    assert cells(lines, "int8_dynamic", "| Model | Flips (acc.) |")["Broken (acc.)"] == "6"
    assert cells(lines, "int8_dynamic", "| Model | Mean cosine |")["Min cosine"] == "0.9514"
    referenced = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert referenced == ["roc.png", "histograms.png", "pareto.png", "calibration_grid.png"]
    assert [p.name for p in files[:-1]] == referenced
    assert all((tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in referenced)


def test_models_are_reported_apart(tmp_path):
    runs = [fp32(), fp32(model="vggface2", start=1), record("int8_dynamic", "dynamic", 0.99, 0.94, start=2)]
    text = (build_report(runs, {}, Rule(), tmp_path, "title")[-1]).read_text()
    assert "**These runs mix 2 model/dataset combinations;" in text
    assert "## msceleb128 on LFW (10 folds of View 2's pairs, dataset fp-6000)" in text and "## vggface2 on LFW" in text
    assert re.findall(r"\]\((\S+\.png)\)", text) == ["g0_pareto.png", "g1_pareto.png"]
    assert all((tmp_path / name).is_file() for name in ("g0_pareto.png", "g1_pareto.png"))


def test_compare_reports_on_the_selected_records_and_logs_what_it_wrote(tmp_path, monkeypatch):
    runs = [fp32(), static("minmax", 500, 0.9920, 4.0)]
    logged: list[tuple[list[Path], str | None, str]] = []
    downloaded: list[tuple[str, str]] = []

    def download(run_id: str, path: str, dst: Path) -> Path:
        downloaded.append((run_id, path))
        dst.mkdir(parents=True)
        scores(0).to_csv(dst / path, index=False)
        return dst / path

    monkeypatch.setattr(tracking, "select_runs", lambda cfg, sweep, filter_string: (runs, "sweep-1"))
    monkeypatch.setattr(tracking, "download_artifact", download)
    monkeypatch.setattr(
        tracking, "log_report", lambda files, sweep, experiment: logged.append((files, sweep, experiment))
    )
    result = report.compare(MlflowConfig(), None, None, tmp_path / "out", Rule())
    path = result.report
    assert result.recommended is not None and result.recommended.run is runs[1]
    assert path == tmp_path / "out" / "report.md"
    assert "# FaceNet INT8 quantization report: sweep sweep-1" in path.read_text()
    ((files, sweep, experiment),) = logged
    assert files == [tmp_path / "out" / name for name in ("roc.png", "histograms.png", "pareto.png", "report.md")]
    assert (sweep, experiment) == ("sweep-1", "1")
    assert downloaded == [(run.run_id, SCORES_CSV) for run in runs]
