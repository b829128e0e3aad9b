"""The held-out faces sensitivity and the avx2 preset measure on: disjoint from calibration and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facequant.cache.layout import FaceSetIdentity
from facequant.data.align import face_set, load_aligned
from facequant.data.lfw import held_out_images
from facequant.job.stages import EvalData


@dataclass(frozen=True)
class Sensitivity:
    """A variant's sensitivity table and the held-out faces it was measured on (which validation must avoid)."""

    table: pd.DataFrame
    held_out: list[str]


@dataclass(frozen=True)
class HeldOut:
    """The held-out faces sensitivity is measured on, and their identity for the run's dataset input."""

    names: list[str]
    faces_id: FaceSetIdentity
    faces: np.ndarray

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"image": self.names, "sha256": self.faces_id.image_sha256})


def held_out(data: EvalData, count: int) -> HeldOut:
    """count faces drawn with the calibration seed from the calibration pool minus the calibration faces."""
    assert data.settings.calibration is not None, "only static variants have a calibration set to avoid"
    images, align = data.lfw.images_dir, data.settings.align
    names = held_out_images(data.lfw, count, data.settings.calibration.seed, data.calibration_names, data.pool)
    faces_id = face_set(images, names, align)
    return HeldOut(names, faces_id, load_aligned(images, names, faces_id, align, data.layout).faces)
