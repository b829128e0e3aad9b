"""Every evaluated image against every other, scored in blocks: exact TAR@FAR down to the impostor count's
resolution, a fine impostor histogram for the ROC, and decision flips against FP32, never holding all scores.

Images are sorted by identity, so each block's genuine pairs lie in a narrow band near the diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from facequant.evaluation.paired import Flips, mcnemar_p
from facequant.evaluation.stats import Interval
from facequant.schema import ALL_TAR_AT_FAR

BINS = 20_000  # impostor histogram over cosine [-1, 1]: bins of 1e-4
TAIL_FAR = max(ALL_TAR_AT_FAR)  # the identity-keyed impostor tail reaches past the largest FAR (for the bootstrap)
BLOCK = 512  # rows per block: a block of 512 x 12.7k scores is 26 MB per model


def _unit(embeddings: np.ndarray) -> np.ndarray:
    return (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32)


def _bins(scores: np.ndarray) -> np.ndarray:
    return np.clip(((scores + 1.0) * (BINS / 2)).astype(np.int64), 0, BINS - 1)


@dataclass(frozen=True)
class Tail:
    """The highest impostor scores, descending, with the identities of each pair: enough to recompute every
    TAR@FAR threshold under resampled identity weights."""

    scores: np.ndarray
    left: np.ndarray  # identity index of each pair's two images
    right: np.ndarray


@dataclass(frozen=True)
class Scan:
    """All-pairs summary of one model: genuine scores exactly, impostors as a histogram plus their top tail."""

    genuine: np.ndarray  # every genuine pair's score, in pair order
    genuine_pairs: np.ndarray  # (n, 2) image indices of each genuine pair
    genuine_identity: np.ndarray
    histogram: np.ndarray  # impostor counts per bin of width 2 / BINS over [-1, 1]
    tail: Tail
    n_impostor: int
    impostor_sum: float
    impostor_sumsq: float
    flips: Mapping[float, Flips] = field(default_factory=dict)  # at FP32's FAR thresholds, when scanned against it

    def resolvable(self, far: float) -> bool:
        """Whether the impostor count allows at least one false accept at this FAR."""
        return math.floor(far * self.n_impostor) >= 1

    def threshold(self, far: float) -> float:
        """Accept a pair when its score is above this: the (k+1)-th highest impostor score, k = floor(far * n)."""
        return float(self.tail.scores[math.floor(far * self.n_impostor)])

    def tar(self, far: float) -> float:
        """TAR@FAR as roc_curve's highest TPR with FPR <= far: the share of genuine scores above the threshold."""
        return float(np.mean(self.genuine > self.threshold(far)))

    @cached_property
    def genuine_histogram(self) -> np.ndarray:
        """Genuine counts in the impostor histogram's bins."""
        return np.bincount(_bins(self.genuine), minlength=BINS)

    @cached_property
    def ranked_genuine(self) -> tuple[np.ndarray, np.ndarray]:
        """Genuine scores, highest first, with their identities: sorted once for every bootstrap resample."""
        order = np.argsort(-self.genuine, kind="stable")
        return self.genuine[order], self.genuine_identity[order]

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(FAR, TAR, threshold) at every histogram edge: exact counts of scores at or above each edge."""
        genuine = self.genuine_histogram
        far = np.cumsum(self.histogram[::-1])[::-1] / self.n_impostor
        tar = np.cumsum(genuine[::-1])[::-1] / len(self.genuine)
        return far, tar, np.linspace(-1, 1, BINS + 1)[:-1]

    def _binned(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels, bin scores and counts of all pairs binned: sklearn's curves with the counts as sample weights."""
        genuine = self.genuine_histogram
        centres = np.linspace(-1, 1, BINS + 1)[:-1] + 1.0 / BINS
        labels = np.repeat([1, 0], BINS)
        weights = np.concatenate([genuine, self.histogram]).astype(float)
        keep = weights > 0
        return labels[keep], np.tile(centres, 2)[keep], weights[keep]

    def auc_and_eer(self) -> tuple[float, float]:
        """ROC AUC and EER of the binned scores: pairs within one bin (1e-4) count as ties."""
        labels, scores, weights = self._binned()
        fpr, tpr, _ = roc_curve(labels, scores, sample_weight=weights, drop_intermediate=False)
        i = int(np.argmin(np.abs((1 - tpr) - fpr)))
        auc = roc_auc_score(labels, scores, sample_weight=weights)
        return float(auc), float((fpr[i] + 1 - tpr[i]) / 2)


