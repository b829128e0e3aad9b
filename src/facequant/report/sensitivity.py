"""The per-tensor sensitivity section: which quantized tensors of each static variant lose most against FP32."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from facequant.report.accuracy import fmt, markdown_table
from facequant.report.table import Row, Table
from facequant.schema import SENSITIVITY_CSV, SENSITIVITY_PNG, Metric, Param, Tag

WORST = 5
SUMMARY = (Metric.SQNR_MIN_DB, Metric.SQNR_MEDIAN_DB, Metric.LOCAL_SQNR_MIN_DB, Metric.WEIGHT_SQNR_MIN_DB)


def _measured(table: Table) -> list[Row]:
    return [row for row in table.rows if not math.isnan(row.metric(Metric.SQNR_MIN_DB))]


def worst_lines(label: str, tensors: pd.DataFrame) -> list[str]:
    """The WORST activations of one variant by SQNR against FP32, with their own quantization's SQNR."""
    worst = tensors[tensors.kind == "activation"].nsmallest(WORST, "sqnr_db")
    lines = [f"{label}: the {len(worst)} activations with the lowest SQNR against FP32", ""]
    lines += [
        "| # | Tensor | Node (op) | Position | SQNR vs FP32 (dB) | Own QDQ SQNR (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for rank, t in enumerate(worst.itertuples(), start=1):
        node = f"`{t.node}` ({t.op_type})" if t.node else "model input"
        lines.append(f"| {rank} | `{t.tensor}` | {node} | {t.position} | {t.sqnr_db:.1f} | {t.local_sqnr_db:.1f} |")
    own = tensors[tensors.kind == "activation"].nsmallest(WORST, "local_sqnr_db")
    entered = ", ".join(f"`{t.tensor}` ({t.local_sqnr_db:.1f} dB)" for t in own.itertuples())
    return lines + ["", f"Where the error enters, the lowest SQNR of an activation's own quantization: {entered}."]


def sensitivity_lines(table: Table, tensors: Mapping[str, pd.DataFrame]) -> list[str]:
    """Per measured variant its SQNR summary, then the worst activations read from its sensitivity.csv."""
    rows = _measured(table)
    if not rows:
        return ["No variant measured its per-tensor sensitivity (static QDQ variants do, with `sensitivity=true`)."]
    lines = [
        "SQNR in dB (higher is better) of every quantized tensor of the static variants, on held-out faces that "
        "neither calibration nor evaluation uses: each activation against FP32's (the error accumulated up to it) "
        "and before against after its own QuantizeLinear/DequantizeLinear (its quantization alone), and each "
        f"dequantized weight against FP32's. Each run holds every tensor in `{SENSITIVITY_CSV}` and their profile "
        f"along the depth in `{SENSITIVITY_PNG}`. The last column checks the runtime itself: the cosine between the "
        "variant's embeddings from its integer kernels and from its QDQ graph run in float (the quantization as "
        "written), lowest over the faces.",
        "",
        *markdown_table(
            ["Faces", "Min vs FP32", "Median vs FP32", "Min own QDQ", "Min weight", "Kernels vs QDQ (min cos)"],
            rows,
            lambda r: [
                r.run.param(Param.SENSITIVITY_FACES) or "n/a",
                *(fmt(r.metric(m), ".1f") for m in SUMMARY),
                fmt(r.metric(Metric.KERNEL_COSINE_MIN), ".4f"),
            ],
        ),
    ]
    lines += [f"\n**{r.label}: {r.run.tag(Tag.KERNEL_WARNING)}.**" for r in rows if r.run.tag(Tag.KERNEL_WARNING)]
    for row in rows:
        if row.run.run_id in tensors:
            lines += ["", *worst_lines(row.label, tensors[row.run.run_id])]
    return lines
