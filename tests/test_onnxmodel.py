"""model=onnx: what the file tells is inferred, the rest is checked against it, and faces reach it as it takes them."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pytest
from hydra import compose, initialize_config_dir
from onnx import TensorProto, helper, numpy_helper

from facequant.cache.files import sha256_file
from facequant.cache.layout import CacheLayout
from facequant.config.sections import CalibrationConfig, ConfigError, ModelConfig, RuntimeConfig
from facequant.config.settings import load_settings
from facequant.job.stages import evaluate_model, export_model, prepare_data
from facequant.models.export import model_identity, onnx_file
from facequant.onnxmodel import InputSpec, OnnxModelError
from facequant.quant.quantize import FaceReader, calibration_ranges
from facequant.runtime.sessions import embed, preprocess
from helpers import LFW_ROOT, REPO, job_runs, main, share_aligned


def tiny_model(path: Path, shape: list, outputs: dict[str, list] | None = None, metadata: dict | None = None) -> Path:
    """A runnable embedding model: mean colour of each face times a fixed matrix, one input, given outputs."""
    layout_axes = [1, 2] if shape[3] == 3 else [2, 3]
    outputs = outputs or {"embedding": ["batch", 4]}
    weight = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    nodes = [helper.make_node("ReduceMean", ["data"], ["colour"], axes=layout_axes, keepdims=0)]
    nodes += [helper.make_node("MatMul", ["colour", "w"], [name]) for name in outputs]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims) for name, dims in outputs.items()],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, metadata or {})
    onnx.save(model, str(path))
    return path


def onnx_config(path: Path, **keys) -> ModelConfig:
    return ModelConfig(
        name="onnx", preprocess=keys.pop("preprocess", None), weights_dir="unused", path=str(path), **keys
    )


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


def nhwc_bgr(src: Path, target: Path) -> Path:
    """src's NCHW RGB graph behind a Transpose and a channel reversal: it takes NHWC BGR faces at 'image_bgr', and
    records nothing about its input, so its preprocessing and channel order must be given."""
    model = onnx.load(str(src))
    (image,) = model.graph.input
    size = image.type.tensor_type.shape.dim[2].dim_value
    nodes = [
        helper.make_node("Transpose", ["image_bgr"], ["bgr_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Gather", ["bgr_nchw", "bgr_to_rgb"], [image.name], axis=1),
        *model.graph.node,
    ]
    graph = helper.make_graph(
        nodes,
        "nhwc_bgr",
        [helper.make_tensor_value_info("image_bgr", TensorProto.FLOAT, ["batch", size, size, 3])],
        list(model.graph.output),
        [*model.graph.initializer, numpy_helper.from_array(np.array([2, 1, 0], np.int64), "bgr_to_rgb")],
    )
    onnx.save(helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version), str(target))
    return target


@pytest.fixture(scope="module")
def exports(sweep, msceleb128, tmp_path_factory) -> tuple[Path, Path]:
    """The sweep's msceleb128 FP32 export, and the NHWC BGR model built around it."""
    fp32 = CacheLayout(sweep[0] / "cache").fp32_model(model_identity(msceleb128[1]))
    return fp32, nhwc_bgr(fp32, tmp_path_factory.mktemp("nhwc") / "nhwc_bgr.onnx")


def test_a_wrong_input_name_lists_the_files_inputs(exports):
    with pytest.raises(OnnxModelError, match=r"model.input_name='data' is not an input .* its inputs: 'input' \[batch"):
        onnx_config(exports[0], input_name="data")


def test_a_layout_that_contradicts_the_shape_says_how_to_fix_it(exports):
    message = r"model.layout=NHWC contradicts input 'input' \[batch,3,160,160\] .* axis 1, which is NCHW. Use model.l"
    with pytest.raises(OnnxModelError, match=message):
        onnx_config(exports[0], layout="NHWC")
    with pytest.raises(OnnxModelError, match=r"model.layout=NCHW contradicts input 'image_bgr' \[batch,160,160,3\]"):
        onnx_config(exports[1], layout="NCHW", preprocess="per_image", channel_order="BGR")


def logged_scores(workdir: Path, run_id: str) -> np.ndarray:
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    csv = mlflow.MlflowClient().download_artifacts(run_id, "scores.csv", str(workdir))
    return np.loadtxt(csv, delimiter=",", skiprows=1, usecols=2)


