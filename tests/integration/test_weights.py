"""The Keras h5 -> InceptionResnetV1 conversion of Sandberg's 20170512-110547, on the real file."""

import shutil

import h5py
import numpy as np
import pytest
import torch

from facequant.models.backbones import build_backbone
from facequant.models.weights import H5_SHA256, WeightsError, convert_keras_h5, fetch_h5


@pytest.fixture(scope="module")
def template():
    return build_backbone(128).state_dict()


def test_every_array_used_and_every_parameter_filled(real_h5, template):
    state = convert_keras_h5(real_h5, template)
    with h5py.File(real_h5) as h5:
        kernel = np.asarray(h5["model_weights/Conv2d_1a_3x3/Conv2d_1a_3x3/kernel:0"])
        bottleneck = np.asarray(h5["model_weights/Bottleneck/Bottleneck/kernel:0"])
        beta = np.asarray(h5["model_weights/Bottleneck_BatchNorm/Bottleneck_BatchNorm/beta:0"])
    np.testing.assert_array_equal(state["conv2d_1a.conv.weight"].numpy(), kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["last_linear.weight"].numpy(), bottleneck.T)
    np.testing.assert_array_equal(state["last_bn.bias"].numpy(), beta)
    assert torch.all(state["last_bn.weight"] == 1) and torch.all(state["repeat_3.4.branch0.bn.weight"] == 1)
    net = build_backbone(128)
    net.load_state_dict(state, strict=True)
    with torch.inference_mode():
        out = net(torch.randn(2, 3, 160, 160))
    assert out.shape == (2, 128)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def edited_copy(src, dst, edit):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as h5:
        edit(h5["model_weights"])
    return dst


def test_an_unmapped_array_is_an_error(real_h5, template, tmp_path):
    path = edited_copy(real_h5, tmp_path / "extra.h5", lambda g: g.create_dataset("Extra/Extra/kernel:0", data=[1.0]))
    with pytest.raises(WeightsError, match="1 h5 array.* not mapped, e.g. Extra/Extra/kernel:0"):
        convert_keras_h5(path, template)


def test_a_wrong_shape_is_named(real_h5, template, tmp_path):
    def shrink(g):
        del g["Bottleneck/Bottleneck/kernel:0"]
        g.create_dataset("Bottleneck/Bottleneck/kernel:0", data=np.zeros((1792, 64), np.float32))

    path = edited_copy(real_h5, tmp_path / "shape.h5", shrink)
    with pytest.raises(
        WeightsError, match=r"shape mismatch for last_linear.weight: model \(128, 1792\), h5 \(64, 1792\)"
    ):
        convert_keras_h5(path, template)


def test_a_missing_array_is_named(real_h5, template, tmp_path):
    path = edited_copy(real_h5, tmp_path / "missing.h5", lambda g: g.__delitem__("Block8_6_Conv2d_1x1"))
    with pytest.raises(WeightsError, match="no array Block8_6_Conv2d_1x1/Block8_6_Conv2d_1x1/kernel:0"):
        convert_keras_h5(path, template)


def test_a_corrupt_h5_is_rejected_by_checksum(real_h5, tmp_path):
    (tmp_path / "facenet_keras.h5").write_bytes(b"not the model")
    with pytest.raises(WeightsError, match=f"expected {H5_SHA256}; delete it"):
        fetch_h5(tmp_path)
