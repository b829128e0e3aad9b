"""The report on run records built by hand: table shaping, the rule, the wording and the rendered file."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facequant import report, tracking
from facequant.config import MlflowConfig
from facequant.report import Rule
from facequant.report.document import build_report, calibration_grid
from facequant.report.sections import comparison_lines, recommendation_lines, size_phrase, technical_lines
from facequant.report.table import variant_table
from facequant.schema import SCORES_CSV, Metric, Param, RunRecord, Tag

# The FP32 numbers every variant's job compared itself against.
FP32_ACCURACY, FP32_TAR, FP32_SIZE = 0.9927, 0.9787, 86.98

ARCHITECTURE = "facenet-pytorch InceptionResnetV1"
INPUT = "float32 NCHW RGB 160x160 after preprocessing; output L2-normalised embedding"


def record(
    name: str,
    mode: str,
    accuracy: float,
    latency: float,
    *,
    size: float = 22.57,
    tar: float = FP32_TAR,
    start: int = 0,
    key: str | None = None,
    model: str = "msceleb128",
    logged: dict[Metric, float] | None = None,
    extra: dict[str, str] | None = None,
    status: str = "FINISHED",
) -> RunRecord:
    """A run shaped like a job's: its drops are against the FP32 numbers above unless `logged` overrides them."""
    params = {
        Param.QUANT_MODE: mode,
        Param.MODEL_NAME: model,
        Param.MODEL_WEIGHTS_SHA256: model * 4,
        Param.DATASET_FOLDS: "10",
        Param.ONNX_OPSET: "17",
        Param.QUANT_WEIGHT_TYPE: "QInt8",
    }
    if mode == "static":  # only static variants log calibration
        method, samples = name.split("_")[-2:]
        params |= {Param.CALIBRATION_METHOD: method, Param.CALIBRATION_NUM_SAMPLES: samples}
    metrics = {
        Metric.ACCURACY: accuracy,
        Metric.ACCURACY_STD: 0.004,
        Metric.TAR_FAR_1E3: tar,
        Metric.TAR_FAR_1E4: tar - 0.04,
        Metric.ROC_AUC: 0.9993,
        Metric.EER: 0.0077,
        Metric.SIZE_MIB: size,
        Metric.LATENCY_P50_MS: latency,
        Metric.LATENCY_P95_MS: latency * 1.1,
        Metric.THROUGHPUT_IPS: 1000 / latency,
        Metric.GENUINE_MEAN: 0.7,
        Metric.GENUINE_STD: 0.1,
        Metric.IMPOSTOR_MEAN: 0.0,
        Metric.IMPOSTOR_STD: 0.1,
        Metric.THRESHOLD: 0.4,
        Metric.FAR_RESOLUTION: 1 / 3000,
        Metric.N_PAIRS: 6000,
        Metric.ACCURACY_DROP: FP32_ACCURACY - accuracy,
        Metric.TAR_FAR_1E3_DROP: FP32_TAR - tar,
        Metric.COMPRESSION_RATIO: FP32_SIZE / size,
    } | (logged or {})
    tags = {
        Tag.IS_BASELINE: str(mode == "fp32").lower(),
        Tag.DATASET_FINGERPRINT: "fp-6000",
        Tag.VARIANT_KEY: key or f"key-{name}",
        Tag.GIT_COMMIT: "abc",
    }
    return RunRecord(
        run_id=f"{name}-{key}-{start}-{model}",
        experiment_id="1",
        name=name,
        status=status,
        start_time=start,
        tags=tags,
        params=params | (extra or {}),
        metrics=metrics,
    )


def fp32(**kwargs) -> RunRecord:
    return record("fp32", "fp32", FP32_ACCURACY, 16.0, size=FP32_SIZE, **kwargs)


def static(method: str, samples: int, accuracy: float, latency: float, **kwargs) -> RunRecord:
    return record(f"int8_static_qdq_{method}_{samples}", "static", accuracy, latency, **kwargs)


