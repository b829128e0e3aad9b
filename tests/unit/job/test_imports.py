"""A job process and a deployment import torch only when they must detect faces, build a network or export it:
torch, torchvision and facenet-pytorch take 4-5 s of every process's start."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["facequant.job.pipeline", "facequant.job.preflight", "facequant.deploy"])
def test_importing_leaves_torch_out(module):
    heavy = ("torch", "torchvision", "facenet_pytorch")
    code = f"import sys, {module}; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
