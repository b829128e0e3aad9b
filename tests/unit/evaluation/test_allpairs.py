"""protocol=all on synthetic identities: block scoring against brute force over the full score matrix."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from facequant.data.lfw import DatasetError, identity_of, split_identities
from facequant.evaluation import allpairs
from facequant.evaluation.allpairs import _resampled_tar, bootstrap_tar_drops, scan
from facequant.evaluation.paired import decision_flips
from facequant.job.stages_all import AllEvaluation
from facequant.schema import Metric


def faces(n: int = 420, ids: int = 70, noise: float = 1.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of n images of `ids` identities, sorted by identity: a centre per identity plus noise."""
    rng = np.random.default_rng(seed)
    identity = np.unique(np.sort(rng.integers(0, ids, n)), return_inverse=True)[1]
    centres = rng.normal(size=(identity.max() + 1, 16))
    return (centres[identity] + rng.normal(scale=noise, size=(n, 16))).astype(np.float32), identity


def brute(emb: np.ndarray, identity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of every pair i < j from the full matrix."""
    unit = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    i, j = np.triu_indices(len(emb), 1)
    return (unit @ unit.T)[i, j], (identity[i] == identity[j]).astype(int)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(allpairs, "BLOCK", 37)  # many blocks, and identities cut by block edges


def test_tar_at_far_equals_brute_force_roc():
    emb, identity = faces()
    result = scan(emb, identity)
    scores, labels = brute(emb, identity)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert len(result.genuine) == labels.sum() and result.n_impostor == (labels == 0).sum()
    assert result.histogram.sum() == result.n_impostor
    for far in (1e-2, 1e-3, 1e-4):
        assert result.resolvable(far)
        assert result.tar(far) == pytest.approx(tpr[fpr <= far].max())
    assert sorted(result.genuine) == pytest.approx(sorted(scores[labels == 1]), abs=1e-6)
    auc, _ = result.auc_and_eer()
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-4)  # binned at 1e-4


def test_a_far_the_impostors_cannot_resolve_is_absent():
    emb, identity = faces(n=60, ids=12)
    result = scan(emb, identity)
    assert result.n_impostor < 1e5
    assert not result.resolvable(1e-5)
    metrics = AllEvaluation(result, emb, 1.0, 0, False).metrics()
    assert Metric.TAR_FAR_1E3 in metrics
    assert Metric.TAR_FAR_1E5 not in metrics and Metric.TAR_FAR_1E6 not in metrics
    assert metrics[Metric.FAR_RESOLUTION] == pytest.approx(1 / result.n_impostor)


def test_flips_at_fp32_thresholds_equal_brute_force():
    emb, identity = faces()
    variant = emb + np.random.default_rng(1).normal(scale=0.15, size=emb.shape).astype(np.float32)
    fp32 = scan(emb, identity)
    thresholds = {far: fp32.threshold(far) for far in (1e-2, 1e-3)}
    result = scan(variant, identity, emb, thresholds)
    ref_scores, labels = brute(emb, identity)
    var_scores, _ = brute(variant, identity)
    for far, t in thresholds.items():
        # decision_flips accepts at >= its threshold; all-pairs accepts above FP32's (k+1)-th impostor score
        expected = decision_flips(ref_scores, var_scores, labels, np.nextafter(np.float32(t), np.float32(2)))
        got = result.flips[far]
        assert (got.flips, got.fixed, got.broken) == (expected.flips, expected.fixed, expected.broken)
        assert got.flips > 0
        assert got.p_value == pytest.approx(expected.p_value)


def test_unit_weights_reproduce_the_point_estimate_and_zero_weight_drops_an_identity():
    emb, identity = faces()
    result = scan(emb, identity)
    sizes = np.bincount(identity)
    fars = (1e-2, 1e-3)
    ones = np.ones(len(sizes), np.int64)
    assert _resampled_tar(result, ones, sizes, fars) == pytest.approx([result.tar(f) for f in fars])
    weights = ones.copy()
    gone = int(np.argmax(sizes))
    weights[gone] = 0
    keep = identity != gone
    without = scan(emb[keep], np.unique(identity[keep], return_inverse=True)[1])
    assert _resampled_tar(result, weights, sizes, fars) == pytest.approx([without.tar(f) for f in fars])


def test_identity_bootstrap_covers_a_real_drop_and_holds_zero_for_equal_models():
    emb, identity = faces(n=600, ids=120)
    noisy = emb + np.random.default_rng(2).normal(scale=0.9, size=emb.shape).astype(np.float32)
    fp32, worse = scan(emb, identity), scan(noisy, identity)
    sizes = np.bincount(identity)
    drop = bootstrap_tar_drops(fp32, worse, sizes, (1e-3,), resamples=300)[1e-3]
    assert drop.estimate == pytest.approx(fp32.tar(1e-3) - worse.tar(1e-3))
    assert 0 < drop.low <= drop.estimate <= drop.high  # much more noise: a clear, significant drop
    same = bootstrap_tar_drops(fp32, fp32, sizes, (1e-3,), resamples=50)[1e-3]
    assert (same.estimate, same.low, same.high) == (0, 0, 0)


def test_identity_split_reserves_whole_identities_for_calibration():
    images = [f"p{i:03d}/p{i:03d}_{k:04d}.jpg" for i in range(200) for k in range(1 + i % 7)]
    split = split_identities(images, pool=120, seed=0)
    assert len(split.calibration) == 120
    reserved = {identity_of(i) for i in split.calibration}
    assert reserved.isdisjoint(identity_of(i) for i in split.evaluation)
    assert sorted(split.calibration + split.evaluation) == sorted(images)
    assert split == split_identities(images, pool=120, seed=0)
    assert split.calibration != split_identities(images, pool=120, seed=1).calibration
    subset = split_identities(images, pool=120, seed=0, identities=30)
    assert len({identity_of(i) for i in subset.evaluation}) == 30
    assert reserved.isdisjoint(identity_of(i) for i in subset.evaluation)
    with pytest.raises(DatasetError, match="calibration_pool"):
        split_identities(images[:10], pool=500, seed=0)
