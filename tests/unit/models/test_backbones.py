"""Weight loading paths (no download needed) and input preprocessing."""

from pathlib import Path

import numpy as np
import pytest
import torch

from facequant.config.sections import ConfigError, ModelConfig
from facequant.models.backbones import load_model
from facequant.models.weights import WeightsError
from facequant.onnxmodel import InputSpec
from facequant.runtime.sessions import preprocess
from helpers.torch_models import written_checkpoint


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def test_offline_vggface2_names_the_file_and_the_offline_option(offline, tmp_path):
    with pytest.raises(WeightsError) as err:
        load_model(ModelConfig(name="vggface2", preprocess="fixed", weights_dir="unused"))
    message = str(err.value)
    assert "cannot download the vggface2 weights (cannot fetch http://127.0.0.1:9/" in message
    assert f"Put 20180402-114759-vggface2.pt in {tmp_path / 'torch' / 'checkpoints'}" in message
    assert "model=msceleb128" in message
    assert not (tmp_path / "torch" / "checkpoints" / "20180402-114759-vggface2.pt").exists()


def test_the_torch_cache_is_where_facenet_pytorch_keeps_it(tmp_path, monkeypatch):
    from facenet_pytorch.models.inception_resnet_v1 import get_torch_home

    from facequant.models.checkpoints import torch_home

    for env in ({"TORCH_HOME": str(tmp_path / "t")}, {"XDG_CACHE_HOME": str(tmp_path / "x")}, {}):
        for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert torch_home() == Path(get_torch_home())


def test_file_model_infers_the_embedding_size(tmp_path):
    written_checkpoint(tmp_path / "mine.pt", size=256)
    net, info = load_model(
        ModelConfig(name="file", preprocess="per_image", weights_dir="x", path=str(tmp_path / "mine.pt"))
    )
    assert info.embedding_size == 256 and net.last_bn.num_features == 256


def test_file_model_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"model.path=.*none.pt is not a file"):
        ModelConfig(name="file", preprocess="fixed", weights_dir="x", path=str(tmp_path / "none.pt"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not an InceptionResnetV1 state_dict"):
        load_model(ModelConfig(name="file", preprocess="fixed", weights_dir="x", path=str(tmp_path / "other.pt")))


def test_fixed_preprocessing():
    faces = np.array([[[[0, 127, 255]]]], np.uint8)  # one 1x1 RGB image
    np.testing.assert_allclose(preprocess(faces, InputSpec("fixed")).ravel(), [-127.5 / 128, -0.5 / 128, 127.5 / 128])


def test_per_image_standardisation_is_sandbergs_prewhiten():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 160, 160, 3), dtype=np.uint8)
    x = preprocess(faces, InputSpec("per_image"))
    assert x.shape == (3, 3, 160, 160) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(1, 2, 3)), 1, atol=1e-4)


def test_per_image_floors_the_std_of_flat_images():
    # a constant image has std 0; the 1/sqrt(n) floor keeps it finite (all zeros) instead of NaN
    x = preprocess(np.full((1, 160, 160, 3), 7, np.uint8), InputSpec("per_image"))
    assert np.isfinite(x).all() and not x.any()
