"""The FP32 ONNX model: a PyTorch export with a dynamic batch axis, self-describing metadata and a parity check,
or model=onnx's file as it is."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from facequant.cache.files import atomic_path, exclusive, sha256_file, verified_file, write_file_record
from facequant.cache.layout import ModelIdentity
from facequant.config.sections import ModelConfig
from facequant.models.backbones import ModelInfo
from facequant.onnxmodel import INPUT, OUTPUT, InputSpec, check_embeddings, read_interface
from facequant.runtime import sessions as runtime

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The ONNX model does not reproduce the PyTorch model."""


def metadata(info: ModelInfo) -> dict[str, str]:
    """What a consumer of the ONNX file needs to feed it: source, embedding size and preprocessing."""
    return {f"facequant.{k}": str(v) for k, v in asdict(info).items() if k != "weights_path"}


def model_identity(info: ModelInfo) -> ModelIdentity:
    """Everything that changes the exported file, the preprocessing written into its metadata included; the
    exporter is the installed torch distribution, read without importing torch."""
    return ModelIdentity(
        info.weights_sha256,
        info.architecture,
        info.embedding_size,
        info.preprocess,
        OPSET,
        f"torch {version('torch')}",
    )


def cached_parity(target: Path, info: ModelInfo) -> float | None:
    """The recorded parity of a cached export of exactly this model (its record and sha256 checked), else None."""
    record = verified_file(target, asdict(model_identity(info)))
    return None if record is None else float(record["parity_max_abs_diff"])


def export_onnx(net: nn.Module, info: ModelInfo, target: Path, sample: np.ndarray) -> float:
    """Export net to target (atomically) and return the max abs difference to PyTorch on sample inputs.

    Cached: if target exists with a record of this identity and its sha256, nothing is exported again.
    """
    with exclusive(target):
        return _export_once(net, info, target, sample)


def _export_once(net: nn.Module, info: ModelInfo, target: Path, sample: np.ndarray) -> float:
    cached = cached_parity(target, info)
    if cached is not None:
        return cached
    import torch

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
    write_file_record(target, asdict(model_identity(info)), {"parity_max_abs_diff": diff, "samples": len(sample)})
    log.info("exported %s (opset %d), parity max abs diff %.2e", target, OPSET, diff)
    return diff


def parity(net: nn.Module, onnx_path: Path, sample: np.ndarray) -> float:
    """Max abs difference between PyTorch and ONNX Runtime embeddings on the same inputs."""
    import torch

    with torch.inference_mode():
        expected = net(torch.from_numpy(sample)).numpy()
    got = runtime.run(runtime.session(onnx_path), sample)
    return float(np.abs(expected - got).max())


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in the graph: initializers, and tensors in node attributes and subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            yield from ([attr.t] if attr.HasField("t") else [])
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


def external_data_files(path: Path) -> list[Path]:
    """The external-data files an ONNX file keeps its weights in (a model over 2 GB must), sorted."""
    model = onnx.load(str(path), load_external_data=False)
    names = {ExternalDataInfo(t).location for t in _tensors(model.graph) if uses_external_data(t)}
    return sorted(path.parent / name for name in names)


def model_sha256(path: Path) -> str:
    """The sha256 of the ONNX file and of every external-data file it names, so an edited weights file is another
    model; a file without external data keeps its plain sha256, and so every key derived from it."""
    digest = sha256_file(path)
    external = external_data_files(path)
    if not external:
        return digest
    parts = [digest] + [f"{file.relative_to(path.parent)}:{sha256_file(file)}" for file in external]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def onnx_file(cfg: ModelConfig, spec: InputSpec, sample: np.ndarray) -> tuple[Path, ModelInfo, ModelIdentity]:
    """model=onnx: the file is the FP32 model as it is, identified by its sha256 and how it is fed, so cached
    variants and scores follow its content; one run on real faces checks it gives one embedding per face."""
    path = Path(str(cfg.path)).expanduser().resolve()
    iface = read_interface(path)
    out = runtime.run(runtime.session(path), sample, spec.output)
    size = check_embeddings(out, len(sample), path, cfg.embedding_size)
    described = spec.describe()
    info = ModelInfo(
        name=cfg.name,
        source=f"ONNX file {path}",
        embedding_size=size,
        preprocess=described,
        weights_path=str(path),
        weights_sha256=model_sha256(path),
        architecture=f"ONNX file ({iface.producer}, opset {iface.opset})",
        input=f"float32 {spec.layout} {spec.channel_order} {cfg.input_size}x{cfg.input_size} at '{spec.input}' after "
        f"preprocessing; embedding from output '{spec.output}'",
    )
    exporter = "none: the file as given"
    identity = ModelIdentity(info.weights_sha256, info.architecture, size, described, iface.opset, exporter)
    return path, info, identity


def read_metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
