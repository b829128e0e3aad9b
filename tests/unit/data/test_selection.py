"""Which images a job evaluates and calibrates on, on a tiny LFW in the official layout: calibration never sees an
evaluated face, and images Pillow cannot decode are named before any work, or left out and the selection redrawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from facequant.data.images import image_sha256
from facequant.data.lfw import DatasetError, identity_of
from facequant.data.selection import select
from helpers import make_lfw, photo, settings, truncated_jpeg


def select_for(settings, is_aligned):
    """select() with the sections a job hands it."""
    return select(settings.dataset, settings.calibration, is_aligned)


NAMES = ("A", "B", "C", "D", "E", "F")  # three images each
# Two folds, one genuine and one impostor pair each.
PAIRS = "2\t1\nA\t1\t2\nB\t1\tC\t1\nD\t1\t2\nE\t1\tF\t1\n"


@pytest.fixture
def tiny_lfw(tmp_path) -> Path:
    return make_lfw(tmp_path / "lfw", names=NAMES, per_identity=3, pairs=PAIRS)


def chosen(root: Path, *overrides: str, is_aligned=lambda sha: False):
    return select_for(settings(f"dataset.root={root}", "dataset.folds=1", *overrides), is_aligned)


def pair_names(pairs) -> set[str]:
    return {name for p in pairs for name in (p.left, p.right)}


def test_the_pairs_protocol_evaluates_the_folds_asked_and_calibrates_on_images_no_pair_uses(tiny_lfw):
    selection = chosen(tiny_lfw, "quant=static", "calibration.num_samples=4")
    assert [(p.fold, p.label) for p in selection.pairs] == [(0, 1), (0, 0)]  # fold 0 only
    assert selection.names == ["A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg", "C/C_0001.jpg"]  # in order of use
    assert selection.pool is None  # LFW's pool: the images that no pair uses
    assert len(selection.calibration) == len(set(selection.calibration)) == 4
    every_pair = pair_names(selection.dataset.pairs)  # fold 1's pairs too, though not evaluated
    assert not set(selection.calibration) & every_pair
    assert set(selection.calibration) <= set(selection.dataset.images)
    again = chosen(tiny_lfw, "quant=static", "calibration.num_samples=4")
    other = chosen(tiny_lfw, "quant=static", "calibration.num_samples=4", "calibration.seed=1")
    assert again.calibration == selection.calibration != other.calibration


def test_fp32_draws_no_calibration_and_too_many_samples_say_how_many_there_are(tiny_lfw):
    assert chosen(tiny_lfw).calibration == []
    unpaired = len(NAMES) * 3 - len(pair_names(chosen(tiny_lfw).dataset.pairs))
    with pytest.raises(
        DatasetError, match=f"calibration.num_samples={unpaired + 1} but only {unpaired} held-out images"
    ):
        chosen(tiny_lfw, "quant=static", f"calibration.num_samples={unpaired + 1}", "sensitivity=false")


def test_protocol_all_keeps_calibration_identities_out_of_evaluation(tiny_lfw):
    selection = chosen(
        tiny_lfw, "dataset.protocol=all", "dataset.calibration_pool=6", "quant=static", "calibration.num_samples=4"
    )
    assert selection.pairs == ()
    assert len(selection.pool) == 6 and len({identity_of(name) for name in selection.pool}) == 2  # whole identities
    assert set(selection.calibration) <= set(selection.pool) and len(selection.calibration) == 4
    assert sorted(selection.names + selection.pool) == sorted(selection.dataset.images)
    assert not {identity_of(n) for n in selection.names} & {identity_of(n) for n in selection.pool}


def test_an_undecodable_evaluated_image_is_named_before_any_work(tiny_lfw):
    (tiny_lfw / "lfw" / "A" / "A_0001.jpg").write_bytes(truncated_jpeg(photo("A", 1)))
    with pytest.raises(
        DatasetError, match=r"1 image\(s\) under .* cannot be decoded: A/A_0001.jpg \(.*skip_unreadable"
    ):
        chosen(tiny_lfw)
    # an image whose aligned face is cached (by content hash) is not decoded again
    cached = {image_sha256(tiny_lfw / "lfw" / "A" / "A_0001.jpg")}
    assert chosen(tiny_lfw, is_aligned=cached.__contains__).names[0] == "A/A_0001.jpg"


def test_skip_unreadable_leaves_out_the_image_and_every_pair_that_uses_it(tiny_lfw):
    (tiny_lfw / "lfw" / "A" / "A_0001.jpg").write_bytes(b"not a jpeg")
    selection = chosen(tiny_lfw, "dataset.skip_unreadable=true")
    assert selection.dataset.unreadable == ("A/A_0001.jpg",)
    assert [(p.left, p.right) for p in selection.pairs] == [("B/B_0001.jpg", "C/C_0001.jpg")]
    assert "A/A_0001.jpg" not in selection.names + list(selection.dataset.images)


def test_an_undecodable_calibration_image_is_left_out_and_the_draw_made_again(tiny_lfw):
    full = chosen(tiny_lfw, "quant=static", "calibration.num_samples=4")
    broken = full.calibration[0]
    (tiny_lfw / "lfw" / broken).write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=broken):
        chosen(tiny_lfw, "quant=static", "calibration.num_samples=4")
    redrawn = chosen(tiny_lfw, "quant=static", "calibration.num_samples=4", "dataset.skip_unreadable=true")
    assert broken not in redrawn.calibration and len(redrawn.calibration) == 4
    assert redrawn.dataset.unreadable == (broken,) and redrawn.pairs == full.pairs
