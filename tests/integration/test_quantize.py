"""ONNX Runtime calibration and quantization of the real model on real faces."""

import numpy as np
import pytest

from facequant.config.sections import CalibrationConfig, QuantConfig
from facequant.onnxmodel import InputSpec
from facequant.quant.quantize import QuantizationError, build_variant, calibration_ranges
from helpers import unrunnable_model


def ranges_of(pre, faces, **calib):
    data = calibration_ranges(pre, faces, InputSpec("per_image"), CalibrationConfig(**calib))
    return {name: np.array(t.range_value, dtype=np.float64) for name, t in data.items()}


def test_entropy_ranges_differ_from_minmax_on_real_faces(fp32_pre, aligned_sample):
    faces = aligned_sample.faces[:16]
    minmax = ranges_of(fp32_pre, faces, method="minmax")
    # 256 bins keep the test fast (2048, the default, costs minutes in ORT's Python KL search)
    entropy = ranges_of(fp32_pre, faces, method="entropy", num_bins=256)
    assert minmax.keys() == entropy.keys()
    differ = [k for k in minmax if not np.allclose(minmax[k], entropy[k], rtol=1e-3)]
    assert len(differ) > 0.5 * len(minmax)
    # Entropy clips outliers: its ranges are never wider than the observed min/max
    widths = [(np.ptp(entropy[k]), np.ptp(minmax[k])) for k in differ]
    assert all(e <= m * (1 + 1e-6) for e, m in widths)


def test_ort_default_bins_make_entropy_equal_minmax(fp32_pre, aligned_sample):
    """The pitfall the bins setting avoids: with 128/128 bins the only candidate range is the full one."""
    faces = aligned_sample.faces[:16]
    minmax = ranges_of(fp32_pre, faces, method="minmax")
    entropy = ranges_of(fp32_pre, faces, method="entropy", num_bins=128, num_quantized_bins=128)
    same = [k for k in minmax if np.allclose(np.abs(minmax[k]).max(), np.abs(entropy[k]).max(), rtol=1e-2)]
    assert len(same) > 0.9 * len(minmax)


def test_a_failed_build_leaves_no_cache_entry(fp32_onnx, tmp_path, monkeypatch):
    import facequant.quant.quantize as q

    monkeypatch.setattr(q, "quantize_dynamic", lambda src, dst, **_: unrunnable_model(dst))
    target = tmp_path / "dyn.onnx"
    with pytest.raises(QuantizationError):
        build_variant(
            fp32_onnx[0],
            target,
            {"test": "dynamic"},
            QuantConfig(mode="dynamic", op_types=("MatMul",)),
            None,
            None,
            (1, 3, 8, 8),
        )
    assert not target.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*.json"))
