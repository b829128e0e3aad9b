"""The recommendation rule and the wording of size claims, on tables built by hand."""

import pandas as pd
import pytest

from facequant.report import Rule, recommendation, size_phrase


def table(*rows):
    cols = [
        "name",
        "is_baseline",
        "accuracy",
        "accuracy_drop",
        "tar_drop",
        "latency_p50_ms",
        "size_mib",
        "compression",
        "speedup",
    ]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


FP32 = ("fp32", True, 0.9927, 0.0, 0.0, 16.0, 87.0, 1.0, 1.0)


def test_near_ties_in_latency_go_to_the_smaller_drop():
    t = table(
        FP32,
        ("a", False, 0.9917, 0.0010, 0.007, 3.95, 22.6, 3.85, 4.05),
        ("b", False, 0.9930, -0.0003, 0.001, 4.33, 22.6, 3.85, 3.70),
        ("c", False, 0.9932, -0.0005, 0.002, 4.50, 22.6, 3.85, 3.56),
    )
    assert Rule().pick(t[~t.is_baseline])["name"] == "b"  # a and b tie within 10%; c is 14% slower
    assert Rule(latency_tolerance=0.0).pick(t[~t.is_baseline])["name"] == "a"


def test_lossy_variants_are_named_with_the_reason():
    t = table(FP32, ("lossy", False, 0.9427, 0.05, 0.07, 4.0, 22.6, 3.85, 4.0))
    text = "\n".join(recommendation(t, Rule()))
    assert "**Keep FP32** (fp32): no quantized variant meets the rule." in text
    assert "lossy: not recommended: accuracy drop 5.00 pt > 0.50 pt; TAR@FAR=1e-3 drop 7.00 pt > 1.00 pt" in text


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
