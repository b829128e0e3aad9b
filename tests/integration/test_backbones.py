"""The default vggface2 model loaded from a full-size checkpoint in the torch cache (~100 MB written and read)."""

import pytest
import torch

from facequant.config.sections import ModelConfig
from facequant.models.backbones import load_model
from helpers.torch_models import written_checkpoint


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def test_vggface2_loads_from_the_torch_cache(torch_home, monkeypatch):
    expected = written_checkpoint(torch_home / "checkpoints" / "20180402-114759-vggface2.pt")
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or torch.serialization.load(*a, **k))
    net, info = load_model(ModelConfig(name="vggface2", preprocess="fixed", weights_dir="unused"))
    assert calls and all(k.get("weights_only") is True for k in calls)
    assert info.embedding_size == 512 and info.preprocess == "fixed" and len(info.weights_sha256) == 64
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, expected[key])
