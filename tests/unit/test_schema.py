"""The run schema: names that never collide, the FAR and thread-count spellings in metric names, and the record
readers get back, with the defaults older runs need."""

from __future__ import annotations

import math

import pytest

from facequant.schema import (
    ALL_TAR_AT_FAR,
    FALSE_ACCEPTS_AT_FAR,
    FLIPS_AT_FAR,
    PER_THREADS,
    STAGE_TIME,
    TAR_AT_FAR,
    TAR_DROP_AT_FAR,
    GroupKey,
    Metric,
    Param,
    RunRecord,
    Tag,
    at_threads,
    far_text,
)


def run(
    tags: dict[str, str] | None = None, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None
) -> RunRecord:
    return RunRecord("r1", "0", "int8_dynamic", "FINISHED", 0, tags or {}, params or {}, metrics or {})


@pytest.mark.parametrize("names", [Tag, Param, Metric])
def test_no_two_names_of_a_kind_share_a_value(names):
    values = [member.value for member in names]
    assert len(values) == len(set(values))


def test_metric_names_write_the_far_as_far_text_does():
    assert far_text(1e-3) == "1e-3" and far_text(1e-6) == "1e-6"
    for far, metric in ALL_TAR_AT_FAR.items():
        assert metric == f"tar_far_{far_text(far)}"
    for far, metric in FALSE_ACCEPTS_AT_FAR.items():
        assert metric == f"false_accepts_at_far_{far_text(far)}"
    for far, (drop, low, high) in TAR_DROP_AT_FAR.items():
        assert (drop, low, high) == (f"{ALL_TAR_AT_FAR[far]}_drop", f"{drop}_ci_low", f"{drop}_ci_high")
        flips, fixed, broken, p = FLIPS_AT_FAR[far]
        assert (fixed, broken) == (f"{flips}_fixed", f"{flips}_broken") and p.endswith(far_text(far))
    assert set(TAR_AT_FAR) <= set(ALL_TAR_AT_FAR) and set(FLIPS_AT_FAR) == set(TAR_DROP_AT_FAR)


def test_per_thread_names_put_the_count_before_the_interval_end():
    assert at_threads(Metric.SPEEDUP, 4) == "speedup_t4"
    assert at_threads(Metric.SPEEDUP_CI_LOW, 4) == "speedup_t4_ci_low"
    assert at_threads(Metric.LATENCY_P50_MS, 16) == "latency_p50_ms_t16"
    names = {at_threads(metric, 2) for metric in PER_THREADS}
    assert len(names) == len(PER_THREADS) and all("_t2" in name for name in names)
    with pytest.raises(ValueError, match="accuracy is not logged per thread count"):
        at_threads(Metric.ACCURACY, 2)


def test_every_stage_time_is_a_metric_in_seconds():
    assert all(metric in Metric and metric.endswith("_s") for metric in STAGE_TIME.values())
    assert len(set(STAGE_TIME.values())) == len(STAGE_TIME)


def test_a_record_reads_what_was_logged_and_nan_or_none_for_the_rest():
    record = run(
        tags={Tag.IS_BASELINE: "true", Tag.ERROR: "RuntimeError: no faces", Tag.VARIANT_KEY: "k1"},
        params={Param.QUANT_MODE: "dynamic"},
        metrics={Metric.ACCURACY: 0.99},
    )
    assert record.metric(Metric.ACCURACY) == 0.99 and math.isnan(record.metric(Metric.EER))
    assert record.param(Param.QUANT_MODE) == "dynamic" and record.param(Param.QUANT_SCHEME) is None
    assert record.tag(Tag.MODEL) is None and record.error == "RuntimeError: no faces"
    assert record.is_baseline and record.finished and record.variant_key == "k1"
    older = RunRecord("r2", "0", "fp32", "FAILED", 0, {Tag.IS_BASELINE: "false"}, {}, {})
    assert not older.is_baseline and not older.finished and older.error is None
    assert older.variant_key == "fp32"  # runs from before the key fall back to their name


@pytest.mark.parametrize(("logged", "threads"), [("1,2", (1, 2)), ("4", (4,)), ("", ()), ("1, 2,x", (1, 2))])
def test_thread_counts_are_read_from_the_benchmark_param(logged, threads):
    assert run(params={Param.BENCHMARK_THREADS: logged}).threads == threads
    assert run().threads == ()


def test_runs_compare_only_within_one_weights_dataset_folds_model_protocol_and_flip():
    params = {
        Param.MODEL_WEIGHTS_SHA256: "ab" * 32,
        Param.DATASET_FOLDS: "10",
        Param.MODEL_NAME: "msceleb128",
        Param.EVAL_FLIP: "False",
    }
    tags = {Tag.DATASET_FINGERPRINT: "fp-13233"}
    base = run(tags, params)
    assert base.group == GroupKey("ab" * 32, "fp-13233", "10", "msceleb128", "pairs", False)
    assert run(tags, dict(params)).group == base.group
    assert run(tags, params | {Param.EVAL_FLIP: "True"}).group.flip
    for key, value in ((Param.DATASET_FOLDS, "1"), (Param.MODEL_NAME, "vggface2"), (Param.DATASET_PROTOCOL, "all")):
        assert run(tags, params | {key: value}).group != base.group, key
    assert run({Tag.DATASET_FINGERPRINT: "fp-other"}, params).group != base.group
    assert base.protocol == "pairs" and run(params={Param.DATASET_PROTOCOL: "all"}).protocol == "all"
