"""ONNX Runtime calibration and quantization of the real model on real faces."""

import numpy as np
import pytest

from facequant.config.sections import CalibrationConfig, QuantConfig
from facequant.onnxmodel import InputSpec
from facequant.quant.quantize import QuantizationError, build_variant, calibration_ranges, check_runnable, pre_process


@pytest.fixture(scope="module")
def pre(fp32_onnx):
    path = fp32_onnx[0]
    return pre_process(path, path.with_name("fp32.pre.onnx"), {"test": "pre"})


def ranges_of(pre, faces, **calib):
    data = calibration_ranges(pre, faces, InputSpec("per_image"), CalibrationConfig(**calib))
    return {name: np.array(t.range_value, dtype=np.float64) for name, t in data.items()}


def test_entropy_ranges_differ_from_minmax_on_real_faces(pre, aligned_sample):
    faces = aligned_sample.faces[:16]
    minmax = ranges_of(pre, faces, method="minmax")
    # 256 bins keep the test fast (2048, the default, costs minutes in ORT's Python KL search)
    entropy = ranges_of(pre, faces, method="entropy", num_bins=256)
    assert minmax.keys() == entropy.keys()
    differ = [k for k in minmax if not np.allclose(minmax[k], entropy[k], rtol=1e-3)]
    assert len(differ) > 0.5 * len(minmax)
    # Entropy clips outliers: its ranges are never wider than the observed min/max
    widths = [(np.ptp(entropy[k]), np.ptp(minmax[k])) for k in differ]
    assert all(e <= m * (1 + 1e-6) for e, m in widths)


def test_ort_default_bins_make_entropy_equal_minmax(pre, aligned_sample):
    """The pitfall the bins setting avoids: with 128/128 bins the only candidate range is the full one."""
    faces = aligned_sample.faces[:16]
    minmax = ranges_of(pre, faces, method="minmax")
    entropy = ranges_of(pre, faces, method="entropy", num_bins=128, num_quantized_bins=128)
    same = [k for k in minmax if np.allclose(np.abs(minmax[k]).max(), np.abs(entropy[k]).max(), rtol=1e-2)]
    assert len(same) > 0.9 * len(minmax)


def unrunnable_model(path):
    """A valid ONNX graph the CPU EP has no kernel for: Conv on float64."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 3, 3, 3)), "w")
    nodes = [
        helper.make_node("Cast", ["input"], ["x64"], to=TensorProto.DOUBLE),
        helper.make_node("Conv", ["x64", "w"], ["y"]),
        helper.make_node("Cast", ["y"], ["out"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 6, 6])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_a_model_the_cpu_ep_cannot_run_fails_clearly(tmp_path):
    path = unrunnable_model(tmp_path / "bad.onnx")
    with pytest.raises(
        QuantizationError, match=r"CPU EP cannot run the int8_dynamic model .*NOT_IMPLEMENTED.*quant.op_types"
    ):
        check_runnable(path, "int8_dynamic", (1, 3, 8, 8))


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
