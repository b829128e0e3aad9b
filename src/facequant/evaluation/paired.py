"""Paired comparison of a quantized variant with FP32 on the same pairs: decision flips, drop intervals, drift.

Both models score the same pairs, so their errors are correlated; statistics on the pair-by-pair differences
resolve drops far smaller than comparing two independently estimated accuracies could.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import roc_curve
from sklearn.model_selection import PredefinedSplit, StratifiedKFold

from facequant.evaluation.stats import Interval
from facequant.evaluation.verification import best_threshold
from facequant.schema import FLIPS_AT_FAR, TAR_DROP_AT_FAR, Metric

# Metric names at FP32's accuracy threshold: (flips, fixed, broken, McNemar p); FLIPS_AT_FAR has the FAR ones.
FLIPS_AT_ACCURACY = (Metric.FLIPS_ACC, Metric.FLIPS_ACC_FIXED, Metric.FLIPS_ACC_BROKEN, Metric.MCNEMAR_P_ACC)

_CHUNK = 4_000_000  # resample x pair cells held at once, so memory stays bounded however many pairs there are


@dataclass(frozen=True)
class Flips:
    """Decisions that changed at one threshold; McNemar's test asks whether fixed and broken differ beyond chance."""

    threshold: float
    flips: int
    fixed: int  # wrong under FP32, right under the variant
    broken: int  # right under FP32, wrong under the variant
    p_value: float


def decision_flips(fp32: np.ndarray, variant: np.ndarray, labels: np.ndarray, threshold: float) -> Flips:
    """Both models decide at the same (FP32's) threshold, accepting if score >= threshold; McNemar's exact
    two-sided test is the binomial test of fixed among the discordant pairs."""
    truth = labels.astype(bool)
    accept_fp32, accept_variant = fp32 >= threshold, variant >= threshold
    right_fp32, right_variant = accept_fp32 == truth, accept_variant == truth
    fixed = int(np.sum(~right_fp32 & right_variant))
    broken = int(np.sum(right_fp32 & ~right_variant))
    return Flips(threshold, int(np.sum(accept_fp32 != accept_variant)), fixed, broken, mcnemar_p(fixed, broken))


def mcnemar_p(fixed: int, broken: int) -> float:
    """McNemar's exact two-sided test: the binomial test of fixed among the discordant pairs; 1 with none."""
    return float(stats.binomtest(fixed, fixed + broken, 0.5).pvalue) if fixed + broken else 1.0


def far_threshold(scores: np.ndarray, labels: np.ndarray, far: float) -> float:
    """The lowest threshold whose false-accept rate on these impostors is <= far: where evaluate reads TAR@FAR
    off roc_curve. It is inf when even the top score accepts too many impostors."""
    fpr, _, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    return float(thresholds[np.flatnonzero(fpr <= far)[-1]])


@dataclass(frozen=True)
class Drops:
    """FP32 minus variant, with paired bootstrap intervals: accuracy and TAR at each FAR."""

    accuracy: Interval
    tar_far: dict[float, Interval]


