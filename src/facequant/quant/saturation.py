"""Where AVX2's U8S8 kernels saturate: per quantized Conv/MatMul/Gemm, the share of outputs whose int16 pair sums
clipped, on real faces; the avx2 preset keeps half-range weights in the nodes above the target's bound."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Saturation:
    """Per-node saturation and the faces' embeddings from the same emulation pass, so the kernel check under the
    avx2 target need not emulate the faces again."""

    table: pd.DataFrame  # one row per emulated node, the most saturated first (SATURATION_COLUMNS)
    embeddings: np.ndarray  # (faces, dim): the embedding output under AVX2's arithmetic


def saturation(model: Path, faces: np.ndarray, spec: InputSpec) -> Saturation:
    """Each emulated node of a static QDQ model (node, op_type, outputs_fraction, pair_sums_fraction), measured
    with AVX2's pair sums on these faces."""
    emulator = TargetEmulator(model, "avx2", job_cpus())
    index = emulator.outputs.index(spec.output or emulator.outputs[0])
    totals: dict[str, SaturationStats] = {}
    embeddings = []
    for start in range(0, len(faces), BATCH):
        result = emulator.run(preprocess(faces[start : start + BATCH], spec))
        embeddings.append(result.outputs[index])
        for node, stats in result.stats.items():
            totals[node] = totals[node] + stats if node in totals else stats
    rows = [(n, s.op_type, s.outputs_fraction, s.pair_sums_fraction) for n, s in totals.items()]
    table = pd.DataFrame(rows, columns=list(SATURATION_COLUMNS))
    table = table.sort_values(["outputs_fraction", "node"], ascending=[False, True], ignore_index=True)
    return Saturation(table, np.concatenate(embeddings))


def saturating_nodes(table: pd.DataFrame, bound: float) -> list[str]:
    """The nodes whose share of saturated outputs exceeds the bound."""
    return table.node[table.outputs_fraction > bound].tolist()
