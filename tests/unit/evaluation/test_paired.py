"""Paired statistics against scipy, brute force, evaluate's metrics and synthetic drops of known size."""

import numpy as np
import pytest
from scipy import stats

from facequant.evaluation.paired import (
    bootstrap_drops,
    decision_flips,
    embedding_cosines,
    embedding_drift,
    far_threshold,
    paired_metrics,
)
from facequant.evaluation.stats import Interval
from facequant.evaluation.verification import best_threshold, fold_accuracies, verification_metrics
from facequant.schema import Metric


def separated(n: int, pushed: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """FP32 separates the pairs perfectly (tied scores, so every training split finds the threshold 0.7); the
    variant pushes `pushed` genuine pairs below every impostor: known drops pushed / n and pushed / genuine."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    fp32 = np.where(labels == 1, rng.choice([0.7, 0.8, 0.9], n), rng.choice([0.1, 0.2, 0.3], n))
    variant = fp32.copy()
    variant[rng.choice(np.flatnonzero(labels == 1), pushed, replace=False)] = -0.5
    folds = np.arange(n) // (n // 10)
    return fp32, variant, labels, folds


def noisy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlapping FP32 scores and a variant that perturbs them, so both models err on some pairs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    fp32 = rng.normal(0.5 * labels, 0.2)
    return fp32, fp32 + rng.normal(0, 0.05, n), labels


def test_flip_counts_and_mcnemar_on_hand_made_pairs():
    # (label, fp32, variant, copies) at threshold 0.5: 5 both right, 8 broken, 1 fixed, 3 both wrong
    cases = [
        (1, 0.9, 0.8, 3),  # both right
        (0, 0.1, 0.2, 2),  # both right
        (1, 0.5, 0.49, 4),  # broken: the tie at the threshold is an accept
        (0, 0.3, 0.6, 4),  # broken: a false accept
        (1, 0.4, 0.6, 1),  # fixed
        (0, 0.7, 0.8, 2),  # both wrong
        (1, 0.2, 0.1, 1),  # both wrong
    ]
    labels, fp32, variant = (np.repeat([c[i] for c in cases], [c[3] for c in cases]) for i in range(3))
    flips = decision_flips(fp32, variant, labels, 0.5)
    assert (flips.threshold, flips.flips, flips.fixed, flips.broken) == (0.5, 9, 1, 8)
    assert flips.p_value == stats.binomtest(1, 9, 0.5).pvalue
    assert flips.p_value == pytest.approx(2 * (1 + 9) / 2**9)


def test_no_discordant_pairs_gives_p_one():
    fp32, _, labels = noisy(200)
    same = decision_flips(fp32, fp32, labels, 0.25)
    assert (same.flips, same.fixed, same.broken, same.p_value) == (0, 0, 0, 1.0)
    # a monotone change that crosses no threshold flips nothing either
    shifted = decision_flips(fp32, np.where(fp32 >= 0.25, fp32 + 1, fp32 - 1), labels, 0.25)
    assert (shifted.flips, shifted.p_value) == (0, 1.0)


def test_flips_count_changed_decisions_not_errors():
    fp32, variant, labels = noisy(500)
    flips = decision_flips(fp32, variant, labels, 0.25)
    assert flips.flips == np.sum((fp32 >= 0.25) != (variant >= 0.25)) == flips.fixed + flips.broken > 0


@pytest.mark.parametrize("far", [0.0, 1e-3, 0.005, 0.01, 0.05, 0.2, 1.0])
def test_far_threshold_is_the_lowest_within_far(far):
    rng = np.random.default_rng(1)
    labels = np.repeat([1, 0], [100, 200])
    scores = np.round(rng.normal(0.3 * labels, 0.2), 2)  # ties between and within classes
    impostors = scores[labels == 0]
    t = far_threshold(scores, labels, far)
    assert np.mean(impostors >= t) <= far
    lower = scores[scores < t]
    if len(lower):
        assert np.mean(impostors >= lower.max()) > far
    candidates = [c for c in [*np.unique(scores), np.inf] if np.mean(impostors >= c) <= far]
    assert t == min(candidates)


def test_far_threshold_is_inf_when_the_top_score_is_too_many_impostors():
    assert far_threshold(np.array([0.9, 0.9, 0.1]), np.array([1, 0, 1]), 0.1) == np.inf


@pytest.mark.parametrize("single_fold", [False, True])
def test_estimates_are_the_logged_drops(single_fold):
    fp32, variant, labels = noisy(6000 if not single_fold else 600, seed=2)
    folds = np.zeros(len(labels), int) if single_fold else np.arange(len(labels)) // 600
    drops = bootstrap_drops(fp32, variant, labels, folds, fars=(1e-3, 1e-4), resamples=50)
    expected = fold_accuracies(fp32, labels, folds).mean() - fold_accuracies(variant, labels, folds).mean()
    assert drops.accuracy.estimate == pytest.approx(expected, abs=1e-12)
    ref, var = verification_metrics(fp32, labels, folds), verification_metrics(variant, labels, folds)
    for far in (1e-3, 1e-4):
        assert drops.tar_far[far].estimate == pytest.approx(ref.tar_far[far] - var.tar_far[far], abs=1e-12)


def test_bootstrap_recovers_a_known_drop():
    fp32, variant, labels, folds = separated(2000, pushed=50)
    drops = bootstrap_drops(fp32, variant, labels, folds, resamples=500)
    assert drops.accuracy.estimate == pytest.approx(50 / 2000)
    assert drops.tar_far[1e-3].estimate == pytest.approx(50 / 1000)
    for interval, known in ((drops.accuracy, 50 / 2000), (drops.tar_far[1e-3], 50 / 1000)):
        assert 0 < interval.low < known < interval.high


def test_interval_shrinks_with_more_pairs():
    def widths(n):
        drops = bootstrap_drops(*separated(n, pushed=n // 40), resamples=500)
        return np.array([i.high - i.low for i in (drops.accuracy, drops.tar_far[1e-3])])

    small, large = widths(600), widths(6000)
    assert np.all(large < small / 2)  # about sqrt(10) narrower


def test_identical_models_give_a_zero_interval():
    fp32, _, labels = noisy(1000)
    drops = bootstrap_drops(fp32, fp32, labels, np.arange(1000) // 100, resamples=200)
    assert drops.accuracy == drops.tar_far[1e-3] == Interval(0.0, 0.0, 0.0)


def test_clusters_widen_the_interval_when_their_pairs_move_together():
    fp32, _, labels, folds = separated(2000, pushed=0)
    clusters = np.arange(2000) // 20  # 100 clusters of 10 genuine and 10 impostor pairs
    variant = np.where(np.isin(clusters, [3, 17, 42, 60, 88]) & (labels == 1), -0.5, fp32)  # 50 pairs in 5 clusters
    by_pair = bootstrap_drops(fp32, variant, labels, folds, resamples=500)
    by_cluster = bootstrap_drops(fp32, variant, labels, folds, clusters=clusters, resamples=500)
    assert by_cluster.accuracy.estimate == by_pair.accuracy.estimate == pytest.approx(50 / 2000)
    for pair, cluster in ((by_pair.accuracy, by_cluster.accuracy), (by_pair.tar_far[1e-3], by_cluster.tar_far[1e-3])):
        assert cluster.high - cluster.low > 2 * (pair.high - pair.low)


def test_bootstrap_is_seeded():
    args = separated(1000, pushed=20)
    assert bootstrap_drops(*args, resamples=100, seed=3) == bootstrap_drops(*args, resamples=100, seed=3)
    assert bootstrap_drops(*args, resamples=100, seed=3) != bootstrap_drops(*args, resamples=100, seed=4)


def test_identical_embeddings_do_not_drift():
    emb = np.random.default_rng(0).normal(size=(50, 16))
    assert embedding_cosines(emb, 3 * emb) == pytest.approx(np.ones(50))  # scale is normalised away
    drift = embedding_drift(emb, emb)
    assert drift.mean == pytest.approx(1) and drift.p01 == pytest.approx(1) and drift.minimum == pytest.approx(1)


def test_known_rotations_give_known_cosines_and_the_worst_images():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 16))
    other = rng.normal(size=(40, 16))
    other -= np.sum(other * emb, axis=1, keepdims=True) / np.sum(emb * emb, axis=1, keepdims=True) * emb
    angles = rng.permutation(np.linspace(0.0, 1.5, 40))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    ortho = other / np.linalg.norm(other, axis=1, keepdims=True)
    rotated = 2.5 * (np.cos(angles)[:, None] * unit + np.sin(angles)[:, None] * ortho)
    assert embedding_cosines(emb, rotated) == pytest.approx(np.cos(angles))
    drift = embedding_drift(emb, rotated, k=3)
    assert drift.worst == tuple(np.argsort(-angles)[:3])
    assert drift.minimum == pytest.approx(np.cos(1.5))
    assert drift.mean == pytest.approx(np.cos(angles).mean())
    assert drift.p01 == pytest.approx(np.percentile(np.cos(angles), 1))


def test_paired_metrics_bundles_every_name():
    fp32, variant, labels = noisy(2000, seed=5)
    folds = np.arange(2000) // 200
    emb = np.random.default_rng(0).normal(size=(30, 8))
    metrics = paired_metrics(fp32, variant, labels, folds, drift=embedding_drift(emb, emb), resamples=100)
    drift = {Metric.EMBEDDING_COSINE_MEAN, Metric.EMBEDDING_COSINE_P01, Metric.EMBEDDING_COSINE_MIN}
    flips_acc = decision_flips(fp32, variant, labels, best_threshold(fp32, labels)[0])
    flips_far = decision_flips(fp32, variant, labels, far_threshold(fp32, labels, 1e-3))
    drops = bootstrap_drops(fp32, variant, labels, folds, resamples=100)
    assert metrics == {
        Metric.FLIPS_ACC: flips_acc.flips,
        Metric.FLIPS_ACC_FIXED: flips_acc.fixed,
        Metric.FLIPS_ACC_BROKEN: flips_acc.broken,
        Metric.MCNEMAR_P_ACC: flips_acc.p_value,
        Metric.FLIPS_FAR_1E3: flips_far.flips,
        Metric.FLIPS_FAR_1E3_FIXED: flips_far.fixed,
        Metric.FLIPS_FAR_1E3_BROKEN: flips_far.broken,
        Metric.MCNEMAR_P_FAR_1E3: flips_far.p_value,
        Metric.ACCURACY_DROP_CI_LOW: drops.accuracy.low,
        Metric.ACCURACY_DROP_CI_HIGH: drops.accuracy.high,
        Metric.TAR_FAR_1E3_DROP_CI_LOW: drops.tar_far[1e-3].low,
        Metric.TAR_FAR_1E3_DROP_CI_HIGH: drops.tar_far[1e-3].high,
    } | dict.fromkeys(drift, pytest.approx(1.0))
    assert flips_acc.flips > 0 and flips_far.flips > 0
    without = paired_metrics(fp32, variant, labels, folds, resamples=100)
    assert set(metrics) - set(without) == drift
    with pytest.raises(KeyError):
        paired_metrics(fp32, variant, labels, folds, fars=(1e-2,), resamples=10)
