"""protocol=all as stages: a model's all-pairs evaluation, its paired comparison with FP32, and its artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from facequant.config.running import RuntimeConfig
from facequant.config.target import Arithmetic
from facequant.evaluation.allpairs import Scan, bootstrap_tar_drops, scan
from facequant.evaluation.finite import check_finite
from facequant.evaluation.paired import embedding_drift, flip_metrics
from facequant.job.stages import EvalData, Paired, embed_faces
from facequant.onnxmodel import InputSpec
from facequant.schema import (
    ALL_TAR_AT_FAR,
    FLIPS_AT_FAR,
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
    data: EvalData,
    model: Path,
    spec: InputSpec,
    engine: RuntimeConfig,
    reference: AllEvaluation | None = None,
    arithmetic: Arithmetic = "host",
) -> AllEvaluation:
    """Score every pair from the model's (cached) embeddings, on the runtime or under a target's emulated
    arithmetic; with FP32's evaluation as reference, also count the decisions that flip at FP32's FAR thresholds
    in the same pass."""
    emb, fallbacks, cached = embed_faces(data, model, spec, engine, arithmetic)
    check_finite(emb, data.names, model)
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
