"""data/mtcnn.py (the nets on OpenVINO, align=mtcnn's default, and on ONNX Runtime; batched crops) against
facenet-pytorch's own MTCNN on 512 real LFW images: the same chosen face and the same crop, which is why all three
share the alignment cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facequant.config.sections import AlignConfig
from facequant.data.align import Detector
from facequant.data.images import read_rgb
from helpers import box_iou

IMAGES = 512
BATCH = 16
FAST = ("openvino", "onnxruntime")


def chosen(detector: Detector, images: list) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Each image's selected box (None: no face) and its aligned crop, in batches as alignment runs them."""
    boxes, crops = [], []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            batch = images[start : start + BATCH]
            for img, found in zip(batch, detector.detect(batch), strict=True):
                box = detector.select(img, found)
                boxes.append(None if box is None else box[0])
                crops.append(detector.align(img, found)[0])
    return boxes, np.stack(crops)


@pytest.fixture(scope="module")
def aligned(lfw):
    """512 images spread over LFW's sorted list (every identity's images are adjacent), through each aligner."""
    names = lfw.images[:: len(lfw.images) // IMAGES][:IMAGES]
    images = [read_rgb(lfw.images_dir / name) for name in names]
    return {impl: chosen(Detector(AlignConfig(implementation=impl)), images) for impl in (*FAST, "reference")}


@pytest.mark.parametrize("impl", FAST)
def test_the_chosen_box_is_the_same_on_99_percent_of_images(aligned, impl):
    fast, ref = aligned[impl][0], aligned["reference"][0]
    assert sum(b is not None for b in ref) >= 0.95 * IMAGES  # LFW is mostly faces: the comparison has substance
    same = [
        (a is None and b is None) or (a is not None and b is not None and box_iou(a, b) >= 0.99)
        for a, b in zip(fast, ref, strict=True)
    ]
    assert np.mean(same) >= 0.99, [i for i, ok in enumerate(same) if not ok]


@pytest.mark.parametrize("impl", FAST)
def test_the_crops_differ_by_at_most_one_grey_level_on_average(aligned, impl):
    fast, ref = aligned[impl][1], aligned["reference"][1]
    assert fast.shape == ref.shape == (IMAGES, 160, 160, 3)
    assert np.abs(fast.astype(np.int16) - ref).mean() <= 1.0
