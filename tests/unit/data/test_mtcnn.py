"""The batched crops of data/mtcnn.py equal facenet-pytorch's per-box `interpolate(mode="area")` exactly, and
align=mtcnn_reference selects facenet-pytorch's MTCNN without changing the alignment cache key."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.functional import interpolate

from facequant.config.sections import ConfigError
from facequant.data.mtcnn import area_crops, integral_image
from helpers import settings


@pytest.mark.parametrize("size", [24, 48])
def test_batched_area_crops_are_bit_identical_to_one_interpolate_per_box(size):
    rng = np.random.default_rng(size)
    imgs = rng.integers(0, 256, (3, 61, 47, 3), dtype=np.uint8)
    n = 200
    # 1-based, inclusive boxes as facenet-pytorch's pad() gives them: tiny, thin, whole-image and larger than size
    y = rng.integers(1, 61, n)
    x = rng.integers(1, 47, n)
    ey = np.minimum(y + rng.integers(0, 60, n), 61)
    ex = np.minimum(x + rng.integers(0, 60, n), 47)
    inds = rng.integers(0, 3, n)
    got = area_crops(integral_image(imgs), inds, (y, ey, x, ex), size)
    batch = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    want = torch.cat(
        [
            interpolate(batch[inds[k], :, y[k] - 1 : ey[k], x[k] - 1 : ex[k]].unsqueeze(0), (size, size), mode="area")
            for k in range(n)
        ]
    )
    assert got.shape == want.shape == (n, 3, size, size)
    assert torch.equal(got, want)


def test_integral_image_switches_to_int64_before_int32_could_overflow():
    small, large = np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 3000, 3000, 3), np.uint8)
    assert integral_image(small).dtype == np.int32 and integral_image(large).dtype == np.int64


def test_the_reference_implementation_shares_the_crop_key():
    default, reference = settings(), settings("align=mtcnn_reference")
    assert (default.align.implementation, reference.align.implementation) == ("onnxruntime", "reference")
    assert default.align.crop_settings() == reference.align.crop_settings()
    assert default.variant_key == reference.variant_key
    assert "detect_max_side" in default.align.crop_settings()  # it changes the crops of large photos
    assert settings("align.detect_max_side=800").align.crop_settings() != default.align.crop_settings()


def test_a_detect_max_side_below_twice_the_smallest_face_is_refused():
    with pytest.raises(ConfigError, match="align.detect_max_side=30 is out of range"):
        settings("align.detect_max_side=30")
