"""MTCNN alignment on real LFW images: crops, cache reuse, no-face fallback and unreadable files."""

import numpy as np
import pytest
from PIL import Image

from facequant.cache.layout import CacheLayout
from facequant.config.sections import AlignConfig
from facequant.data.align import align_images
from facequant.data.images import ImageError

CFG = AlignConfig(batch_size=4)


@pytest.fixture
def images(lfw, tmp_path):
    """A folder with three real LFW faces and one image with no face, all 250x250."""
    names = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "AJ_Cook/AJ_Cook_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0001.jpg"]
    for name in names:
        (tmp_path / "img" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "img" / name).write_bytes((lfw.images_dir / name).read_bytes())
    (tmp_path / "img" / "blank").mkdir()
    Image.new("RGB", (250, 250), (128, 128, 128)).save(tmp_path / "img" / "blank" / "blank_0001.jpg")
    return tmp_path / "img", names + ["blank/blank_0001.jpg"]


def test_batch_with_a_faceless_image_aligns_and_falls_back(images, tmp_path):
    root, names = images
    out = align_images(root, names, CFG, CacheLayout(tmp_path / "cache"))
    assert out.faces.shape == (4, 160, 160, 3) and out.faces.dtype == np.uint8
    assert out.detected.tolist() == [True, True, True, False] and out.fallbacks == 1
    assert out.computed == 4
    # a real face crop has structure; the blank fallback is flat grey
    assert out.faces[0].std() > 20 and out.faces[3].std() < 1


def test_second_call_detects_nothing_and_returns_the_same_faces(images, tmp_path):
    root, names = images
    first = align_images(root, names, CFG, CacheLayout(tmp_path / "cache"))
    second = align_images(root, names, CFG, CacheLayout(tmp_path / "cache"))
    assert second.computed == 0
    np.testing.assert_array_equal(first.faces, second.faces)
    np.testing.assert_array_equal(first.detected, second.detected)


def test_renamed_image_reuses_its_aligned_face(images, tmp_path):
    root, names = images
    align_images(root, names[:1], CFG, CacheLayout(tmp_path / "cache"))
    (root / "copy").mkdir()
    (root / "copy" / "copy_0001.jpg").write_bytes((root / names[0]).read_bytes())
    again = align_images(root, ["copy/copy_0001.jpg"], CFG, CacheLayout(tmp_path / "cache"))
    assert again.computed == 0  # keyed by content, not by name


def test_damaged_entry_is_realigned(images, tmp_path, caplog):
    root, names = images
    layout = CacheLayout(tmp_path / "cache")
    first = align_images(root, names, CFG, layout)
    entry = sorted((tmp_path / "cache").rglob("*.npz"))[0]
    entry.write_bytes(entry.read_bytes()[:100])  # truncated, as by a full disk or a killed copy
    again = align_images(root, names, CFG, layout)
    assert again.computed == 1
    assert str(entry) in caplog.text and "removing it and rebuilding" in caplog.text
    np.testing.assert_array_equal(first.faces, again.faces)


def test_no_partial_file_is_left_in_the_cache(images, tmp_path):
    root, names = images
    (root / "broken").mkdir()
    (root / "broken" / "broken_0001.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ImageError, match="cannot read image .*broken_0001.jpg"):
        align_images(
            root, [*names, "broken/broken_0001.jpg"], AlignConfig(batch_size=8), CacheLayout(tmp_path / "cache")
        )
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    assert not list((tmp_path / "cache").rglob("*.npz"))  # the failing batch stored nothing


def test_center_weighted_selection_picks_the_subject_on_a_group_photo(lfw, msceleb128, tmp_path):
    # Angela_Bassett_0003 has other faces off-centre that 'probability' selection picks instead of her
    import torch

    from facequant.onnxmodel import InputSpec
    from facequant.runtime.sessions import preprocess

    names = ["Angela_Bassett/Angela_Bassett_0003.jpg", "Angela_Bassett/Angela_Bassett_0001.jpg"]
    centre = align_images(lfw.images_dir, names, CFG, CacheLayout(tmp_path / "c"))
    prob = align_images(lfw.images_dir, names, AlignConfig(selection_method="probability"), CacheLayout(tmp_path / "p"))
    net, _ = msceleb128
    with torch.inference_mode():
        e_centre = net(torch.from_numpy(preprocess(centre.faces, InputSpec("per_image")))).numpy()
        e_prob = net(torch.from_numpy(preprocess(prob.faces, InputSpec("per_image")))).numpy()
    same_person_centre = float(e_centre[0] @ e_centre[1])
    same_person_prob = float(e_prob[0] @ e_prob[1])
    assert same_person_centre > 0.5 > same_person_prob


def test_workers_align_the_same_faces_in_the_same_order_as_one_batch_at_a_time(lfw):
    """Batches finish out of order across workers; each photo still gets its own crop, and a faceless one its
    fallback, exactly as one worker gives them."""
    from facequant.data.align import Detector, align_files

    paths = [lfw.images_dir / name for name in lfw.images[::97][:45]]
    one, two = (list(align_files(Detector(AlignConfig(batch_size=4, workers=w)), paths)) for w in (1, 2))
    assert len(one) == len(two) == 45
    for (face1, found1), (face2, found2) in zip(one, two, strict=True):
        assert found1 == found2 and np.array_equal(face1, face2)
    assert len({face.tobytes() for face, _ in two}) == 45  # 45 distinct photos, 45 distinct crops
