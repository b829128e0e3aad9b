"""The accuracy-aware exclusion section: for each quant.exclude=auto variant, the search step by step on its
validation pairs, the nodes it kept in float and what the search cost."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from facequant.report.accuracy import fmt
from facequant.report.table import Row, Table
from facequant.schema import EXCLUDED_TXT, EXCLUSION_CSV, Metric, Param

SHOWN_NODES = 12  # names listed in the report; excluded_nodes.txt has them all


@dataclass(frozen=True)
class Searched:
    """A run's exclusion_steps.csv and excluded_nodes.txt."""

    steps: pd.DataFrame
    nodes: list[str]


def read_search(steps_csv: Path, nodes_txt: Path | None) -> Searched:
    text = nodes_txt.read_text() if nodes_txt else ""
    return Searched(pd.read_csv(steps_csv), [line for line in text.splitlines() if line and not line.startswith("#")])


def _interval(point: float, high: float) -> str:
    return f"{100 * point:.2f} (<= {100 * high:.2f})"


def _search_lines(row: Row, found: Searched) -> list[str]:
    run = row.run
    met = run.metric(Metric.EXCLUSION_GATE_MET) == 1
    max_drop = run.param(Param.EXCLUSION_MAX_DROP) or run.param(Param.GATE_MAX_DROP) or "nan"
    max_tar_drop = run.param(Param.EXCLUSION_MAX_TAR_DROP) or run.param(Param.GATE_MAX_TAR_DROP) or "nan"
    bounds = f"accuracy drop <= {100 * float(max_drop):.2f} pt, TAR@FAR=1e-3 drop <= {100 * float(max_tar_drop):.2f} pt"
    lines = [
        f"**{row.label}**: {fmt(run.metric(Metric.N_VALIDATION_PAIRS), '.0f')} validation pairs; goal {bounds}, "
        f"each at the upper end of its 95% paired-bootstrap interval; "
        + ("the goal holds" if met else "**the goal does not hold: the budget was spent**")
        + f" with {fmt(run.metric(Metric.N_EXCLUDED), '.0f')} node(s) in float; search "
        f"{fmt(run.metric(Metric.TIME_EXCLUDE), '.0f')} s.",
        "",
        "| Step | Nodes in float | Accuracy drop, pt (95% upper) | TAR@FAR=1e-3 drop, pt (95% upper) "
        "| p50 latency (ms) | Speed-up [95% CI] | Gate | Step time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in found.steps.itertuples():
        lines.append(
            f"| {s.step} | {s.excluded} | {_interval(s.accuracy_drop, s.accuracy_drop_high)} | "
            f"{_interval(s.tar_far_1e3_drop, s.tar_far_1e3_drop_high)} | {s.latency_p50_ms:.2f} | "
            f"{s.speedup:.2f}x [{s.speedup_low:.2f}, {s.speedup_high:.2f}] | {'holds' if s.gate_holds else 'fails'} "
            f"| {s.seconds:.0f} |"
        )
    if found.nodes:
        shown = ", ".join(f"`{name}`" for name in found.nodes[:SHOWN_NODES])
        more = f" and {len(found.nodes) - SHOWN_NODES} more" if len(found.nodes) > SHOWN_NODES else ""
        lines += ["", f"Kept in float, worst first: {shown}{more} (all in `{EXCLUDED_TXT}`)."]
    return lines


def exclusion_lines(table: Table, searches: Mapping[str, Searched]) -> list[str]:
    """One block per variant whose nodes quant.exclude=auto chose; nothing when no run searched."""
    rows = [row for row in table.rows if not math.isnan(row.metric(Metric.N_EXCLUDED))]
    if not rows:
        return []
    lines = [
        "`quant.exclude=auto` kept the nodes whose tensors quantize worst (lowest own-quantization SQNR) in float, "
        "1, 2, 4, ... at a time (then halving the gap once a step holds), re-quantized with the same calibration "
        "ranges, and measured each step against FP32 on validation pairs that no test pair, calibration face or "
        "sensitivity face shares (by image; by identity with calibration). "
        f"The test figures of the chosen variant are in the tables above; `{EXCLUSION_CSV}` has "
        "every step.",
    ]
    for row in rows:
        if row.run.run_id in searches:
            lines += ["", *_search_lines(row, searches[row.run.run_id])]
    return lines
