"""INT8 variants through ONNX Runtime's own quantization API: pre-process, calibrate, quantize, check."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
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

from facequant.cache.files import atomic_path, exclusive, verified_file, write_file_record
from facequant.config.sections import CalibrationConfig, QuantConfig
from facequant.onnxmodel import InputSpec
from facequant.runtime import sessions as runtime
from facequant.runtime.sessions import preprocess

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
    """Feeds calibration faces to ONNX Runtime's calibrator in batches, preprocessed as the model takes them."""

    def __init__(self, faces: np.ndarray, spec: InputSpec, batch_size: int):
        self.faces, self.spec, self.batch_size = faces, spec, batch_size
        self.start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= len(self.faces):
            return None
        batch = self.faces[self.start : self.start + self.batch_size]
        self.start += self.batch_size
        return {self.spec.input: preprocess(batch, self.spec)}

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


def calibration_ranges(model: Path, faces: np.ndarray, spec: InputSpec, cfg: CalibrationConfig) -> TensorsData:
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
            calibrator.collect_data(FaceReader(faces[start : start + step], spec, step))
        ranges = calibrator.compute_data()
        del calibrator
    return ranges


def quantizer() -> str:
    """The quantizer's name and version: its output depends on it."""
    return runtime.name()


def pre_process(fp32: Path, target: Path, identity: dict) -> Path:
    """quant_pre_process (shape inference + ORT graph optimisation), cached beside its source."""
    with exclusive(target):
        if verified_file(target, identity) is None:
            with atomic_path(target) as tmp:
                quant_pre_process(str(fp32), str(tmp))
            write_file_record(target, identity)
    return target


def check_runnable(path: Path, variant: str, input_shape: tuple[int, ...]) -> None:
    """Fail with a clear message if ONNX Runtime's CPU EP cannot load or run the quantized model."""
    try:
        runtime.run(runtime.session(path), np.zeros(input_shape, np.float32))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise QuantizationError(
            f"ONNX Runtime's CPU EP cannot run the {variant} model these settings produced ({first}). "
            "Change quant.op_types, quant.activation_type or quant.weight_type, or use the defaults of "
            "quant=static (QDQ, U8S8, per-channel)."
        ) from exc


def fit_ranges(
    pre: Path,
    target: Path,
    identity: dict,
    calib: CalibrationConfig,
    spec: InputSpec,
    calibration_faces: Callable[[], np.ndarray],
) -> Path:
    """The calibration ranges of the pre-processed model as ONNX Runtime's JSON calibration cache, fitted unless a
    verified copy is cached: the exclusion search re-quantizes with these same ranges."""
    with exclusive(target):
        if verified_file(target, identity) is None:
            ranges = calibration_ranges(pre, calibration_faces(), spec, calib)
            with atomic_path(target) as tmp:
                save_tensors_data(ranges, tmp)
            write_file_record(target, identity)
    return target


def build_variant(
    pre: Path,
    target: Path,
    identity: dict,
    quant: QuantConfig,
    calib: CalibrationConfig | None,
    ranges: Callable[[], Path] | None,
    input_shape: tuple[int, ...],
    half_range: Sequence[str] = (),
) -> bool:
    """Write the quantized model of the pre-processed FP32 model to target unless a verified copy is cached
    there; static variants take the ranges file, fitted only when needed, and the weights named in half_range
    get 7 bits. Returns whether it was built."""
    with exclusive(target):
        if verified_file(target, identity) is not None:
            return False
        with atomic_path(target) as tmp:
            _quantize(pre, tmp, quant, calib, ranges, half_range)
            check_runnable(tmp, quant.variant, input_shape)
        write_file_record(target, identity)
    log.info("built %s at %s", quant.variant, target)
    return True


def check_nodes(pre: Path, names: tuple[str, ...]) -> None:
    """Fail naming the unknown ones: ONNX Runtime silently quantizes a node whose name it does not find."""
    if not names:
        return
    known = {node.name for node in onnx.load(str(pre), load_external_data=False).graph.node}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise QuantizationError(
            f"quant.nodes_to_exclude names {len(unknown)} node(s) the model does not have: {', '.join(unknown[:5])}. "
            "Use the names of the pre-processed FP32 graph, as in the `node` column of a static variant's "
            "sensitivity.csv"
        )


def weights_of(pre: Path, nodes: Sequence[str]) -> list[str]:
    """The weight initializers of the named Conv/MatMul/Gemm nodes: ONNX Runtime's per-tensor overrides key them."""
    graph = onnx.load(str(pre), load_external_data=False).graph
    constants = {init.name for init in graph.initializer}
    wanted = set(nodes)
    return sorted(n.input[1] for n in graph.node if n.name in wanted and len(n.input) > 1 and n.input[1] in constants)


def _quantize(
    pre: Path,
    tmp: Path,
    quant: QuantConfig,
    calib: CalibrationConfig | None,
    ranges: Callable[[], Path] | None,
    half_range: Sequence[str] = (),
) -> None:
    check_nodes(pre, quant.nodes_to_exclude)
    try:
        if quant.mode == "dynamic":
            quantize_dynamic(
                str(pre),
                str(tmp),
                op_types_to_quantize=list(quant.op_types or ()),
                per_channel=quant.per_channel,
                reduce_range=quant.reduce_range,
                weight_type=QuantType[quant.weight_type],
                nodes_to_exclude=list(quant.nodes_to_exclude),
            )
        else:
            assert calib is not None and ranges is not None, "static quantization needs calibration ranges"
            quantize_static(
                str(pre),
                str(tmp),
                calibration_data_reader=None,
                calibration_cache_path=ranges(),
                quant_format=QuantFormat[quant.format],
                op_types_to_quantize=list(quant.op_types) if quant.op_types else None,
                per_channel=quant.per_channel,
                reduce_range=quant.reduce_range,
                activation_type=QuantType[quant.activation_type],
                weight_type=QuantType[quant.weight_type],
                calibrate_method=METHODS[calib.method],
                nodes_to_exclude=list(quant.nodes_to_exclude),
                # 7-bit weights where the target's 16-bit pair sums would saturate (ORT's per-initializer override)
                extra_options={"TensorQuantOverrides": {w: [{"reduce_range": True}] for w in half_range}},
            )
    except (ValueError, RuntimeError, TypeError) as exc:
        raise QuantizationError(f"ONNX Runtime could not build {quant.variant} with {asdict(quant)}: {exc}") from exc