def cells(lines: list[str], label: str) -> list[str]:
    """The cells of one variant's row of the detailed table (13 columns; the distribution table has 6)."""
    (row,) = [line for line in lines if line.startswith(f"| {label} |") and line.count("|") == 14]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_near_ties_in_latency_go_to_the_smaller_drop():
    table = variant_table(
        [
            fp32(),
            static("entropy", 500, 0.9917, 3.95, tar=0.9717),
            static("minmax", 100, 0.9930, 4.33, tar=0.9777),
            static("percentile", 500, 0.9932, 4.50, tar=0.9767),
        ]
    )
    passing = [row for row in table.quantized if not Rule().breaks(row)]
    assert len(passing) == 3
    assert Rule().pick(passing).label == "int8_static_qdq_minmax_100"  # 4.33 is within 10% of 3.95; 4.50 is not
    assert Rule(latency_tolerance=0.0).pick(passing).label == "int8_static_qdq_entropy_500"


def test_lossy_variants_are_named_with_the_reason():
    table = variant_table([fp32(), static("minmax", 500, 0.9427, 4.0, tar=0.9087)])
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "**Keep FP32** (fp32): no quantized variant meets the rule." in text
    assert (
        "- int8_static_qdq_minmax_500: not recommended: accuracy drop 5.00 pt > 0.50 pt; "
        "TAR@FAR=1e-3 drop 7.00 pt > 1.00 pt." in text
    )


def test_a_variant_without_logged_drops_is_never_recommended():
    table = variant_table([fp32(), static("minmax", 500, 0.9927, 4.0, logged={Metric.ACCURACY_DROP: math.nan})])
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "**Keep FP32**" in text
    assert "- int8_static_qdq_minmax_500: not recommended: no accuracy drop logged." in text


def test_recommendation_cites_the_measured_ratios():
    table = variant_table([fp32(), record("int8_dynamic", "dynamic", 0.9925, 17.0, size=86.35)])
    text = "\n".join(recommendation_lines(table, Rule()))
    assert (
        "**Recommended: int8_dynamic**: accuracy 0.9925 (drop 0.02 pt), TAR@FAR=1e-3 drop 0.00 pt; 0.7% smaller "
        "(no meaningful size cut) than FP32 (86.98 -> 86.35 MiB); 1.06x slower at batch 1 (16.00 -> 17.00 ms p50)."
    ) in text
    assert "It is slower than FP32 on this machine" in text


def test_without_fp32_drops_are_na_and_nothing_is_recommended():
    table = variant_table([static("minmax", 500, 0.99, 4.0)])  # the job logged drops against a cached FP32
    (row,) = table.rows
    assert table.baseline is None and math.isnan(row.accuracy_drop) and math.isnan(row.speedup)
    row_cells = cells(comparison_lines(table), "int8_static_qdq_minmax_500")
    assert row_cells[1] == "0.9900" and row_cells[8] == "n/a" and row_cells[11] == "n/a"
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
            static("minmax", 500, 0.9900, 9.0, key="bbbbbbbb22"),
        ]
    )
    assert len(table.rows) == 3 and table.repeats == 0
    lines = comparison_lines(table)
    assert cells(lines, "int8_static_qdq_minmax_500 (aaaaaaaa)")[1] == "0.9920"
    assert cells(lines, "int8_static_qdq_minmax_500 (bbbbbbbb)")[1] == "0.9900"
    assert calibration_grid(table) is None  # one method x samples cell cannot hold both


def test_repeats_of_one_variant_keep_the_latest():
    runs = [
        fp32(start=1),
        static("minmax", 500, 0.9800, 4.0, start=2),
        fp32(start=3),
        static("minmax", 500, 0.9920, 5.0, start=4),
        record("int8_dynamic", "dynamic", 0.9925, 17.0, size=86.35, start=5),
    ]
    table = variant_table(runs)
    assert [row.label for row in table.rows] == ["fp32", "int8_static_qdq_minmax_500", "int8_dynamic"]
    assert [row.run.start_time for row in table.rows] == [3, 4, 5] and table.repeats == 2
    assert cells(comparison_lines(table), "int8_static_qdq_minmax_500")[1] == "0.9920"
    assert table.rows[1].speedup == pytest.approx(16.0 / 5.0)


