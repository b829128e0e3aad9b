"""quant.exclude=auto's validation pairs drawn from the real LFW, apart from calibration, the held-out faces
and every test pair, by image and by identity."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facequant.config.running import ExclusionConfig
from facequant.data.lfw import DatasetError, calibration_images, held_out_images, identity_of, pair_images
from facequant.data.validation_pairs import FOLDS, validation_images, validation_pairs


def test_validation_pairs_are_apart_from_calibration_sensitivity_and_test_by_image_and_identity(lfw):
    calibration = calibration_images(lfw, 500, seed=0)
    held_out = held_out_images(lfw, 200, 0, calibration)
    images = validation_images(lfw, None, calibration, held_out)
    gate = ExclusionConfig(genuine=600, impostor=3000)
    pairs = validation_pairs(images, gate)
    used = {name for pair in pairs for name in (pair.left, pair.right)}
    tested = set(pair_images(lfw.pairs))
    assert not used & tested and not used & set(calibration) and not used & set(held_out)
    assert not {identity_of(n) for n in used} & {identity_of(n) for n in calibration}
    genuine = [p for p in pairs if p.label == 1]
    impostor = [p for p in pairs if p.label == 0]
    assert len(genuine) == 600 and len(impostor) == 3000 and len(set(pairs)) == len(pairs)
    assert all(identity_of(p.left) == identity_of(p.right) != "" for p in genuine)
    assert all(identity_of(p.left) != identity_of(p.right) for p in impostor)
    assert len({identity_of(p.left) for p in genuine}) > 150  # round-robin: no identity fills the set
    for label in (0, 1):
        counts = np.bincount([p.fold for p in pairs if p.label == label], minlength=FOLDS)
        assert counts.max() - counts.min() <= 1
    assert validation_pairs(images, gate) == pairs and validation_pairs(images, replace(gate, seed=1)) != pairs
    with pytest.raises(
        DatasetError, match=r"exclusion.genuine=100000 but the validation images .* give only \d+ genuine"
    ):
        validation_pairs(images, ExclusionConfig(genuine=100000))
