"""Sandberg's 20180408-102900 (CASIA-WebFace) from the frozen graph of the PyPI wheel, on the real file."""

import zipfile

import numpy as np
import pytest
import torch

from facequant.cache.files import sha256_file
from facequant.config.sections import ModelConfig
from facequant.models.backbones import load_model
from facequant.models.casia import (
    GRAPH_SHA256,
    GRAPH_SOURCE,
    PARITY,
    STATE_DICT,
    backbone,
    convert_graph,
    record_parity,
)
from facequant.models.tfgraph import FrozenGraph, graph_def_class
from facequant.models.weights import WeightsError
from facequant.onnxmodel import InputSpec
from facequant.runtime.sessions import preprocess
from helpers import WEIGHTS_DIR

ROOT = "InceptionResnetV1"


@pytest.fixture(scope="module")
def graph(graph_path):
    return FrozenGraph(graph_path)


@pytest.fixture(scope="module")
def converted(graph_path):
    return convert_graph(graph_path, backbone())


def test_every_const_used_and_every_parameter_filled(graph, converted):
    floats = [name for name, value in graph.consts.items() if value.dtype == np.float32]
    assert len(floats) == 132 * 2 + 21 + 1 + 4 + 1  # convs (kernel, bias), block scales, bottleneck, BN, l2 floor

    def const(name):
        return graph.consts[f"{ROOT}/{name}"]

    np.testing.assert_array_equal(
        converted["conv2d_1a.conv.weight"].numpy(), const("Conv2d_1a_3x3/weights").transpose(3, 2, 0, 1)
    )
    np.testing.assert_array_equal(
        converted["repeat_2.9.branch1.2.bn.bias"].numpy(),
        const("Repeat_1/block17_10/Branch_1/Conv2d_0c_7x1/Conv2D_bn_offset"),
    )
    np.testing.assert_array_equal(converted["block8.conv2d.bias"].numpy(), const("Block8/Conv2d_1x1/biases"))
    np.testing.assert_array_equal(converted["last_linear.weight"].numpy(), const("Bottleneck/weights").T)
    np.testing.assert_array_equal(
        converted["last_bn.running_var"].numpy(), const("Bottleneck/BatchNorm/moving_variance")
    )
    assert torch.all(converted["last_bn.weight"] == 1)  # the BN scale Const: one float_val repeated to 512
    bn = {k: converted[f"mixed_7a.branch2.1.bn.{k}"] for k in ("weight", "running_mean", "running_var")}
    assert torch.all(bn["weight"] == 1) and torch.all(bn["running_mean"] == 0)
    assert torch.all(bn["running_var"] == torch.tensor(1 - 0.001, dtype=torch.float32))
    net = backbone()
    net.load_state_dict(converted, strict=True)
    with torch.inference_mode():
        out = net(torch.randn(2, 3, 160, 160))
    assert out.shape == (2, 512)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def _add_const(g):
    node = g.node.add(name="Extra", op="Const")
    node.attr["value"].tensor.dtype = 1
    node.attr["value"].tensor.float_val.append(1.0)


def _shrink_bottleneck(g):
    tensor = next(n for n in g.node if n.name == f"{ROOT}/Bottleneck/weights").attr["value"].tensor
    tensor.tensor_shape.dim[1].size = 256
    tensor.tensor_content = tensor.tensor_content[: 1792 * 256 * 4]


def _drop_node(g):
    del g.node[next(i for i, n in enumerate(g.node) if n.name == f"{ROOT}/Block8/Conv2d_1x1/Conv2D")]


def _rescale_block(g):
    tensor = next(n for n in g.node if n.name == f"{ROOT}/Repeat_1/block17_1/mul/x").attr["value"].tensor
    tensor.float_val[0] = 0.5


@pytest.mark.parametrize(
    "edit, error",
    [
        (_add_const, "1 graph Const.* not mapped, e.g. Extra"),
        (_shrink_bottleneck, r"shape mismatch for last_linear.weight: model \(512, 1792\), graph \(256, 1792\)"),
        (_drop_node, f"graph has no Conv2D node {ROOT}/Block8/Conv2d_1x1/Conv2D"),
        (_rescale_block, f"{ROOT}/Repeat_1/block17_1 scales its residual by 0.5, InceptionResnetV1 by 0.1"),
    ],
)
def test_an_edited_graph_is_a_named_error(graph_path, tmp_path, edit, error):
    g = graph_def_class()()
    g.ParseFromString(graph_path.read_bytes())
    edit(g)
    (tmp_path / "edited.pb").write_bytes(g.SerializeToString())
    with pytest.raises(WeightsError, match=error):
        convert_graph(tmp_path / "edited.pb", backbone())


def test_load_model_offline_converts_the_graph(offline, graph_path, lfw, tmp_path):
    from facequant.cache.layout import CacheLayout
    from facequant.config.sections import AlignConfig
    from facequant.data.align import align_images

    net, info = load_model(ModelConfig(name="casia_webface", preprocess="fixed", weights_dir=str(WEIGHTS_DIR)))
    assert info.source == GRAPH_SOURCE and GRAPH_SHA256 in info.source
    assert info.weights_path == str(WEIGHTS_DIR / STATE_DICT)
    assert info.weights_sha256 == sha256_file(WEIGHTS_DIR / STATE_DICT) and info.embedding_size == 512
    with zipfile.ZipFile(WEIGHTS_DIR / STATE_DICT) as saved:  # not named after a temp file: a reproducible sha256
        assert all(name.startswith("archive/") for name in saved.namelist())
    pairs = [p for p in lfw.pairs if p.label == 1][:3] + [p for p in lfw.pairs if p.label == 0][:3]
    names = sorted({n for p in pairs for n in (p.left, p.right)})
    faces = align_images(lfw.images_dir, names, AlignConfig(), CacheLayout(tmp_path / "cache")).faces
    with torch.inference_mode():
        emb = dict(zip(names, net(torch.from_numpy(preprocess(faces, InputSpec("fixed")))).numpy(), strict=True))
    assert next(iter(emb.values())).shape == (512,)
    scores = {label: [float(emb[p.left] @ emb[p.right]) for p in pairs if p.label == label] for label in (0, 1)}
    assert min(scores[1]) > max(scores[0]) + 0.2, scores  # measured: genuine >= 0.65, impostor <= 0.07


def test_parity_with_the_graph_run_by_opencv(graph_path, aligned_sample):
    pytest.importorskip("cv2", reason="the parity check runs the graph with OpenCV: pip install opencv-python-headless")
    x = preprocess(aligned_sample.faces[:16], InputSpec("fixed"))
    record = record_parity(WEIGHTS_DIR, x, "16 real aligned LFW faces (tests' aligned_sample), preprocess=fixed")
    assert record["faces"] == 16 and record["graph_sha256"] == GRAPH_SHA256
    assert record["state_dict_sha256"] == sha256_file(WEIGHTS_DIR / STATE_DICT)
    assert record["max_abs_diff"] < 1e-4 and record["min_cosine"] > 0.9999, record
    assert (WEIGHTS_DIR / PARITY).is_file()
