"""The cache layout: every cached file's path, derived from an explicit identity of what changes its content."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facequant.cache.files import key_of


class CachePathError(ValueError):
    """A cache path would leave the cache folder."""


class _Identity:
    """An identity record's key: a hash of all its fields."""

    @property
    def key(self) -> str:
        return key_of(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class ModelIdentity(_Identity):
    """What decides the FP32 ONNX file: the weights, the network, the preprocessing in its metadata, the export."""

    weights_sha256: str
    architecture: str
    embedding_size: int
    preprocess: str
    opset: int
    exporter: str


@dataclass(frozen=True)
class VariantIdentity(_Identity):
    """What decides a quantized file: its FP32 model, the effective quantization and calibration, the quantizer."""

    model: str  # ModelIdentity.key
    quant: dict[str, Any]
    calibration: dict[str, Any] | None
    calibration_faces: str | None  # FaceSetIdentity.key of the calibration faces
    quantizer: str


@dataclass(frozen=True)
class RangesIdentity(_Identity):
    """What decides the calibration ranges: the FP32 model, the calibration settings and faces, the quantizer."""

    model: str  # ModelIdentity.key
    calibration: dict[str, Any]
    calibration_faces: str  # FaceSetIdentity.key of the calibration faces
    quantizer: str


@dataclass(frozen=True)
class SaturationIdentity(_Identity):
    """What decides the avx2 preset's 7-bit weights: the full-range file, how many calibration faces, the bound."""

    variant: str  # the full-range variant file's sha256
    calibration_faces: str | None  # FaceSetIdentity.key of the calibration faces it is measured on
    faces: int  # how many of them
    bound: float


@dataclass(frozen=True)
class FaceSetIdentity(_Identity):
    """Which aligned faces: the content hash of every image, in order, and the crop settings."""

    image_sha256: tuple[str, ...]
    crop: dict[str, Any]


@dataclass(frozen=True)
class ScoresIdentity(_Identity):
    """What decides the pair scores: the model file's content, the input preprocessing, the pairs, the faces."""

    model_sha256: str
    preprocess: str
    pairs: str  # digest of the evaluated pairs (names, labels, folds)
    faces: str  # FaceSetIdentity.key of the evaluated images
    runtime: str


@dataclass(frozen=True)
class CacheLayout:
    """Owns every path below cache_dir; none of them can leave it."""

    root: Path

    def _inside(self, *parts: str) -> Path:
        root = self.root.expanduser().resolve()
        path = root.joinpath(*parts).resolve()
        if not path.is_relative_to(root):
            raise CachePathError(f"cache path {path} would leave cache_dir {root}")
        return path

    def aligned(self, crop: dict[str, Any], image_sha256: str) -> Path:
        """One aligned face per image content and crop setting: renamed or copied images reuse it."""
        return self._inside("aligned", key_of(crop), image_sha256[:2], f"{image_sha256}.npz")

    def aligned_set(self, crop: dict[str, Any]) -> Path:
        """The folder of every face aligned with one crop setting; jobs take its lock to align."""
        return self._inside("aligned", key_of(crop))

    def fp32_model(self, model: ModelIdentity) -> Path:
        return self._inside("onnx", model.key, "fp32.onnx")

    def preprocessed_model(self, model: ModelIdentity, quantizer: str) -> Path:
        """quant_pre_process output of the FP32 model, which depends on the ONNX Runtime version too."""
        return self._inside("onnx", model.key, f"fp32.pre-{key_of(quantizer)}.onnx")

    def variant_model(self, variant: VariantIdentity, stem: str) -> Path:
        return self._inside("onnx", variant.model, f"{stem}-{variant.key}.onnx")

    def ranges(self, ranges: RangesIdentity) -> Path:
        """ONNX Runtime's JSON calibration cache: every variant of one calibration quantizes with these ranges."""
        return self._inside("onnx", ranges.model, f"ranges-{ranges.key}.json")

    def saturating_weights(self, saturation: SaturationIdentity) -> Path:
        """The avx2 preset's 7-bit weights, beside the variants of the same FP32 model."""
        return self._inside("onnx", "saturation", f"half-range-{saturation.key}.json")

    def scores(self, scores: ScoresIdentity) -> Path:
        return self._inside("scores", f"{scores.key}.npz")
