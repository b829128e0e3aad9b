"""The quantize stage: the variant's ONNX file, and for the avx2 preset the weights it quantizes to 7 bits."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from facequant.cache.files import exclusive, read_json, sha256_file, write_json
from facequant.cache.layout import CacheLayout, RangesIdentity, SaturationIdentity, VariantIdentity
from facequant.config.sections import QuantConfig
from facequant.config.settings import Settings
from facequant.job.stages import EvalData, Exported
from facequant.quant.quantize import build_variant, fit_ranges, pre_process, quantizer, weights_of
from facequant.quant.saturation import saturating_nodes, saturation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quantized:
    path: Path
    built: bool
    source: Path  # the FP32 model it was quantized from: its tensor names are the variant's
    half_range: tuple[str, ...] = ()  # weights the avx2 preset quantized to 7 bits


def quantize_model(
    settings: Settings, layout: CacheLayout, data: EvalData, exported: Exported, quant: QuantConfig | None = None
) -> Quantized:
    """The variant's ONNX file (of quant, by default the settings'), built unless a verified copy of the same
    identity is cached; static variants quantize with the calibration's cached ranges."""
    quant = replace(quant or settings.quant, exclude=None)  # auto chooses exclusions; the plain file is the same
    if quant.mode == "fp32":
        return Quantized(exported.fp32, built=False, source=exported.fp32)
    half: tuple[str, ...] = ()
    if quant.half_range == "saturating":
        half = _saturating_weights(settings, layout, data, exported, quant)
    calib = settings.calibration
    identity = VariantIdentity(
        model=exported.identity.key,
        quant=quant.effective() | ({"half_range_weights": list(half)} if half else {}),
        calibration=asdict(calib) if calib else None,
        calibration_faces=data.calibration_id.key if data.calibration_id else None,
        quantizer=quantizer(),
    )
    pre_identity = {"model": exported.identity.key, "quantizer": quantizer()}
    pre = pre_process(exported.fp32, layout.preprocessed_model(exported.identity, quantizer()), pre_identity)
    ranges = None
    if calib is not None and data.calibration_id is not None:
        fitted = RangesIdentity(exported.identity.key, asdict(calib), data.calibration_id.key, quantizer())

        def ranges() -> Path:
            path = layout.ranges(fitted)
            return fit_ranges(pre, path, asdict(fitted), calib, exported.spec, data.calibration_faces)

    target = layout.variant_model(identity, quant.variant)
    shape = tuple(exported.sample[:1].shape)
    built = build_variant(pre, target, asdict(identity), quant, calib, ranges, shape, half)
    return Quantized(target, built, pre, half)


def _saturating_weights(
    settings: Settings, layout: CacheLayout, data: EvalData, exported: Exported, quant: QuantConfig
) -> tuple[str, ...]:
    """The avx2 preset: the full-range variant's nodes whose int16 pair sums saturate on more than
    target.max_saturation of their outputs, on calibration faces, and so the weights to quantize to 7 bits."""
    full = quantize_model(settings, layout, data, exported, replace(quant, half_range="none"))
    target = settings.target
    identity = {
        "variant": sha256_file(full.path),
        "calibration_faces": data.calibration_id.key if data.calibration_id else None,
        "faces": target.saturation_faces,
        "bound": target.max_saturation,
    }
    path = layout.saturating_weights(SaturationIdentity(**identity))
    with exclusive(path):  # measured once per full-range file and bound, not on every job and exclusion step
        cached = read_json(path)
        if cached is None or cached.get("identity") != identity:
            faces = data.calibration_faces()[: target.saturation_faces]
            nodes = saturating_nodes(saturation(full.path, faces, exported.spec).table, target.max_saturation)
            cached = {"identity": identity, "weights": weights_of(full.source, nodes)}
            write_json(path, cached)
    log.info("avx2 preset: %d weight(s) saturate above %g: 7 bits there", len(cached["weights"]), target.max_saturation)
    return tuple(cached["weights"])
