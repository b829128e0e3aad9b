"""protocol=all as stages: a model's all-pairs evaluation, its paired comparison with FP32, and its artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from facequant.config.sections import RuntimeConfig
from facequant.evaluation.allpairs import BINS, Scan, bootstrap_tar_drops, scan
from facequant.evaluation.paired import embedding_drift, flip_metrics
from facequant.job.stages import EvalData, Paired, embed_faces
from facequant.onnxmodel import InputSpec
from facequant.plots import plot_all_histogram, plot_roc_points
from facequant.schema import (
    ALL_TAR_AT_FAR,
    FLIPS_AT_FAR,
    GENUINE_CSV,
    HISTOGRAM_PNG,
    IMPOSTOR_HISTOGRAM_CSV,
    ROC_CSV,
    ROC_PNG,
    TAR_DROP_AT_FAR,
    Metric,
)

RESAMPLES = 1000  # identity bootstrap resamples of the TAR drops
FAR_NOTE = (
    "protocol=all: every evaluated image against every other. TAR@FAR is exact: the share of genuine scores above "
    "the (k+1)-th highest impostor score, k = floor(FAR x impostors). A FAR below 1/impostors is not logged."
)


@dataclass(frozen=True)
class AllEvaluation:
    """One model on every pair of the evaluated images."""

    scan: Scan
    embeddings: np.ndarray
    size_mib: float
    fallbacks: int
    cached: bool

    @cached_property
    def _auc_eer(self) -> tuple[float, float]:
        return self.scan.auc_and_eer()

    def metrics(self) -> dict[Metric, float]:
        s = self.scan
        impostor_mean = s.impostor_sum / s.n_impostor
        auc, eer = self._auc_eer
        return {name: s.tar(far) for far, name in ALL_TAR_AT_FAR.items() if s.resolvable(far)} | {
            Metric.ROC_AUC: auc,
            Metric.EER: eer,
            Metric.N_GENUINE_PAIRS: len(s.genuine),
            Metric.N_IMPOSTOR_PAIRS: s.n_impostor,
            Metric.FAR_RESOLUTION: 1.0 / s.n_impostor,
            Metric.GENUINE_MEAN: float(s.genuine.mean()),
            Metric.GENUINE_STD: float(s.genuine.std()),
            Metric.IMPOSTOR_MEAN: impostor_mean,
            Metric.IMPOSTOR_STD: float(np.sqrt(max(0.0, s.impostor_sumsq / s.n_impostor - impostor_mean**2))),
            Metric.SIZE_MIB: self.size_mib,
            Metric.ALIGN_FALLBACKS: self.fallbacks,
            Metric.EVAL_CACHED: float(self.cached),
        }

    def drops_from(self, fp32: AllEvaluation) -> dict[Metric, float]:
        """TAR drops at the FARs both resolve (there is no 10-fold accuracy under protocol=all)."""
        drops = {
            TAR_DROP_AT_FAR[far][0]: fp32.scan.tar(far) - self.scan.tar(far)
            for far in TAR_DROP_AT_FAR
            if fp32.scan.resolvable(far)
        }
        return drops | {Metric.COMPRESSION_RATIO: fp32.size_mib / self.size_mib}


def evaluate_all(
    data: EvalData, model: Path, spec: InputSpec, engine: RuntimeConfig, reference: AllEvaluation | None = None
) -> AllEvaluation:
    """Score every pair from the model's (cached) embeddings; with FP32's evaluation as reference, also count the
    decisions that flip at FP32's FAR thresholds in the same pass."""
    emb, fallbacks, cached = embed_faces(data, model, spec, engine)
    thresholds = {}
    if reference is not None:
        thresholds = {f: reference.scan.threshold(f) for f in FLIPS_AT_FAR if reference.scan.resolvable(f)}
    result = scan(emb, data.identity, None if reference is None else reference.embeddings, thresholds)
    return AllEvaluation(result, emb, model.stat().st_size / 2**20, fallbacks, cached)


def compare_all(data: EvalData, variant: AllEvaluation, fp32: AllEvaluation, worst: int = 16) -> Paired:
    """Flips with McNemar at FP32's FAR thresholds, identity-bootstrap intervals of the TAR drops, and drift."""
    metrics: dict[Metric, float] = {}
    for far, flips in variant.scan.flips.items():
        metrics |= flip_metrics(flips, FLIPS_AT_FAR[far])
    fars = tuple(far for far in TAR_DROP_AT_FAR if fp32.scan.resolvable(far))
    sizes = np.bincount(data.identity)
    for far, interval in bootstrap_tar_drops(fp32.scan, variant.scan, sizes, fars, RESAMPLES).items():
        _, low, high = TAR_DROP_AT_FAR[far]
        metrics[low], metrics[high] = interval.low, interval.high
    drift = embedding_drift(fp32.embeddings, variant.embeddings, worst)
    return Paired(metrics | drift.metrics(), drift.cosines, drift.worst)


def all_artifacts(out: Path, data: EvalData, evaluation: AllEvaluation, name: str) -> list[Path]:
    """Genuine scores, the impostor histogram and the ROC points as CSVs (81M impostor scores are not an
    artifact), with the log-FAR ROC and the score histograms."""
    s = evaluation.scan
    left, right = s.genuine_pairs[:, 0], s.genuine_pairs[:, 1]
    names = np.array(data.names)
    genuine = out / GENUINE_CSV
    pd.DataFrame({"left": names[left], "right": names[right], "score": s.genuine}).to_csv(
        genuine, index=False, float_format="%.8f"
    )
    edges = np.linspace(-1, 1, BINS + 1)
    histogram = out / IMPOSTOR_HISTOGRAM_CSV
    pd.DataFrame({"low": edges[:-1], "high": edges[1:], "count": s.histogram}).to_csv(
        histogram, index=False, float_format="%.4f"
    )
    far, tar, threshold = s.roc()
    roc = out / ROC_CSV
    pd.DataFrame({"threshold": threshold, "far": far, "tar": tar}).to_csv(roc, index=False, float_format="%.9g")
    thresholds = {f: s.threshold(f) for f in ALL_TAR_AT_FAR if s.resolvable(f)}
    return [
        genuine,
        histogram,
        roc,
        plot_roc_points({name: (far, tar)}, 1.0 / s.n_impostor, f"ROC - {name}", out / ROC_PNG),
        plot_all_histogram(s.genuine, s.histogram, thresholds, f"Cosine similarity - {name}", out / HISTOGRAM_PNG),
    ]
