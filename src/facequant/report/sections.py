"""Markdown sections of one group's report, each from its table rows and the group's run records."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from facequant.report.rule import Rule
from facequant.report.table import Row, Table
from facequant.schema import Metric, Param, RunRecord, Tag


def fmt(value: float, spec: str) -> str:
    """A number in the table's format, or n/a when the run did not log it (or there is no baseline)."""
    return "n/a" if math.isnan(value) else format(value, spec)


def distinct(runs: Iterable[RunRecord], get: Callable[[RunRecord], str | None]) -> str:
    """The distinct values of one field over runs, in order of first appearance, or n/a."""
    return ", ".join(dict.fromkeys(value for value in map(get, runs) if value is not None)) or "n/a"


def params(runs: Iterable[RunRecord], name: Param) -> str:
    return distinct(runs, lambda run: run.param(name))


def tags(runs: Iterable[RunRecord], name: Tag) -> str:
    return distinct(runs, lambda run: run.tag(name))


def size_phrase(ratio: float) -> str:
    """A size change in words that cannot overstate it: percent below a 10% cut, 'N.NNx' above."""
    if math.isnan(ratio):
        return "size ratio n/a"
    if ratio >= 1.1:
        return f"{ratio:.2f}x smaller"
    change = 100 * (1 - 1 / ratio)
    return f"{abs(change):.1f}% {'smaller' if change >= 0 else 'larger'} (no meaningful size cut)"


def speed_phrase(ratio: float) -> str:
    if math.isnan(ratio):
        return "speed ratio n/a"
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


def summary_lines(table: Table) -> list[str]:
    base = table.baseline
    if base is None:
        return [
            "No FP32 run in this selection: drops, compression and speed-up are n/a (no baseline to compare against)."
        ] + [f"- {r.label}: accuracy {fmt(r.metric(Metric.ACCURACY), '.4f')}" for r in table.rows]
    lines = [
        f"FP32 baseline ({base.label}): accuracy {fmt(base.metric(Metric.ACCURACY), '.4f')} +- "
        f"{fmt(base.metric(Metric.ACCURACY_STD), '.4f')}, TAR@FAR=1e-3 {fmt(base.metric(Metric.TAR_FAR_1E3), '.4f')}, "
        f"{fmt(base.metric(Metric.SIZE_MIB), '.2f')} MiB, {fmt(base.metric(Metric.LATENCY_P50_MS), '.2f')} ms."
    ]
    for r in table.quantized:
        lines.append(
            f"- {r.label}: accuracy {fmt(r.metric(Metric.ACCURACY), '.4f')} (drop {fmt(100 * r.accuracy_drop, '.2f')} "
            f"pt), {size_phrase(r.compression)}, {speed_phrase(r.speedup)} at batch 1."
        )
    return lines


# The detailed table: header, then each cell's metric (or row field) and format.
TABLE_COLUMNS: tuple[tuple[str, Callable[[Row], float], str], ...] = (
    ("Accuracy", lambda r: r.metric(Metric.ACCURACY), ".4f"),
    ("Acc. std", lambda r: r.metric(Metric.ACCURACY_STD), ".4f"),
    ("TAR@FAR=1e-3", lambda r: r.metric(Metric.TAR_FAR_1E3), ".4f"),
    ("TAR@FAR=1e-4", lambda r: r.metric(Metric.TAR_FAR_1E4), ".4f"),
    ("ROC AUC", lambda r: r.metric(Metric.ROC_AUC), ".4f"),
    ("EER", lambda r: r.metric(Metric.EER), ".4f"),
    ("Size (MiB)", lambda r: r.metric(Metric.SIZE_MIB), ".2f"),
    ("Compression", lambda r: r.compression, ".2f"),
    ("Latency p50 (ms)", lambda r: r.metric(Metric.LATENCY_P50_MS), ".2f"),
    ("Latency p95 (ms)", lambda r: r.metric(Metric.LATENCY_P95_MS), ".2f"),
    ("Speed-up", lambda r: r.speedup, ".2f"),
    ("Throughput (img/s)", lambda r: r.metric(Metric.THROUGHPUT_IPS), ".1f"),
)
RATIO_COLUMNS = {"Compression", "Speed-up"}  # printed with an x suffix, as in "3.85x"


