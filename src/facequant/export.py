"""PyTorch -> ONNX export with a dynamic batch axis, self-describing metadata and a parity check."""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from facequant.cache import atomic_path, read_json, write_json
from facequant.evaluate import session
from facequant.models import ModelInfo

log = logging.getLogger(__name__)

OPSET = 17
INPUT, OUTPUT = "input", "embedding"
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The ONNX model does not reproduce the PyTorch model."""


def metadata(info: ModelInfo) -> dict[str, str]:
    """What a consumer of the ONNX file needs to feed it: source, embedding size and preprocessing."""
    meta = {f"facequant.{k}": str(v) for k, v in asdict(info).items() if k != "weights_path"}
    meta["facequant.input"] = "float32 NCHW RGB 160x160 after preprocessing; output L2-normalised embedding"
    return meta


def export_onnx(net: nn.Module, info: ModelInfo, target: Path, sample: np.ndarray) -> float:
    """Export net to target (atomically) and return the max abs difference to PyTorch on sample inputs.

    Cached: if target and its parity record exist, nothing is exported again.
    """
    record = target.with_suffix(".json")
    if target.is_file() and record.is_file():
        return float(read_json(record)["parity_max_abs_diff"])
    net = net.eval()
    with atomic_path(target) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (torch.from_numpy(sample[:2]),),
            str(tmp),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
        model = onnx.load(str(tmp))
        onnx.helper.set_model_props(model, metadata(info))
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        diff = parity(net, tmp, sample)
        if diff > PARITY_TOLERANCE:
            raise ExportError(f"ONNX export differs from PyTorch by {diff:.2e} (> {PARITY_TOLERANCE:.0e})")
    write_json(record, {"parity_max_abs_diff": diff, "opset": OPSET, "samples": len(sample)})
    log.info("exported %s (opset %d), parity max abs diff %.2e", target, OPSET, diff)
    return diff


def parity(net: nn.Module, onnx_path: Path, sample: np.ndarray) -> float:
    """Max abs difference between PyTorch and ONNX Runtime embeddings on the same inputs."""
    with torch.inference_mode():
        expected = net(torch.from_numpy(sample)).numpy()
    got = session(onnx_path).run(None, {INPUT: sample})[0]
    return float(np.abs(expected - got).max())


def read_metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
