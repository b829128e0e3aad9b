"""The batched crops of data/mtcnn.py equal facenet-pytorch's per-box `interpolate(mode="area")` exactly, and
align=mtcnn_reference selects facenet-pytorch's MTCNN without changing the alignment cache key."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.functional import interpolate

from facequant.config.sections import ConfigError
from facequant.data.mtcnn import area_crops, area_resize, integral_image, openvino_net
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
    assert got.dtype == np.float32 and np.array_equal(got, want.numpy())


@pytest.mark.parametrize("shape", [(250, 250), (61, 47), (480, 640)])
def test_the_pyramid_from_the_integral_image_is_bit_identical_to_interpolate(shape):
    """P-Net's pyramid levels, as detect_faces computes them from facenet-pytorch's scales."""
    imgs = np.random.default_rng(sum(shape)).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    batch = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    integral = integral_image(imgs)
    for scale in (0.6, 0.6 * 0.709, 0.6 * 0.709**4, 13 / min(shape)):
        size = (int(shape[0] * scale + 1), int(shape[1] * scale + 1))
        got = area_resize(integral, *size)
        assert got.shape == (2, 3, *size) and got.dtype == np.float32
        assert np.array_equal(got, interpolate(batch, size=size, mode="area").numpy())


def test_integral_image_switches_to_int64_before_int32_could_overflow():
    rng = np.random.default_rng(3)
    small, large = rng.integers(0, 256, (2, 4, 5, 3), np.uint8), np.full((1, 3000, 3000, 3), 255, np.uint8)
    assert integral_image(small).dtype == np.int32 and integral_image(large).dtype == np.int64
    assert integral_image(large)[0, -1, -1, 0] == 3000 * 3000 * 255  # above int32's range, exact
    sums = integral_image(small)
    assert sums.shape == (2, 5, 6, 3) and not sums[:, 0].any() and not sums[:, :, 0].any()
    assert np.array_equal(sums[:, 1:, 1:], small.astype(np.int64).cumsum(1).cumsum(2))


@pytest.mark.parametrize("net_name", ["PNet", "ONet"])
def test_the_openvino_nets_give_pytorchs_outputs_from_two_worker_threads_at_once(net_name):
    """One stream per worker: requests of two threads run side by side, each with its own outputs; P-Net takes any
    pyramid level's height and width."""
    from concurrent.futures import ThreadPoolExecutor

    from facenet_pytorch.models import mtcnn

    net = getattr(mtcnn, net_name)().eval()  # facenet-pytorch's weights
    shapes = [(9, 3, 48, 48), (4, 3, 48, 48)] if net_name == "ONet" else [(2, 3, 151, 151), (2, 3, 37, 52)]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(shape).astype(np.float32) for shape in shapes * 4]
    run = openvino_net(net, 48 if net_name == "ONet" else None, threads=1, streams=2)
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(run, xs))
    with torch.inference_mode():
        for outputs, x in zip(got, xs, strict=True):
            want = net(torch.from_numpy(x))
            assert len(outputs) == len(want)
            for a, b in zip(outputs, want, strict=True):
                assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_reference_implementation_shares_the_crop_key():
    default, reference = settings(), settings("align=mtcnn_reference")
    assert (default.align.implementation, reference.align.implementation) == ("openvino", "reference")
    assert default.align.crop_settings() == reference.align.crop_settings()
    assert default.variant_key == reference.variant_key
    assert "detect_max_side" in default.align.crop_settings()  # it changes the crops of large photos
    assert settings("align.detect_max_side=800").align.crop_settings() != default.align.crop_settings()


def test_a_detect_max_side_below_twice_the_smallest_face_is_refused():
    with pytest.raises(ConfigError, match="align.detect_max_side=30 is out of range"):
        settings("align.detect_max_side=30")


def test_the_face_crop_is_facenet_pytorchs_extract_face_pixel_for_pixel():
    """Boxes inside, across and beyond the photo's edges, with and without a margin."""
    from facenet_pytorch.models.utils.detect_face import extract_face
    from PIL import Image

    from facequant.data.align import crop_face

    rng = np.random.default_rng(7)
    img = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    for _ in range(50):
        x, y = rng.uniform(-30, 100), rng.uniform(-30, 70)
        box = np.array([x, y, max(x, 0) + rng.uniform(10, 80), max(y, 0) + rng.uniform(10, 80)], np.float32)
        for size, margin in ((160, 32), (112, 0)):
            want = extract_face(img, box, size, margin).permute(1, 2, 0).numpy().astype(np.uint8)
            got = crop_face(img, box, size, margin)
            assert got.dtype == np.uint8 and np.array_equal(got, want)
