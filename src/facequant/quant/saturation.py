"""Where AVX2's U8S8 kernels saturate: per quantized Conv/MatMul/Gemm, the share of outputs whose int16 pair sums
clipped, on real faces; the avx2 preset keeps half-range weights in the nodes above the target's bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facequant.machine import job_cpus
from facequant.onnxmodel import InputSpec
from facequant.runtime.sessions import preprocess
from facequant.schema import SATURATION_COLUMNS
from facequant.target.emulate import TargetEmulator
from facequant.target.pairs import SaturationStats

BATCH = 16


def saturation(model: Path, faces: np.ndarray, spec: InputSpec) -> pd.DataFrame:
    """One row per emulated node of a static QDQ model (node, op_type, outputs_fraction, pair_sums_fraction), the
    most saturated first, measured with AVX2's pair sums on these faces."""
    emulator = TargetEmulator(model, "avx2", job_cpus())
    totals: dict[str, SaturationStats] = {}
    for start in range(0, len(faces), BATCH):
        for node, stats in emulator.run(preprocess(faces[start : start + BATCH], spec)).stats.items():
            totals[node] = totals[node] + stats if node in totals else stats
    rows = [(n, s.op_type, s.outputs_fraction, s.pair_sums_fraction) for n, s in totals.items()]
    table = pd.DataFrame(rows, columns=list(SATURATION_COLUMNS))
    return table.sort_values(["outputs_fraction", "node"], ascending=[False, True], ignore_index=True)


def saturating_nodes(table: pd.DataFrame, bound: float) -> list[str]:
    """The nodes whose share of saturated outputs exceeds the bound."""
    return table.node[table.outputs_fraction > bound].tolist()
