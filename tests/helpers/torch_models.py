"""Checkpoints of the real InceptionResnetV1 with random weights, written as facenet-pytorch writes them.

Not re-exported by helpers/__init__.py, so that tests which do not need torch do not import it.
"""

from __future__ import annotations

import torch

from facequant.models.backbones import build_backbone


def written_checkpoint(path, size=512):
    """A facenet-pytorch style checkpoint: backbone plus the classifier the embedding model drops."""
    torch.manual_seed(0)
    net = build_backbone(size)
    state = net.state_dict() | {"logits.weight": torch.randn(10, size), "logits.bias": torch.zeros(10)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return net.state_dict()