def held_out_correct(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Whether each pair is decided right at the threshold chosen on the other folds, with evaluate's splits:
    the mean is evaluate's 10-fold accuracy, weighted by pair rather than by fold (equal for equal folds)."""
    if len(np.unique(folds)) > 1:
        splits = PredefinedSplit(folds).split()
    else:
        splits = StratifiedKFold(n_splits=10).split(scores, labels)
    thresholds = np.empty(len(scores))
    for train, test in splits:
        thresholds[test] = best_threshold(scores[train], labels[train])[0]
    return (scores >= thresholds) == labels.astype(bool)


def _tar_at_far(scores: np.ndarray, genuine: np.ndarray, weights: np.ndarray, fars: Sequence[float]) -> np.ndarray:
    """TAR@FAR (fars x resamples) with pair i counted weights[r, i] times in resample r, read as evaluate reads
    roc_curve: the highest TPR among the thresholds (distinct scores) with FPR <= far."""
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # last of each run of tied scores
    w, g = weights[:, order], genuine[order]
    accepted_genuine = np.cumsum(w * g, axis=1)[:, ends]
    accepted_impostor = np.cumsum(w * ~g, axis=1)[:, ends]
    tpr = accepted_genuine / accepted_genuine[:, -1:]
    fpr = accepted_impostor / accepted_impostor[:, -1:]
    return np.array([np.where(fpr <= far, tpr, 0.0).max(axis=1) for far in fars]).reshape(len(fars), len(w))


def _drops(
    lost: np.ndarray,
    fp32: np.ndarray,
    variant: np.ndarray,
    genuine: np.ndarray,
    weights: np.ndarray,
    fars: Sequence[float],
) -> np.ndarray:
    """Accuracy drop and TAR@FAR drops (1 + fars x resamples) of weighted resamples; lost is FP32's held-out
    correctness minus the variant's, per pair."""
    accuracy = weights @ lost / weights.sum(axis=1)
    tar = _tar_at_far(fp32, genuine, weights, fars) - _tar_at_far(variant, genuine, weights, fars)
    return np.vstack([accuracy, tar])


def _resample_counts(rng: np.random.Generator, strata: list[np.ndarray], size: int) -> np.ndarray:
    """How often each unit (pair or cluster) is drawn in each of `size` resamples; each stratum keeps its size."""
    n_units = sum(len(members) for members in strata)
    draws = np.hstack([members[rng.integers(0, len(members), (size, len(members)))] for members in strata])
    draws += n_units * np.arange(size)[:, None]
    return np.bincount(draws.ravel(), minlength=size * n_units).reshape(size, n_units)


def bootstrap_drops(
    fp32: np.ndarray,
    variant: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    fars: Sequence[float] = (1e-3,),
    clusters: np.ndarray | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Drops:
    """Percentile intervals of the drops, drawing the same pairs for both models; the estimates are on all pairs.

    Pairs are drawn within genuine and within impostor pairs, so every resample allows as many false accepts as
    the data do. With clusters (an id per pair, e.g. identity, when pairs share images) whole clusters are drawn.

    Accuracy drop: the difference of held-out correctness rates, each model deciding each pair at its own
    threshold chosen on the other folds, so the estimate is the logged accuracy_drop (for equal folds). The
    thresholds stay fixed across resamples, so the interval omits threshold-selection noise; it is the pairs'
    sampling noise. TAR@FAR drop: both TARs recomputed on each resample, their own thresholds included.
    """
    genuine = labels.astype(bool)
    lost = held_out_correct(fp32, labels, folds).astype(int) - held_out_correct(variant, labels, folds)
    if clusters is None:
        units, strata = np.arange(len(labels)), [np.flatnonzero(genuine), np.flatnonzero(~genuine)]
    else:
        units = np.unique(clusters, return_inverse=True)[1]
        strata = [np.arange(units.max() + 1)]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK // len(labels))
    samples = []
    for start in range(0, resamples, chunk):
        counts = _resample_counts(rng, strata, min(chunk, resamples - start))
        samples.append(_drops(lost, fp32, variant, genuine, counts[:, units], fars))
    low, high = np.quantile(np.hstack(samples), [(1 - confidence) / 2, (1 + confidence) / 2], axis=1)
    estimate = _drops(lost, fp32, variant, genuine, np.ones((1, len(labels)), dtype=int), fars)[:, 0]
    intervals = [Interval(float(e), float(lo), float(hi)) for e, lo, hi in zip(estimate, low, high, strict=True)]
    return Drops(intervals[0], dict(zip(fars, intervals[1:], strict=True)))


def embedding_cosines(fp32: np.ndarray, variant: np.ndarray) -> np.ndarray:
    """Cosine between each image's FP32 and variant embeddings (rows aligned): 1 is no change in direction,
    which is all that cosine pair scores see."""
    unit_fp32 = fp32 / np.linalg.norm(fp32, axis=1, keepdims=True)
    unit_variant = variant / np.linalg.norm(variant, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", unit_fp32, unit_variant)


@dataclass(frozen=True)
class Drift:
    """How far quantization turned the embeddings; the worst images are the ones to look at first."""

    cosines: np.ndarray  # per image, rows aligned
    mean: float
    p01: float
    minimum: float
    worst: tuple[int, ...]  # image indices, lowest cosine first

    def metrics(self) -> dict[Metric, float]:
        return {
            Metric.EMBEDDING_COSINE_MEAN: self.mean,
            Metric.EMBEDDING_COSINE_P01: self.p01,
            Metric.EMBEDDING_COSINE_MIN: self.minimum,
        }


def embedding_drift(fp32: np.ndarray, variant: np.ndarray, k: int = 10) -> Drift:
    """Summary of embedding_cosines, with the indices of the k most-drifted images."""
    cosines = embedding_cosines(fp32, variant)
    worst = np.argsort(cosines, kind="stable")[:k]
    return Drift(
        cosines,
        float(cosines.mean()),
        float(np.percentile(cosines, 1)),
        float(cosines.min()),
        tuple(int(i) for i in worst),
    )


def flip_metrics(flips: Flips, names: tuple[Metric, Metric, Metric, Metric]) -> dict[Metric, float]:
    return dict(zip(names, map(float, (flips.flips, flips.fixed, flips.broken, flips.p_value)), strict=True))


def paired_metrics(
    fp32: np.ndarray,
    variant: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    drift: Drift | None = None,
    fars: Sequence[float] = (1e-3,),
    clusters: np.ndarray | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[Metric, float]:
    """Every paired metric of one variant's pair scores against FP32's, by schema name; drift's when given."""
    metrics = flip_metrics(decision_flips(fp32, variant, labels, best_threshold(fp32, labels)[0]), FLIPS_AT_ACCURACY)
    for far in fars:
        flips = decision_flips(fp32, variant, labels, far_threshold(fp32, labels, far))
        metrics |= flip_metrics(flips, FLIPS_AT_FAR[far])
    drops = bootstrap_drops(fp32, variant, labels, folds, fars, clusters, resamples, confidence, seed)
    metrics[Metric.ACCURACY_DROP_CI_LOW] = drops.accuracy.low
    metrics[Metric.ACCURACY_DROP_CI_HIGH] = drops.accuracy.high
    for far, interval in drops.tar_far.items():
        _, low, high = TAR_DROP_AT_FAR[far]
        metrics[low], metrics[high] = interval.low, interval.high
    return metrics | (drift.metrics() if drift else {})
