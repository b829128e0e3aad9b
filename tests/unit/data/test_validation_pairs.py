"""Validation pairs for quant.exclude=auto, drawn from generated image names: apart from calibration, the held-out
faces and every test pair; genuine pairs spread over identities; impostors among the genuine pairs' images."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from facequant.config.running import ExclusionConfig
from facequant.data.lfw import Dataset, DatasetError, Pair, identity_of
from facequant.data.validation_pairs import FOLDS, genuine_pairs, impostor_pairs, validation_images, validation_pairs


def names(sizes: dict[str, int]) -> list[str]:
    """'<identity>/<identity>_000i.jpg' for each identity with that many images, sorted as a dataset lists them."""
    return sorted(f"{who}/{who}_{i:04d}.jpg" for who, count in sizes.items() for i in range(1, count + 1))


def by_identity(images: list[str]) -> dict[str, int]:
    return {who: len(list(group)) for who, group in itertools.groupby(images, identity_of)}


def cross_pairs(images: list[str]) -> int:
    return sum(identity_of(a) != identity_of(b) for a, b in itertools.combinations(images, 2))


def test_the_validation_images_leave_out_test_pairs_calibration_identities_and_held_out_faces():
    images = names({"A": 3, "B": 3, "C": 3, "D": 3})
    pairs = (Pair(0, 1, "A/A_0001.jpg", "A/A_0002.jpg"), Pair(0, 0, "B/B_0001.jpg", "C/C_0001.jpg"))
    dataset = Dataset("lfw", None, None, pairs, tuple(images), "fp")  # type: ignore[arg-type]
    calibration, held_out = ["B/B_0002.jpg"], ["C/C_0003.jpg"]
    chosen = validation_images(dataset, None, calibration, held_out)
    assert chosen == ["A/A_0003.jpg", "C/C_0002.jpg", "D/D_0001.jpg", "D/D_0002.jpg", "D/D_0003.jpg"]
    # an explicit pool (protocol=all, a folder with a pairs CSV) replaces LFW's unpaired images
    assert validation_images(dataset, ["A/A_0001.jpg", "B/B_0003.jpg", "D/D_0001.jpg"], calibration, []) == [
        "A/A_0001.jpg",
        "D/D_0001.jpg",
    ]


def test_genuine_pairs_take_one_pair_per_identity_per_round():
    images = names({"big": 12, "a": 2, "b": 3, "c": 2})  # big alone has 66 pairs
    drawn = genuine_pairs(images, 4, np.random.default_rng(0))
    assert len(drawn) == len(set(drawn)) == 4
    assert all(identity_of(left) == identity_of(right) and left != right for left, right in drawn)
    assert sorted(identity_of(left) for left, _ in drawn) == ["a", "b", "big", "c"]  # one each, big no more
    second = genuine_pairs(images, 6, np.random.default_rng(0))  # a and c are used up in round one
    assert sorted(identity_of(left) for left, _ in second) == ["a", "b", "b", "big", "big", "c"]


def test_genuine_pairs_beyond_what_the_images_give_name_the_setting():
    images = names({"big": 12, "a": 2, "b": 3, "single": 1})
    possible = sum(math.comb(n, 2) for n in by_identity(images).values())
    assert len(genuine_pairs(images, possible, np.random.default_rng(0))) == possible
    with pytest.raises(DatasetError, match=rf"genuine={possible + 1} but .* give only {possible} genuine pairs"):
        genuine_pairs(images, possible + 1, np.random.default_rng(0))


def test_impostor_pairs_are_distinct_and_cross_identities_up_to_every_such_pair():
    images = names({"a": 4, "b": 3, "c": 2, "d": 1})
    possible = cross_pairs(images)
    drawn = impostor_pairs(images, 20, np.random.default_rng(1))
    assert len(set(drawn)) == 20 and all(identity_of(a) != identity_of(b) for a, b in drawn)
    assert all(images.index(a) < images.index(b) for a, b in drawn)  # each unordered pair once, in image order
    every = impostor_pairs(images, possible, np.random.default_rng(1))
    assert len(set(every)) == possible
    with pytest.raises(DatasetError, match=rf"impostor={possible + 1} but .* give only {possible} impostor pairs"):
        impostor_pairs(images, possible + 1, np.random.default_rng(1))


def test_validation_pairs_spread_each_label_over_the_folds_and_are_seeded():
    images = names({f"id{k:02d}": 2 + k % 4 for k in range(30)})
    exclusion = ExclusionConfig(genuine=40, impostor=1200, seed=3)
    pairs = validation_pairs(images, exclusion)
    genuine = [p for p in pairs if p.label == 1]
    impostor = [p for p in pairs if p.label == 0]
    assert len(genuine) == 40 and len(impostor) == 1200 and len(set(pairs)) == len(pairs)
    assert all(identity_of(p.left) == identity_of(p.right) for p in genuine)
    assert all(identity_of(p.left) != identity_of(p.right) for p in impostor)
    in_genuine = {name for p in genuine for name in (p.left, p.right)}
    assert {name for p in impostor for name in (p.left, p.right)} <= in_genuine  # no image embedded for impostors only
    for label in (0, 1):
        counts = np.bincount([p.fold for p in pairs if p.label == label], minlength=FOLDS)
        assert len(counts) == FOLDS and counts.max() - counts.min() <= 1
    assert validation_pairs(images, exclusion) == pairs
    assert validation_pairs(images, replace(exclusion, seed=4)) != pairs


def test_too_few_impostor_pairs_among_the_genuine_images_are_refused():
    images = names({f"id{k}": 2 for k in range(10)})  # 10 genuine pairs use every image
    with pytest.raises(DatasetError, match=f"impostor=1000 but .* give only {cross_pairs(images)} impostor pairs"):
        validation_pairs(images, ExclusionConfig(genuine=10, impostor=1000))