def _cell(value: float, spec: str, ratio: bool) -> str:
    text = fmt(value, spec)
    return text + "x" if ratio and not math.isnan(value) else text


def comparison_lines(table: Table) -> list[str]:
    lines = [
        "| Model | " + " | ".join(head for head, _, _ in TABLE_COLUMNS) + " |",
        "|" + "---|" * (len(TABLE_COLUMNS) + 1),
    ]
    for r in table.rows:
        cells = [_cell(get(r), spec, head in RATIO_COLUMNS) for head, get, spec in TABLE_COLUMNS]
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    return lines


def distribution_lines(table: Table) -> list[str]:
    metrics = (Metric.GENUINE_MEAN, Metric.GENUINE_STD, Metric.IMPOSTOR_MEAN, Metric.IMPOSTOR_STD, Metric.THRESHOLD)
    lines = ["| Model | Genuine mean | Genuine std | Impostor mean | Impostor std | Threshold |", "|" + "---|" * 6]
    for r in table.rows:
        lines.append(f"| {r.label} | " + " | ".join(fmt(r.metric(m), ".4f") for m in metrics) + " |")
    return lines


def recommendation_lines(table: Table, rule: Rule) -> list[str]:
    """The rule, the recommended variant with its measured ratios, and why each other variant is not it."""
    lines = [f"Rule: recommend {rule.text()}.", ""]
    base = table.baseline
    if base is None:
        return lines + [
            "No recommendation: this selection has no FP32 run, so no drop can be measured. "
            "Run `quant=fp32` in the same sweep."
        ]
    best = rule.choose(table)
    if best is None:
        lines.append(f"**Keep FP32** ({base.label}): no quantized variant meets the rule.")
    else:
        lines.append(
            f"**Recommended: {best.label}**: accuracy {best.metric(Metric.ACCURACY):.4f} (drop "
            f"{100 * best.accuracy_drop:.2f} pt), TAR@FAR=1e-3 drop {100 * best.tar_drop:.2f} pt; "
            f"{size_phrase(best.compression)} than FP32 ({fmt(base.metric(Metric.SIZE_MIB), '.2f')} -> "
            f"{fmt(best.metric(Metric.SIZE_MIB), '.2f')} MiB); {speed_phrase(best.speedup)} at batch 1 "
            f"({base.metric(Metric.LATENCY_P50_MS):.2f} -> {best.metric(Metric.LATENCY_P50_MS):.2f} ms p50)."
        )
        if best.speedup < 1:
            lines.append("It is slower than FP32 on this machine: keep FP32 if latency matters more than size.")
    lines.append("")
    for r in table.quantized:
        reasons = rule.breaks(r)
        if reasons:
            lines.append(f"- {r.label}: not recommended: {'; '.join(reasons)}.")
        elif r is not best:
            lines.append(
                f"- {r.label}: within the bounds but not picked ({r.metric(Metric.LATENCY_P50_MS):.2f} ms p50, drop "
                f"{100 * r.accuracy_drop:.2f} pt); {size_phrase(r.compression)}, {speed_phrase(r.speedup)} than FP32."
            )
    return lines


def _first(rows: Sequence[Row], name: Metric) -> float:
    return next((value for r in rows if not math.isnan(value := r.metric(name))), math.nan)


def _abbrev(value: str, length: int) -> str:
    return value if len(value) <= length else value[:length] + "..."


