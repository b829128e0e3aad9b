"""Verification metrics against scikit-learn and hand-made cases."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from facequant.evaluation.verification import best_threshold, cosine_scores, fold_accuracies, verification_metrics
from facequant.schema import Metric


def lfw_like(rng, n_folds=10, per_class=30, gap=1.0):
    """Scores laid out like pairs.txt: per fold, genuine pairs then impostor pairs."""
    scores, labels, folds = [], [], []
    for f in range(n_folds):
        scores += list(rng.normal(gap, 1, per_class)) + list(rng.normal(0, 1, per_class))
        labels += [1] * per_class + [0] * per_class
        folds += [f] * (2 * per_class)
    return np.array(scores), np.array(labels), np.array(folds)


def test_perfect_separation():
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3] * 10)
    labels = np.array([1, 1, 1, 0, 0, 0] * 10)
    folds = np.repeat(np.arange(10), 6)
    v = verification_metrics(scores, labels, folds)
    assert v.accuracy == 1.0 and v.accuracy_std == 0.0
    assert v.roc_auc == 1.0 and v.eer == 0.0
    assert v.tar_far[1e-3] == 1.0
    assert 0.3 < v.threshold <= 0.7


def test_all_ties_give_chance():
    scores = np.full(40, 0.5)
    labels = np.array([1, 0] * 20)
    v = verification_metrics(scores, labels, np.repeat(np.arange(2), 20))
    assert v.roc_auc == 0.5
    assert v.accuracy == pytest.approx(0.5)
    assert v.tar_far[1e-3] == 0.0  # accepting the tie would accept every impostor


def test_best_threshold_hand_case():
    # accept if score >= t; t = 0.4 misclassifies only the 0.7 impostor
    scores = np.array([0.9, 0.6, 0.4, 0.7, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert best_threshold(scores, labels) == (0.4, pytest.approx(5 / 6))


def test_ties_count_as_accept():
    # an impostor tied with two genuine pairs is accepted with them: 3 of 4 right at t = 0.5
    scores = np.array([0.5, 0.5, 0.5, 0.1])
    labels = np.array([1, 1, 0, 0])
    assert best_threshold(scores, labels) == (0.5, pytest.approx(0.75))


def test_fold_accuracy_matches_leave_one_fold_out():
    rng = np.random.default_rng(0)
    scores, labels, folds = lfw_like(rng)
    got = fold_accuracies(scores, labels, folds)
    expected = []
    for f in range(10):
        train, test = folds != f, folds == f
        thr, _ = best_threshold(scores[train], labels[train])
        expected.append(np.mean((scores[test] >= thr) == labels[test]))
    np.testing.assert_allclose(got, expected)


def test_single_fold_uses_ten_stratified_splits():
    rng = np.random.default_rng(1)
    scores, labels, folds = lfw_like(rng, n_folds=1, per_class=300)
    accs = fold_accuracies(scores, labels, folds)
    assert len(accs) == 10
    assert 0.6 < accs.mean() < 0.8  # d' = 1 gives ~69% at the best threshold


def test_auc_and_tar_agree_with_sklearn():
    rng = np.random.default_rng(2)
    scores, labels, folds = lfw_like(rng, per_class=300, gap=2.5)
    v = verification_metrics(scores, labels, folds)
    assert v.roc_auc == pytest.approx(roc_auc_score(labels, scores))
    imp = np.sort(scores[labels == 0])[::-1]
    gen = scores[labels == 1]
    # FAR=1e-3 of 3000 impostors allows 3 false accepts: threshold just above the 4th-highest impostor
    assert v.false_accepts_allowed[1e-3] == 3 and v.false_accepts_allowed[1e-4] == 0
    assert v.tar_far[1e-3] == pytest.approx(np.mean(gen > imp[3]))
    assert v.tar_far[1e-4] == pytest.approx(np.mean(gen > imp[0]))
    assert v.far_resolution == pytest.approx(1 / 3000)
    assert v.genuine_mean == pytest.approx(gen.mean()) and v.impostor_std == pytest.approx(imp.std())


def test_eer_of_symmetric_distributions():
    rng = np.random.default_rng(3)
    scores, labels, folds = lfw_like(rng, per_class=2000, gap=2.0)
    v = verification_metrics(scores, labels, folds)
    # two unit normals 2 apart cross at 1: EER = P(N(0,1) > 1) = 0.1587
    assert v.eer == pytest.approx(0.1587, abs=0.01)


def test_metric_names_come_from_the_schema():
    scores, labels, folds = lfw_like(np.random.default_rng(4))
    names = set(verification_metrics(scores, labels, folds).as_metrics())
    assert names and all(isinstance(n, Metric) for n in names)
    assert {Metric.ACCURACY, Metric.TAR_FAR_1E3, Metric.TAR_FAR_1E4, Metric.ROC_AUC, Metric.EER} <= names


def test_one_class_is_an_error():
    with pytest.raises(ValueError, match="both genuine and impostor"):
        verification_metrics(np.ones(4), np.ones(4), np.zeros(4))


def test_cosine_scores_ignore_scale():
    emb = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(cosine_scores(emb, np.array([0, 0]), np.array([1, 2])), [1.0, 0.0])
