"""Weight loading paths (no download needed) and input preprocessing."""

import urllib.error

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


def test_offline_vggface2_names_the_file_and_the_offline_option(torch_home, monkeypatch):
    import facenet_pytorch.models.utils.download as download

    def offline(url, dst, *a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "download_url_to_file", offline)
    with pytest.raises(WeightsError) as err:
        load_model(ModelConfig(name="vggface2", preprocess="fixed", weights_dir="unused"))
    message = str(err.value)
    assert "20180402-114759-vggface2.pt" in message
    assert str(torch_home / "checkpoints") in message
    assert "model=msceleb128" in message


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
