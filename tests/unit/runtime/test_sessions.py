"""Sessions: preprocessing matches its definitions, and each runtime and precision has its own cache identity."""

from __future__ import annotations

import numpy as np

from facequant.config.running import RuntimeConfig
from facequant.onnxmodel import InputSpec
from facequant.runtime.sessions import ORT, name, preprocess


def test_fixed_and_per_image_differ_on_the_same_faces():
    faces = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    fixed, per_image = preprocess(faces, InputSpec("fixed")), preprocess(faces, InputSpec("per_image"))
    assert fixed.shape == per_image.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(per_image.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    assert not np.allclose(fixed, per_image)


def test_each_runtime_and_precision_has_its_own_cache_identity():
    """The runtime string keys the scores cache; OpenVINO's carries the precision (bf16 may not be buildable here)."""
    openvino = name(RuntimeConfig("openvino", "f32"))
    assert name(ORT).startswith("onnxruntime ") and openvino.startswith("openvino ") and openvino.endswith(" f32")
