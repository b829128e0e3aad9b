"""One goal for the exclusion search, the report's rule and the release gate: its bounds and its one test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facequant.evaluation.goal import Goal, GoalError
from facequant.evaluation.verification import far_threshold
from facequant.report import Rule


@pytest.mark.parametrize(
    ("field", "value"), [("max_drop", -0.01), ("max_drop", 1.0), ("max_tar_drop", 2.0), ("far", 0.0)]
)
def test_out_of_range_bounds_are_refused_by_every_user_of_the_goal(field, value):
    for kind in (Goal, Rule):
        with pytest.raises(GoalError, match=f"{field}="):
            kind(**{field: value})


def test_a_drop_breaks_the_goal_at_the_upper_end_of_its_interval():
    goal = Goal(max_drop=0.005)
    assert goal.breach("accuracy drop", 0.001, 0.004, 0.005) is None
    assert goal.breach("accuracy drop", 0.001, 0.006, 0.005) == (
        "accuracy drop 0.10 pt passes but its 95% interval reaches 0.60 pt > 0.50 pt"
    )
    assert goal.breach("accuracy drop", 0.007, math.nan, 0.005) == "accuracy drop 0.70 pt > 0.50 pt"
    assert goal.breach("accuracy drop", 0.004, math.nan, 0.005) is None  # no interval: the point decides


def test_a_far_threshold_accepts_at_most_that_share_of_impostors_and_none_below_the_resolution():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0.7, 0.1, 3000), rng.normal(0.1, 0.1, 3000)]
    labels = np.r_[np.ones(3000), np.zeros(3000)]
    for far, allowed in ((1e-3, 3), (1e-2, 30)):
        t = far_threshold(scores, labels, far)
        assert ((scores >= t) & (labels == 0)).sum() == allowed  # the lowest threshold with FAR <= far
        assert ((scores >= np.nextafter(t, -np.inf)) & (labels == 0)).sum() > allowed
    assert far_threshold(scores, labels, 1e-4) is None  # 3000 impostors resolve FAR >= 3.3e-4