def _genuine_band(identity: np.ndarray, stop: int) -> int:
    """The column after the last image of the identity of row stop-1: no block row has a genuine pair beyond it."""
    return int(np.searchsorted(identity, identity[stop - 1], side="right"))


class _TopK:
    """The k highest scores seen so far, with their identity pairs, merged block by block."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.scores = np.empty(0, np.float32)
        self.left = np.empty(0, np.int32)
        self.right = np.empty(0, np.int32)

    @property
    def floor(self) -> float:
        return float(self.scores.min()) if len(self.scores) >= self.k else -np.inf

    def add(self, scores: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
        self.scores = np.concatenate([self.scores, scores])
        self.left = np.concatenate([self.left, left])
        self.right = np.concatenate([self.right, right])
        if len(self.scores) > 2 * self.k:
            self._trim()

    def _trim(self) -> None:
        keep = np.argpartition(-self.scores, self.k - 1)[: self.k] if len(self.scores) > self.k else slice(None)
        self.scores, self.left, self.right = self.scores[keep], self.left[keep], self.right[keep]

    def result(self) -> Tail:
        self._trim()
        order = np.argsort(-self.scores, kind="stable")
        return Tail(self.scores[order], self.left[order], self.right[order])


def _flip_counts(fp32: np.ndarray, variant: np.ndarray, genuine: bool, thresholds: Mapping[float, float]) -> np.ndarray:
    """(fixed, broken) per threshold for scores of one class, both models deciding at FP32's threshold."""
    out = np.zeros((len(thresholds), 2), np.int64)
    for i, t in enumerate(thresholds.values()):
        accept_fp32, accept_variant = fp32 > t, variant > t
        gained, lost = np.count_nonzero(~accept_fp32 & accept_variant), np.count_nonzero(accept_fp32 & ~accept_variant)
        out[i] = (gained, lost) if genuine else (lost, gained)
    return out


def scan(
    embeddings: np.ndarray,
    identity: np.ndarray,
    reference: np.ndarray | None = None,
    thresholds: Mapping[float, float] | None = None,
) -> Scan:
    """Score every pair (i < j) of unit embeddings sorted by identity, in blocks of rows. With the FP32 reference
    embeddings and FP32's thresholds, also count the decisions that flip at each threshold."""
    if np.any(np.diff(identity) < 0):
        raise ValueError("images must be sorted by identity")
    units = _unit(embeddings)
    ref = None if reference is None else _unit(reference)
    thresholds = dict(thresholds or {})
    n = len(units)
    sizes = np.bincount(identity)
    n_impostor = int((n * (n - 1) - np.sum(sizes * (sizes - 1))) // 2)
    top = _TopK(math.floor(TAIL_FAR * n_impostor) * 3 + 1000)  # headroom for resampled identity weights
    histogram = np.zeros(BINS, np.int64)
    flips = np.zeros((len(thresholds), 2), np.int64)
    genuine, pairs, total, sumsq = [], [], 0.0, 0.0
    for start in range(0, n - 1, BLOCK):
        stop = min(start + BLOCK, n)
        band = _genuine_band(identity, stop)
        block = units[start:stop] @ units[start:].T  # columns start..n-1
        rows = np.arange(start, stop)[:, None]
        cols = np.arange(start, band)[None, :]
        near = block[:, : band - start]
        upper = cols > rows
        same = upper & (identity[rows] == identity[cols])
        other = upper & ~same
        far_block = block[:, band - start :]
        gi, gj = np.nonzero(same)
        genuine.append(near[gi, gj])
        pairs.append(np.stack([gi + start, gj + start], axis=1))
        impostors_near = near[other]
        histogram += np.bincount(_bins(impostors_near), minlength=BINS) + np.bincount(
            _bins(far_block.ravel()), minlength=BINS
        )
        total += float(impostors_near.sum(dtype=np.float64) + far_block.sum(dtype=np.float64))
        sumsq += float(np.square(impostors_near, dtype=np.float64).sum() + np.square(far_block, dtype=np.float64).sum())
        floor = top.floor
        ni, nj = np.nonzero(other & (near > floor))
        fi, fj = np.nonzero(far_block > floor)
        li = np.concatenate([ni, fi]) + start
        lj = np.concatenate([nj + start, fj + band])
        top.add(block[li - start, lj - start], identity[li], identity[lj])
        if ref is not None:
            ref_block = ref[start:stop] @ ref[start:].T
            ref_near = ref_block[:, : band - start]
            flips += _flip_counts(ref_near[gi, gj], near[gi, gj], True, thresholds)
            flips += _flip_counts(ref_near[other], impostors_near, False, thresholds)
            flips += _flip_counts(ref_block[:, band - start :], far_block, False, thresholds)
    pairs_all = np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64)
    result = Scan(
        genuine=np.concatenate(genuine) if genuine else np.empty(0, np.float32),
        genuine_pairs=pairs_all,
        genuine_identity=identity[pairs_all[:, 0]],
        histogram=histogram,
        tail=top.result(),
        n_impostor=n_impostor,
        impostor_sum=total,
        impostor_sumsq=sumsq,
    )
    if not len(result.genuine) or not n_impostor:
        raise ValueError("all-pairs evaluation needs genuine and impostor pairs: at least one identity with 2 images")
    return replace(result, flips=_mcnemar(thresholds, flips))


