"""The accuracy side of a group's report: drops with their paired intervals and McNemar tests, the score
distributions, decision flips and embedding drift, each read from the runs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from facequant.evaluation.goal import pt
from facequant.report.rule import DROP_INTERVAL, DROP_INTERVAL_ALL
from facequant.report.table import SIGNIFICANCE, Drop, Row, Table
from facequant.schema import FLIPS_AT_FAR, Metric, far_text

DROP_NOTE = (
    f"Drops: FP32 minus the variant (positive = worse), with the {DROP_INTERVAL} in brackets, the same pairs "
    f"drawn for both models. `*`: the drop's decision flips are significant, McNemar's exact test of fixed against "
    f"broken pairs at p < {SIGNIFICANCE:g}, at FP32's accuracy threshold for the accuracy drop and at its FAR=1e-3 "
    "threshold for the TAR drop (see Decision flips). The test has both models decide at FP32's one threshold, "
    "the interval is of the drop with each model at its own thresholds, so near the edge the two can disagree."
)

DROP_NOTE_ALL = (
    f"Drops: FP32 minus the variant (positive = worse), with the {DROP_INTERVAL_ALL} in brackets, the same "
    f"identities drawn for both models. `*`: McNemar's exact test of fixed against broken pairs at FP32's threshold "
    f"of that FAR gives p < {SIGNIFICANCE:g}; pairs share images here, so that p-value is optimistic and the "
    "interval is the measure to trust."
)

# Decision flips at each FP32 threshold: (flips, fixed, broken, McNemar p), as facequant.paired logs them.
FLIPS = {
    "acc.": (Metric.FLIPS_ACC, Metric.FLIPS_ACC_FIXED, Metric.FLIPS_ACC_BROKEN, Metric.MCNEMAR_P_ACC),
    "FAR=1e-3": FLIPS_AT_FAR[1e-3],
}
FLIPS_ALL = {
    f"FAR={far_text(far)}": names for far, names in FLIPS_AT_FAR.items()
}  # protocol=all has no accuracy threshold
DRIFT = (Metric.EMBEDDING_COSINE_MEAN, Metric.EMBEDDING_COSINE_P01, Metric.EMBEDDING_COSINE_MIN)


def fmt(value: float, spec: str) -> str:
    """A number in the table's format, or n/a when the run did not log it (or there is no baseline)."""
    return "n/a" if math.isnan(value) else format(value, spec)


def p_text(p_value: float) -> str:
    """A p-value to two significant digits: 0.61, 0.003, 1."""
    return fmt(p_value, ".2g")


def interval_text(drop: Drop) -> str:
    """'0.07 pt [-0.10, 0.23]': the drop in points with its interval; '(no interval)' for older runs."""
    bracket = f"[{100 * drop.low:.2f}, {100 * drop.high:.2f}]" if drop.has_interval else "(no interval)"
    return f"{pt(drop.point)} {bracket}"


def drop_cell(drop: Drop, reference: bool) -> str:
    """A detailed-table cell: the drop with its interval, and * when McNemar finds its flips significant."""
    if reference:
        return "reference"
    return "n/a" if math.isnan(drop.point) else interval_text(drop) + ("*" if drop.significant else "")


def drop_phrase(drop: Drop) -> str:
    """The drop in words; one whose McNemar test is not significant is called noise, not a change."""
    if math.isnan(drop.point):
        return "n/a"
    if math.isnan(drop.p_value) and not drop.has_interval:
        return f"{pt(drop.point)} (no interval or McNemar test logged)"
    if math.isnan(drop.p_value):
        return f"{interval_text(drop)}, no McNemar test logged"
    if drop.significant:
        return f"{interval_text(drop)}, significant (McNemar p={p_text(drop.p_value)})"
    return f"{interval_text(drop)}, not significant (McNemar p={p_text(drop.p_value)}): inside the noise"


def _metric(name: Metric, spec: str) -> Callable[[Row], str]:
    return lambda row: fmt(row.metric(name), spec)


