"""Use a registered INT8 version as a deployment would: its ONNX file, the decision threshold it was registered
with for a FAR (never FP32's: quantization moves it), and its input contract; then verify two face photos.

    from facequant.deploy import Verifier
    verifier = Verifier.from_registry("facenet", target="auto", far=1e-3)
    decision = verifier.verify("a.jpg", "b.jpg")  # Decision(score=0.71, threshold=0.43, same=True)
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facequant.cache.layout import CacheLayout
from facequant.config.sections import AlignConfig
from facequant.data.align import align_images
from facequant.machine import host_isa
from facequant.onnxmodel import InputSpec
from facequant.report.deployment import THRESHOLD_TAG
from facequant.runtime.sessions import Session, open_session, preprocess
from facequant.schema import far_text
from facequant.tracking.registry import RegistryError, registered

ALIAS = "int8-recommended"


@dataclass(frozen=True)
class Decision:
    score: float  # cosine similarity of the two embeddings
    threshold: float
    same: bool  # score >= threshold: the same person at the registered FAR


@dataclass
class Verifier:
    """A registered model with its threshold at one FAR, fed as its input contract says."""

    session: Session
    spec: InputSpec
    image_size: int
    threshold: float
    far: float

    @classmethod
    def from_registry(cls, name: str, target: str = "auto", far: float = 1e-3, alias: str | None = None) -> Verifier:
        """Load name@int8-recommended-<target> (or alias) and its registered threshold at far."""
        alias = alias or f"{ALIAS}-{host_isa() if target == 'auto' else target}"
        path, tags = registered(name, alias, Path(tempfile.mkdtemp(prefix="facequant-deploy-")))
        text = tags.get(THRESHOLD_TAG.format(far_text(far)), "")
        found = re.match(r"(-?\d+\.\d+) ", text)
        if found is None:
            raise RegistryError(f"{name}@{alias} records no threshold at FAR={far_text(far)}: {text or 'no tag'}")
        contract = json.loads(tags.get("facequant.input_spec") or "{}")
        size = contract.pop("image_size", 160)
        spec = InputSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in contract.items()})
        return cls(open_session(path, output=spec.output), spec, size, float(found.group(1)), far)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings of aligned uint8 RGB faces."""
        emb = self.session.run(preprocess(faces, self.spec))
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def verify(self, a: str | Path, b: str | Path) -> Decision:
        """Align both photos with MTCNN as the study did, embed them, and decide at the registered threshold."""
        faces = []
        with tempfile.TemporaryDirectory(prefix="facequant-align-") as tmp:
            for photo in (Path(a), Path(b)):
                aligned = align_images(
                    photo.parent, [photo.name], AlignConfig(image_size=self.image_size), CacheLayout(Path(tmp))
                )
                faces.append(aligned.faces[0])
        first, second = self.embed(np.stack(faces))
        score = float(first @ second)
        return Decision(score, self.threshold, score >= self.threshold)
