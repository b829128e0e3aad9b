"""model=onnx on tiny hand-built models: what the file tells is inferred, the rest is checked against it, and
faces reach it as it takes them."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from hydra import compose, initialize_config_dir
from onnx import TensorProto, helper, numpy_helper

from facequant.config.sections import ConfigError
from facequant.config.settings import load_settings
from facequant.models.export import onnx_file
from facequant.onnxmodel import InputSpec, OnnxModelError
from facequant.quant.quantize import FaceReader
from facequant.runtime.sessions import preprocess
from helpers import REPO, onnx_config, tiny_model


def test_the_shapes_tell_layout_size_names_and_embedding_size(tmp_path):
    nhwc = onnx_config(tiny_model(tmp_path / "a.onnx", ["n", 112, 112, 3]), preprocess="fixed", channel_order="BGR")
    assert (nhwc.layout, nhwc.input_size, nhwc.input_name, nhwc.output_name) == ("NHWC", 112, "data", "embedding")
    assert nhwc.embedding_size == 4
    nchw = onnx_config(tiny_model(tmp_path / "b.onnx", ["n", 3, 96, 96]), preprocess="per_image", channel_order="RGB")
    assert (nchw.layout, nchw.input_size) == ("NCHW", 96)


def test_facequant_metadata_tells_preprocessing_channel_order_and_size(tmp_path):
    meta = {
        "facequant.preprocess": "per_image",
        "facequant.input": "float32 NCHW BGR 96x96",
        "facequant.embedding_size": "4",
    }
    path = tiny_model(tmp_path / "m.onnx", ["n", 3, 96, 96], {"embedding": ["n", "d"]}, meta)
    cfg = onnx_config(path)
    assert (cfg.preprocess, cfg.channel_order, cfg.embedding_size) == ("per_image", "BGR", 4)
    with pytest.raises(OnnxModelError, match="model.channel_order=RGB contradicts .* records BGR"):
        onnx_config(path, channel_order="RGB")
    with pytest.raises(OnnxModelError, match="model.embedding_size=8 contradicts .* output 'embedding' is 4-d"):
        onnx_config(path, embedding_size=8)


def test_what_the_file_cannot_tell_must_be_given(tmp_path):
    path = tiny_model(tmp_path / "a.onnx", ["n", 3, 96, 96])
    with pytest.raises(OnnxModelError, match="model.channel_order is required: .* give model.channel_order=RGB or BGR"):
        onnx_config(path, preprocess="fixed")
    with pytest.raises(OnnxModelError, match="model.preprocess is required: .* model.preprocess=per_image"):
        onnx_config(path, channel_order="RGB")
    free = tiny_model(tmp_path / "free.onnx", ["n", "c", "h", "w"])
    with pytest.raises(OnnxModelError, match=r"layout of input 'data' \[n,c,h,w\] .* cannot be told"):
        onnx_config(free, preprocess="fixed", channel_order="RGB")
    with pytest.raises(OnnxModelError, match="takes any image size; .* e.g. model.input_size=112"):
        onnx_config(free, preprocess="fixed", channel_order="RGB", layout="NHWC")
    cfg = onnx_config(free, preprocess="fixed", channel_order="RGB", layout="NHWC", input_size=112)
    assert (cfg.layout, cfg.input_size) == ("NHWC", 112)


def test_outputs_and_batch_errors_name_the_fix(tmp_path):
    two = tiny_model(tmp_path / "two.onnx", ["n", 3, 96, 96], {"fc1": ["n", 4], "norm": ["n", 4]})
    keys = {"preprocess": "fixed", "channel_order": "RGB"}
    with pytest.raises(OnnxModelError, match=r"has 2 outputs \('fc1' \[n,4\], 'norm' \[n,4\]\); .*model.output_name"):
        onnx_config(two, **keys)
    with pytest.raises(OnnxModelError, match=r"model.output_name='emb' is not an output .* its outputs: 'fc1' \[n,4\]"):
        onnx_config(two, output_name="emb", **keys)
    assert onnx_config(two, output_name="norm", **keys).output_name == "norm"
    fixed = tiny_model(tmp_path / "fixed.onnx", [1, 3, 112, 112])
    with pytest.raises(OnnxModelError, match="fixed batch size of 1; .*dynamic_axes"):
        onnx_config(fixed, **keys)
    with pytest.raises(OnnxModelError, match=r"model.input_size=160 contradicts input 'data' \[n,3,96,96\]"):
        onnx_config(tiny_model(tmp_path / "a.onnx", ["n", 3, 96, 96]), input_size=160, **keys)


def settings(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return load_settings(compose(config_name="config", overrides=["dataset.root=/unused", *overrides]))


def test_aligned_crops_follow_the_input_size(tmp_path):
    path = tiny_model(tmp_path / "m112.onnx", ["n", 112, 112, 3])
    keys = ["model=onnx", f"model.path={path}", "model.preprocess=fixed", "model.channel_order=BGR"]
    s = settings(*keys, "model.mean=127.5", "model.std=[127.5,127.5,127.5]")
    assert s.align.image_size == 112 and s.model.std == (127.5, 127.5, 127.5)
    assert s.model.input_spec().describe() == "fixed mean=127.5 std=127.5,127.5,127.5 NHWC BGR"
    with pytest.raises(ConfigError, match="align.image_size=160 contradicts the model's input size 112"):
        settings(*keys, "align.image_size=160")
    assert settings("model=msceleb128").align.image_size == 160


def test_onnx_keys_are_refused_for_built_in_models():
    """Their YAML lacks the keys, so only a forced +key reaches the check."""
    with pytest.raises(ConfigError, match="model.layout applies to model=onnx only"):
        settings("model=msceleb128", "+model.layout=NHWC")
    with pytest.raises(ConfigError, match="model.mean and model.std apply to model.preprocess=fixed only"):
        settings("model=msceleb128", "+model.mean=100")


def test_nhwc_bgr_input_is_the_nchw_rgb_input_transposed_and_reversed():
    faces = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    for method in ("fixed", "per_image"):
        nchw = preprocess(faces, InputSpec(method))
        nhwc_bgr = preprocess(faces, InputSpec(method, layout="NHWC", channel_order="BGR"))
        assert nhwc_bgr.shape == (2, 8, 8, 3) and nhwc_bgr.flags.c_contiguous
        np.testing.assert_array_equal(nhwc_bgr, nchw.transpose(0, 2, 3, 1)[..., ::-1])
    # per-channel mean and std are in the model's channel order: B first for a BGR model
    one = np.array([[[[10, 20, 30]]]], np.uint8)
    bgr = InputSpec("fixed", mean=(30.0, 20.0, 10.0), std=(1.0, 2.0, 5.0), layout="NHWC", channel_order="BGR")
    np.testing.assert_array_equal(preprocess(one, bgr).ravel(), [0, 0, 0])


def test_the_calibration_reader_feeds_the_model_input_by_name_and_layout():
    faces = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    spec = InputSpec("fixed", layout="NHWC", channel_order="BGR", input="image_bgr")
    reader = FaceReader(faces, spec, batch_size=3)
    batches = [reader.get_next(), reader.get_next(), reader.get_next()]
    assert list(batches[0]) == ["image_bgr"] and batches[2] is None
    np.testing.assert_array_equal(np.concatenate([b["image_bgr"] for b in batches[:2]]), preprocess(faces, spec))


def test_the_cache_key_is_the_files_content_and_how_it_is_fed(tmp_path):
    path = tiny_model(tmp_path / "a.onnx", ["n", 96, 96, 3])
    cfg = onnx_config(path, preprocess="fixed", channel_order="RGB")
    faces = np.random.default_rng(2).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    sample = preprocess(faces, cfg.input_spec())
    fed, info, identity = onnx_file(cfg, cfg.input_spec(), sample)
    assert fed == path.resolve() and info.embedding_size == 4 and info.name == "onnx"
    renamed = Path(shutil.copy(path, tmp_path / "renamed.onnx"))
    assert onnx_file(replace(cfg, path=str(renamed)), cfg.input_spec(), sample)[2].key == identity.key
    bgr = replace(cfg, channel_order="BGR")
    assert onnx_file(bgr, bgr.input_spec(), sample)[2].key != identity.key
    other = tiny_model(tmp_path / "b.onnx", ["n", 96, 96, 3], {"embedding": ["n", 4], "extra": ["n", 4]})
    two = replace(cfg, path=str(other), output_name="embedding")
    assert onnx_file(two, two.input_spec(), sample)[2].key != identity.key


def test_a_model_that_does_not_embed_each_face_is_refused(tmp_path):
    """A graph that pools over the batch too: its output shape is not in the file, so only a run can tell."""
    nodes = [
        helper.make_node("ReduceMean", ["data"], ["colour"], axes=[0, 1, 2], keepdims=0),
        helper.make_node("MatMul", ["colour", "w"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "pooled",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 96, 96, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((3, 4), np.float32), "w")],
    )
    path = tmp_path / "pooled.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    cfg = onnx_config(path, preprocess="fixed", channel_order="RGB")
    assert cfg.embedding_size is None  # neither the shapes nor metadata tell it
    sample = preprocess(np.zeros((2, 96, 96, 3), np.uint8), cfg.input_spec())
    with pytest.raises(OnnxModelError, match=r"returned shape \[4\] for 2 faces; an embedding model returns"):
        onnx_file(cfg, cfg.input_spec(), sample)
