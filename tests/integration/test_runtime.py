"""Flip fusion on the real model and real faces."""

from __future__ import annotations

import numpy as np

from facequant.onnxmodel import InputSpec


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
