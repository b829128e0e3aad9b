"""LFW verification metrics of pair scores: 10-fold accuracy, pooled ROC, TAR@FAR, EER."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import PredefinedSplit, StratifiedKFold

from facequant.schema import FALSE_ACCEPTS_AT_FAR, TAR_AT_FAR, Metric

FARS = tuple(TAR_AT_FAR)


DEPLOY_FARS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)  # the operating points a registered version records thresholds for


def far_threshold(scores: np.ndarray, labels: np.ndarray, far: float) -> float | None:
    """The lowest score threshold (accept if score >= t) whose false accept rate on these pairs is <= far, or None
    when the impostor pairs are too few to resolve it (far < 1/impostors)."""
    impostor = np.sort(scores[labels == 0])[::-1]
    if len(impostor) == 0 or far * len(impostor) < 1:
        return None
    allowed = int(np.floor(far * len(impostor)))  # false accepts at most; accept above the next impostor score
    return float(np.nextafter(impostor[allowed], np.inf)) if allowed < len(impostor) else float(impostor[-1])


def curve_threshold(curve_far: np.ndarray, curve_threshold: np.ndarray, far: float, resolution: float) -> float | None:
    """The same from a logged ROC (protocol=all's roc.csv): the threshold of the largest FAR <= far."""
    if far < resolution:
        return None
    within = curve_far <= far
    return float(curve_threshold[within].min()) if within.any() else None


def cosine_scores(emb: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine similarity of the L2-normalised embeddings of each pair."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", unit[left], unit[right])


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The score threshold (accept if score >= t) that maximises accuracy, and that accuracy."""
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    pos = labels.sum()
    acc = (tpr * pos + (1 - fpr) * (len(labels) - pos)) / len(labels)
    i = int(np.argmax(acc))
    return float(thresholds[i]), float(acc[i])


def fold_accuracies(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Accuracy on each held-out fold with the threshold chosen on the others (Sandberg's validate_on_lfw).

    With two or more LFW folds the official folds are the splits; a single fold is split 10 ways, stratified.
    """
    if len(np.unique(folds)) > 1:
        splits = PredefinedSplit(folds).split()
    else:
        splits = StratifiedKFold(n_splits=10).split(scores, labels)
    accs = []
    for train, test in splits:
        thr, _ = best_threshold(scores[train], labels[train])
        accs.append(np.mean((scores[test] >= thr) == labels[test].astype(bool)))
    return np.array(accs)


@dataclass(frozen=True)
class Verification:
    """Metrics of one variant on the evaluated pairs; keys of as_metrics() are the documented names."""

    accuracy: float
    accuracy_std: float
    threshold: float
    threshold_accuracy: float
    tar_far: dict[float, float]
    false_accepts_allowed: dict[float, int]
    roc_auc: float
    eer: float
    genuine_mean: float
    genuine_std: float
    impostor_mean: float
    impostor_std: float
    n_genuine: int
    n_impostor: int
    fold_accuracy: list[float] = field(default_factory=list)

    @property
    def far_resolution(self) -> float:
        """The smallest non-zero FAR the impostor pairs can resolve."""
        return 1.0 / self.n_impostor

    def as_metrics(self) -> dict[Metric, float]:
        metrics = {
            Metric.ACCURACY: self.accuracy,
            Metric.ACCURACY_STD: self.accuracy_std,
            Metric.THRESHOLD: self.threshold,
            Metric.THRESHOLD_ACCURACY: self.threshold_accuracy,
            Metric.ROC_AUC: self.roc_auc,
            Metric.EER: self.eer,
            Metric.GENUINE_MEAN: self.genuine_mean,
            Metric.GENUINE_STD: self.genuine_std,
            Metric.IMPOSTOR_MEAN: self.impostor_mean,
            Metric.IMPOSTOR_STD: self.impostor_std,
            Metric.FAR_RESOLUTION: self.far_resolution,
        }
        for far in FARS:
            metrics[TAR_AT_FAR[far]] = self.tar_far[far]
            metrics[FALSE_ACCEPTS_AT_FAR[far]] = self.false_accepts_allowed[far]
        return metrics


def verification_metrics(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> Verification:
    """All verification metrics of pair scores (higher = more alike) with labels 1 genuine, 0 impostor."""
    labels = labels.astype(int)
    if labels.min() == labels.max():
        raise ValueError("verification metrics need both genuine and impostor pairs")
    per_fold = fold_accuracies(scores, labels, folds)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    n_imp = int((labels == 0).sum())
    tar = {far: float(tpr[fpr <= far].max()) for far in FARS}
    allowed = {far: math.floor(far * n_imp + 1e-9) for far in FARS}
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    thr, thr_acc = best_threshold(scores, labels)
    gen, imp = scores[labels == 1], scores[labels == 0]
    return Verification(
        accuracy=float(per_fold.mean()),
        accuracy_std=float(per_fold.std()),
        threshold=thr,
        threshold_accuracy=thr_acc,
        tar_far=tar,
        false_accepts_allowed=allowed,
        roc_auc=float(roc_auc_score(labels, scores)),
        eer=float((fpr[i] + fnr[i]) / 2),
        genuine_mean=float(gen.mean()),
        genuine_std=float(gen.std()),
        impostor_mean=float(imp.mean()),
        impostor_std=float(imp.std()),
        n_genuine=int(len(gen)),
        n_impostor=n_imp,
        fold_accuracy=[float(a) for a in per_fold],
    )