# The detailed table's accuracy and size columns: header, then each cell's text.
COLUMNS: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("Accuracy", _metric(Metric.ACCURACY, ".4f")),
    ("Acc. std", _metric(Metric.ACCURACY_STD, ".4f")),
    ("Acc. drop (pt)", lambda r: drop_cell(r.drop_accuracy, r.is_baseline)),
    ("TAR@FAR=1e-3", _metric(Metric.TAR_FAR_1E3, ".4f")),
    ("TAR@1e-3 drop (pt)", lambda r: drop_cell(r.drop_tar, r.is_baseline)),
    ("TAR@FAR=1e-4", _metric(Metric.TAR_FAR_1E4, ".4f")),
    ("ROC AUC", _metric(Metric.ROC_AUC, ".4f")),
    ("EER", _metric(Metric.EER, ".4f")),
    ("Size (MiB)", _metric(Metric.SIZE_MIB, ".2f")),
    ("Compression", lambda r: "n/a" if math.isnan(r.compression) else f"{r.compression:.2f}x"),
)
# Under protocol=all: TAR down to FAR=1e-6, with the drops and intervals at 1e-3, 1e-5 and 1e-6.
COLUMNS_ALL: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("TAR@FAR=1e-3", _metric(Metric.TAR_FAR_1E3, ".4f")),
    ("TAR@1e-3 drop (pt)", lambda r: drop_cell(r.tar_drops[1e-3], r.is_baseline)),
    ("TAR@FAR=1e-4", _metric(Metric.TAR_FAR_1E4, ".4f")),
    ("TAR@FAR=1e-5", _metric(Metric.TAR_FAR_1E5, ".4f")),
    ("TAR@1e-5 drop (pt)", lambda r: drop_cell(r.tar_drops[1e-5], r.is_baseline)),
    ("TAR@FAR=1e-6", _metric(Metric.TAR_FAR_1E6, ".4f")),
    ("TAR@1e-6 drop (pt)", lambda r: drop_cell(r.tar_drops[1e-6], r.is_baseline)),
    ("ROC AUC", _metric(Metric.ROC_AUC, ".4f")),
    ("EER", _metric(Metric.EER, ".4f")),
    ("Size (MiB)", _metric(Metric.SIZE_MIB, ".2f")),
    ("Compression", lambda r: "n/a" if math.isnan(r.compression) else f"{r.compression:.2f}x"),
)


def markdown_table(heads: Sequence[str], rows: Sequence[Row], cells: Callable[[Row], list[str]]) -> list[str]:
    """A Markdown table with one line per row, labelled in the first column."""
    lines = ["| Model | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 1)]
    return lines + [f"| {r.label} | " + " | ".join(cells(r)) + " |" for r in rows]


def distribution_lines(table: Table) -> list[str]:
    metrics = (Metric.GENUINE_MEAN, Metric.GENUINE_STD, Metric.IMPOSTOR_MEAN, Metric.IMPOSTOR_STD, Metric.THRESHOLD)
    heads = ["Genuine mean", "Genuine std", "Impostor mean", "Impostor std", "Threshold"]
    return markdown_table(heads, table.rows, lambda r: [fmt(r.metric(m), ".4f") for m in metrics])


def _why_empty(table: Table) -> str:
    """Why a paired section has no rows: no FP32 run backs its numbers, or nothing was quantized."""
    if table.baseline is None:
        return "No FP32 run in this selection: n/a, as the drops (no baseline to compare against)."
    return "No quantized variant in this selection."


def _flip_cells(row: Row, names: tuple[Metric, Metric, Metric, Metric]) -> list[str]:
    *counts, p_value = names
    return [*(fmt(row.metric(m), ".0f") for m in counts), p_text(row.metric(p_value))]


def flips_lines(table: Table) -> list[str]:
    """Per variant and FP32 threshold: the pairs whose decision changed, fixed and broken, and McNemar's p."""
    base = table.baseline
    if base is None or not table.quantized:
        return [_why_empty(table)]
    all_pairs = base.all_pairs
    flips = FLIPS_ALL if all_pairs else FLIPS
    heads = [f"{head} ({at})" for at in flips for head in ("Flips", "Fixed", "Broken", "McNemar p")]
    where = (
        "its thresholds at FAR=1e-3, 1e-5 and 1e-6 (every pair of the evaluated images; pairs share images, so "
        "McNemar's p is optimistic)"
        if all_pairs
        else f"its accuracy threshold (acc., {fmt(base.metric(Metric.THRESHOLD), '.4f')}) and its FAR=1e-3 threshold"
    )
    return [
        f"Both models decide every pair at FP32's threshold: {where}. Flips: pairs whose decision "
        "changed; fixed: wrong under FP32 and right under the variant; broken: the reverse. McNemar's exact test asks "
        f"whether fixed and broken differ beyond chance (p < {SIGNIFICANCE:g}: significant); n/a: the run predates "
        "these statistics.",
        "",
        *markdown_table(
            heads, table.quantized, lambda r: [c for names in flips.values() for c in _flip_cells(r, names)]
        ),
    ]


def drift_lines(table: Table) -> list[str]:
    """Per variant: how far quantization turned the embeddings, as cosines to FP32's over the evaluated images."""
    if table.baseline is None or not table.quantized:
        return [_why_empty(table)]
    return [
        "Cosine between each evaluated image's FP32 embedding and the variant's (1: same direction, which is all a "
        "pair score sees); each run holds every image's cosine in `embedding_cosine.csv` and its most-drifted faces "
        "in `drift_faces.png`; n/a: the run predates these statistics.",
        "",
        *markdown_table(
            ["Mean cosine", "p01 cosine", "Min cosine"],
            table.quantized,
            lambda r: [fmt(r.metric(m), ".4f") for m in DRIFT],
        ),
    ]
