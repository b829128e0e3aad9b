"""The release gate of compare.py: which variants fail it and why, on run records built by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from facequant.config.sections import ConfigError
from facequant.report import Rule
from facequant.report.release_gate import gate_failures, gated_variants
from facequant.schema import Tag
from helpers import fp32, record, static

GOOD = "int8_static_qdq_minmax_500"  # 0.03 pt drop
LOSSY = "int8_static_qdq_entropy_500"  # 0.87 pt drop


def sweep_records():
    return [fp32(), static("minmax", 500, 0.9924, 1.7, start=1), static("entropy", 500, 0.9840, 1.8, start=2)]


@pytest.mark.parametrize(
    ("setting", "variants"),
    [
        (True, ()),
        (False, None),
        ({"variant": None}, None),
        ({"variant": GOOD}, (GOOD,)),
        ({"variant": [GOOD, LOSSY]}, (GOOD, LOSSY)),
    ],
)
def test_gate_settings(setting, variants):
    assert gated_variants(setting) == variants


@pytest.mark.parametrize("setting", ["yes", {"variant": []}, {"variant": 3}, {"name": GOOD}])
def test_a_bad_gate_setting_says_how_to_write_it(setting):
    with pytest.raises(
        ConfigError, match=r"use release_gate=true, or release_gate.variant=NAME or release_gate.variant=\[A,B\]"
    ):
        gated_variants(setting)


def test_the_gate_passes_when_a_variant_is_recommended_though_another_fails_the_rule():
    assert gate_failures(sweep_records(), Rule()) == []


def test_without_a_recommendation_every_quantized_variant_fails_with_its_reasons():
    runs = [fp32(), static("minmax", 500, 0.9840, 1.7, start=1), record("int8_dynamic", "dynamic", 0.99, None, start=2)]
    assert gate_failures(runs, Rule()) == [
        "int8_static_qdq_minmax_500: accuracy drop 0.87 pt > 0.50 pt",
        "int8_dynamic: no paired speed-up logged",
    ]
    assert gate_failures(runs[:1], Rule()) == ["the selection has no quantized variant to recommend"]


def test_a_named_variant_fails_alone_and_a_passing_one_passes():
    runs = sweep_records()
    assert gate_failures(runs, Rule(), [GOOD]) == []
    assert gate_failures(runs, Rule(), [GOOD, LOSSY]) == [f"{LOSSY}: accuracy drop 0.87 pt > 0.50 pt"]
    stricter = Rule(max_drop=0.0001)  # the good variant's 0.03 pt drop now breaks it too
    assert gate_failures(runs, stricter, [GOOD]) == [f"{GOOD}: accuracy drop 0.03 pt > 0.01 pt"]


def test_a_named_variant_that_is_missing_or_did_not_finish_fails_saying_so():
    failed = record("int8_static_qdq_percentile_500", "static", 0.99, 1.7, status="FAILED", start=3)
    failed = replace(failed, tags={**failed.tags, Tag.ERROR: "QuantizationError: boom"})
    runs = [*sweep_records(), failed]
    assert gate_failures(runs, Rule(), ["int8_static_qdq_percentile_500", "int8_dyn"]) == [
        f"int8_static_qdq_percentile_500: its run {failed.run_id} is FAILED (QuantizationError: boom)",
        f"int8_dyn: no run of that name in the selection, which has fp32, {GOOD}, {LOSSY}",
    ]


def test_a_selection_without_fp32_or_with_two_models_fails_once():
    no_fp32 = sweep_records()[1:]
    assert gate_failures(no_fp32, Rule()) == [
        "the selection has no FP32 run, so no drop can be measured: run quant=fp32 in the same sweep"
    ]
    assert gate_failures(no_fp32, Rule(), [GOOD]) == gate_failures(no_fp32, Rule())
    mixed = [*sweep_records(), fp32(model="vggface2", start=4)]
    assert gate_failures(mixed, Rule()) == [
        "the selection holds 2 model/dataset groups, not one; narrow it with filter=..."
    ]
