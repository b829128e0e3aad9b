"""model=onnx on the real msceleb128 export and an NHWC BGR model built around it: the file's inputs are
checked, and faces reach it as it takes them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facequant.cache.files import sha256_file
from facequant.cache.layout import CacheLayout
from facequant.config.running import RuntimeConfig
from facequant.config.sections import CalibrationConfig
from facequant.job.stages import evaluate_model, export_model, prepare_data
from facequant.onnxmodel import InputSpec, OnnxModelError
from facequant.quant.quantize import calibration_ranges
from facequant.runtime.sessions import embed
from helpers import LFW_ROOT, logged_scores, onnx_config, settings, share_aligned


def test_a_wrong_input_name_lists_the_files_inputs(onnx_exports):
    with pytest.raises(OnnxModelError, match=r"model.input_name='data' is not an input .* its inputs: 'input' \[batch"):
        onnx_config(onnx_exports[0], input_name="data")


def test_a_layout_that_contradicts_the_shape_says_how_to_fix_it(onnx_exports):
    message = r"model.layout=NHWC contradicts input 'input' \[batch,3,160,160\] .* axis 1, which is NCHW. Use model.l"
    with pytest.raises(OnnxModelError, match=message):
        onnx_config(onnx_exports[0], layout="NHWC")
    with pytest.raises(OnnxModelError, match=r"model.layout=NCHW contradicts input 'image_bgr' \[batch,160,160,3\]"):
        onnx_config(onnx_exports[1], layout="NCHW", preprocess="per_image", channel_order="BGR")


def test_the_msceleb128_export_through_model_onnx_gives_the_same_scores(sweep, onnx_exports, tmp_path):
    workdir, runs = sweep
    share_aligned(workdir, tmp_path)  # the faces only: the scores are computed again
    s = settings("model=onnx", f"model.path={onnx_exports[0]}", f"dataset.root={LFW_ROOT}", "dataset.folds=1")
    s = replace(s, cache_dir=tmp_path / "cache")
    assert (s.model.preprocess, s.model.channel_order, s.align.image_size) == ("per_image", "RGB", 160)  # metadata
    layout = CacheLayout(s.cache_dir)
    data = prepare_data(s, layout)
    exported = export_model(s, layout, data)
    assert exported.fp32 == onnx_exports[0] and exported.parity is None  # used as it is, not exported
    assert exported.identity.weights_sha256 == sha256_file(onnx_exports[0]) and exported.info.embedding_size == 128
    evaluation = evaluate_model(data, exported.fp32, exported.spec)
    assert not evaluation.cached and data.computed == 0
    fp32 = runs.iloc[0]
    np.testing.assert_allclose(evaluation.scores, logged_scores(workdir, fp32.run_id), atol=1e-8)
    assert evaluation.verification.accuracy == fp32["metrics.accuracy"]


def test_calibration_feeds_the_nhwc_bgr_model_what_the_original_sees(onnx_exports, aligned_sample):
    """Every tensor of the original graph gets the same range through the wrapper: the reader reordered the faces."""
    faces, calib = aligned_sample.faces[:4], CalibrationConfig(batch_size=4)
    original = dict(calibration_ranges(onnx_exports[0], faces, InputSpec("per_image"), calib).items())
    spec = InputSpec("per_image", layout="NHWC", channel_order="BGR", input="image_bgr")
    wrapped = dict(calibration_ranges(onnx_exports[1], faces, spec, calib).items())
    assert len(original) > 100 and set(original) <= set(wrapped)
    for name, tensor in original.items():
        np.testing.assert_allclose(wrapped[name].range_value, tensor.range_value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_openvino_feeds_the_nhwc_bgr_model_and_reads_its_named_output(onnx_exports, aligned_sample):
    faces = aligned_sample.faces[:4]
    expected = embed(onnx_exports[0], faces, InputSpec("per_image"))
    spec = InputSpec("per_image", layout="NHWC", channel_order="BGR", input="image_bgr", output="embedding")
    np.testing.assert_allclose(embed(onnx_exports[1], faces, spec, cfg=RuntimeConfig("openvino")), expected, atol=1e-4)