def quantization_detail(run: RunRecord) -> str:
    """How the variant was built, from its logged settings; only static variants log calibration."""

    def p(name: Param) -> str:
        value = run.param(name)
        return "n/a" if value is None else value

    mode = run.param(Param.QUANT_MODE)
    if mode == "dynamic":
        return (
            f"quantize_dynamic, weights {p(Param.QUANT_WEIGHT_TYPE)}, op types {p(Param.QUANT_OP_TYPES)}, "
            f"per_channel {p(Param.QUANT_PER_CHANNEL)}"
        )
    if mode == "static":
        return (
            f"quantize_static {p(Param.QUANT_FORMAT)}, {p(Param.QUANT_SCHEME)} (activations "
            f"{p(Param.QUANT_ACTIVATION_TYPE)}, weights {p(Param.QUANT_WEIGHT_TYPE)}), per_channel "
            f"{p(Param.QUANT_PER_CHANNEL)}, reduce_range {p(Param.QUANT_REDUCE_RANGE)}; calibration "
            f"{p(Param.CALIBRATION_METHOD)} on {p(Param.CALIBRATION_NUM_SAMPLES)} faces (seed "
            f"{p(Param.CALIBRATION_SEED)}, {p(Param.CALIBRATION_NUM_BINS)} bins) drawn from the LFW images no "
            "evaluation pair uses"
        )
    return f"FP32 ONNX export (opset {p(Param.ONNX_OPSET)})"


def technical_lines(runs: Sequence[RunRecord], table: Table) -> list[str]:
    """Model, preprocessing, how each variant was built, data, benchmark and software, as the runs logged them."""
    return [
        f"- Architecture: {params(runs, Param.MODEL_ARCHITECTURE)} ({params(runs, Param.MODEL_EMBEDDING_SIZE)}-d "
        f"embedding); input: {params(runs, Param.MODEL_INPUT)}; weights: {params(runs, Param.MODEL_SOURCE)} "
        f"(sha256 {_abbrev(params(runs, Param.MODEL_WEIGHTS_SHA256), 16)}).",
        f"- Input preprocessing: `{params(runs, Param.MODEL_PREPROCESS)}` (fixed = (x-127.5)/128; per_image = "
        "per-image mean/std, std floored at 1/sqrt(n)); alignment: MTCNN, margin "
        f"{params(runs, Param.ALIGN_MARGIN)}, selection `{params(runs, Param.ALIGN_SELECTION)}`.",
        "- Quantization (ONNX Runtime, after `quant_pre_process`):",
        *(f"  - {r.label}: {quantization_detail(r.run)}." for r in table.rows),
        f"- Dataset: LFW, fingerprint {tags(runs, Tag.DATASET_FINGERPRINT)}, "
        f"{fmt(_first(table.rows, Metric.N_PAIRS), '.0f')} pairs from {params(runs, Param.DATASET_FOLDS)} fold(s) of "
        "pairs.txt; accuracy is 10-fold (threshold chosen on the other folds).",
        f"- FAR resolution: {fmt(_first(table.rows, Metric.FAR_RESOLUTION), '.1e')} (1 / impostor pairs): "
        "TAR@FAR=1e-4 is read at zero false accepts, and TAR@FAR=1e-3 allows floor(1e-3 x impostors) of them.",
        f"- Latency: ONNX Runtime CPU EP, {params(runs, Param.GRAPH_OPTIMIZATION)}, "
        f"{params(runs, Param.BENCHMARK_THREADS)} intra-op thread(s), batch "
        f"{params(runs, Param.BENCHMARK_LATENCY_BATCH)}, {params(runs, Param.BENCHMARK_WARMUP)} warm-up + "
        f"{params(runs, Param.BENCHMARK_ITERATIONS)} timed runs; throughput at batch "
        f"{params(runs, Param.BENCHMARK_THROUGHPUT_BATCH)}.",
        f"- Software: onnxruntime {params(runs, Param.VERSION_ONNXRUNTIME)}, "
        f"torch {params(runs, Param.VERSION_TORCH)}, onnx {params(runs, Param.VERSION_ONNX)}, "
        f"mlflow {params(runs, Param.VERSION_MLFLOW)}.",
    ]
