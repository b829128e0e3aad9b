"""The runtime layer loads no training framework, and preprocessing matches its definitions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from facequant.onnxmodel import InputSpec
from facequant.runtime.sessions import preprocess


def test_runtime_side_imports_neither_torch_nor_h5py():
    code = (
        "import sys, facequant.runtime.sessions, facequant.quant.quantize, facequant.evaluation.verification, "
        "facequant.runtime.benchmark; "
        "print(sorted(m for m in ('torch', 'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_fixed_and_per_image_differ_on_the_same_faces():
    faces = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    fixed, per_image = preprocess(faces, InputSpec("fixed")), preprocess(faces, InputSpec("per_image"))
    assert fixed.shape == per_image.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(per_image.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    assert not np.allclose(fixed, per_image)


def test_flip_fusion_is_mirror_invariant_on_real_faces(fp32_onnx, aligned_sample):
    """The fused embedding of a face and of its mirror image are the same unit vector; unfused they are not."""
    from facequant.runtime.sessions import embed

    path, _ = fp32_onnx
    faces = aligned_sample.faces[:8]
    mirrored = np.ascontiguousarray(faces[:, :, ::-1])
    spec = InputSpec("per_image")
    fused, fused_mirror = embed(path, faces, spec, flip=True), embed(path, mirrored, spec, flip=True)
    np.testing.assert_allclose(fused, fused_mirror, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)
    plain, plain_mirror = embed(path, faces, spec), embed(path, mirrored, spec)
    assert np.abs(plain - plain_mirror).max() > 1e-2
    cosine = (plain * plain_mirror).sum(1) / np.linalg.norm(plain, axis=1) / np.linalg.norm(plain_mirror, axis=1)
    assert cosine.min() > 0.7  # a mirror image is still the same person
