"""The rule refuses a variant whose kernels break on its target, the report shows validity per target, and a
registered version records the thresholds a deployment needs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facequant.report import Rule, recommend
from facequant.report.comparison import evidence
from facequant.report.deployment import THRESHOLD_TAG, deployment_tags, run_thresholds
from facequant.report.sections import speed_phrase
from facequant.report.table import variant_table
from facequant.report.targets import target_lines
from facequant.schema import Metric, Param
from helpers.records import cells, fp32, static


def _target(isa: str, host: str, arithmetic: str, sha: str = "f1") -> dict[str, str]:
    return {
        Param.TARGET_ISA: isa,
        Param.TARGET_HOST: host,
        Param.TARGET_ARITHMETIC: arithmetic,
        Param.TARGET_SPEED_MEASURED: str(isa == host),
        Param.TARGET_KERNEL_FLOOR: "0.999",
        Param.TARGET_MAX_SATURATION: "0.001",
        Param.ONNX_SHA256: sha,
    }


def _kernels(mean: float, saturating: float = 0) -> dict[Metric, float]:
    return {Metric.KERNEL_COSINE_MEAN: mean, Metric.KERNEL_COSINE_MIN: mean - 0.01, Metric.SATURATING_NODES: saturating}


def test_a_variant_whose_target_kernels_break_is_refused_with_the_reason():
    broken = static("minmax", 500, 0.9925, 3.0, extra=_target("avx2", "vnni", "avx2"), logged=_kernels(0.92, 3))
    table = variant_table([fp32(), broken])
    reasons = Rule().breaks(table.rows[1])
    assert reasons == [
        "its avx2 kernels disagree with its QDQ graph: mean embedding cosine 0.9200 < 0.999",
        "3 node(s) saturate their avx2 int16 pair sums on more than 0.001 of their outputs",
    ]
    best, why = recommend([fp32(), broken], Rule())
    assert best is None and "mean embedding cosine 0.9200 < 0.999" in why
    sound = static("minmax", 500, 0.9925, 3.0, extra=_target("avx2", "vnni", "avx2"), logged=_kernels(0.9995))
    assert recommend([fp32(), sound], Rule())[0] is not None
    old = static("minmax", 500, 0.9925, 3.0)  # a run from before targets measured no kernels: nothing to refuse
    assert Rule().breaks(variant_table([fp32(), old]).rows[1]) == []


def test_validity_per_target_names_the_arithmetic_and_says_when_speed_was_not_measured():
    emulated = static("minmax", 500, 0.9925, 3.0, extra=_target("avx2", "vnni", "avx2"), logged=_kernels(0.9995))
    native = static("entropy", 500, 0.9920, 3.1, extra=_target("vnni", "vnni", "host"), logged=_kernels(0.9999))
    lines = target_lines(variant_table([fp32(), emulated, native]))
    header = "| Model | Target |"
    row = cells(lines, "int8_static_qdq_minmax_500", header)
    assert row["Target"] == "avx2" and row["Arithmetic"] == "emulated: saturating int16 pair sums"
    assert row["Speed-up"] == "not measured: host is vnni" and row["Kernel check"] == "passes"
    mine = cells(lines, "int8_static_qdq_entropy_500", header)
    assert mine["Arithmetic"] == "the host's kernels" and mine["Speed-up"] == "3.10x"
    # every sentence that quotes the host's speed-up for another target says whose it is
    rows = variant_table([fp32(), emulated]).rows
    assert speed_phrase(rows[1]).endswith("; measured on the vnni host, not on avx2)")
    assert evidence(rows[1], Rule(), None)["facequant.speedup"].endswith("; measured on the vnni host, not on avx2)")
    assert "measured on" not in speed_phrase(variant_table([fp32(), native]).rows[1])


def test_registered_tags_hold_the_targets_validated_the_thresholds_beside_fp32s_and_the_contract():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(3000), np.zeros(3000)]
    fp32_scores = np.r_[rng.normal(0.7, 0.1, 3000), rng.normal(0.1, 0.1, 3000)]
    shifted = fp32_scores + 0.02 * (labels == 0)  # the variant's impostors score a little higher
    curves = {
        name: pd.DataFrame({"fold": 0, "label": labels, "score": s})
        for name, s in (("fp32", fp32_scores), ("variant", shifted))
    }
    base = fp32(extra={Param.TARGET_ISA: "vnni"})
    extra = _target("avx2", "vnni", "avx2") | {Param.INPUT_CONTRACT: "MTCNN-aligned 160x160 RGB face"}
    variant = static("minmax", 500, 0.9925, 3.0, extra=extra, logged=_kernels(0.9995))
    same_file_on_vnni = static(
        "minmax", 500, 0.9925, 3.0, extra=_target("vnni", "vnni", "host"), logged=_kernels(1.0), key="v"
    )
    thresholds = {
        base.run_id: run_thresholds(base, curves["fp32"]),
        variant.run_id: run_thresholds(variant, curves["variant"]),
    }
    row = variant_table([base, variant]).rows[1]
    tags = deployment_tags(row, base, [base, variant, same_file_on_vnni], thresholds)
    assert tags["facequant.host_isa"] == "vnni" and tags["facequant.target"] == "avx2"
    assert tags["facequant.targets_validated"] == (
        "avx2 (avx2: kernel cosine mean 0.9995, min 0.9895); vnni (host: kernel cosine mean 1.0000, min 0.9900)"
    )
    t_variant, t_fp32 = thresholds[variant.run_id][1e-3], thresholds[base.run_id][1e-3]
    assert t_variant > t_fp32  # the variant's impostors score higher here: reusing FP32's threshold would over-accept
    assert tags[THRESHOLD_TAG.format("1e-3")].startswith(f"{t_variant:.6f} (FP32 {t_fp32:.6f};")
    assert tags[THRESHOLD_TAG.format("1e-4")].startswith("not resolved")
    assert tags["facequant.input_contract"] == "MTCNN-aligned 160x160 RGB face"
