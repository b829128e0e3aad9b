"""INT8 variants through ONNX Runtime's own quantization API: pre-process, calibrate, quantize, check."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    TensorsData,
    create_calibrator,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
    save_tensors_data,
)
from tqdm import tqdm

from facequant.cache import atomic_path, key_of
from facequant.config import CalibrationConfig, QuantConfig
from facequant.evaluate import session
from facequant.models import preprocess

log = logging.getLogger(__name__)

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
    "distribution": CalibrationMethod.Distribution,
}


class QuantizationError(RuntimeError):
    """A quantized model could not be built, or ONNX Runtime cannot run it."""


class FaceReader(CalibrationDataReader):
    """Feeds preprocessed calibration faces to ONNX Runtime's calibrator in batches."""

    def __init__(self, faces: np.ndarray, method: str, batch_size: int, input_name: str = "input"):
        self.faces, self.method, self.batch_size, self.input_name = faces, method, batch_size, input_name
        self.start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= len(self.faces):
            return None
        batch = self.faces[self.start : self.start + self.batch_size]
        self.start += self.batch_size
        return {self.input_name: preprocess(batch, self.method)}

    def __len__(self) -> int:
        return len(self.faces)


def calibrator_options(cfg: CalibrationConfig) -> dict:
    """Options for create_calibrator; the bins must be set here, quantize_static does not pass them on.

    With ONNX Runtime's Entropy defaults (128 bins, 128 quantized bins) the only candidate range is the
    full one, which makes Entropy identical to MinMax; 2048/128 is TensorRT's choice.
    """
    options = {"num_bins": cfg.num_bins, "num_quantized_bins": cfg.num_quantized_bins, "percentile": cfg.percentile}
    if cfg.symmetric is not None:
        options["symmetric"] = cfg.symmetric
    return options


def calibration_ranges(model: Path, faces: np.ndarray, preprocess_method: str, cfg: CalibrationConfig) -> TensorsData:
    """Activation ranges of every tensor of model on the calibration faces, by cfg.method."""
    with tempfile.TemporaryDirectory(prefix="facequant-calib-") as tmp:
        calibrator = create_calibrator(
            model,
            None,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=METHODS[cfg.method],
            extra_options=calibrator_options(cfg),
        )
        # ORT keeps every intermediate output of one collect_data call in memory (~20 MB a face here),
        # so it is fed one batch at a time; MinMax merges ranges and histograms merge across calls.
        step = cfg.batch_size
        for start in tqdm(range(0, len(faces), step), desc=f"{cfg.method} calibration", unit="batch"):
            calibrator.collect_data(FaceReader(faces[start : start + step], preprocess_method, step))
        ranges = calibrator.compute_data()
        del calibrator
    return ranges


def pre_process(fp32: Path, target: Path) -> Path:
    """quant_pre_process (shape inference + ORT graph optimisation), cached beside its source."""
    if not target.is_file():
        with atomic_path(target) as tmp:
            quant_pre_process(str(fp32), str(tmp))
    return target


def check_runnable(path: Path, variant: str, input_shape: tuple[int, ...]) -> None:
    """Fail with a clear message if ONNX Runtime's CPU EP cannot load or run the quantized model."""
    try:
        sess = session(path)
        sess.run(None, {sess.get_inputs()[0].name: np.zeros(input_shape, np.float32)})
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise QuantizationError(
            f"ONNX Runtime's CPU EP cannot run the {variant} model these settings produced ({first}). "
            "Change quant.op_types, quant.activation_type or quant.weight_type, or use the defaults of "
            "quant=static (QDQ, U8S8, per-channel)."
        ) from exc


def variant_key(base_key: str, quant: QuantConfig, calib: CalibrationConfig | None, calib_data_key: str) -> str:
    """Cache key of a variant: the FP32 model, the full quantization settings and the calibration data."""
    return key_of(base_key, asdict(quant), asdict(calib) if calib else None, calib_data_key if calib else None)


def build_variant(
    fp32: Path,
    target: Path,
    quant: QuantConfig,
    calib: CalibrationConfig,
    preprocess_method: str,
    calibration_faces: Callable[[], np.ndarray],
    input_shape: tuple[int, ...],
) -> Path:
    """Write the quantized model to target unless it is cached there; faces are drawn only when needed."""
    if quant.mode == "fp32":
        return fp32
    if target.is_file():
        return target
    pre = pre_process(fp32, fp32.with_name(fp32.stem + ".pre.onnx"))
    with atomic_path(target) as tmp:
        _quantize(pre, tmp, quant, calib, preprocess_method, calibration_faces)
        check_runnable(tmp, quant.variant, input_shape)
    log.info("built %s at %s", quant.variant, target)
    return target


def _quantize(
    pre: Path,
    tmp: Path,
    quant: QuantConfig,
    calib: CalibrationConfig,
    preprocess_method: str,
    calibration_faces: Callable[[], np.ndarray],
) -> None:
    faces = calibration_faces() if quant.mode == "static" else None
    try:
        if quant.mode == "dynamic":
            quantize_dynamic(
                str(pre),
                str(tmp),
                op_types_to_quantize=list(quant.op_types or ()),
                per_channel=quant.per_channel,
                reduce_range=quant.reduce_range,
                weight_type=QuantType[quant.weight_type],
            )
        else:
            ranges = calibration_ranges(pre, faces, preprocess_method, calib)
            with tempfile.TemporaryDirectory(prefix="facequant-ranges-") as d:
                cache = Path(d) / "ranges.json"
                save_tensors_data(ranges, cache)
                quantize_static(
                    str(pre),
                    str(tmp),
                    calibration_data_reader=None,
                    calibration_cache_path=cache,
                    quant_format=QuantFormat[quant.format],
                    op_types_to_quantize=list(quant.op_types) if quant.op_types else None,
                    per_channel=quant.per_channel,
                    reduce_range=quant.reduce_range,
                    activation_type=QuantType[quant.activation_type],
                    weight_type=QuantType[quant.weight_type],
                    calibrate_method=METHODS[calib.method],
                )
    except (ValueError, RuntimeError, TypeError) as exc:
        raise QuantizationError(f"ONNX Runtime could not build {quant.variant} with {asdict(quant)}: {exc}") from exc
