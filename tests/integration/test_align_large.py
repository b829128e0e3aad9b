"""Photos far larger than LFW's: a 13000x13000 PNG and a phone-size 8160x6120 JPEG, each holding a real
LFW image upscaled by the photo's side over align.detect_max_side, are detected on a copy downscaled to that side
(where the face is the LFW image's size again), and the chosen box, mapped back, lands on the face in the
original's pixels. Peak memory is measured by benchmarks/align_memory.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facequant.cache.layout import CacheLayout
from facequant.config.sections import AlignConfig
from facequant.data.align import Detector, align_images
from facequant.data.images import read_rgb
from helpers import box_iou

FACE = "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
CFG = AlignConfig()


@pytest.fixture(scope="module")
def face(lfw):
    """The LFW image, and the box and crop facequant's aligner gives it at its own size."""
    img = read_rgb(lfw.images_dir / FACE)
    detector = Detector(CFG)
    with torch.inference_mode():
        found = detector.detect([img])[0]
    return img, detector.select(img, found)[0], detector.align(img, found)[0]


def spy(monkeypatch) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    """Record the size of every image MTCNN is run on, and every box selection picks."""
    sizes, boxes = [], []
    detect, select = Detector.detect, Detector.select

    def detect_spy(self, images):
        sizes.extend(img.size for img in images)
        return detect(self, images)

    def select_spy(self, img, found):
        box = select(self, img, found)
        boxes.append(box)
        return box

    monkeypatch.setattr(Detector, "detect", detect_spy)
    monkeypatch.setattr(Detector, "select", select_spy)
    return sizes, boxes


@pytest.mark.parametrize(
    ("size", "offset", "file"),
    [((13000, 13000), (9000, 3000), "huge.png"), ((8160, 6120), (700, 2900), "phone.jpg")],
    ids=["13000x13000 PNG", "8160x6120 phone photo"],
)
def test_a_large_photo_is_detected_downscaled_and_cropped_from_the_original(
    face, size, offset, file, tmp_path, monkeypatch
):
    img, box, crop = face
    upscale = max(size) / CFG.detect_max_side
    photo = Image.new("RGB", size, (120, 110, 100))
    photo.paste(img.resize((round(img.width * upscale), round(img.height * upscale)), Image.Resampling.BICUBIC), offset)
    (tmp_path / "photos" / "someone").mkdir(parents=True)
    photo.save(tmp_path / "photos" / "someone" / file)
    del photo
    sizes, boxes = spy(monkeypatch)

    out = align_images(tmp_path / "photos", [f"someone/{file}"], CFG, CacheLayout(tmp_path / "cache"))

    assert out.detected.tolist() == [True]
    assert sizes and max(max(s) for s in sizes) == CFG.detect_max_side  # MTCNN never saw the full-size photo
    expected = box * upscale + np.array([*offset, *offset])
    # mapped back onto the face: MTCNN's box on a resampled face varies in size by some 10%, its centre far less
    chosen = boxes[-1][0]
    centre_shift = np.hypot(*((chosen[:2] + chosen[2:]) - (expected[:2] + expected[2:])) / 2)
    assert box_iou(chosen, expected) >= 0.75 and centre_shift < 0.1 * (expected[2] - expected[0]), (chosen, expected)
    # the crop shows the same face as the small image's crop (the upscaling blurs it a little), not background
    assert np.abs(out.faces[0].astype(np.int16) - crop).mean() < 20