def test_drops_and_compression_are_the_logged_ones():
    # The job's FP32 baseline (from its cache) differs from this selection's FP32 run: its numbers count.
    logged = {Metric.ACCURACY_DROP: 0.0001, Metric.TAR_FAR_1E3_DROP: 0.002, Metric.COMPRESSION_RATIO: 3.9}
    table = variant_table([fp32(), static("minmax", 500, 0.9800, 4.0, logged=logged)])
    row = table.rows[1]
    assert (row.accuracy_drop, row.tar_drop, row.compression) == (0.0001, 0.002, 3.9)
    assert cells(comparison_lines(table), row.label)[8] == "3.90x"
    assert cells(comparison_lines(table), row.label)[11] == "4.00x"  # 16 ms / 4 ms: computed by the report
    text = "\n".join(recommendation_lines(table, Rule()))
    assert "**Recommended: int8_static_qdq_minmax_500**: accuracy 0.9800 (drop 0.01 pt), TAR@FAR=1e-3 drop 0.20" in text


def test_technical_details_come_from_the_runs():
    model_info = {Param.MODEL_ARCHITECTURE: ARCHITECTURE, Param.MODEL_INPUT: INPUT, Param.MODEL_EMBEDDING_SIZE: "128"}
    runs = [
        fp32(extra=model_info),
        record("int8_dynamic", "dynamic", 0.9925, 17.0, extra=model_info),
        static("minmax", 500, 0.9920, 4.0, extra=model_info | {Param.CALIBRATION_SEED: "0"}),
    ]
    text = "\n".join(technical_lines(runs, variant_table(runs)))
    assert f"- Architecture: {ARCHITECTURE} (128-d embedding); input: {INPUT};" in text
    assert "  - fp32: FP32 ONNX export (opset 17)." in text
    assert "  - int8_dynamic: quantize_dynamic, weights QInt8, op types n/a, per_channel n/a." in text
    assert "calibration minmax on 500 faces (seed 0, n/a bins)" in text
    bare = [fp32()]
    assert "- Architecture: n/a (n/a-d embedding); input: n/a;" in "\n".join(technical_lines(bare, variant_table(bare)))


def test_calibration_grid_of_a_sweep():
    runs = [fp32(), record("int8_dynamic", "dynamic", 0.99, 17.0)]
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
        record("int8_dynamic", "dynamic", 0.9925, 17.0, size=86.35, start=2),
        static("minmax", 100, 0.9930, 4.3, start=3),
        static("minmax", 500, 0.9920, 5.3, start=4),
        static("entropy", 100, 0.9917, 3.9, start=5),
        static("entropy", 100, 0.9910, 3.9, start=6),  # a repeat
        record("int8_static_qdq_percentile_500", "static", 0.5, 4.0, start=7, status="FAILED"),
    ]
    curves = {run.run_id: scores(i) for i, run in enumerate(runs)}
    files = build_report(runs, curves, Rule(), tmp_path, "title")
    text = (tmp_path / "report.md").read_text()
    assert files[-1] == tmp_path / "report.md"
    lines = text.splitlines()
    for run in [*runs[:4], runs[5]]:  # the latest of each variant
        row = cells(lines, run.name)
        assert row[1] == f"{run.metric(Metric.ACCURACY):.4f}" and row[9] == f"{run.metric(Metric.LATENCY_P50_MS):.2f}"
    assert "(1 repeated run(s) of the same variant: the latest of each is shown.)" in text
    assert "Runs that did not finish (left out): int8_static_qdq_percentile_500 (FAILED: no error recorded)" in text
    assert "**Recommended: int8_static_qdq_entropy_100**" in text
    referenced = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert referenced == ["roc.png", "histograms.png", "pareto.png", "calibration_grid.png"]
    assert [p.name for p in files[:-1]] == referenced
    assert all((tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in referenced)


def test_models_are_reported_apart(tmp_path):
    runs = [fp32(), fp32(model="vggface2", start=1), record("int8_dynamic", "dynamic", 0.99, 17.0, start=2)]
    text = (build_report(runs, {}, Rule(), tmp_path, "title")[-1]).read_text()
    assert "**These runs mix 2 model/dataset combinations;" in text
    assert "## msceleb128 on LFW (10 folds, dataset fp-6000)" in text and "## vggface2 on LFW" in text
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