def test_the_msceleb128_export_through_model_onnx_gives_the_same_scores(sweep, exports, tmp_path):
    workdir, runs = sweep
    share_aligned(workdir, tmp_path)  # the faces only: the scores are computed again
    s = settings("model=onnx", f"model.path={exports[0]}", f"dataset.root={LFW_ROOT}", "dataset.folds=1")
    s = replace(s, cache_dir=tmp_path / "cache")
    assert (s.model.preprocess, s.model.channel_order, s.align.image_size) == ("per_image", "RGB", 160)  # metadata
    layout = CacheLayout(s.cache_dir)
    data = prepare_data(s, layout)
    exported = export_model(s, layout, data)
    assert exported.fp32 == exports[0] and exported.parity is None  # used as it is, not exported
    assert exported.identity.weights_sha256 == sha256_file(exports[0]) and exported.info.embedding_size == 128
    evaluation = evaluate_model(data, exported.fp32, exported.spec)
    assert not evaluation.cached and data.computed == 0
    fp32 = runs.iloc[0]
    np.testing.assert_allclose(evaluation.scores, logged_scores(workdir, fp32.run_id), atol=1e-8)
    assert evaluation.verification.accuracy == fp32["metrics.accuracy"]


def test_an_nhwc_bgr_model_goes_through_quantization_evaluation_and_benchmark(sweep, exports, tmp_path):
    workdir, runs = sweep
    share_aligned(workdir, tmp_path)
    keys = ["model=onnx", f"model.path={exports[1]}", "model.preprocess=per_image", "model.channel_order=BGR"]
    proc = main(tmp_path, *keys, "quant=fp32,static", "benchmark.threads=[1]", "sensitivity=false", multirun=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fp32, static = (job_runs(tmp_path).iloc[i] for i in range(2))
    assert [fp32.status, static.status] == ["FINISHED", "FINISHED"]
    for run in (fp32, static):  # inferred from the shapes, and the crops follow the input size
        inferred = (run["params.model.layout"], run["params.model.input_name"], run["params.align.image_size"])
        assert inferred == ("NHWC", "image_bgr", "160")
        assert run["params.model_info.preprocess"] == "per_image NHWC BGR" and run["metrics.speedup"] > 0
    # fed NHWC BGR, the wrapped graph scores every pair as msceleb128 does
    np.testing.assert_allclose(
        logged_scores(tmp_path, fp32.run_id), logged_scores(workdir, runs.iloc[0].run_id), atol=1e-6
    )
    # calibrated on the same faces fed as it takes them, its INT8 variant drifts as msceleb128's does
    reference = runs.iloc[2]
    assert static["tags.mlflow.runName"] == reference["tags.mlflow.runName"] == "int8_static_qdq_minmax_100"
    assert abs(static["metrics.accuracy"] - reference["metrics.accuracy"]) <= 0.005 and static["metrics.size_mib"] < 25
    assert static["metrics.embedding_cosine_mean"] == pytest.approx(
        reference["metrics.embedding_cosine_mean"], abs=1e-3
    )


def test_calibration_feeds_the_nhwc_bgr_model_what_the_original_sees(exports, aligned_sample):
    """Every tensor of the original graph gets the same range through the wrapper: the reader reordered the faces."""
    faces, calib = aligned_sample.faces[:4], CalibrationConfig(batch_size=4)
    original = dict(calibration_ranges(exports[0], faces, InputSpec("per_image"), calib).items())
    spec = InputSpec("per_image", layout="NHWC", channel_order="BGR", input="image_bgr")
    wrapped = dict(calibration_ranges(exports[1], faces, spec, calib).items())
    assert len(original) > 100 and set(original) <= set(wrapped)
    for name, tensor in original.items():
        np.testing.assert_allclose(wrapped[name].range_value, tensor.range_value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_openvino_feeds_the_nhwc_bgr_model_and_reads_its_named_output(exports, aligned_sample):
    faces = aligned_sample.faces[:4]
    expected = embed(exports[0], faces, InputSpec("per_image"))
    spec = InputSpec("per_image", layout="NHWC", channel_order="BGR", input="image_bgr", output="embedding")
    np.testing.assert_allclose(embed(exports[1], faces, spec, cfg=RuntimeConfig("openvino")), expected, atol=1e-4)
