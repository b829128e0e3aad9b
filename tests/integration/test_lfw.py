"""The real LFW copy: its pairs.txt, its images and the held-out calibration pool."""

import pytest

from facequant.data.lfw import DatasetError, calibration_images, pair_images, parse_pairs


def test_real_pairs_file(lfw_root):
    pairs = parse_pairs(lfw_root / "pairs.txt")
    assert len(pairs) == 6000
    assert [sum(p.fold == f for p in pairs) for f in range(10)] == [600] * 10
    assert sum(p.label for p in pairs) == 3000
    first = pairs[0]  # "Abel_Pacheco 1 4"
    assert (first.fold, first.label, first.left, first.right) == (
        0,
        1,
        "Abel_Pacheco/Abel_Pacheco_0001.jpg",
        "Abel_Pacheco/Abel_Pacheco_0004.jpg",
    )
    assert pairs[300].label == 0 and pairs[600].fold == 1
    assert len(pair_images(pairs)) == 7701


def test_load_real_lfw(lfw):
    assert lfw.images_dir.name == "lfw-deepfunneled"
    assert lfw.image_count == 13233
    assert lfw.fingerprint.endswith("-13233")
    assert len(lfw.evaluated(1)) == 600


def test_calibration_pool_is_disjoint_and_seeded(lfw):
    used = set(pair_images(lfw.pairs))
    a = calibration_images(lfw, 200, seed=0)
    assert len(set(a)) == 200 and not used & set(a)
    assert a == calibration_images(lfw, 200, seed=0)
    assert a != calibration_images(lfw, 200, seed=1)
    with pytest.raises(DatasetError, match="only 5532 held-out images are in the calibration pool"):
        calibration_images(lfw, 5533, seed=0)
