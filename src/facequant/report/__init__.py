"""The comparison report: every number and claim read or computed from typed run records, with one stated rule.

`table` shapes runs into one row per variant, `rule` holds the recommendation rule, `sections` renders Markdown
and `document` writes the file with its figures; `compare` selects the runs and logs the result.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd

from facequant import tracking
from facequant.config import MlflowConfig
from facequant.report.document import build_report
from facequant.report.rule import Rule
from facequant.schema import SCORES_CSV

__all__ = ["Rule", "compare"]


def compare(cfg: MlflowConfig, sweep: str | None, filter_string: str | None, out: Path | None, rule: Rule) -> Path:
    """Select the runs (a sweep's children by default), build the report from them and log it; returns report.md."""
    runs, sweep = tracking.select_runs(cfg, sweep, filter_string)
    out = out or Path("reports") / (sweep or "comparison-" + time.strftime("%Y%m%d-%H%M%S"))
    curves = {}
    with tempfile.TemporaryDirectory(prefix="facequant-scores-") as tmp:
        for run in [run for run in runs if run.finished]:
            path = tracking.download_artifact(run.run_id, SCORES_CSV, Path(tmp) / run.run_id)
            if path is not None:
                curves[run.run_id] = pd.read_csv(path)
    title = f"FaceNet INT8 quantization report: sweep {sweep}" if sweep else "FaceNet INT8 quantization report"
    files = build_report(runs, curves, rule, out, title)
    tracking.log_report(files, sweep, runs[0].experiment_id)
    return files[-1]