def _mcnemar(thresholds: Mapping[float, float], counts: np.ndarray) -> dict[float, Flips]:
    """McNemar's exact test on fixed vs broken at each threshold."""
    return {
        far: Flips(t, int(fixed + broken), int(fixed), int(broken), mcnemar_p(int(fixed), int(broken)))
        for (far, t), (fixed, broken) in zip(thresholds.items(), counts, strict=True)
    }


def _resampled_tar(model: Scan, weights: np.ndarray, sizes: np.ndarray, fars: tuple[float, ...]) -> np.ndarray:
    """TAR at each FAR with identity a drawn weights[a] times: impostor pair (a, b) counts w_a * w_b, genuine
    pairs of a count w_a; thresholds are recomputed from the weighted impostor tail."""
    weighted = sizes * weights
    impostors = (weighted.sum() ** 2 - np.square(weighted).sum()) // 2
    tail = np.cumsum(weights[model.tail.left] * weights[model.tail.right])
    ranked, ranked_identity = model.ranked_genuine
    accepted = np.cumsum(weights[ranked_identity])
    out = np.empty(len(fars))
    for i, far in enumerate(fars):
        at = int(np.searchsorted(tail, math.floor(far * impostors), side="right"))
        if at >= len(tail):
            raise RuntimeError(f"the kept impostor tail is too short for FAR={far:g} in a resample; raise TAIL_FAR")
        above = int(np.searchsorted(-ranked, -model.tail.scores[at], side="left"))
        out[i] = accepted[above - 1] / accepted[-1] if above else 0.0
    return out


def bootstrap_tar_drops(
    fp32: Scan,
    variant: Scan,
    sizes: np.ndarray,
    fars: tuple[float, ...],
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[float, Interval]:
    """Percentile intervals of FP32 minus variant TAR@FAR, resampling identities (pairs share them, so pairs are
    not independent); both models see the same resampled identities. sizes: images per identity."""
    rng = np.random.default_rng(seed)
    n = len(sizes)
    drops = np.empty((resamples, len(fars)))
    for r in range(resamples):
        weights = rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.int64)
        drops[r] = _resampled_tar(fp32, weights, sizes, fars) - _resampled_tar(variant, weights, sizes, fars)
    low, high = np.quantile(drops, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return {
        far: Interval(fp32.tar(far) - variant.tar(far), float(lo), float(hi))
        for far, lo, hi in zip(fars, low, high, strict=True)
    }
