"""Sessions: preprocessing matches its definitions, and each runtime and precision has its own cache identity."""

from __future__ import annotations

import numpy as np

from facequant.config.running import RuntimeConfig
from facequant.onnxmodel import InputSpec
from facequant.runtime.sessions import ORT, PROBE, BatchPlan, embed, name, preprocess
from helpers import synthetic


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


class Reads:
    """Faces that record which slices embed read, as the aligned cache is read batch by batch."""

    def __init__(self, faces: np.ndarray):
        self.faces, self.parts = faces, []

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, part: slice) -> np.ndarray:
        self.parts.append((part.start, part.stop))
        return self.faces[part]


def test_the_probe_embeds_every_face_once_in_order_then_keeps_the_fastest_batch(tmp_path):
    model = synthetic(tmp_path / "m.onnx", np.random.default_rng(0))
    faces = np.random.default_rng(1).integers(0, 256, (1000, 8, 8, 3), dtype=np.uint8)
    spec = InputSpec("fixed", input="input", output="output")
    reads = Reads(faces)
    probed = embed(model, reads, spec)
    np.testing.assert_allclose(probed, embed(model, faces, spec, batch_size=7), rtol=1e-5, atol=1e-6)
    starts = [start for start, _ in reads.parts]
    assert starts == sorted(starts) and reads.parts[-1][1] == len(faces)  # contiguous: each face read once
    sizes = [stop - start for start, stop in reads.parts]
    assert tuple(sizes[: len(PROBE)]) == PROBE
    assert len(set(sizes[len(PROBE) : -1])) == 1 and sizes[len(PROBE)] in PROBE  # then one candidate throughout


def test_a_batch_plan_keeps_the_best_rate_of_each_size():
    plan = BatchPlan(None)
    for size, seconds in ((8, 1.0), (16, 0.5), (8, 0.1), (16, 0.4)):
        plan.record(size, seconds)
    plan.record(5, 0.001)  # a short last batch: fast, but not a size to choose
    assert plan.best == 8 and plan.size(len(PROBE)) == 8  # 80 faces/s at 8 beats 40 at 16
    assert BatchPlan(5).size(0) == BatchPlan(5).best == 5
