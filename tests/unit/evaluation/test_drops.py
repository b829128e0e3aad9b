"""The drops a job logs are at the operating points their names give."""

import numpy as np
import pytest

from facequant.evaluation.verification import verification_metrics
from facequant.job.stages import Evaluation
from facequant.schema import Metric


def evaluation(scores: np.ndarray, labels: np.ndarray) -> Evaluation:
    folds = np.arange(len(scores)) % 10
    return Evaluation(verification_metrics(scores, labels, folds), scores, np.zeros((1, 1)), 10.0, 0, False)


def test_tar_drop_is_at_far_1e3_not_1e4():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(5000), np.zeros(20000)].astype(int)
    fp32 = np.r_[rng.normal(0.7, 0.1, 5000), rng.normal(0.0, 0.1, 20000)]
    variant = fp32 + rng.normal(0, 0.05, fp32.size)
    a, b = evaluation(fp32, labels), evaluation(variant, labels)
    tar = {far: (a.verification.tar_far[far], b.verification.tar_far[far]) for far in (1e-3, 1e-4)}
    assert tar[1e-3][0] - tar[1e-3][1] != pytest.approx(tar[1e-4][0] - tar[1e-4][1])  # the two points differ here
    assert b.drops_from(a)[Metric.TAR_FAR_1E3_DROP] == pytest.approx(tar[1e-3][0] - tar[1e-3][1])
